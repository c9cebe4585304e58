# The native front ends' launch, sourced by bin/nspawn-oci and bin/nspawnctl with $bin set (their directory):
# run_front NAME NODE-ENTRY ARGS... execs dist/NAME-linux-ARCH NODE-ENTRY ARGS... when there is one for this machine
# (it serves the calls it knows and execs `node NODE-ENTRY ARGS...` for the rest), else node NODE-ENTRY ARGS...
run_front() {
  name=$1 entry=$2
  shift 2
  # (the architecture without a fork where the kernel has /proc/sys/kernel/arch; else uname)
  m=
  if [ -r /proc/sys/kernel/arch ]; then read -r m < /proc/sys/kernel/arch; fi
  [ -n "$m" ] || m=$(uname -m)
  case $m in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch=none ;;
  esac
  front=$bin/../dist/$name-linux-$arch
  # (npm pack drops the exec bit of files that are not bins: give it back)
  if [ -f "$front" ] && ! [ -x "$front" ]; then chmod 755 "$front" 2>/dev/null; fi
  if [ -x "$front" ]; then exec "$front" "$entry" "$@"; fi
  exec node "$entry" "$@"
}
