// Help, man page and completions never advertise what this build refuses. The refused set comes from the parser's
// own table (REFUSED_OPTIONS: the options parsed and then refused as "not supported yet"); each of them must be
// absent from `nspawn --help` and the completions, and appear in nspawn(1) only under "Refused by this build".
// Each name is checked to really be refused by the parser, so the set cannot drift from what the runtime does.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMAND_LINE_OPTIONS, parseCommandLine, REFUSED_OPTIONS } from '@nspawn/settings';
import { HELP } from '../src/help.js';
import { bashCompletion, zshCompletion } from '../scripts/completions.mjs';
import { nspawnOptionsMarkdown } from '../scripts/man.mjs';

const words = (text: string) => new Set(text.match(/(?<![\w-])--?[A-Za-z][\w-]*/g) ?? []);

/** A value the option's parser accepts, for checking that the parser refuses it afterwards. */
const SAMPLE: Record<string, string> = {
  image: '/x.raw',
  volatile: 'yes',
  'pivot-root': '/sysroot',
  'bind-user': 'someone',
  'oci-bundle': '/bundle',
  'set-credential': 'a:b',
  'load-credential': 'a:/b',
  slice: 'x.slice',
  property: 'CPUWeight=10',
};

describe('what this build refuses is not advertised', () => {
  it('the refused set comes from the parser table, and the parser really refuses each of them', () => {
    expect(REFUSED_OPTIONS.length).toBeGreaterThan(0);
    for (const name of REFUSED_OPTIONS) {
      const def = COMMAND_LINE_OPTIONS.find((o) => (o.long.length > 1 ? `--${o.long}` : `-${o.long}`) === name || `-${o.short}` === name);
      expect(def, name).toBeDefined();
      expect(def!.refused, name).toBe(true);
      const arg = def!.arg === 'required' ? [`--${def!.long}=${SAMPLE[def!.long] ?? 'x'}`] : [`--${def!.long}`];
      const cl = parseCommandLine(def!.long.length > 1 ? arg : [`-${def!.long}`, ...(def!.arg === 'required' ? ['x'] : [])]);
      expect(cl.unsupported.length, `${name} parsed but not refused`).toBeGreaterThan(0);
    }
    // an option that works is not in the set (the test can tell the two apart)
    expect(REFUSED_OPTIONS).not.toContain('--directory');
    expect(parseCommandLine(['--directory=/x']).unsupported).toEqual([]);
  });

  it('nspawn --help lists none of them', () => {
    const listed = words(HELP);
    for (const name of REFUSED_OPTIONS) expect(listed.has(name), `${name} in --help`).toBe(false);
    expect(listed.has('--directory')).toBe(true);
  });

  it('the completions (bash and zsh) offer none of them', () => {
    for (const [shell, text] of [['bash', bashCompletion()], ['zsh', zshCompletion()]] as const) {
      // bash: the option words; zsh: the _arguments specs ('--long=[...' and '-x[...'), not _arguments' own flags
      const offered = shell === 'bash' ? words(text) : new Set([...text.matchAll(/^\s*'?(--?[\w-]+)=?-?\[/gm)].map((m) => m[1]!));
      for (const name of REFUSED_OPTIONS) expect(offered.has(name), `${name} in the ${shell} completion`).toBe(false);
      expect(offered.has('--directory'), shell).toBe(true);
    }
  });

  it('nspawn(1) names them only under "Refused by this build"', async () => {
    const md = await nspawnOptionsMarkdown();
    const at = md.indexOf('## Refused by this build');
    expect(at).toBeGreaterThan(0);
    const before = words(md.slice(0, at));
    const after = words(md.slice(at));
    for (const name of REFUSED_OPTIONS) {
      expect(before.has(name), `${name} advertised in nspawn(1)`).toBe(false);
      expect(after.has(name), `${name} not listed as refused in nspawn(1)`).toBe(true);
    }
    // the static part of the page advertises none either
    const page = words(readFileSync(new URL('../man/nspawn.1.md', import.meta.url), 'utf8'));
    for (const name of REFUSED_OPTIONS) expect(page.has(name), `${name} in man/nspawn.1.md`).toBe(false);
  });

  it('nspawnctl(1) says what `nspawnctl start` runs (the daemon\'s argv), and nothing it does not', () => {
    const page = readFileSync(new URL('../man/nspawnctl.1.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
    const daemon = readFileSync(new URL('../../daemon/src/supervision.ts', import.meta.url), 'utf8');
    // the boot argv the daemon starts an image with (BOOT_ARGV, then -D DIR -M NAME)
    const m = /export const BOOT_ARGV: readonly string\[\] = \[([^\]]*)\]/.exec(daemon);
    expect(m, 'BOOT_ARGV in apps/daemon/src/supervision.ts').not.toBeNull();
    const flags = m![1]!.split(',').map((w) => w.trim().replace(/^'|'$/g, '')).filter((w) => w !== '');
    // systemd-nspawn@.service's flags, every one of them (nspawnd adds --console=read-only)
    for (const f of ['--quiet', '--keep-unit', '--boot', '--link-journal=try-guest', '--network-veth', '-U', '--settings=override'])
      expect(flags).toContain(f);
    // -D for a directory, -i for NAME.raw (the flag chosen by the store's resolver)
    expect(daemon).toContain("[...BOOT_ARGV, flag, dir, `--machine=${name}`]");
    expect(daemon).toContain("flag: img.type === 'raw' ? '-i' : '-D'");
    const argv = [...flags, '-D', 'DIR', '--machine=NAME'];
    expect(page).toContain(`\`nspawn ${argv.join(' ')}\``);
    expect(page).toContain('`-i` *NAME*`.raw` instead of `-D DIR`');
  });
});
