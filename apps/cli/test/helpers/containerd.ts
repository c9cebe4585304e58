/**
 * containerd 1.6 (Debian 12's `containerd`) started by a test, never the system's: its own root, state, sockets
 * and config under the test's directory, the CRI plugin on or off, images imported from archives built here from
 * local trees (nothing is pulled), and a stop that leaves nothing: tasks killed and deleted, containerd and its
 * shims ended by PID, the rootfs mounts under the directory unmounted, the cgroups the test named removed.
 *
 * What containerd 1.6 puts outside its own directories: the shims' sockets in /run/containerd/s (fixed in 1.6, not
 * configurable); ctr's fifos go under --fifo-dir here. stop() removes the sockets that appeared during the run and
 * /run/containerd if the run made it.
 */
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountsUnder as kitMountsUnder } from '@nspawn/test-kit';
import { REPO } from './containers.js';

export const NSPAWN_OCI_BIN = join(REPO, 'apps/cli/bin/nspawn-oci');
export const CONTAINERD = '/usr/bin/containerd';
export const CTR = '/usr/bin/ctr';
const SHIM_SOCKETS = '/run/containerd/s';

/** Throws (never skips) when containerd 1.6 is missing. */
export function requireContainerd(): void {
  if (process.getuid?.() !== 0) throw new Error('this test must run as root: containerd runs containers');
  for (const f of [CONTAINERD, CTR, '/usr/bin/containerd-shim-runc-v2'])
    if (!existsSync(f)) throw new Error(`${f} is missing: install Debian's containerd (scripts/setup.sh --test)`);
}

/** A wrapper that logs each argv (one line, JSON) to LOG and execs nspawn-oci: what the shim really calls. */
export function argvLoggingRuntime(dir: string, log: string): string {
  const file = join(dir, 'nspawn-oci-logged');
  writeFileSync(
    file,
    `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${NSPAWN_OCI_BIN}' "$@"\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

/** A docker archive (what `docker save` writes, `ctr image import` reads) of one layer: the tree TREE. */
export async function dockerArchive(tree: string, out: string, name: string, config: { Entrypoint?: string[]; Cmd?: string[] }): Promise<void> {
  const work = `${out}.d`;
  mkdirSync(work);
  try {
    await execa('tar', ['-C', tree, '--numeric-owner', '-cf', join(work, 'layer.tar'), '.']);
    const diff = createHash('sha256').update(readFileSync(join(work, 'layer.tar'))).digest('hex');
    const imageConfig = {
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...config },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diff}`] },
    };
    writeFileSync(join(work, 'config.json'), JSON.stringify(imageConfig));
    writeFileSync(join(work, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: [name], Layers: ['layer.tar'] }]));
    await execa('tar', ['-C', work, '-cf', out, 'manifest.json', 'config.json', 'layer.tar']);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A static /pause (gcc -static): waits for SIGINT/SIGTERM and reaps what is reparented to it, as k8s' pause does. */
export async function pauseTree(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const src = `${dir}.c`;
  writeFileSync(
    src,
    `#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int s) { (void) s; _exit(0); }
static void reap(int s) { (void) s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
        if (getpid() != 1) { static const char m[] = "pause: warning: not PID 1\\n"; (void) !write(2, m, sizeof m - 1); }
        signal(SIGINT, quit);
        signal(SIGTERM, quit);
        signal(SIGCHLD, reap);
        for (;;) pause();
}
`,
  );
  try {
    await execa('gcc', ['-static', '-O2', '-o', join(dir, 'pause'), src]);
  } finally {
    rmSync(src, { force: true });
  }
}

export interface CriOptions {
  /** the image containerd's sandbox_image names (imported into the k8s.io namespace before the pod runs) */
  sandboxImage: string;
  /** runtime handler name → the binary its runc.v2 options give as BinaryName */
  handlers: Record<string, string>;
}

export interface CtrResult {
  exitCode: number | undefined;
  stdout: string;
  /** stdout and stderr interleaved */
  all: string;
}

export interface Containerd {
  dir: string;
  address: string;
  /** ctr against this containerd (namespace NS, default "default") */
  ctr(args: string[], ns?: string, opts?: { timeout?: number }): Promise<CtrResult>;
  /** the daemon's log so far */
  log(): string;
  /** ends everything this containerd ran (see the file's comment); safe to call twice */
  stop(): Promise<void>;
}

/** containerd's config.toml (version 2) for a test directory. */
export function containerdConfig(dir: string, cri?: CriOptions): string {
  const lines = [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    // nothing of the host's /opt/containerd
    `plugin_dir = ""`,
    cri ? 'disabled_plugins = []' : 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${dir}/containerd.sock"`,
    '[ttrpc]',
    `  address = "${dir}/containerd.sock.ttrpc"`,
    '[debug]',
    '  level = "debug"',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${dir}/opt"`,
  ];
  if (cri) {
    const P = 'plugins."io.containerd.grpc.v1.cri"';
    lines.push(
      `[${P}]`,
      `  sandbox_image = "${cri.sandboxImage}"`,
      // the streaming server (exec/attach/port-forward) on loopback, a free port
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '  disable_apparmor = true',
      // the pod sandbox's oomScoreAdj -998 needs CAP_SYS_RESOURCE, which this VM's bounding set lacks (runc
      // fails on it here too: "failed to update /proc/self/oom_score_adj"); containerd's own switch for such hosts
      // keeps the value at or above ours
      '  restrict_oom_score_adj = true',
      '  enable_selinux = false',
      `  [${P}.containerd]`,
      '    snapshotter = "overlayfs"',
      '    default_runtime_name = "runc"',
      `    [${P}.containerd.runtimes.runc]`,
      '      runtime_type = "io.containerd.runc.v2"',
      `      [${P}.containerd.runtimes.runc.options]`,
      `        Root = "${dir}/runc-root"`,
    );
    for (const [name, binary] of Object.entries(cri.handlers)) {
      lines.push(
        `    [${P}.containerd.runtimes.${name}]`,
        '      runtime_type = "io.containerd.runc.v2"',
        `      [${P}.containerd.runtimes.${name}.options]`,
        `        BinaryName = "${binary}"`,
        `        Root = "${dir}/${name}-root"`,
      );
    }
    lines.push(`  [${P}.cni]`, '    bin_dir = "/usr/lib/cni"', `    conf_dir = "${dir}/cni"`);
  }
  return `${lines.join('\n')}\n`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** PIDs whose command line names SOCK: the shims of this containerd (they name its address). */
function shimsOf(address: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('containerd-shim-runc-v2') && argv.includes(address)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Mount points at or under DIR, deepest first (for unmounting in that order). */
export function mountsUnder(dir: string): string[] {
  return kitMountsUnder(dir).sort((a, b) => b.length - a.length);
}

function listShimSockets(): Set<string> {
  try {
    return new Set(readdirSync(SHIM_SOCKETS));
  } catch {
    return new Set();
  }
}

/** Starts containerd with its own config under DIR (an empty directory of the test's). */
export async function startContainerd(dir: string, cri?: CriOptions): Promise<Containerd> {
  mkdirSync(join(dir, 'cni'), { recursive: true });
  const config = join(dir, 'config.toml');
  writeFileSync(config, containerdConfig(dir, cri));
  const address = join(dir, 'containerd.sock');
  const hadRunContainerd = existsSync('/run/containerd');
  const socketsBefore = listShimSockets();
  const logFile = join(dir, 'containerd.log');
  const logFd = openSync(logFile, 'a');
  const daemon = spawn(CONTAINERD, ['--config', config], {
    stdio: ['ignore', logFd, logFd],
    // its own PATH (the shim it starts is found there); nothing else of the test's environment
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  closeSync(logFd);
  const exited = new Promise<void>((res) => daemon.once('exit', () => res()));
  daemon.on('error', () => {});
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  let stopped = false;
  const ctr = async (args: string[], ns = 'default', opts: { timeout?: number } = {}): Promise<CtrResult> => {
    const r = await execa(CTR, ['--address', address, '--namespace', ns, ...args], { reject: false, all: true, stdin: 'ignore', timeout: opts.timeout ?? 60000 });
    return { exitCode: r.exitCode, stdout: r.stdout, all: r.all };
  };
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const errors: string[] = [];
    if (daemon.exitCode === null && daemon.signalCode === null && daemon.pid !== undefined) {
      // every task of every namespace: killed, deleted (the shim unmounts its rootfs), its container removed
      for (const ns of ['default', 'k8s.io']) {
        const tasks = await ctr(['tasks', 'ls', '-q'], ns, { timeout: 20000 });
        for (const id of tasks.stdout.split('\n').filter(Boolean)) {
          await ctr(['tasks', 'kill', '-a', '-s', 'SIGKILL', id], ns, { timeout: 20000 });
          // (bounded: a task whose exit never reaches the shim would hang a delete; what is left after is ended below)
          for (let i = 0; i < 3; i++) {
            const d = await ctr(['tasks', 'delete', '-f', id], ns, { timeout: 5000 });
            if (d.exitCode === 0 || /not found/.test(d.all)) break;
            await sleep(200);
          }
        }
        const cs = await ctr(['containers', 'ls', '-q'], ns, { timeout: 20000 });
        for (const id of cs.stdout.split('\n').filter(Boolean)) await ctr(['containers', 'rm', id], ns, { timeout: 20000 });
      }
      daemon.kill('SIGTERM');
      const ended = await Promise.race([exited.then(() => true), sleep(15000).then(() => false)]);
      if (!ended) {
        errors.push('containerd did not end on SIGTERM in 15 s; killed');
        daemon.kill('SIGKILL');
        await exited;
      }
    }
    // shims still there (a task that would not go): ended by PID, theirs only
    for (const pid of shimsOf(address)) {
      errors.push(`shim ${pid} of ${address} was still running; killed`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    // containers the runtime still knows (state under DIR/*-root/NAMESPACE/ID): its own delete --force ends their
    // processes and removes their cgroups
    for (const rootName of readdirSync(dir).filter((n) => n.endsWith('-root'))) {
      for (const ns of readdirSync(join(dir, rootName))) {
        const nsRoot = join(dir, rootName, ns);
        for (const id of readdirSync(nsRoot)) {
          if (!existsSync(join(nsRoot, id, 'state.json'))) continue;
          errors.push(`container ${id} was left in ${nsRoot}; deleted`);
          await execa(NSPAWN_OCI_BIN, ['--root', nsRoot, 'delete', '--force', id], { reject: false, timeout: 30000 });
        }
      }
    }
    for (const m of mountsUnder(dir)) {
      errors.push(`mount ${m} was left; unmounted`);
      await execa('umount', ['-l', m], { reject: false });
    }
    for (const s of listShimSockets()) {
      if (socketsBefore.has(s)) continue;
      // a shim's socket of this run (a shim removes its own when it ends well)
      const p = join(SHIM_SOCKETS, s);
      try {
        if (statSync(p).isSocket()) rmSync(p);
      } catch {
        // gone
      }
    }
    if (!hadRunContainerd) {
      for (const d of [SHIM_SOCKETS, '/run/containerd/fifo', '/run/containerd/runc/default', '/run/containerd/runc', '/run/containerd']) {
        try {
          rmdirSync(d);
        } catch {
          // not empty or not there: left as it is
        }
      }
    }
    if (errors.length > 0) throw new Error(`containerd stop: ${errors.join('; ')}`);
  };
  // ready when its socket answers
  for (let i = 0; ; i++) {
    if (daemon.exitCode !== null || daemon.signalCode !== null) throw new Error(`containerd ended at its start (${daemon.exitCode ?? daemon.signalCode}):\n${log().slice(-3000)}`);
    if (existsSync(address) && (await ctr(['version'], 'default', { timeout: 5000 })).exitCode === 0) break;
    if (i >= 200) {
      await stop().catch(() => {});
      throw new Error(`containerd did not answer on ${address} in 20 s:\n${log().slice(-3000)}`);
    }
    await sleep(100);
  }
  return { dir, address, ctr, log, stop };
}

/** The cgroup directories named NAME (a relative path) in every cgroupfs hierarchy, deepest first. */
export function cgroupDirs(name: string): string[] {
  const out: string[] = [];
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = l.split(' ');
    const fstype = f[f.indexOf('-') + 1];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const d = join(f[4]!, name);
    if (existsSync(d)) out.push(d);
  }
  return out;
}

/** Removes cgroup directory trees named NAME (empty ones; rmdir, deepest first). Returns those that stayed. */
export function removeCgroupTrees(name: string): string[] {
  const left: string[] = [];
  const walk = (d: string): void => {
    let subs: string[] = [];
    try {
      subs = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name));
    } catch {
      return;
    }
    for (const s of subs) walk(s);
    try {
      rmdirSync(d);
    } catch {
      left.push(d);
    }
  };
  for (const d of cgroupDirs(name)) walk(d);
  return left;
}

/** The namespace link (net, ipc, uts, pid, mnt) of PID. */
export const nsOf = (pid: number | 'self', ns: string): string => readlinkSync(`/proc/${pid}/ns/${ns}`);
