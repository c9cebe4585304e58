// --help is grouped like systemd-nspawn 252's: the same groups in the same order, each option in the group
// systemd-nspawn puts it in, and only options the parser takes; what systemd lists and we leave out is
// what the parser refuses as not supported.
import { execaSync } from 'execa';
import { describe, expect, it } from 'vitest';
import { COMMAND_LINE_OPTIONS, REFUSED_OPTIONS } from '@nspawn/settings';
import { HELP } from '../src/help.js';

/** group -> option names ("--long" or "-x") of a --help text. */
function groups(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let g = '(top)';
  out.set(g, []);
  for (const l of text.split('\n')) {
    if (/^[A-Z][\w /]*:$/.test(l)) out.set((g = l.slice(0, -1)), []);
    const m = /^ {2}(?:(-\w)(?: |$)| {3})(--[\w-]+)?/.exec(l);
    if (m && (m[1] || m[2])) out.get(g)!.push(m[2] ?? m[1]!);
  }
  return out;
}

const HIDDEN_BY_SYSTEMD = ['private-users-chown', 'share-system'];
const theirs = execaSync('systemd-nspawn', ['--help'], { env: { SYSTEMD_COLORS: '0', PAGER: 'cat' }, reject: false, stripFinalNewline: false });

describe('nspawn --help', () => {
  const ours = groups(HELP);
  it('names only options the parser accepts', () => {
    const known = new Set(COMMAND_LINE_OPTIONS.flatMap((o) => [`--${o.long}`, ...(o.short ? [`-${o.short}`] : [])]));
    for (const names of ours.values()) for (const n of names) expect(known.has(n), n).toBe(true);
  });
  it('lists every option the parser supports (all but the refused ones)', () => {
    const listed = new Set([...ours.values()].flat());
    for (const o of COMMAND_LINE_OPTIONS) {
      if (o.long.length === 1) continue;
      const refused = REFUSED_OPTIONS.includes(`--${o.long}`);
      // old spellings systemd-nspawn accepts and does not list either
      if (!refused && !HIDDEN_BY_SYSTEMD.includes(o.long)) expect(listed.has(`--${o.long}`), `--${o.long} missing from --help`).toBe(true);
    }
  });
  it.skipIf(theirs.exitCode !== 0)('has systemd-nspawn 252\'s groups, in its order, each option in its group', () => {
    const sd = groups(theirs.stdout);
    const ourGroups = [...ours.keys()];
    const sdGroups = [...sd.keys()].filter((g) => ourGroups.includes(g));
    expect(ourGroups).toEqual(sdGroups);
    const sdGroupOf = new Map([...sd].flatMap(([g, names]) => names.map((n) => [n, g] as const)));
    for (const [g, names] of ours) for (const n of names) if (sdGroupOf.has(n)) expect(`${n} in ${g}`).toBe(`${n} in ${sdGroupOf.get(n)}`);
    // what systemd-nspawn lists and we do not: refused by our parser as not supported yet
    const listed = new Set([...ours.values()].flat());
    for (const [, names] of sd)
      for (const n of names.filter((x) => x.startsWith('--') && !listed.has(x))) {
        const def = COMMAND_LINE_OPTIONS.find((o) => `--${o.long}` === n);
        expect(def, `${n} (in systemd-nspawn --help) is unknown to our parser`).toBeDefined();
        expect(REFUSED_OPTIONS, `${n} is accepted but not in --help`).toContain(n);
      }
  });
});
