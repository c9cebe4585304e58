#!/usr/bin/env bash
# A bootable Debian 12 tree (systemd, dbus) for the boot tests and benchmarks:
#   make-debian-tree.sh DIR
# debootstrap takes about a minute; the result is cached in /var/cache/nspawn-test/debian-bookworm (the cache
# is reused while it is complete) and copied to DIR, which must not exist.
set -euo pipefail
dir=${1:?usage: make-debian-tree.sh DIR}
cache=${NSPAWN_DEBIAN_CACHE:-/var/cache/nspawn-test/debian-bookworm}
if [ -e "$dir" ]; then
  echo "make-debian-tree: $dir exists; refusing to touch it" >&2
  exit 1
fi
if [ ! -f "$cache/.complete" ]; then
  command -v debootstrap >/dev/null || { echo "make-debian-tree: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
  tmp="$cache.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$cache")"
  echo "make-debian-tree: debootstrap bookworm (about a minute, cached in $cache)" >&2
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$tmp" >/dev/null
  # the tree must not carry this host's identity
  rm -f "$tmp/etc/hostname" "$tmp/etc/machine-id" "$tmp/var/lib/dbus/machine-id"
  : > "$tmp/etc/machine-id"
  rm -rf "$cache"
  mv "$tmp" "$cache"
  touch "$cache/.complete"
fi
mkdir -p "$(dirname "$dir")"
cp -a "$cache" "$dir"
rm -f "$dir/.complete"
