/* The planted miner of the guest (simulation only): what the scenario's /tmp/.X11-unix/kworkerd
 * does in memory. It maps anonymous memory read-write-execute and copies code into it (what
 * linux.malware.malfind looks for), listens on a TCP port and holds a connection to the
 * mining-pool stand-in. It mines nothing. Built statically so the initramfs needs no libc for it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static const unsigned char stage[] =
    /* endbr64; push rbp; mov rbp,rsp; xor eax,eax; nop sled; pop rbp; ret */
    "\xf3\x0f\x1e\xfa\x55\x48\x89\xe5\x31\xc0\x90\x90\x90\x90\x90\x90\x5d\xc3"
    "xmrig/6.21.0\0--donate-level=0\0stratum+tcp://pool.example.net:3333\0";

int main(int argc, char **argv) {
    unsigned char *rwx = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rwx == MAP_FAILED) return 1;
    memcpy(rwx, stage, sizeof stage);
    memcpy(rwx + 4096, stage, sizeof stage); /* touch both pages: they must be resident to be dumped */

    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(LISTEN_PORT), .sin_addr.s_addr = htonl(INADDR_ANY)};
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&any, sizeof any) || listen(listener, 4)) return 2;

    struct sockaddr_in pool = {.sin_family = AF_INET, .sin_port = htons(POOL_PORT)};
    inet_pton(AF_INET, POOL_ADDRESS, &pool.sin_addr);
    int upstream = -1;
    for (int attempt = 0; attempt < 600; attempt++) {
        upstream = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(upstream, (struct sockaddr *)&pool, sizeof pool) == 0) break;
        close(upstream);
        upstream = -1;
        usleep(100000);
    }
    if (upstream < 0) return 3;
    (void)argc;
    (void)argv;
    for (;;) pause();
}
