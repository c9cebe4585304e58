// A scratch nspawnd for the benchmarks: its own runtime, config, log and machines directories under /var/tmp, so
// that it never meets a real daemon; stop() ends it and removes them.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

export function scratchDaemon(prefix) {
  const base = mkdtempSync(`/var/tmp/${prefix}`);
  const env = {
    ...process.env,
    NSPAWND_RUNTIME_DIR: join(base, 'run'),
    NSPAWND_CONFIG_DIR: join(base, 'etc'),
    NSPAWND_LOG_DIR: join(base, 'log'),
    NSPAWND_MACHINES_DIR: join(base, 'machines'),
  };
  mkdirSync(env.NSPAWND_MACHINES_DIR);
  let proc;
  return {
    base,
    env,
    machines: env.NSPAWND_MACHINES_DIR,
    sock: join(env.NSPAWND_RUNTIME_DIR, 'io.systemd.Machine'),
    get pid() {
      return proc?.pid;
    },
    /** starts nspawnd and resolves once it listens */
    start() {
      proc = spawn(process.execPath, [join(REPO, 'apps/daemon/bin/nspawnd')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      return new Promise((res, rej) => {
        let out = '';
        proc.stderr.on('data', (x) => {
          out += x;
          if (out.includes('listening on')) res();
        });
        proc.on('exit', () => rej(new Error(`nspawnd exited: ${out}`)));
      });
    },
    async stop() {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const done = new Promise((r) => proc.on('exit', r));
        proc.kill('SIGTERM');
        await done;
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}
