#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs the whole test suite: unit tests, root integration
# tests on the real kernel and the side-by-side tests against systemd-nspawn. Fails if a test fails, if a test
# was skipped without a reason this machine proves (scripts/skip-allow-list.mjs), if a package wrote no report,
# or if the tests left anything behind (links, mounts, loop devices, nftables tables, temp dirs, processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH=/usr/local/bin:$PATH
status=0
pnpm run -s typecheck || status=1
# the leak check's baseline, every package's tests (turbo, with the toolchain in the build's cache key), the leak
# check, the summary line
node scripts/run-tests.mjs || status=1
exit $status
