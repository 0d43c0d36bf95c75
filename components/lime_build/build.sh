#!/usr/bin/env bash
# The LimeFactory's build of one kernel: the LiME module and, where the distribution gives us the
# symbols, the Volatility 3 ISF; build.json records sources and digests. CodeBuild runs this file
# (the buildspec carries it), and tests/memory/test_volatility_guest.py runs it here for Debian 12.
#
# Environment: DISTRO DISTRO_VERSION KERNEL_RELEASE ARCH (from the state machine), OUT (folder of
# the results, default ./out), IRF_SKIP_INSTALL=1 when the packages are installed already,
# IRF_BUCKET to upload to s3://$IRF_BUCKET/<distro>-<version>/<release>/<arch>/ (CodeBuild).
set -euo pipefail
: "${DISTRO:?}" "${DISTRO_VERSION:?}" "${KERNEL_RELEASE:?}" "${ARCH:?}"
# The release comes from a suspect host: refuse anything but a plain release string.
[[ "$KERNEL_RELEASE" =~ ^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$ ]] || { echo "refused kernel release" >&2; exit 1; }
LIME_REPOSITORY=https://github.com/504ensicsLabs/LiME.git
LIME_TAG=v1.9.1
DWARF2JSON_REPOSITORY=https://github.com/volatilityfoundation/dwarf2json.git
DWARF2JSON_COMMIT=9f14607e0d339d463ea725fbd5c08aa7b7d40f75
OUT=${OUT:-$PWD/out}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

install_packages() {
  case "$DISTRO" in
    debian)
      export DEBIAN_FRONTEND=noninteractive
      apt-get update
      # Debian's own packages only: headers, the kernel image (its vmlinuz carries BTF) and LiME's source.
      apt-get install -y --no-install-recommends ca-certificates make gcc xz-utils python3 awscli \
        "linux-headers-${KERNEL_RELEASE}" "linux-image-${KERNEL_RELEASE}" lime-forensics-dkms
      ;;
    ubuntu)
      export DEBIAN_FRONTEND=noninteractive
      apt-get update
      apt-get install -y --no-install-recommends ca-certificates curl git make gcc xz-utils golang-go \
        ubuntu-dbgsym-keyring awscli
      echo "deb http://ddebs.ubuntu.com $(. /etc/os-release; echo "$VERSION_CODENAME") main restricted universe multiverse" \
        > /etc/apt/sources.list.d/ddebs.list
      apt-get update
      apt-get install -y "linux-headers-${KERNEL_RELEASE}" "linux-image-unsigned-${KERNEL_RELEASE}-dbgsym"
      ;;
    amzn)
      if [ "$DISTRO_VERSION" = 2023 ]; then
        dnf install -y git make gcc xz tar golang awscli elfutils-libelf-devel "kernel-devel-${KERNEL_RELEASE}" dnf-plugins-core
        dnf debuginfo-install -y "kernel-${KERNEL_RELEASE}"
      else
        yum install -y git make gcc xz tar golang awscli elfutils-libelf-devel "kernel-devel-${KERNEL_RELEASE}" yum-utils
        debuginfo-install -y "kernel-${KERNEL_RELEASE}"
      fi
      ;;
    *) echo "no build recipe for $DISTRO $DISTRO_VERSION" >&2; exit 1 ;;
  esac
}
[ "${IRF_SKIP_INSTALL:-0}" = 1 ] || install_packages

# 1. LiME: Debian packages its source (lime-forensics-dkms); elsewhere the pinned upstream tag.
if [ "$DISTRO" = debian ]; then
  LIME_SOURCE=$(ls -d /usr/src/lime-forensics-* | sort -V | tail -n 1)
  LIME_ORIGIN="debian:lime-forensics-dkms $(dpkg-query -W -f '${Version}' lime-forensics-dkms)"
  cp -r "$LIME_SOURCE" "$WORK/lime"
else
  git clone --quiet --depth 1 --branch "$LIME_TAG" "$LIME_REPOSITORY" "$WORK/lime-git"
  cp -r "$WORK/lime-git/src" "$WORK/lime"
  LIME_ORIGIN="$LIME_REPOSITORY $LIME_TAG"
fi
KBUILD=/lib/modules/${KERNEL_RELEASE}/build
[ -d "$KBUILD" ] || KBUILD=/usr/src/kernels/${KERNEL_RELEASE}
[ -d "$KBUILD" ] || KBUILD=/usr/src/linux-headers-${KERNEL_RELEASE}
make -s -C "$KBUILD" M="$WORK/lime" modules
cp "$WORK/lime/lime.ko" "$OUT/lime.ko"
VERMAGIC=$(strings "$OUT/lime.ko" | sed -n 's/^vermagic=\([^ ]*\).*/\1/p' | head -n 1)
[ "$VERMAGIC" = "$KERNEL_RELEASE" ] || { echo "lime.ko was built for $VERMAGIC, not $KERNEL_RELEASE" >&2; exit 1; }

# 2. The ISF. Debian: from the vmlinuz's own BTF (irf symbols) where a real System.map exists
# (Debian's /boot/System.map is a one-line placeholder; the real one is in the -dbg package);
# otherwise none is built here: the capture uploads the host's BTF, kallsyms and banner, and the
# examination builds the ISF from those. Others: dwarf2json over the debug vmlinux.
SYMBOLS_HOW=""
if [ "$DISTRO" = debian ]; then
  SYSTEM_MAP=/boot/System.map-${KERNEL_RELEASE}
  if [ -r "$SYSTEM_MAP" ] && [ "$(wc -l < "$SYSTEM_MAP")" -gt 1000 ] && [ -r "${IRF_BANNER:-/nonexistent}" ]; then
    irf symbols --btf "/boot/vmlinuz-${KERNEL_RELEASE}" --symbols "$SYSTEM_MAP" --banner "$IRF_BANNER" \
      --kaslr-shift 0 -o "$OUT/symbols.json.xz"
    SYMBOLS_HOW="irf symbols from the vmlinuz BTF and System.map"
  else
    SYMBOLS_HOW="not prebuilt: Debian ships no System.map outside linux-image-${KERNEL_RELEASE}-dbg; the examination builds the ISF from the host's BTF, kallsyms and banner captured with the image"
  fi
else
  if [ "$DISTRO" = ubuntu ]; then
    VMLINUX=/usr/lib/debug/boot/vmlinux-${KERNEL_RELEASE}; SYSTEM_MAP=/boot/System.map-${KERNEL_RELEASE}
  else
    VMLINUX=/usr/lib/debug/lib/modules/${KERNEL_RELEASE}/vmlinux; SYSTEM_MAP=/usr/src/kernels/${KERNEL_RELEASE}/System.map
  fi
  git clone --quiet "$DWARF2JSON_REPOSITORY" "$WORK/dwarf2json"
  git -C "$WORK/dwarf2json" checkout --quiet "$DWARF2JSON_COMMIT"
  (cd "$WORK/dwarf2json" && go build)
  SYMBOL_ARGS=(--elf "$VMLINUX")
  [ -r "$SYSTEM_MAP" ] && SYMBOL_ARGS+=(--system-map "$SYSTEM_MAP")
  "$WORK/dwarf2json/dwarf2json" linux "${SYMBOL_ARGS[@]}" | xz -9 > "$OUT/symbols.json.xz"
  [ -s "$OUT/symbols.json.xz" ] || exit 1
  SYMBOLS_HOW="dwarf2json $DWARF2JSON_COMMIT over $VMLINUX"
fi

# 3. build.json, written last: a prefix holding build.json is a complete build.
python3 - "$OUT" "$LIME_ORIGIN" "$SYMBOLS_HOW" <<'PY'
import hashlib, json, os, sys
out, lime_origin, symbols_how = sys.argv[1:4]
files = {name: {"sha256": hashlib.sha256(open(os.path.join(out, name), "rb").read()).hexdigest()}
         for name in ("lime.ko", "symbols.json.xz") if os.path.exists(os.path.join(out, name))}
document = {
    "kernel": {k.lower(): os.environ[v] for k, v in (("distro", "DISTRO"), ("distro_version", "DISTRO_VERSION"),
                                                   ("release", "KERNEL_RELEASE"), ("arch", "ARCH"))},
    "sources": {"lime": lime_origin, "symbols": symbols_how},
    "files": files,
    "codebuild_build_id": os.environ.get("CODEBUILD_BUILD_ID", "local"),
}
with open(os.path.join(out, "build.json"), "w") as target:
    json.dump(document, target, indent=1)
PY

if [ -n "${IRF_BUCKET:-}" ]; then
  PREFIX="${DISTRO}-${DISTRO_VERSION}/${KERNEL_RELEASE}/${ARCH}/"
  aws s3 cp "$OUT/lime.ko" "s3://${IRF_BUCKET}/${PREFIX}lime.ko"
  [ ! -f "$OUT/symbols.json.xz" ] || aws s3 cp "$OUT/symbols.json.xz" "s3://${IRF_BUCKET}/${PREFIX}symbols.json.xz"
  aws s3 cp "$OUT/build.json" "s3://${IRF_BUCKET}/${PREFIX}build.json"
fi
