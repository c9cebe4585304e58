/** nspawnctl's machine verbs: list, status, show, start, poweroff, reboot, terminate, kill, shell, login, top. */
import { nodeTree, formatAddress, formatProcessTree, isValidMachineName, type MachineInfo, machineLogPath, machineProcesses, probeHost, readMachineStats } from '@nspawn/runtime';
import { call, CtlError, type CtlVerb, err, json, machine, machines, out, table, tail, type CtlOptions } from './ctl-common.js';
import { execIn } from './ctl-exec.js';

/**
 * machined's `.host`: the host itself as a machine. machined's is the host machined runs on; ours is the one
 * nspawnctl runs on: its "leader" is nspawnctl itself, so execIn() enters no namespace (each is already
 * ours), keeps our root and our cgroup, and only changes user and terminal. shell and login reach it without nspawnd.
 */
const HOST: MachineInfo = { name: '.host', class: 'host', leader: { pid: process.pid } };

const osField = (m: MachineInfo, key: string) => m.OSRelease?.find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);

function since(usec: number | undefined): string {
  if (!usec) return 'n/a';
  const t = new Date(usec / 1000);
  const s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
  const ago = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}min ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}min`;
  return `${t.toUTCString()}; ${ago} ago`;
}

async function list(opts: CtlOptions): Promise<number> {
  const ms = await machines();
  const rows = ms.map((m) => ({
    machine: m.name,
    class: m.class,
    service: m.service ?? '',
    os: osField(m, 'ID') ?? '',
    version: osField(m, 'VERSION_ID') ?? '',
    addresses: (m.addresses ?? []).map(formatAddress),
  }));
  if (opts.output === 'json' || opts.output === 'json-pretty') out(json(rows, opts));
  else
    out(
      table(
        ['MACHINE', 'CLASS', 'SERVICE', 'OS', 'VERSION', 'ADDRESSES'],
        rows.map((r) => [r.machine, r.class, r.service, r.os || '-', r.version || '-', r.addresses.length ? r.addresses[0]! + (r.addresses.length > 1 ? '…' : '') : '-']),
        opts,
        `${rows.length} machines listed.`,
      ),
    );
  return 0;
}

async function status(names: string[], opts: CtlOptions): Promise<number> {
  if (names.length === 0) throw new CtlError('status needs a machine name.');
  const all: unknown[] = [];
  let first = true;
  for (const name of names) {
    const m = await machine(name);
    const leader = m.leader?.pid;
    const procs = leader ? machineProcesses(leader) : [];
    const log = tail(machineLogPath(name), opts.lines);
    if (opts.output === 'json' || opts.output === 'json-pretty') {
      all.push({ ...m, processes: procs.map((p) => ({ pid: p.pid, ppid: p.ppid, command: p.cmdline })), console: log });
      continue;
    }
    if (!first) out('\n');
    first = false;
    const lines: string[] = [];
    lines.push(`${m.name}${m.id ? `(${m.id})` : ''}`);
    const field = (k: string, v: string) => lines.push(`${k.padStart(16)}: ${v}`);
    field('Since', since(m.timestamp?.realtime));
    if (leader) field('Leader', `${leader} (${procs.find((p) => p.pid === leader)?.comm ?? '?'})`);
    field('Service', `${m.service ?? 'n/a'}; class ${m.class}`);
    if (m.rootDirectory) field('Root', m.rootDirectory);
    const addrs = (m.addresses ?? []).map(formatAddress);
    if (addrs.length) {
      field('Address', addrs[0]!);
      for (const a of addrs.slice(1)) lines.push(`${''.padStart(18)}${a}`);
    }
    const pretty = osField(m, 'PRETTY_NAME') ?? osField(m, 'NAME');
    if (pretty) field('OS', pretty);
    if (m.UIDShift) field('UID Shift', String(m.UIDShift));
    if (m.unit) field('Unit', m.unit);
    if (leader) for (const l of formatProcessTree(procs, leader)) lines.push(`${''.padStart(18)}${l}`);
    if (log.length) {
      lines.push('');
      lines.push('Console (last lines):');
      for (const l of log) lines.push(l);
    }
    out(lines.join('\n') + '\n');
  }
  if (opts.output === 'json' || opts.output === 'json-pretty') out(json(names.length === 1 ? all[0] : all, opts));
  return 0;
}

async function show(names: string[]): Promise<number> {
  const ms = names.length ? await Promise.all(names.map((n) => machine(n))) : await machines();
  const blocks = ms.map((m) =>
    [
      `Name=${m.name}`,
      `Id=${m.id ?? ''}`,
      `Timestamp=${m.timestamp?.realtime ? new Date(m.timestamp.realtime / 1000).toUTCString() : ''}`,
      `TimestampMonotonic=${m.timestamp?.monotonic ?? 0}`,
      `Service=${m.service ?? ''}`,
      `Unit=${m.unit ?? ''}`,
      `Leader=${m.leader?.pid ?? 0}`,
      `Class=${m.class}`,
      `RootDirectory=${m.rootDirectory ?? ''}`,
      `NetworkInterfaces=${(m.ifIndices ?? []).join(' ')}`,
      `State=${m.state ?? 'running'}`,
      `UIDShift=${m.UIDShift ?? 0}`,
    ].join('\n'),
  );
  out(blocks.join('\n\n') + '\n');
  return 0;
}

async function start(names: string[]): Promise<number> {
  if (names.length === 0) throw new CtlError('start needs a machine name.');
  for (const name of names) {
    if (!isValidMachineName(name)) throw new CtlError(`Invalid machine name ${name}.`);
    await call('io.nspawn.Machine.Start', { name });
  }
  return 0;
}

async function kill(names: string[], signal: number, whom: 'all' | 'leader'): Promise<number> {
  if (names.length === 0) throw new CtlError('A machine name is needed.');
  for (const name of names) await call('io.systemd.Machine.Kill', { name, signal, whom });
  return 0;
}

async function terminate(names: string[]): Promise<number> {
  if (names.length === 0) throw new CtlError('terminate needs a machine name.');
  for (const name of names) await call('io.systemd.Machine.Terminate', { name });
  return 0;
}

async function shell(args: string[], opts: CtlOptions): Promise<number> {
  const target = args[0] ?? '.host';
  let user = opts.uid ?? 'root';
  let name = target;
  const at = target.indexOf('@');
  if (at >= 0) {
    if (at > 0) user = target.slice(0, at);
    name = target.slice(at + 1) || '.host';
  }
  const m = name === HOST.name ? HOST : await machine(name);
  return execIn(m, user, args.slice(1), opts.setenv);
}

/** machinectl login: a getty on a new pty of the machine; without a name (or `.host`) on the host's, as machinectl. */
async function login(args: string[]): Promise<number> {
  const name = args[0] ?? HOST.name;
  const m = name === HOST.name ? HOST : await machine(name);
  const root = `/proc/${m.leader!.pid}/root`;
  const t = nodeTree(root);
  // a getty on a new pty: agetty where the machine has it, busybox getty else; both then run login
  const cmd = t.resolve('/sbin/agetty') !== undefined
    ? ['/sbin/agetty', '--noclear', '--keep-baud', '-', '115200,38400,9600', process.env.TERM ?? 'vt220']
    : t.resolve('/sbin/getty') !== undefined
      ? ['/sbin/getty', '-n', '-l', '/bin/login', '0', '-', process.env.TERM ?? 'vt220']
      : ['/bin/login'];
  const what = m === HOST ? 'the local host' : `machine ${name}`;
  if (process.stdin.isTTY) err(`Connected to ${what}. Press ^] three times within 1s to exit session.\n`);
  const code = await execIn(m, 'root', cmd, [], { pty: true });
  if (process.stdin.isTTY) err(`\nConnection to ${what} terminated.\n`);
  return code;
}

async function top(opts: CtlOptions): Promise<number> {
  const host = probeHost();
  let prev = new Map<string, { cpu: number; t: number }>();
  const once = async (): Promise<string> => {
    const ms = await machines();
    const now = performance.now();
    const rows: string[][] = [];
    const next = new Map<string, { cpu: number; t: number }>();
    for (const m of ms) {
      const s = readMachineStats(m.name, { layout: host.cgroups });
      const cpu = s?.cpuUsageNs;
      let pct = '-';
      const p = prev.get(m.name);
      if (cpu !== undefined) {
        next.set(m.name, { cpu, t: now });
        if (p) pct = `${(((cpu - p.cpu) / 1e6 / (now - p.t)) * 100).toFixed(1)}%`;
      }
      const mem = s?.memoryBytes;
      rows.push([m.name, String(s?.tasks ?? '-'), pct, mem === undefined ? '-' : `${(mem / 1048576).toFixed(1)}M`]);
    }
    prev = next;
    return table(['MACHINE', 'TASKS', '%CPU', 'MEMORY'], rows, opts, `${rows.length} machines.`);
  };
  const tty = process.stdout.isTTY;
  const iterations = tty ? Infinity : 2;
  for (let i = 0; i < iterations; i++) {
    const text = await once();
    if (tty) out('\x1b[H\x1b[2J' + text);
    else if (i === iterations - 1) out(text);
    await new Promise((r) => setTimeout(r, tty ? 1000 : 500));
  }
  return 0;
}

export const machineVerbs: Record<string, CtlVerb> = {
  list: (_args, opts) => list(opts),
  status,
  show: (args) => show(args),
  start: (args) => start(args),
  login: (args) => login(args),
  shell,
  poweroff: (args) => kill(args, 38 /* SIGRTMIN+4: systemd's poweroff */, 'leader'),
  reboot: (args) => kill(args, 2 /* SIGINT: systemd's ctrl-alt-del, a reboot */, 'leader'),
  terminate: (args) => terminate(args),
  kill: (args, opts) => kill(args, opts.signal ?? 15, opts.killWhom ?? 'all'),
  top: (_args, opts) => top(opts),
};
