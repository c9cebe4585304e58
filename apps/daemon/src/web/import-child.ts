/**
 * The child nspawnd runs for an import-tar asked for in the web view (./imports.ts): `node import-child FILE NAME
 * ROOT`, NAME empty for the name derived from FILE. The same importTar() `nspawnctl import-tar` runs. It says
 * "start" before it reads the archive (where the parent's progress counts from), then one JSON line: {ok, name} or
 * {ok: false, error}.
 */
import { writeSync } from 'node:fs';
import { importTar } from '@nspawn/import';

const [file, name, root] = process.argv.slice(2);
const say = (line: string) => {
  try {
    writeSync(1, `${line}\n`);
  } catch {
    // nspawnd is gone: nobody listens
  }
};
say('start');
importTar(file!, { ...(name ? { name } : {}), root: root! }).then(
  (r) => say(JSON.stringify({ ok: true, name: r.name, path: r.path, entries: r.stats.entries, bytes: r.stats.bytes })),
  (e: unknown) => {
    say(JSON.stringify({ ok: false, error: (e as Error).message }));
    process.exitCode = 1;
  },
);
