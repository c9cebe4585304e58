/** nspawnctl's verbs about what nspawnd keeps: enable and disable (autostart), logs (the console log). */
import { existsSync, mkdirSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isValidMachineName, machineLogPath, nspawndPaths } from '@nspawn/runtime';
import { CtlError, type CtlVerb, out, type CtlOptions } from './ctl-common.js';

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

export const daemonVerbs: Record<string, CtlVerb> = {
  enable: (args) => enable(args, true),
  disable: (args) => enable(args, false),
  logs,
};
