#!/usr/bin/env node
// What tests can leave behind on the machine: container links, mounts, loop devices, nftables tables,
// nspawn temp dirs, lock files, helper processes, machine scopes (machine.slice/machine-*.scope in any cgroup
// hierarchy) and device programs (BPF programs named nspawn_devices; listed with bpftool when it is installed,
// otherwise they are covered by the scopes: a program attached to a removed cgroup goes with it). `--save F` records the state before the tests,
// `--against F` fails (exit 1) on anything new since then, naming it.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';

const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};
const ls = (dir, re) => (existsSync(dir) ? readdirSync(dir).filter((f) => re.test(f)).map((f) => `${dir}/${f}`) : []);

/** machine.slice/machine-*.scope under every cgroup mount (cgroup2 and each v1 hierarchy) */
function machineScopes() {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => ['cgroup', 'cgroup2'].includes(f[f.indexOf('-') + 1]))
    .map((f) => f[4]);
  return mounts.flatMap((m) => ls(`${m}/machine.slice`, /^machine-.*\.scope$/));
}

function snapshot() {
  return {
    links: [...sh('ip', ['-o', 'link', 'show']).matchAll(/^\d+: ((?:ve|vb|vz|mv|iv)-[^:@ ]+)/gm)].map((m) => m[1]),
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((mp) => mp && /nspawn|machines|\.#/.test(mp)),
    loops: sh('losetup', ['-a']).split('\n').filter(Boolean),
    nft: sh('nft', ['list', 'tables']).split('\n').filter((l) => /nspawn/i.test(l)),
    tempdirs: [...ls('/var/tmp', /^nspawn-/), ...ls('/tmp', /^nspawn-test-/)],
    locks: [...ls('/run/systemd/nspawn-uid', /./), ...ls('/run/systemd/nspawn/locks', /./)],
    // (not zombies: a helper that ended and whose parent is gone waits for PID 1 to reap it, and holds nothing;
    // this VM's PID 1 reaps late)
    processes: sh('ps', ['-eo', 'pid=,stat=,args=']).split('\n').filter((l) => /nspawn-helper/.test(l) && !/^\s*\d+\s+Z/.test(l)).map((l) => l.trim()),
    // (the mark says an nspawn made machine.slice: it goes when the last machine leaves it)
    cgroups: [...machineScopes(), ...ls('/run/nspawn', /^machine\.slice$/)],
    bpf: sh('bpftool', ['prog', 'show']).split('\n').filter((l) => /\bname nspawn_devices\b/.test(l)).map((l) => l.replace(/^(\d+): .*/, 'prog $1 nspawn_devices')),
  };
}

const args = process.argv.slice(2);
const now = snapshot();
if (args[0] === '--save') {
  writeFileSync(args[1], JSON.stringify(now));
  process.exit(0);
}
const before = args[0] === '--against' && existsSync(args[1]) ? JSON.parse(readFileSync(args[1], 'utf8')) : {};
let leaked = false;
for (const [kind, items] of Object.entries(now)) {
  const old = new Set(before[kind] ?? []);
  const added = items.filter((i) => !old.has(i));
  if (added.length) {
    leaked = true;
    console.error(`leak check: the tests left ${kind} behind: ${added.join(', ')}`);
  }
}
if (leaked) process.exit(1);
console.log('leak check: nothing left behind');
