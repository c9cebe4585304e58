/**
 * `nspawn-oci`: an OCI runtime with runc's command line, over @nspawn/oci (the spec, the state, the hooks) and the
 * engine of @nspawn/runtime. Thin: parse the command line, call the library, print one line on failure.
 */
import { writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  containerState, createContainer, defaultSpec, deleteContainer, DEFAULT_ROOT, features, killContainer, listContainers,
  monitorContainer, openLog, parseSignal, startContainer, type MonitorCommand, type MonitorArgs, execContainer, loadProcessFile, containerPids, pauseContainer, resumeContainer,
  listenFdsOf, checkPreserved, serveMonitors,
} from '@nspawn/oci';
import { helperPath } from '@nspawn/runtime';
import { fatal } from './fatal.js';

const VERSION = '0.1.0';
const BOOL = new Set(['detach', 'd', 'force', 'f', 'all', 'a', 'no-pivot', 'no-new-keyring', 'systemd-cgroup', 'debug', 'rootless', 'help', 'h', 'version', 'v', 'keep', 'tty', 't', 'q', 'quiet', 'no-subreaper']);
const ALIASES: Record<string, string> = { b: 'bundle', d: 'detach', f: 'force', a: 'all', h: 'help', v: 'version', t: 'tty', p: 'process', e: 'env', u: 'user', q: 'quiet' };

class UsageError extends Error {}

interface Parsed {
  global: Map<string, string[]>;
  command?: string;
  opts: Map<string, string[]>;
  args: string[];
}

function parse(argv: string[]): Parsed {
  const global = new Map<string, string[]>();
  const opts = new Map<string, string[]>();
  const args: string[] = [];
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const target = command === undefined ? global : opts;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a !== '-' && !(command !== undefined && args.length > 0 && (command === 'exec' || command === 'ps'))) {
      const m = /^--?([^=]+)(?:=(.*))?$/.exec(a)!;
      const name = ALIASES[m[1]!] ?? m[1]!;
      let value = m[2];
      if (value === undefined) {
        if (BOOL.has(name)) value = 'true';
        else {
          value = argv[++i];
          if (value === undefined) throw new UsageError(`option --${name} needs a value`);
        }
      }
      target.set(name, [...(target.get(name) ?? []), value]);
      continue;
    }
    if (command === undefined) command = a;
    else args.push(a);
  }
  return { global, command, opts, args };
}

const one = (m: Map<string, string[]>, k: string) => m.get(k)?.at(-1);
const flag = (m: Map<string, string[]>, k: string) => {
  const v = one(m, k);
  return v !== undefined && v !== 'false';
};

const out = (s: string) => writeFileSync(1, s);

async function main(argv: string[]): Promise<number> {
  const p = parse(argv);
  const root = one(p.global, 'root') ?? DEFAULT_ROOT;
  const logFormat = one(p.global, 'log-format') === 'json' ? 'json' : 'text';
  const log = openLog(one(p.global, 'log'), logFormat);
  const fail = (msg: string): number => {
    log('error', msg);
    if (one(p.global, 'log') !== undefined) writeFileSync(2, `${msg}\n`);
    return 1;
  };
  try {
    if (flag(p.global, 'version') || p.command === 'version') {
      out(`nspawn-oci version ${VERSION}\nspec: 1.1.0\n`);
      return 0;
    }
    if (flag(p.global, 'systemd-cgroup'))
      return fail('--systemd-cgroup: this host has no systemd to ask for a scope; use cgroupfs (leave out --systemd-cgroup)');
    if (p.command === undefined || flag(p.global, 'help')) {
      out(HELP);
      return p.command === undefined && !flag(p.global, 'help') ? 1 : 0;
    }
    const id = () => {
      const v = p.args[0];
      if (!v) throw new UsageError(`${p.command}: a container id is required`);
      return v;
    };
    const monitor: MonitorCommand = (o) => ({
      file: process.execPath,
      args: [...process.execArgv, process.argv[1]!, ...(one(p.global, 'log') ? ['--log', one(p.global, 'log')!, '--log-format', logFormat] : []), '__monitor', JSON.stringify(o)],
    });
    const bundle = one(p.opts, 'bundle') ?? '.';
    const pidFile = one(p.opts, 'pid-file');
    const consoleSocket = one(p.opts, 'console-socket');
    const preserve = one(p.opts, 'preserve-fds');
    if (preserve !== undefined && !/^[0-9]+$/.test(preserve)) throw new UsageError(`--preserve-fds ${preserve}: not a number`);
    const preserveFds = Number(preserve ?? 0);
    const createOpts = { ...(pidFile ? { pidFile } : {}), ...(consoleSocket ? { consoleSocket } : {}), ...(preserveFds ? { preserveFds } : {}), ...(flag(p.opts, 'no-new-keyring') ? { noNewKeyring: true } : {}) };
    switch (p.command) {
      case '__monitor': {
        const o = JSON.parse(p.args[0] ?? '{}') as MonitorArgs;
        // its errors reach create through fd 3; its stderr is the container's, so it logs only to --log
        const quiet = one(p.global, 'log') === undefined;
        const { fds, ...rest } = o;
        // (a failure is create's to say, or, once create has gone, the log's: monitorContainer() says it once)
        const end = await monitorContainer({ ...rest, fds: Array.from({ length: fds ?? 0 }, (_, i) => 4 + i), log: quiet ? () => {} : log }, 3);
        // the code cache (bin/load.cjs) of the monitor's path, the one every create waits for: saved once after it
        // ran (a cache written at the exit of another verb holds little of it)
        if (end.kind !== 'failed') (globalThis as Record<symbol, (() => void) | undefined>)[Symbol.for('nspawn.saveCodeCache')]?.();
        // nothing of the monitor may keep the process (and so the container's stdio) alive
        process.exit(0);
      }
      case '__monitor-server': {
        // the warm monitor (started by the native front end, which hands it its creates): until idle for
        // $NSPAWN_OCI_MONITOR_IDLE seconds (default 30), or its socket is gone
        const idle = Number(process.env.NSPAWN_OCI_MONITOR_IDLE ?? 30);
        const entry = process.argv[1]!;
        const bundleFile = join(dirname(entry), '../dist/nspawn-oci.cjs');
        const helper = helperPath();
        await serveMonitors({ root, idleMs: (Number.isFinite(idle) && idle > 0 ? idle : 30) * 1000, build: [existsSync(bundleFile) ? bundleFile : entry, helper], helper });
        process.exit(0);
      }
      case 'create':
        await createContainer({ root, id: id(), bundle, ...createOpts, log }, monitor);
        return 0;
      case 'start':
        await startContainer(root, id());
        return 0;
      case 'run': {
        if (flag(p.opts, 'detach')) {
          await createContainer({ root, id: id(), bundle, ...createOpts, log }, monitor);
          await startContainer(root, id());
          return 0;
        }
        const { makeContainerDir, removeContainerDir } = await import('@nspawn/oci');
        const listenFds = listenFdsOf(process.env, process.pid);
        checkPreserved(3 + listenFds, preserveFds);
        const fds = Array.from({ length: listenFds + preserveFds }, (_, i) => 3 + i);
        makeContainerDir(root, id());
        try {
          const end = await monitorContainer({ root, id: id(), bundle, log, foreground: true, fds, listenFds, ...createOpts });
          if (end.kind === 'failed') return fail(end.message);
          return end.kind === 'exited' ? end.code : end.kind === 'signaled' ? 128 + end.signal : 0;
        } finally {
          removeContainerDir(root, id());
        }
      }
      case 'exec': {
        const proc = one(p.opts, 'process');
        const user = one(p.opts, 'user');
        const [u, g] = user ? user.split(':') : [];
        if (user && (!/^\d+$/.test(u ?? '') || (g !== undefined && !/^\d+$/.test(g)))) throw new UsageError(`exec: --user ${user}: expected UID[:GID]`);
        // runc's exec.go: a failure before the process runs is "exec failed: ..." and status 255
        const failed = (e: unknown): number => {
          if (!(e instanceof Error) || !['SpecError', 'StateError'].includes(e.name)) throw e;
          fail(`exec failed: ${e.message}`);
          return 255;
        };
        return await (async () => execContainer(root, id(), {
          ...(proc ? { process: loadProcessFile(proc) } : { args: p.args.slice(1) }),
          env: p.opts.get('env') ?? p.opts.get('e') ?? [],
          ...(one(p.opts, 'cwd') ? { cwd: one(p.opts, 'cwd')! } : {}),
          ...(u !== undefined ? { uid: Number(u), gid: Number(g ?? 0) } : {}),
          ...(p.opts.get('additional-gids') ? { groups: p.opts.get('additional-gids')!.map(Number) } : {}),
          tty: flag(p.opts, 'tty') || flag(p.opts, 't'),
          detach: flag(p.opts, 'detach') || flag(p.opts, 'd'),
          ...(pidFile ? { pidFile } : {}),
          ...(consoleSocket ? { consoleSocket } : {}),
          ...(preserveFds ? { preserveFds } : {}),
        }))().catch(failed);
      }
      case 'pause':
        pauseContainer(root, id());
        return 0;
      case 'resume':
        resumeContainer(root, id());
        return 0;
      case 'ps': {
        const pids = containerPids(root, id());
        if (one(p.opts, 'format') === 'json') {
          out(`${JSON.stringify(pids)}\n`);
          return 0;
        }
        // runc: ps(1) with the given options (default -ef), only the container's lines
        const { execFileSync } = await import('node:child_process');
        const lines = execFileSync('ps', p.args.length > 1 ? p.args.slice(1) : ['-ef'], { encoding: 'utf8' }).split('\n');
        const col = lines[0]!.trim().split(/\s+/).indexOf('PID');
        if (col < 0) throw new UsageError('ps: the ps options must print a PID column');
        const want = new Set(pids.map(String));
        out(`${[lines[0], ...lines.slice(1).filter((l) => want.has(l.trim().split(/\s+/)[col] ?? ''))].join('\n')}\n`);
        return 0;
      }
      case 'state':
        out(`${JSON.stringify(containerState(root, id()), null, 2)}\n`);
        return 0;
      case 'kill': {
        const sig = parseSignal(p.args[1] ?? 'SIGTERM');
        killContainer(root, id(), sig, flag(p.opts, 'all'));
        return 0;
      }
      case 'delete':
        await deleteContainer(root, id(), flag(p.opts, 'force'), log);
        return 0;
      case 'list': {
        const list = listContainers(root);
        if (one(p.opts, 'format') === 'json') out(`${JSON.stringify(list)}\n`);
        else if (flag(p.opts, 'quiet')) out(list.map((c) => `${c.id}\n`).join(''));
        else {
          const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED'], ...list.map((c) => [c.id, String(c.pid), c.status, c.bundle, c.created])];
          const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
          out(rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('   ').trimEnd() + '\n').join(''));
        }
        return 0;
      }
      case 'features':
        out(`${JSON.stringify(features(), null, 2)}\n`);
        return 0;
      case 'spec': {
        const dir = one(p.opts, 'bundle') ?? '.';
        const file = `${dir}/config.json`;
        if (existsSync(file)) return fail(`File ${file} exists. Remove it first`);
        writeFileSync(file, `${JSON.stringify(defaultSpec(flag(p.opts, 'rootless')), null, 2)}\n`);
        return 0;
      }
      default:
        return fail(`No help topic for '${p.command}'`);
    }
  } catch (e) {
    if (e instanceof Error && ['SpecError', 'StateError', 'HookError', 'UsageError', 'Error'].includes(e.name) && !(e instanceof TypeError)) {
      return fail(e.message);
    }
    fatal('nspawn-oci', e);
    return 1;
  }
}

const HELP = `nspawn-oci: an OCI runtime (runc's command line) on nspawn's engine

Usage: nspawn-oci [--root DIR] [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ID

Commands:
  create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] [--preserve-fds N] [--no-new-keyring] ID
                                                make the container; it waits for start
  start ID                                      run the process of a created container
  run [--bundle DIR] [--detach] [create's options] ID
                                                create and start
  exec [--process FILE] [--env K=V] [--cwd DIR] [--user UID[:GID]] [--tty] [--detach] [--pid-file FILE]
       [--console-socket SOCK] [--preserve-fds N] ID [CMD...]
                                                another process in a running container
  ps [--format table|json] ID [PS-OPTIONS]      the container's processes
  pause ID / resume ID                          freeze / thaw it (cgroup freezer)
  state ID                                      the state as JSON
  kill ID [SIGNAL]                              send a signal (default SIGTERM)
  delete [--force] ID                           remove a stopped (with --force: any) container
  list [--format json] [-q]                     the containers under --root
  features                                      what this runtime supports (JSON)
  spec [--bundle DIR] [--rootless]              write a default config.json

Options:
  --console-socket SOCK   with process.terminal, the terminal's master is sent to the AF_UNIX socket SOCK
  --preserve-fds N        our descriptors 3..3+N-1 (create/run: after LISTEN_FDS's, when LISTEN_PID is ours) are the
                          process's too
`;

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => fatal('nspawn-oci', e),
);
