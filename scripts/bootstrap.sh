#!/usr/bin/env bash
# Sourced by scripts/simulate.sh and scripts/test.sh: makes .venv and installs what the
# project needs (Python packages from PyPI, The Sleuth Kit and file-system tools from Debian)
# when they are missing. Safe to run again: it only installs what is absent or out of date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

need_apt=()
command -v fls >/dev/null 2>&1 || need_apt+=(sleuthkit)
command -v mkfs.ext4 >/dev/null 2>&1 || need_apt+=(e2fsprogs)
command -v mkfs.xfs >/dev/null 2>&1 || need_apt+=(xfsprogs)
command -v sgdisk >/dev/null 2>&1 || need_apt+=(gdisk)
# The memory tests' and the simulation's real Linux guest (simulation/guest): QEMU under TCG,
# Debian's kernel, busybox, and for the LiME fallback the headers and LiME's source; gcc builds
# both LiME and the guest's planted miner; python3.11, bash and libssl3 are copied into the guest.
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_apt+=(qemu-system-x86)
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || need_apt+=(linux-image-amd64 linux-headers-amd64)
[ -x /bin/busybox ] && busybox --list 2>/dev/null | grep -qx nc || need_apt+=(busybox-static)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v strings >/dev/null 2>&1 || need_apt+=(binutils)
[ -x /usr/bin/python3.11 ] || need_apt+=(python3.11)
for release in /boot/vmlinuz-*-amd64; do
  release="${release#/boot/vmlinuz-}"
  [ "$release" = "*-amd64" ] && continue
  [ -d "/lib/modules/$release/build" ] || need_apt+=("linux-headers-$release")
done
ls -d /usr/src/lime-forensics-* >/dev/null 2>&1 || need_apt+=(lime-forensics-dkms)
# Only for the test command (scripts/test.sh sets IRF_BOOTSTRAP_TESTS=1): headless Chromium lays
# the report out at phone and desk widths, tmux captures `irf simulate`'s console as a responder sees it.
if [ "${IRF_BOOTSTRAP_TESTS:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
fi
if ((${#need_apt[@]})); then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.irforensics-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
