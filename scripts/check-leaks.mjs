#!/usr/bin/env node
// What tests can leave behind on the machine: container links (and links named with a test prefix), network
// namespaces, mounts, loop devices, nftables tables, temp dirs (/tmp and /var/tmp: nspawn-* and every package's
// test prefix, TEST_PREFIXES below, as CONTRIBUTING.md lists them), ephemeral snapshots and image locks beside
// /var/lib/machines' images, lock files, network state files, helper processes and nspawn-oci's warm monitors (and
// their sockets), machine scopes
// (machine.slice/machine-*.scope in any cgroup hierarchy) and device programs (BPF programs named nspawn_devices;
// listed with bpftool when it is installed, otherwise they are covered by the scopes: a program attached to a
// removed cgroup goes with it).
//   node scripts/check-leaks.mjs --save F       record the state before the tests
//   node scripts/check-leaks.mjs --against F    fail (exit 1) on anything new since then, naming it
//   node scripts/check-leaks.mjs                fail on anything at all
// A tool it needs that is missing or fails (ip, nft, losetup, ps) fails the check (exit 2) with the reason: an
// empty answer is never taken for "nothing there".
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/** The prefixes tests name what they make with (CONTRIBUTING.md: "Name everything a test makes ..."). */
export const TEST_PREFIXES = ['ut-', 'bt-', 'nt-', 'ov-', 'dm-', 'pk-', 'dc-', 'st-', 'mh-', 'im-', 'sc-', 'rc-', 'cr-'];
const prefixed = new RegExp(`^(?:nspawn-|${TEST_PREFIXES.join('|')})`);

/** Debian packages of the tools, for the error message. */
const PACKAGE = { ip: 'iproute2', nft: 'nftables', losetup: 'mount', ps: 'procps', bpftool: 'bpftool' };

class ToolError extends Error {}

/** stdout of CMD ARGS; throws a ToolError when it is missing or fails (unless optional and missing: null). */
async function tool(cmd, args, { optional = false } = {}) {
  const r = await execa(cmd, args, { reject: false, stdin: 'ignore', env: { LC_ALL: 'C' } });
  if (r.exitCode === 0) return r.stdout;
  if (r.code === 'ENOENT') {
    if (optional) return null;
    throw new ToolError(`leak check: ${cmd} is not installed (Debian: apt-get install ${PACKAGE[cmd] ?? cmd}); cannot list what it shows`);
  }
  throw new ToolError(`leak check: \`${[cmd, ...args].join(' ')}\` failed (${r.exitCode ?? r.code ?? r.signal}): ${(r.stderr || r.shortMessage).trim()}`);
}

const ls = (dir, re) => (existsSync(dir) ? readdirSync(dir).filter((f) => re.test(f)).map((f) => `${dir}/${f}`) : []);

/** every cgroup mount (cgroup2 and each v1 hierarchy) */
const cgroupMounts = (mountinfo) =>
  mountinfo
    .map((l) => l.split(' '))
    .filter((f) => ['cgroup', 'cgroup2'].includes(f[f.indexOf('-') + 1]))
    .map((f) => f[4]);

/** machine.slice/machine-*.scope under every cgroup mount */
const machineScopes = (mountinfo) => cgroupMounts(mountinfo).flatMap((m) => ls(`${m}/machine.slice`, /^machine-.*\.scope$/));

/**
 * The cgroups at the top of every hierarchy: a slice, a reference's payload/ and supervisor/ (systemd-nspawn
 * --keep-unit makes them in its caller's cgroup), an OCI runtime's cgroupsPath, a test's own cgroup
 */
const topCgroups = (mountinfo) =>
  cgroupMounts(mountinfo)
    .filter((m) => m.startsWith('/sys/fs/cgroup'))
    .flatMap((m) => (existsSync(m) ? readdirSync(m, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `${m}/${d.name}`) : []));

export async function snapshot() {
  const [links, netns, loops, nft, ps, bpf] = await Promise.all([
    tool('ip', ['-o', 'link', 'show']),
    tool('ip', ['netns', 'list']),
    tool('losetup', ['-a']),
    tool('nft', ['list', 'tables']),
    tool('ps', ['-eo', 'pid=,stat=,args=']),
    tool('bpftool', ['prog', 'show'], { optional: true }),
  ]);
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  return {
    links: [...links.matchAll(/^\d+: ([^:@ ]+)/gm)].map((m) => m[1]).filter((n) => /^(?:ve|vb|vz|mv|iv)-/.test(n) || prefixed.test(n)),
    netns: netns.split('\n').map((l) => l.split(' ')[0]).filter(Boolean),
    mounts: mountinfo.map((l) => l.split(' ')[4]).filter((mp) => mp && (/nspawn|machines|\.#/.test(mp) || /^\/(?:var\/)?tmp\//.test(mp))),
    loops: loops.split('\n').filter(Boolean),
    nft: nft.split('\n').filter((l) => /nspawn/i.test(l)),
    tempdirs: [...ls('/var/tmp', prefixed), ...ls('/tmp', prefixed)],
    // (-x snapshots beside an image, and the images' lock files)
    images: ls('/var/lib/machines', /^\.#/),
    locks: [...ls('/run/systemd/nspawn-uid', /./), ...ls('/run/systemd/nspawn/locks', /./)],
    state: [...ls('/run/nspawn/net', /\.json$/), ...ls('/run/nspawn/runs', /\.lock$/)],
    // (not zombies: a helper that ended and whose parent is gone waits for PID 1 to reap it, and holds nothing;
    // this VM's PID 1 reaps late)
    // (and nspawn-oci's warm monitors: one whose root a test removed ends within a second; stopMonitor() ends one)
    processes: ps.split('\n').filter((l) => /nspawn-helper|__monitor-server/.test(l) && !/^\s*\d+\s+Z/.test(l)).map((l) => l.trim()),
    monitors: ls('/run/nspawn-oci-monitors', /./),
    // (the mark says an nspawn made machine.slice: it goes when the last machine leaves it)
    cgroups: [...machineScopes(mountinfo), ...ls('/run/nspawn', /^machine\.slice$/)],
    topCgroups: topCgroups(mountinfo),
    bpf: (bpf ?? '').split('\n').filter((l) => /\bname nspawn_devices\b/.test(l)).map((l) => l.replace(/^(\d+): .*/, 'prog $1 nspawn_devices')),
  };
}

/** What NOW has that BEFORE had not: [kind, [item...]] for each kind with something new. */
export function leaks(before, now) {
  return Object.entries(now)
    .map(([kind, items]) => {
      const old = new Set(before[kind] ?? []);
      return [kind, items.filter((i) => !old.has(i))];
    })
    .filter(([, added]) => added.length > 0);
}

async function main(args) {
  let now;
  try {
    now = await snapshot();
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    console.error(e.message);
    return 2;
  }
  if (args[0] === '--save') {
    if (!args[1]) throw new Error('usage: check-leaks.mjs --save FILE');
    writeFileSync(args[1], JSON.stringify(now));
    return 0;
  }
  let before = {};
  if (args[0] === '--against') {
    if (!args[1] || !existsSync(args[1])) {
      console.error(`leak check: no baseline ${args[1] ?? ''} (make one with --save before the tests)`);
      return 2;
    }
    before = JSON.parse(readFileSync(args[1], 'utf8'));
  } else if (args.length > 0) {
    console.error('usage: check-leaks.mjs [--save FILE | --against FILE]');
    return 2;
  }
  let found = leaks(before, now);
  // a warm monitor of nspawn-oci whose root a test removed ends within a second: look again a little later
  const monitorsOnly = ([kind, added]) => kind === 'monitors' || (kind === 'processes' && added.every((p) => /__monitor-server/.test(p)));
  if (found.length > 0 && found.every(monitorsOnly)) {
    await new Promise((r) => setTimeout(r, 3000));
    found = leaks(before, await snapshot());
  }
  for (const [kind, added] of found) console.error(`leak check: the tests left ${kind} behind: ${added.join(', ')}`);
  if (found.length > 0) return 1;
  console.log('leak check: nothing left behind');
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
