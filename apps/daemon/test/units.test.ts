/** The shipped systemd units parse with this host's systemd (252): no unknown keys, sections or values. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const units = join(import.meta.dirname, '../units');

describe('unit files', () => {
  for (const u of ['nspawn@.service', 'machines.target', 'nspawnd.service']) {
    it(`${u} is valid for systemd`, () => {
      if (!existsSync('/usr/bin/systemd-analyze')) throw new Error('systemd-analyze is needed (Debian: systemd)');
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, u)], { encoding: 'utf8' });
      const problems = (r.stderr + r.stdout)
        .split('\n')
        .filter((l) => l.trim() !== '' && !/is not executable|Failed to prepare filename|ExecStart/.test(l));
      expect(problems).toEqual([]);
    });
  }
});
