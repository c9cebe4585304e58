#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs the whole test suite: unit tests, root integration
# tests on the real kernel and the side-by-side tests against systemd-nspawn. Fails if a test fails or if
# the tests left anything behind (links, mounts, loop devices, nftables tables, temp dirs, processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH=/usr/local/bin:$PATH
rm -f packages/*/vitest-report.json apps/*/vitest-report.json tools/*/vitest-report.json
node scripts/check-leaks.mjs --save /tmp/nspawn-leak-baseline.json
status=0
pnpm run -s typecheck || status=1
pnpm exec turbo run test --concurrency=1 --continue --output-logs=new-only || status=1
node scripts/check-leaks.mjs --against /tmp/nspawn-leak-baseline.json || status=1
node scripts/test-summary.mjs || status=1
exit $status
