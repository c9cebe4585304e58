#!/usr/bin/env bash
# Builds a minimal OS tree from Debian's busybox-static: enough for systemd-nspawn and nspawn to accept it
# (/usr and an os-release), a shell, the busybox applets, root in /etc/passwd, and busybox init.
#   make-busybox-tree.sh DIR     DIR must not exist or be empty
set -euo pipefail
dir=${1:?usage: make-busybox-tree.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
linkage=$(LC_ALL=C ldd "$busybox" 2>&1 || true)
if ! "$busybox" --list >/dev/null 2>&1 || [[ "$linkage" != *"not a dynamic"* ]]; then
  echo "make-busybox-tree: a static busybox is needed at $busybox (Debian: apt-get install busybox-static)" >&2
  exit 1
fi
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  echo "make-busybox-tree: $dir exists and is not empty; refusing to touch it" >&2
  exit 1
fi
mkdir -p "$dir"
cd "$dir"
mkdir -p bin sbin usr/bin usr/sbin usr/lib etc root tmp var/tmp proc sys dev run home
chmod 0700 root; chmod 1777 tmp var/tmp
cp "$busybox" bin/busybox
for applet in $(bin/busybox --list-full); do
  [ -e "$applet" ] || [ -L "$applet" ] || ln -s /bin/busybox "$applet"
done
cat > usr/lib/os-release <<'OS'
NAME="BusyBox"
ID=busybox
PRETTY_NAME="BusyBox (nspawn default image)"
VERSION_ID=1
HOME_URL="https://busybox.net/"
OS
ln -sf ../usr/lib/os-release etc/os-release
echo 'root:x:0:0:root:/root:/bin/sh' > etc/passwd
echo 'root::0:0:99999:7:::' > etc/shadow; chmod 0600 etc/shadow
printf 'root:x:0:\ntty:x:5:\n' > etc/group
echo 'hosts: files' > etc/nsswitch.conf
cat > etc/inittab <<'INIT'
::respawn:-/bin/sh
::ctrlaltdel:/bin/poweroff
::shutdown:/bin/sync
INIT
