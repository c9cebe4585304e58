#!/usr/bin/env node
// Per-container veth setup + teardown in ms: @nspawn/net (netlink, systemd's names and MACs, host0 created in the
// container's namespace) against the same with `ip` commands (ip link add ... netns PID; ip link del). Root only;
// links are named nt-b*, in a network namespace of a `sleep` this script starts and ends.
import { execFileSync, spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { createVeth, generateMac, removeLinks, Rtnl } from '../dist/index.js';

const N = Number(process.env.N ?? 200);
function stat(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], mean: s.reduce((a, b) => a + b, 0) / s.length };
}
function report(title, times) {
  console.log(title);
  console.log('case'.padEnd(22), 'median'.padStart(8), 'mean'.padStart(8), 'min'.padStart(8));
  const st = {};
  for (const [name, xs] of Object.entries(times)) {
    st[name] = stat(xs);
    const f = (v) => v.toFixed(2).padStart(8);
    console.log(name.padEnd(22), f(st[name].median), f(st[name].mean), f(st[name].min));
  }
  return st;
}

const ns = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore' });
const self = readlinkSync('/proc/self/ns/net');
while (true) {
  try {
    if (readlinkSync(`/proc/${ns.pid}/ns/net`) !== self) break;
  } catch {}
  await new Promise((r) => setTimeout(r, 5));
}
const pid = ns.pid;
const times = { 'nspawn setup': [], 'nspawn teardown': [], 'nspawn total': [], 'ip setup': [], 'ip teardown': [], 'ip total': [] };
const rtnl = new Rtnl();
try {
  for (let i = 0; i < N; i++) {
    const name = `nt-b${i % 10}`;
    let t0 = performance.now();
    const v = await createVeth(name, pid, { rtnl });
    let t1 = performance.now();
    await removeLinks([v.host], { rtnl });
    let t2 = performance.now();
    times['nspawn setup'].push(t1 - t0);
    times['nspawn teardown'].push(t2 - t1);
    times['nspawn total'].push(t2 - t0);

    const hostMac = generateMac(name, 'host');
    const contMac = generateMac(name, 'container');
    t0 = performance.now();
    execFileSync('ip', ['link', 'add', `ve-${name}`, 'address', hostMac, 'type', 'veth', 'peer', 'name', 'host0', 'address', contMac, 'netns', String(pid)]);
    t1 = performance.now();
    execFileSync('ip', ['link', 'del', `ve-${name}`]);
    t2 = performance.now();
    times['ip setup'].push(t1 - t0);
    times['ip teardown'].push(t2 - t1);
    times['ip total'].push(t2 - t0);
  }
} finally {
  rtnl.close();
  ns.kill('SIGKILL');
}
const st = report(`veth ve-NAME/host0 setup + teardown, ${N} rounds (ms)`, times);
console.log(`nspawn / ip (median total): ${(st['nspawn total'].median / st['ip total'].median).toFixed(2)}`);
