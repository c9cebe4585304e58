#!/usr/bin/env bash
# A Debian 12 tree that boots as a systemd host for the tests (issue 18): systemd as PID 1, dbus, machined,
# machinectl, systemd-nspawn 252, nss-mymachines, iproute2, and a busybox tree at /var/lib/machines/inner:
#   make-systemd-host.sh DIR
# It starts from scripts/make-debian-tree.sh's tree (debootstrap, cached) and installs systemd-container,
# libnss-mymachines and iproute2 in a chroot of it (a few minutes the first time). The result is cached in
# /var/cache/nspawn-test/systemd-host-bookworm (reused while it is complete; $NSPAWN_SYSTEMD_HOST_CACHE) and copied
# to DIR, which must not exist. Boot it with tools/systemd-host (bootSystemdHost()).
set -euo pipefail
dir=${1:?usage: make-systemd-host.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
cache=${NSPAWN_SYSTEMD_HOST_CACHE:-/var/cache/nspawn-test/systemd-host-bookworm}
if [ -e "$dir" ]; then
  echo "make-systemd-host: $dir exists; refusing to touch it" >&2
  exit 1
fi

build() {
  local tmp=$1
  bash "$here/make-debian-tree.sh" "$tmp"
  # apt in the chroot: the host's sources (the tree's own sources.list would duplicate them) and resolver
  rm -f "$tmp/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$tmp/etc/apt/sources.list.d/"
  rm -f "$tmp/etc/resolv.conf"
  cp -L /etc/resolv.conf "$tmp/etc/resolv.conf"
  # no service starts in the chroot
  printf '#!/bin/sh\nexit 101\n' > "$tmp/usr/sbin/policy-rc.d"
  chmod 0755 "$tmp/usr/sbin/policy-rc.d"
  mount --bind /proc "$tmp/proc"
  proc_bound=$tmp/proc
  echo "make-systemd-host: apt-get install systemd-container libnss-mymachines iproute2 (cached in $cache)" >&2
  chroot "$tmp" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q update >/dev/null
  chroot "$tmp" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get -q -y --no-install-recommends install systemd-container libnss-mymachines iproute2 >/dev/null
  chroot "$tmp" apt-get clean
  umount "$tmp/proc"
  proc_bound=
  rm -rf "$tmp/var/lib/apt/lists/"*
  rm -f "$tmp/usr/sbin/policy-rc.d" "$tmp/etc/resolv.conf"
  # the host's identity stays out of the tree (systemd-nspawn gives the booted host its resolv.conf)
  rm -f "$tmp/etc/hostname" "$tmp/var/lib/dbus/machine-id"
  : > "$tmp/etc/machine-id"
  # nss-mymachines, as the Arch wiki and systemd's docs say
  if grep -q '^hosts:' "$tmp/etc/nsswitch.conf"; then
    sed -i 's/^hosts:.*/hosts:          files mymachines dns myhostname/' "$tmp/etc/nsswitch.conf"
  else
    echo 'hosts:          files mymachines dns myhostname' >> "$tmp/etc/nsswitch.conf"
  fi
  # root may log in on the console without a password (tests enter with nsenter; this is for people)
  chroot "$tmp" passwd -dq root 2>/dev/null || chroot "$tmp" passwd -d root >/dev/null
  # an OS tree for containers inside
  mkdir -p "$tmp/var/lib/machines"
  bash "$here/make-busybox-tree.sh" "$tmp/var/lib/machines/inner" >/dev/null
}

if [ ! -f "$cache/.complete" ]; then
  command -v debootstrap >/dev/null || { echo "make-systemd-host: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
  mkdir -p "$(dirname "$cache")"
  tmp="$cache.tmp.$$"
  proc_bound=
  cleanup() {
    if [ -n "$proc_bound" ] && mountpoint -q "$proc_bound"; then umount "$proc_bound" || umount -l "$proc_bound"; fi
    # only our own temporary tree, never across a mount
    if [ -d "$tmp" ] && ! grep -q " $tmp/" /proc/self/mountinfo; then rm -rf --one-file-system "$tmp"; fi
  }
  trap cleanup EXIT
  rm -rf --one-file-system "$tmp"
  build "$tmp"
  touch "$tmp/.complete"
  # atomic: another run may have finished first; then theirs stays and ours goes (cleanup)
  if [ ! -f "$cache/.complete" ]; then
    rm -rf --one-file-system "$cache"
    mv -T "$tmp" "$cache" 2>/dev/null || true
  fi
fi
mkdir -p "$(dirname "$dir")"
cp -a --reflink=auto "$cache" "$dir"
rm -f "$dir/.complete"
