/**
 * The warm monitor: one Node process per --root that monitors the creates nspawn-oci's native front end hands it
 * (native/oci-warm.c), so that a create waits for no Node start of its own: on this kind of machine a Node start
 * (about 28 ms) costs as much as runc's whole create.
 *
 * A create of the front end connects twice to its socket (monitorSocket(ROOT), in /run/nspawn-oci-monitors: the
 * root itself holds containers only):
 *   1. "ctl TOKEN\n", then that connection is the helper's control socket (its fd 3): the front end starts the
 *      helper itself, so that the container stays a descendant of the caller (conmon, containerd's shim: they reap
 *      it as runc's);
 *   2. "req JSON\n" (MonitorRequest): the monitor answers "ok", or "retry" when it cannot serve this caller as a
 *      monitor of its own would (another build, root, environment or namespaces: the front end then starts one of
 *      its own), then runs monitorContainer() with that helper and answers "created PID" or "error MESSAGE", as a
 *      monitor of its own reports on its pipe.
 * The front end's `start` starts the server when none answers (`nspawn-oci --root ROOT __monitor-server`): not
 * create, whose caller (conmon) waits for every process it is the subreaper of. It leaves the caller's cgroups for
 * the root cgroup of each hierarchy (it would keep them from being removed), and ends after idleMs without a create,
 * or within a second once its socket is gone or another's, or its root is removed.
 *
 * It must not: serve a caller it was not started for (refusal()), outlive its socket or root, or hold anything of a
 * container once the container's helper has left (each container's record names the helper as its monitor: delete
 * waits for that one).
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, realpathSync, rmdirSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { logLine, monitorContainer, type CreateOptions, type MonitorArgs } from './lifecycle.js';

/** the warm monitors' sockets (root's only: 0700), one for each --root, named by FNV-1a of its real path */
export const MONITOR_DIR = '/run/nspawn-oci-monitors';
const fnv1a = (s: string): string => {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
};
/** The socket of ROOT's warm monitor (ROOT must exist). */
export const monitorSocket = (root: string): string => join(MONITOR_DIR, `${fnv1a(realpathSync(root))}.sock`);

/** What a create of the front end asks for. */
export interface MonitorRequest {
  /** names its control connection ("ctl TOKEN") */
  token: string;
  /** the helper it started, and the path it ran */
  helper: string;
  helperPid: number;
  /** what a monitor of its own would get (fds: how many descriptors the helper got from 4 on) */
  args: MonitorArgs;
  log?: string;
  logFormat?: 'text' | 'json';
  /** its NSPAWN* and SYSTEMD* variables (what the translation may read) */
  env: Record<string, string>;
}

export interface MonitorServerOptions {
  root: string;
  /** how long it waits for the next create before it ends (ms) */
  idleMs: number;
  /** files of this build (the code, the helper): when one changes, it answers "retry" and ends */
  build: string[];
  /** the helper the engine would run (helperPath()): a create that started another one is refused */
  helper: string;
  /** how long a create's control connection is waited for (ms) */
  ctlWaitMs?: number;
}

const NAMESPACES = ['mnt', 'pid', 'net', 'user', 'uts', 'ipc', 'cgroup'];
const relevantEnv = (env: NodeJS.ProcessEnv): Record<string, string> =>
  Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => /^(NSPAWN|SYSTEMD)/.test(e[0]) && e[1] !== undefined).sort());
/** what names a directory: its device and inode ('missing' when gone) */
const dirId = (d: string): string => {
  try {
    const s = statSync(d);
    return `${s.dev}:${s.ino}`;
  } catch {
    return 'missing';
  }
};
/** what tells a build's file from another's */
const fileId = (f: string): string => {
  try {
    const s = statSync(f);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
};

/** The first line of C (undefined: it ended first); the rest stays unread in C, which is left paused. */
function firstLine(c: Socket): Promise<string | undefined> {
  return new Promise((res) => {
    let buf = Buffer.alloc(0);
    const done = (v: string | undefined) => {
      c.off('data', onData);
      c.off('close', onClose);
      c.pause();
      res(v);
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf(10);
      if (i < 0) {
        if (buf.length > 1 << 20) done(undefined);
        return;
      }
      if (i + 1 < buf.length) c.unshift(buf.subarray(i + 1));
      done(buf.subarray(0, i).toString('utf8'));
    };
    const onClose = () => done(undefined);
    c.on('data', onData);
    c.on('close', onClose);
  });
}

/** The helper a front end started, as runPlan() sees a child of its own: its control socket, closed when it ends. */
function remoteHelper(ctl: Socket, pid: number): ChildProcess {
  const child = Object.assign(new EventEmitter(), { stdio: [null, null, null, ctl], pid });
  // (firstLine() paused it: runPlan()'s reader takes it from there)
  ctl.on('newListener', (ev) => {
    if (ev === 'data') process.nextTick(() => ctl.resume());
  });
  ctl.on('close', () => child.emit('close', null, null));
  return child as unknown as ChildProcess;
}

/** The log of one create: its --log file (opened for each line: the server outlives the caller), or nothing. */
const requestLog = (file: string | undefined, format: 'text' | 'json'): CreateOptions['log'] =>
  file === undefined
    ? () => {}
    : (level, msg) => {
        try {
          const fd = openSync(file, 'a');
          try {
            writeSync(fd, `${logLine(format, level, msg)}\n`);
          } finally {
            closeSync(fd);
          }
        } catch {
          // nowhere to say it
        }
      };

/** Moves this process into the root cgroup of every hierarchy; false when one refuses. */
function leaveCallersCgroups(): boolean {
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      const dash = f.indexOf('-');
      if (dash < 0 || (f[dash + 1] !== 'cgroup' && f[dash + 1] !== 'cgroup2')) continue;
      writeFileSync(join(f[4]!.replace(/\\040/g, ' '), 'cgroup.procs'), `${process.pid}`);
    }
    return true;
  } catch {
    return false;
  }
}

/** the warm monitors' directory: made when missing; false when it is not root's alone */
function monitorDir(): boolean {
  try {
    mkdirSync(MONITOR_DIR, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  }
  const d = lstatSync(MONITOR_DIR);
  return d.isDirectory() && d.uid === 0 && (d.mode & 0o077) === 0;
}

function listen(server: Server, path: string): Promise<boolean> {
  return new Promise((res) => {
    const tryListen = (again: boolean) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        // (the directory removed by a monitor that ended meanwhile)
        if (e.code === 'ENOENT' && again && monitorDir()) return tryListen(false);
        if (e.code !== 'EADDRINUSE' || !again) return res(false);
        // a socket left by a server that ended without removing it, or one that serves: ask it
        const probe = createConnection(path);
        probe.once('connect', () => {
          probe.destroy();
          res(false);
        });
        probe.once('error', () => {
          try {
            unlinkSync(path);
          } catch {
            // someone else did
          }
          tryListen(false);
        });
      });
      server.listen(path, () => res(true));
    };
    tryListen(true);
  });
}

/**
 * Serves creates on monitorSocket(ROOT) until it is idle for idleMs or its socket goes; resolves then (the caller
 * exits). Resolves at once when another server answers there, or when it cannot leave the caller's cgroups.
 */
export async function serveMonitors(o: MonitorServerOptions): Promise<void> {
  if (process.geteuid?.() !== 0 || !leaveCallersCgroups() || !monitorDir()) return;
  let root: string;
  let rootId: string;
  try {
    root = realpathSync(o.root);
    rootId = dirId(root);
  } catch {
    return;
  }
  const path = monitorSocket(root);
  const server = createServer();
  if (!(await listen(server, path))) return;
  const ino = statSync(path).ino;
  const build = o.build.map(fileId);
  const env = JSON.stringify(relevantEnv(process.env));
  const ns = NAMESPACES.map((n) => readlinkSync(`/proc/self/ns/${n}`));
  const ctls = new Map<string, Socket>();
  const waiting = new Map<string, (c: Socket | undefined) => void>();
  let inflight = 0;
  let closing = false;
  let finished: () => void = () => {};
  const done = new Promise<void>((res) => (finished = res));
  const shutdown = () => {
    if (!closing) {
      closing = true;
      clearTimeout(idle);
      clearInterval(watch);
      server.close();
      try {
        if (statSync(path).ino === ino) unlinkSync(path);
      } catch {
        // gone, or another server's now
      }
      try {
        // (the last one out: another's socket keeps it)
        rmdirSync(MONITOR_DIR);
      } catch {
        // another server's socket is in it
      }
    }
    if (inflight === 0) finished();
  };
  let idle = setTimeout(shutdown, o.idleMs);
  // its socket gone or another's, its root removed (a test's): it ends
  const watch = setInterval(() => {
    try {
      if (statSync(path).ino !== ino || dirId(root) !== rootId) shutdown();
    } catch {
      shutdown();
    }
  }, 1000);

  /** why this server cannot be REQ's monitor (undefined: it can); 'build' ends it */
  const refusal = (req: MonitorRequest): string | undefined => {
    if (o.build.some((f, i) => fileId(f) !== build[i])) return 'build';
    if (req.helper !== o.helper) return 'helper';
    try {
      if (realpathSync(req.args.root) !== root) return 'root';
    } catch {
      return 'root';
    }
    if (JSON.stringify(Object.fromEntries(Object.entries(req.env ?? {}).sort())) !== env) return 'environment';
    try {
      if (NAMESPACES.some((n, i) => readlinkSync(`/proc/${req.helperPid}/ns/${n}`) !== ns[i])) return 'namespaces';
    } catch {
      return 'helper gone';
    }
    return undefined;
  };

  const ctlOf = (token: string): Promise<Socket | undefined> => {
    const c = ctls.get(token);
    if (c) {
      ctls.delete(token);
      return Promise.resolve(c);
    }
    return new Promise((res) => {
      const t = setTimeout(() => {
        waiting.delete(token);
        res(undefined);
      }, o.ctlWaitMs ?? 5000);
      waiting.set(token, (s) => {
        clearTimeout(t);
        res(s);
      });
    });
  };

  const serve = async (c: Socket, req: MonitorRequest) => {
    inflight++;
    clearTimeout(idle);
    let ctl: Socket | undefined;
    try {
      const why = closing ? 'closing' : refusal(req);
      if (why) {
        c.end('retry\n');
        if (why === 'build') shutdown();
        return;
      }
      c.write('ok\n');
      ctl = await ctlOf(req.token);
      if (!ctl) {
        c.end(`error the helper of ${req.args.id} did not connect to its monitor\n`);
        return;
      }
      const log = requestLog(req.log, req.logFormat ?? 'text');
      const { fds, ...args } = req.args;
      await monitorContainer(
        { ...args, log, remote: { child: remoteHelper(ctl, req.helperPid), pid: req.helperPid, fds: fds ?? 0, console: args.consoleSocket !== undefined } },
        (line) => c.end(`${line}\n`),
      );
    } catch (e) {
      c.end(`error ${(e as Error).message}\n`);
    } finally {
      // (a helper not given its plan ends when its control socket closes)
      ctl?.destroy();
      inflight--;
      if (closing) shutdown();
      else if (inflight === 0) idle = setTimeout(shutdown, o.idleMs);
    }
  };

  // SIGTERM, SIGINT, or "stop" (stopMonitor()): no new creates; it ends once the ones under way are created
  const stop = () => shutdown();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const stoppers: Socket[] = [];
  server.on('connection', (c) => {
    c.on('error', () => {});
    void firstLine(c).then((line) => {
      if (line === 'stop') {
        // (its connection closes as the process ends: the caller knows it has ended)
        stoppers.push(c);
        shutdown();
        return;
      }
      if (line?.startsWith('ctl ')) {
        const token = line.slice(4);
        const w = waiting.get(token);
        if (w) {
          waiting.delete(token);
          w(c);
          return;
        }
        ctls.set(token, c);
        // a control connection nobody asks for: the front end went away between its two connections
        setTimeout(() => {
          if (ctls.get(token) !== c) return;
          ctls.delete(token);
          c.destroy();
        }, o.ctlWaitMs ?? 5000).unref();
        return;
      }
      let req: MonitorRequest | undefined;
      try {
        if (line?.startsWith('req ')) req = JSON.parse(line.slice(4)) as MonitorRequest;
      } catch {
        // not ours to answer
      }
      if (req && typeof req.token === 'string' && Number.isInteger(req.helperPid) && req.args && typeof req.args.id === 'string') void serve(c, req);
      else c.destroy();
    });
  });
  await done;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
}

/**
 * Ends ROOT's warm monitor, if one runs: it takes no more creates and ends once those under way are created.
 * Resolves whether there was one, once it has ended.
 */
export function stopMonitor(root: string): Promise<boolean> {
  let path: string;
  try {
    path = monitorSocket(root);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((res) => {
    const c = createConnection(path);
    let connected = false;
    c.on('connect', () => {
      connected = true;
      c.write('stop\n');
    });
    c.on('error', () => {});
    c.on('close', () => res(connected));
    c.resume();
  });
}
