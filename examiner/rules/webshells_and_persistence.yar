/*
   irforensics shipped rule set: what an attacker commonly leaves on a compromised Linux web
   server. Small and high-signal on purpose; add site rules next to it (runner --rules).
   Each rule carries meta.severity (critical/high/medium/low), used to order the report.
*/

rule php_webshell_eval_request : webshell php
{
    meta:
        description = "PHP evaluates data taken straight from the HTTP request"
        severity = "critical"
    strings:
        $php = "<?php" nocase
        $eval = /(eval|assert|create_function)\s*\(\s*(base64_decode|gzinflate|str_rot13|stripslashes)?\s*\(?\s*\$_(GET|POST|REQUEST|COOKIE|SERVER)/ nocase
    condition:
        $php and $eval
}

rule php_webshell_command_exec : webshell php
{
    meta:
        description = "PHP runs an operating-system command taken from the HTTP request"
        severity = "critical"
    strings:
        $php = "<?" 
        $exec = /(system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec)\s*\(\s*\$_(GET|POST|REQUEST|COOKIE)/ nocase
    condition:
        $php and $exec
}

rule jsp_webshell_runtime_exec : webshell jsp
{
    meta:
        description = "JSP runs a command from a request parameter"
        severity = "critical"
    strings:
        $exec = "Runtime.getRuntime().exec(" nocase
        $param = "request.getParameter(" nocase
    condition:
        $exec and $param
}

rule reverse_shell_command : reverse_shell
{
    meta:
        description = "Interactive shell wired to a remote TCP socket"
        severity = "high"
    strings:
        $bash_tcp = /(bash|sh)\s+-i\s+>&\s*\/dev\/tcp\/[0-9A-Za-z.\-]+\/[0-9]+/
        $dev_tcp = /\/dev\/tcp\/[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\/[0-9]{2,5}/
        $nc_e = /\b(nc|ncat|netcat)(\.traditional)?\s+(-[a-z]+\s+)*-e\s+\/bin\/(ba)?sh/
        $mkfifo = /mkfifo\s+\/tmp\/[^\s;]+;\s*(cat|tail)[^|]*\|\s*\/bin\/(ba)?sh\s+-i/
        $python_pty = "pty.spawn(\"/bin/" nocase
    condition:
        any of them
}

rule crypto_miner_indicators : miner
{
    meta:
        description = "Crypto-currency miner: mining pool protocol or XMRig strings"
        severity = "high"
    strings:
        $stratum = /stratum\+(tcp|ssl|tls):\/\// nocase
        $xmrig = "xmrig" nocase
        $donate = "--donate-level" nocase
        $randomx = "randomx" nocase
    condition:
        $stratum or ($xmrig and ($donate or $randomx)) or #xmrig > 2
}

rule cron_download_and_execute : persistence cron
{
    meta:
        description = "Scheduled job that downloads a script and pipes it to a shell"
        severity = "critical"
    strings:
        $schedule = /(^|\n)\s*(@(reboot|hourly|daily)|[0-9*\/,\-]+\s+[0-9*\/,\-]+\s+[0-9*\/,\-]+\s+[0-9*\/,\-]+\s+[0-9*\/,\-]+)\s/
        $pipe_sh = /(curl|wget)\s[^\n]*\|\s*(ba)?sh\b/
    condition:
        $schedule and $pipe_sh
}
