#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: set everything up, build the default image
# (a busybox tree in /var/lib/machines/NAME, made once) and run a container in it that shows what it is.
#   scripts/demo.sh [NAME]        default NAME: nspawn-demo
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH=/usr/local/bin:$PATH
name=${1:-nspawn-demo}
dir=/var/lib/machines/$name
if [ ! -d "$dir" ]; then
  echo "demo: building the default image in $dir"
  mkdir -p /var/lib/machines
  scripts/make-busybox-tree.sh "$dir"
fi
exec apps/cli/bin/nspawn -D "$dir" --console=pipe /bin/sh -c '
  echo "hostname:    $(hostname)"
  echo "my PID:      $$"
  echo "os-release:  $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "host:        $container_host_id $container_host_version_id (container=$container)"
  echo "processes:"; ps -o pid,comm
  echo "mounts:"; mount'
