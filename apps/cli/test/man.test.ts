// The man pages render with man(1) without warnings and cover what the parser takes: every option in
// nspawn(1), every .nspawn key in nspawn.settings(5), every nspawnctl verb in nspawnctl(1).
import { execaSync } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_LINE_OPTIONS, NSPAWN_KEYS } from '@nspawn/settings';
import { manPages, toRoff } from '../scripts/man.mjs';
import { NSPAWNCTL_VERBS } from '../scripts/completions.mjs';

let dir = '';
const rendered = new Map<string, { out: string; err: string; status: number | null }>();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nspawn-test-man-'));
  for (const p of await manPages()) {
    writeFileSync(join(dir, p.file), p.roff);
    const r = execaSync('man', ['--warnings', '-l', join(dir, p.file)], { env: { MANWIDTH: '200', MANPAGER: 'cat', PAGER: 'cat', LC_ALL: 'C.UTF-8' }, reject: false, stripFinalNewline: false });
    rendered.set(p.file, { out: String(r.stdout), err: String(r.stderr), status: r.exitCode ?? null });
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('man pages', () => {
  it('are the four pages, each rendering without a warning', () => {
    expect([...rendered.keys()].sort()).toEqual(['nspawn.1', 'nspawn.settings.5', 'nspawnctl.1', 'nspawnd.8']);
    for (const [f, r] of rendered) {
      expect(r.status, f).toBe(0);
      expect(r.err, f).toBe('');
      expect(r.out).toMatch(/^(NSPAWN|NSPAWNCTL|NSPAWND|NSPAWN\.SETTINGS)\(\d\)/);
      for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'SEE ALSO']) expect(r.out, `${f}: ${s}`).toMatch(new RegExp(`^${s}$`, 'm'));
    }
  });
  it('nspawn(1) has every option of the parser, in --help\'s groups', () => {
    const out = rendered.get('nspawn.1')!.out;
    for (const o of COMMAND_LINE_OPTIONS) {
      if (o.long.length > 1) expect(out, `--${o.long}`).toMatch(new RegExp(`--${o.long}\\b`));
      if (o.short) expect(out, `-${o.short}`).toMatch(new RegExp(`(^|[ ,])-${o.short}\\b`, 'm'));
    }
    for (const g of ['Image', 'Execution', 'Networking', 'Mounts']) expect(out).toMatch(new RegExp(`^ {3}${g}$`, 'm'));
  });
  it('nspawn.settings(5) has every key of every section', () => {
    const out = rendered.get('nspawn.settings.5')!.out;
    for (const s of ['EXEC', 'FILES', 'NETWORK']) expect(out).toContain(`[${s}] SECTION OPTIONS`);
    for (const k of NSPAWN_KEYS) expect(out, `${k.section}.${k.key}`).toContain(`${k.key}=`);
  });
  it('nspawnctl(1) has every verb', () => {
    const out = rendered.get('nspawnctl.1')!.out;
    for (const v of Object.keys(NSPAWNCTL_VERBS)) expect(out, v).toMatch(new RegExp(`^ {7}${v}\\b`, 'm'));
    for (const o of ['--output', '--no-legend', '--kill-whom', '--signal', '--read-only', '--mkdir', '--follow']) expect(out).toContain(o);
  });
  it('nspawnd(8) names its varlink interfaces and its state', () => {
    const out = rendered.get('nspawnd.8')!.out;
    for (const w of ['io.systemd.Machine', 'io.systemd.MachineImage', '/run/', 'nspawn@.service', 'enable']) expect(out).toContain(w);
  });
  it('the markdown dialect: terms, lists, literal blocks, escapes', () => {
    const roff = toRoff('# NAME\n\nx - y\n\n`--a=B`\n: does *it*\n  more\n\n- one\n\n```\n.dot -x\n```\n.lead', { name: 'x', section: '1' });
    expect(roff).toContain('.TP\n\\fB\\-\\-a=B\\fR\ndoes \\fIit\\fR\nmore');
    expect(roff).toContain('.IP \\(bu 2\none');
    expect(roff).toContain('.nf\n\\&.dot \\-x\n.fi');
    expect(roff).toContain('\\&.lead');
  });
});
