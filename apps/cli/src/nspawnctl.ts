/**
 * `nspawnctl`: machinectl over nspawnd's varlink socket. Thin: argument parsing and output; the registry calls,
 * inspection, images and tar handling live in the libraries.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { signalFromString } from '@nspawn/settings';
import {
  formatAddress,
  formatProcessTree,
  helperPath,
  isNoDaemon,
  isValidMachineName,
  listMachines,
  machineHierarchies,
  type MachineInfo,
  machineImageSocketPath,
  machineLogPath,
  machineProcesses,
  machineSocketPath,
  nodeTree,
  nspawndPaths,
  parseProcCgroup,
  probeHost,
  readMachineStats,
  resolveUser,
  UserError,
  varlinkCall,
  VarlinkError,
} from '@nspawn/runtime';
import { CTL_HELP } from './ctl-help.js';
import { imageVerbs, tarVerbs } from './ctl-images.js';
import { fatal } from './fatal.js';

export class CtlError extends Error {}

const out = (text: string) => void writeSync(1, text);
const err = (text: string) => void writeSync(2, text);

export interface CtlOptions {
  output: 'table' | 'json' | 'json-pretty' | 'short';
  legend: boolean;
  signal?: number;
  killWhom?: 'all' | 'leader';
  readOnly: boolean;
  mkdir: boolean;
  follow: boolean;
  lines: number;
  verify: 'yes' | 'no' | 'checksum';
  force: boolean;
  all: boolean;
  uid?: string;
  setenv: string[];
  quiet: boolean;
}

export function parseCtlArgs(argv: string[]): { verb: string | undefined; args: string[]; opts: CtlOptions; help: boolean; version: boolean } {
  const opts: CtlOptions = { output: 'table', legend: true, readOnly: false, mkdir: false, follow: false, lines: 10, verify: 'yes', force: false, all: false, setenv: [], quiet: false };
  const pos: string[] = [];
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // everything after shell's machine is the command
    if (pos[0] === 'shell' && pos.length >= 2) {
      pos.push(...argv.slice(i));
      break;
    }
    const [key, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new CtlError(`Option ${key} needs a value.`);
      return v;
    };
    switch (key) {
      case '-h':
      case '--help':
        help = true;
        break;
      case '--version':
        version = true;
        break;
      case '-o':
      case '--output': {
        const v = value();
        if (v !== 'json' && v !== 'json-pretty' && v !== 'short' && v !== 'table') throw new CtlError(`Unknown output '${v}'.`);
        opts.output = v;
        break;
      }
      case '--no-legend':
        opts.legend = false;
        break;
      case '-s':
      case '--signal': {
        const v = value();
        const r = signalFromString(v);
        if (!r.ok) throw new CtlError(`Failed to parse signal string ${v}.`);
        opts.signal = r.value;
        break;
      }
      case '--kill-whom': {
        const v = value();
        if (v !== 'all' && v !== 'leader') throw new CtlError(`Invalid --kill-whom= value '${v}': 'all' or 'leader'.`);
        opts.killWhom = v;
        break;
      }
      case '--read-only':
        opts.readOnly = true;
        break;
      case '--mkdir':
        opts.mkdir = true;
        break;
      case '-f':
      case '--follow':
        opts.follow = true;
        break;
      case '-n':
      case '--lines':
        opts.lines = Number(value());
        if (!Number.isInteger(opts.lines) || opts.lines < 0) throw new CtlError('--lines= needs a non-negative integer.');
        break;
      case '--verify': {
        const v = value();
        if (v !== 'yes' && v !== 'no' && v !== 'checksum') throw new CtlError(`Invalid --verify= value '${v}': yes, no or checksum.`);
        opts.verify = v;
        break;
      }
      case '--force':
        opts.force = true;
        break;
      case '-a':
      case '--all':
        opts.all = true;
        break;
      case '--uid':
        opts.uid = value();
        break;
      case '-E':
      case '--setenv':
        opts.setenv.push(value());
        break;
      case '-q':
      case '--quiet':
        opts.quiet = true;
        break;
      default:
        if (a.startsWith('-') && a !== '-') throw new CtlError(`Unknown option ${a}.`);
        pos.push(a);
    }
  }
  return { verb: pos[0], args: pos.slice(1), opts, help, version };
}

// ---------- helpers ----------

export async function machine(name: string): Promise<MachineInfo> {
  const all = await listMachines({ name, socket: machineSocketPath() }).catch(noDaemon);
  const m = all[0];
  if (!m) throw new CtlError(`No machine '${name}' known.`);
  return m;
}

function noDaemon(e: unknown): never {
  if (isNoDaemon(e)) throw new CtlError(`nspawnd is not running (no socket at ${machineSocketPath()}).`);
  if (e instanceof VarlinkError) throw new CtlError(typeof e.parameters.message === 'string' ? e.parameters.message : e.error);
  throw new CtlError((e as Error).message);
}

export async function call(method: string, params: Record<string, unknown>, more = false, socket = machineSocketPath()): Promise<Record<string, unknown>[]> {
  try {
    return await varlinkCall(socket, method, params, { more });
  } catch (e) {
    if (e instanceof VarlinkError && e.error === 'io.systemd.Machine.NoSuchMachine') throw new CtlError(`No machine '${String(params.name)}' known.`);
    if (e instanceof VarlinkError && e.error === 'io.systemd.MachineImage.NoSuchImage')
      throw new CtlError(params.name === undefined ? 'No images.' : `No image '${String(params.name)}' known.`);
    return noDaemon(e);
  }
}

const osField = (m: MachineInfo, key: string) => m.OSRelease?.find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);

/** A table as machinectl prints it: upper-case header, columns padded, then a count line. */
export function table(cols: string[], rows: string[][], opts: CtlOptions, footer: string): string {
  const widths = cols.map((c, i) => Math.max(opts.legend ? c.length : 0, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i]!))).join(' ').trimEnd() + '\n';
  let s = '';
  if (opts.legend && rows.length > 0) s += line(cols);
  for (const r of rows) s += line(r);
  if (opts.legend) s += `${rows.length > 0 ? '\n' : ''}${footer}\n`;
  return s;
}

export function json(v: unknown, opts: CtlOptions): string {
  return (opts.output === 'json-pretty' ? JSON.stringify(v, null, 2) : JSON.stringify(v)) + '\n';
}

function since(usec: number | undefined): string {
  if (!usec) return 'n/a';
  const t = new Date(usec / 1000);
  const s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
  const ago = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}min ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}min`;
  return `${t.toUTCString()}; ${ago} ago`;
}

/** The last N lines of a file (the console log). */
export function tail(path: string, n: number): string[] {
  try {
    const lines = readFileSync(path, 'utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return n === 0 ? [] : lines.slice(-n);
  } catch {
    return [];
  }
}

// ---------- verbs ----------

async function list(opts: CtlOptions): Promise<number> {
  const ms = await listMachines({ socket: machineSocketPath() }).catch(noDaemon);
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
  const ms = names.length ? await Promise.all(names.map((n) => machine(n))) : await listMachines({ socket: machineSocketPath() }).catch(noDaemon);
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

function enable(names: string[], on: boolean): number {
  const { enabled, images } = nspawndPaths();
  for (const name of names) {
    if (!isValidMachineName(name)) throw new CtlError(`Invalid machine name ${name}.`);
    const f = join(enabled, name);
    if (on) {
      if (!existsSync(join(images, name))) throw new CtlError(`No image '${name}' known.`);
      mkdirSync(enabled, { recursive: true, mode: 0o755 });
      writeFileSync(f, '');
      out(`Enabled ${name}: started when nspawnd starts (${f}).\n`);
    } else if (existsSync(f)) {
      unlinkSync(f);
      out(`Removed ${f}.\n`);
    }
  }
  return 0;
}

/** The cgroup.procs files of the container's PID 1, so what we run inside is accounted to the machine. */
function leaderCgroupProcs(leader: number): string[] {
  try {
    const cg = parseProcCgroup(readFileSync(`/proc/${leader}/cgroup`, 'utf8'));
    const out: string[] = [];
    for (const h of machineHierarchies(probeHost().cgroups)) {
      const p = cg.get(h.key);
      if (p !== undefined) out.push(join(h.mount, p, 'cgroup.procs'));
    }
    return out.slice(0, 16);
  } catch {
    return [];
  }
}

export interface InOptions {
  pty?: boolean;
  /** SRC:DST[:ro][:mkdir]: bind mount instead of a command */
  bind?: string;
  stdio?: import('node:child_process').StdioOptions;
}

/** Starts CMD in machine M's namespaces as USER, through the helper's exec-in mode. */
export function spawnIn(m: MachineInfo, user: string, cmd: string[] | undefined, extraEnv: string[], opts: InOptions = {}): import('node:child_process').ChildProcess {
  const leader = m.leader?.pid;
  if (!leader) throw new CtlError(`Machine ${m.name} has no leader process.`);
  const tree = nodeTree(`/proc/${leader}/root`);
  let u;
  try {
    u = resolveUser(tree, user);
  } catch (e) {
    if (e instanceof UserError) throw new CtlError(e.message.replace(`/proc/${leader}/root`, ''));
    throw e;
  }
  const uid = u?.uid ?? 0;
  const gid = u?.gid ?? 0;
  const home = u?.home ?? '/root';
  const shell = u?.shell || '/bin/sh';
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    USER: u?.name ?? 'root',
    LOGNAME: u?.name ?? 'root',
    SHELL: shell,
    container: 'nspawn',
  };
  if (process.env.TERM) env.TERM = process.env.TERM;
  if (process.env.LANG) env.LANG = process.env.LANG;
  for (const e of extraEnv) {
    const i = e.indexOf('=');
    if (i <= 0) throw new CtlError(`Invalid environment assignment ${e}.`);
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  const argv = ['exec-in', String(leader), '-u', String(uid), '-g', String(gid), '-d', home];
  if (u?.groups.length) argv.push('-G', u.groups.join(','));
  for (const c of leaderCgroupProcs(leader)) argv.push('-c', c);
  if (opts.pty) argv.push('-t');
  if (opts.bind) argv.push('-b', opts.bind);
  argv.push('--', ...(opts.bind ? [] : cmd && cmd.length ? cmd : [shell, '-l']));
  return spawn(helperPath(), argv, { stdio: opts.stdio ?? 'inherit', env, argv0: 'nspawn-helper' });
}

const exitCode = (code: number | null, sig: NodeJS.Signals | null) => {
  if (code !== null) return code;
  const r = sig ? signalFromString(sig) : undefined;
  return 128 + (r && r.ok ? r.value : 1);
};

/** Runs CMD in machine M's namespaces as USER: stdio and the exit status pass straight through. */
export async function execIn(m: MachineInfo, user: string, cmd: string[] | undefined, extraEnv: string[], opts: InOptions = {}): Promise<number> {
  const child = spawnIn(m, user, cmd, extraEnv, opts);
  // the terminal's signals reach the command through its process group; we only wait
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  const forward = (s: NodeJS.Signals) => () => child.kill(s);
  const onTerm = forward('SIGTERM');
  const onHup = forward('SIGHUP');
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  return new Promise((resolve) => {
    child.on('error', (e) => {
      err(`Failed to run ${helperPath()}: ${e.message}\n`);
      resolve(255);
    });
    child.on('close', (code, sig) => {
      process.off('SIGINT', ignore);
      process.off('SIGQUIT', ignore);
      process.off('SIGTERM', onTerm);
      process.off('SIGHUP', onHup);
      resolve(exitCode(code, sig));
    });
  });
}

async function bind(args: string[], opts: CtlOptions): Promise<number> {
  if (args.length < 2 || args.length > 3) throw new CtlError('bind needs NAME SOURCE [DESTINATION].');
  const [name, src, dst = args[1]!] = args as [string, string, string?];
  if (!src.startsWith('/') || !dst.startsWith('/')) throw new CtlError('Source and destination paths must be absolute.');
  if (src.includes(':') || dst.includes(':')) throw new CtlError('Paths with a colon are not supported.');
  const m = await machine(name);
  const code = await execIn(m, 'root', undefined, [], { bind: `${src}:${dst}${opts.readOnly ? ':ro' : ''}${opts.mkdir ? ':mkdir' : ''}`, stdio: ['ignore', 'inherit', 'inherit'] });
  if (code !== 0) throw new CtlError(`Failed to bind mount ${src} on ${dst} in machine ${name}.`);
  return 0;
}

/** Waits for both ends of a pipe between a host process and one in the container. */
function both(a: import('node:child_process').ChildProcess, b: import('node:child_process').ChildProcess): Promise<[number, number]> {
  const wait = (c: import('node:child_process').ChildProcess) =>
    new Promise<number>((r) => {
      c.on('error', () => r(255));
      c.on('close', (code, sig) => r(exitCode(code, sig)));
    });
  return Promise.all([wait(a), wait(b)]);
}

/**
 * copy-to: host SRC (read on the host) streamed as tar into the container, unpacked there by the container's own
 * tar into a temporary directory beside DST and moved into place (so the container's symlinks resolve inside it).
 */
async function copyTo(args: string[], opts: CtlOptions): Promise<number> {
  if (args.length < 2 || args.length > 3) throw new CtlError('copy-to needs NAME SOURCE [DESTINATION].');
  const [name, src, dst = args[1]!] = args as [string, string, string?];
  if (!src.startsWith('/') || !dst.startsWith('/')) throw new CtlError('Source and destination paths must be absolute.');
  if (!existsSync(src)) throw new CtlError(`Failed to copy: ${src} does not exist.`);
  const m = await machine(name);
  const { dirname, basename } = await import('node:path');
  const script =
    'set -e; d=$(dirname "$1"); t=$(mktemp -d "$d/.#copy.XXXXXX"); trap \'rm -rf "$t"\' EXIT; tar -C "$t" -xpf -; ' +
    'if [ -e "$1" ] || [ -L "$1" ]; then if [ "$3" = 1 ]; then rm -rf "$1"; else echo "$1: File exists" >&2; exit 17; fi; fi; mv "$t/$2" "$1"';
  const tar = spawn('tar', ['--numeric-owner', '-C', dirname(src), '-cf', '-', basename(src)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const inside = spawnIn(m, 'root', ['/bin/sh', '-c', script, 'sh', dst, basename(src), opts.force ? '1' : '0'], [], { stdio: ['pipe', 'inherit', 'inherit'] });
  tar.stdout!.pipe(inside.stdin!);
  inside.stdin!.on('error', () => {}); // the container side may end first (EPIPE): its status tells
  const [a, b] = await both(tar, inside);
  if (a !== 0 || b !== 0) throw new CtlError(`Failed to copy ${src} to ${dst} in machine ${name}.`);
  return 0;
}

/** copy-from: the container's tar streams SRC out; we unpack it safely (@nspawn/import) beside DST and rename. */
async function copyFrom(args: string[], opts: CtlOptions): Promise<number> {
  if (args.length < 2 || args.length > 3) throw new CtlError('copy-from needs NAME SOURCE [DESTINATION].');
  const [name, src, dst = args[1]!] = args as [string, string, string?];
  if (!src.startsWith('/') || !dst.startsWith('/')) throw new CtlError('Source and destination paths must be absolute.');
  const m = await machine(name);
  const { dirname, basename, join: pjoin } = await import('node:path');
  const { mkdtempSync, renameSync, rmSync, createWriteStream, lstatSync } = await import('node:fs');
  const { extractTar } = await import('@nspawn/import');
  let exists = false;
  try {
    lstatSync(dst);
    exists = true;
  } catch {
    // free
  }
  if (exists && !opts.force) throw new CtlError(`${dst}: File exists (--force replaces it).`);
  const tmp = mkdtempSync(pjoin(dirname(dst), '.#copy-'));
  try {
    const archive = pjoin(tmp, '.archive.tar');
    mkdirSync(pjoin(tmp, 'x'));
    const inside = spawnIn(m, 'root', ['tar', '-C', dirname(src), '-cf', '-', basename(src)], [], { stdio: ['ignore', 'pipe', 'inherit'] });
    const outf = createWriteStream(archive);
    inside.stdout!.pipe(outf);
    const code = await new Promise<number>((r) => inside.on('close', (c, s) => r(exitCode(c, s))));
    await new Promise((r) => outf.close(r));
    if (code !== 0) throw new CtlError(`Failed to copy ${src} from machine ${name}.`);
    await extractTar(archive, pjoin(tmp, 'x'), { label: `the archive of ${src} from machine ${name}` });
    if (exists) rmSync(dst, { recursive: true, force: true });
    renameSync(pjoin(tmp, 'x', basename(src)), dst);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
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
  if (name === '.host') throw new CtlError('shell on the host (.host) is not supported: give a machine name.');
  const m = await machine(name);
  return execIn(m, user, args.slice(1), opts.setenv);
}

async function login(args: string[]): Promise<number> {
  const name = args[0];
  if (!name) throw new CtlError('login needs a machine name.');
  const m = await machine(name);
  const root = `/proc/${m.leader!.pid}/root`;
  const t = nodeTree(root);
  // a getty on a new pty: agetty where the machine has it, busybox getty else; both then run login
  const cmd = t.resolve('/sbin/agetty') !== undefined
    ? ['/sbin/agetty', '--noclear', '--keep-baud', '-', '115200,38400,9600', process.env.TERM ?? 'vt220']
    : t.resolve('/sbin/getty') !== undefined
      ? ['/sbin/getty', '-n', '-l', '/bin/login', '0', '-', process.env.TERM ?? 'vt220']
      : ['/bin/login'];
  if (process.stdin.isTTY) err(`Connected to machine ${name}. Press ^] three times within 1s to exit session.\n`);
  const code = await execIn(m, 'root', cmd, [], { pty: true });
  if (process.stdin.isTTY) err(`\nConnection to machine ${name} terminated.\n`);
  return code;
}

async function logs(args: string[], opts: CtlOptions): Promise<number> {
  const name = args[0];
  if (!name) throw new CtlError('logs needs a machine name.');
  if (!isValidMachineName(name)) throw new CtlError(`Invalid machine name ${name}.`);
  const p = machineLogPath(name);
  if (!existsSync(p)) throw new CtlError(`No console log of machine '${name}' (${p}): only machines nspawnd runs have one.`);
  const { openSync, readSync, fstatSync, statSync, closeSync } = await import('node:fs');
  let fd = openSync(p, 'r');
  let pos = 0;
  const buf = Buffer.alloc(65536);
  const drain = () => {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      writeSync(1, buf.subarray(0, n));
    }
  };
  drain();
  if (!opts.follow) {
    closeSync(fd);
    return 0;
  }
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    try {
      const st = statSync(p);
      if (st.ino !== fstatSync(fd).ino) {
        closeSync(fd);
        fd = openSync(p, 'r');
        pos = 0;
      } else if (st.size < pos) pos = 0; // rotated by truncation
    } catch {
      // between rotations
    }
    drain();
  }
}

async function top(opts: CtlOptions): Promise<number> {
  const host = probeHost();
  let prev = new Map<string, { cpu: number; t: number }>();
  const once = async (): Promise<string> => {
    const ms = await listMachines({ socket: machineSocketPath() }).catch(noDaemon);
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

async function main(argv: string[]): Promise<number> {
  const { verb, args, opts, help, version } = parseCtlArgs(argv);
  if (help) {
    out(CTL_HELP);
    return 0;
  }
  if (version) {
    out('nspawnctl 0.1.0\n');
    return 0;
  }
  if (process.getuid?.() !== 0 && verb !== undefined) {
    // nspawnd answers root only; say so before trying
    throw new CtlError('Need to be root: nspawnd answers only root.');
  }
  switch (verb ?? 'list') {
    case 'list':
      return list(opts);
    case 'status':
      return status(args, opts);
    case 'show':
      return show(args);
    case 'start':
      return start(args);
    case 'login':
      return login(args);
    case 'shell':
      return shell(args, opts);
    case 'poweroff':
      return kill(args, 38 /* SIGRTMIN+4: systemd's poweroff */, 'leader');
    case 'reboot':
      return kill(args, 2 /* SIGINT: systemd's ctrl-alt-del, a reboot */, 'leader');
    case 'terminate':
      return terminate(args);
    case 'kill':
      return kill(args, opts.signal ?? 15, opts.killWhom ?? 'all');
    case 'bind':
      return bind(args, opts);
    case 'copy-to':
      return copyTo(args, opts);
    case 'copy-from':
      return copyFrom(args, opts);
    case 'enable':
      return enable(args, true);
    case 'disable':
      return enable(args, false);
    case 'logs':
      return logs(args, opts);
    case 'top':
      return top(opts);
    default: {
      const v = verb!;
      const iv = imageVerbs[v] ?? tarVerbs[v];
      if (iv)
        return iv(args, opts, {
          call: (m, p, more) => call(m, p, more, machineImageSocketPath()),
          out,
          err,
          machine,
          execIn,
          table,
          json,
          fail: (msg) => {
            throw new CtlError(msg);
          },
        });
      throw new CtlError(`Unknown command verb '${v}'.`);
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof CtlError || e instanceof UserError || (e instanceof Error && e.name === 'ImportError')) {
      err(`${e.message}\n`);
      process.exitCode = 1;
    } else fatal('nspawnctl', e);
  },
);
