#!/usr/bin/env bash
# Installs everything nspawn needs on a Debian 12 machine, as root, then installs and builds the workspace.
#   scripts/setup.sh          runtime needs (compiler, busybox for the default image, Node 24, pnpm)
#   scripts/setup.sh --test   also what the test suite needs (systemd-nspawn as the reference, btrfs, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_MAJOR=24
PNPM_VERSION=$(sed -n 's/.*"packageManager": *"pnpm@\([^"]*\)".*/\1/p' package.json)

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: must run as root (it installs Debian packages and runs containers)" >&2
  exit 1
fi

# nftables: nspawn -n masquerades and forwards ports in its own nft table
apt_pkgs=(ca-certificates gcc libc6-dev make busybox-static util-linux iproute2 procps nftables)
if [ $want_test = 1 ]; then
  # gcc-multilib: the seccomp tests build an i386 probe (gcc -m32) to check the compat ABI's filter
  # attr, acl: the btrfs copy tests set and read xattrs and ACLs; the uidrange tests put ACLs on trees
  # curl: the network tests fetch from inside a test network namespace
  apt_pkgs+=(systemd-container btrfs-progs nftables debootstrap gcc-multilib attr acl curl)
  # dbus-daemon: @nspawn/machined's wire test runs a private bus (the systemd host fixture brings its own dbus)
  apt_pkgs+=(dbus-daemon)
  # chromium: nspawnd's web view is tested in a real browser (playwright-core drives Debian's chromium)
  apt_pkgs+=(chromium)
  # the runtime's prebuilt arm64 helper (pnpm build, the packaging tests, pnpm release): clang with Debian's
  # arm64 C library; not gcc-aarch64-linux-gnu, which Debian makes conflict with gcc-multilib.
  # zsh and man-db: the completion and man page tests. qemu-user-static: the packaging tests run the prebuilt arm64
  # helper (emulated, called directly: no binfmt registration).
  apt_pkgs+=(clang libc6-dev-arm64-cross libgcc-12-dev-arm64-cross binutils-aarch64-linux-gnu zsh man-db qemu-user-static)
  # the image tests make raw disk images: sfdisk (fdisk), mkfs.vfat, mksquashfs, mkfs.erofs, mkfs.xfs
  apt_pkgs+=(fdisk dosfstools squashfs-tools erofs-utils xfsprogs)
  # nspawn-oci: the OCI validation suite is built with Debian's Go; runc is its yardstick in the same run
  apt_pkgs+=(golang-go runc)
  # nspawn-oci under containerd 1.6 (ctr and the CRI path), started by the tests themselves with their own config;
  # containernetworking-plugins: the CNI plugins a pod network would use (the tests' pods use the host's)
  apt_pkgs+=(containerd containernetworking-plugins)
  # nspawn-oci under a real engine (apps/cli/test/oci-podman.test.ts, the podman bench): podman with conmon; the
  # -it test gives podman a terminal with script(1) (util-linux, above)
  apt_pkgs+=(podman conmon)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node 24 LTS: the npm package node@24 ships the binary; it goes to /usr/local/bin, ahead of /usr/bin on PATH.
export PATH=/usr/local/bin:$PATH
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt $NODE_MAJOR ]; then
  echo "setup: node $(node --version 2>/dev/null || echo none) is older than $NODE_MAJOR; installing node@$NODE_MAJOR"
  npm install -g --prefix /usr/local --no-fund --no-audit "node@$NODE_MAJOR" >/dev/null
  hash -r
fi
if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm@$PNPM_VERSION"
  npm install -g --prefix /usr/local --no-fund --no-audit "pnpm@$PNPM_VERSION" >/dev/null
  hash -r
fi

echo "setup: node $(node --version), pnpm $(pnpm --version)"
CI=true pnpm install --frozen-lockfile --reporter=append-only >/dev/null
pnpm run -s build >/dev/null
echo "setup: built"
