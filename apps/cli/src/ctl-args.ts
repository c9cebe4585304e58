/**
 * nspawnctl's command line: machinectl 252's getopt_long() (src/machine/machinectl.c, parse_argv()), over our
 * options in machinectl's table order. Options may come anywhere (glibc's permutation; $POSIXLY_CORRECT stops
 * at the verb), except after `shell`'s machine name: from there on everything is the command. machinectl gets that
 * from a return-in-order pass that switches to permutation once the verb is not `shell`; the same here, without
 * the slip of glibc's re-initialisation that makes `machinectl -ao json list` fail.
 */
import { defaultOrdering, getopt, getoptTable, type ArgKind, type GetoptOption, signalFromString } from '@nspawn/settings';
import { CtlError, type CtlOptions } from './ctl-common.js';

interface CtlOption extends GetoptOption {
  readonly long: string;
  apply(opts: CtlOptions, v: string): void;
}

const opt = (long: string, short: string | undefined, arg: ArgKind, apply: CtlOption['apply']): CtlOption =>
  short ? { long, short, arg, apply } : { long, arg, apply };

/** machinectl's options[] order, with nspawnctl's own (--follow, --root) after them; --no-pager and --no-ask-password do nothing here */
export const CTL_OPTIONS: readonly CtlOption[] = [
  opt('help', 'h', 'none', () => {}),
  opt('version', undefined, 'none', () => {}),
  opt('all', 'a', 'none', (o) => void (o.all = true)),
  opt('no-pager', undefined, 'none', () => {}),
  opt('no-legend', undefined, 'none', (o) => void (o.legend = false)),
  opt('kill-whom', undefined, 'required', (o, v) => {
    if (v !== 'all' && v !== 'leader') throw new CtlError(`Invalid --kill-whom= value '${v}': 'all' or 'leader'.`);
    o.killWhom = v;
  }),
  opt('signal', 's', 'required', (o, v) => {
    const r = signalFromString(v);
    if (!r.ok) throw new CtlError(`Failed to parse signal string ${v}.`);
    o.signal = r.value;
  }),
  opt('read-only', undefined, 'none', (o) => void (o.readOnly = true)),
  opt('mkdir', undefined, 'none', (o) => void (o.mkdir = true)),
  opt('quiet', 'q', 'none', (o) => void (o.quiet = true)),
  opt('lines', 'n', 'required', (o, v) => {
    o.lines = Number(v);
    if (!Number.isInteger(o.lines) || o.lines < 0) throw new CtlError('--lines= needs a non-negative integer.');
  }),
  opt('output', 'o', 'required', (o, v) => {
    if (v !== 'json' && v !== 'json-pretty' && v !== 'short' && v !== 'table') throw new CtlError(`Unknown output '${v}'.`);
    o.output = v;
  }),
  opt('no-ask-password', undefined, 'none', () => {}),
  opt('verify', undefined, 'required', (o, v) => {
    if (v !== 'yes' && v !== 'no' && v !== 'checksum' && v !== 'signature') throw new CtlError(`Failed to parse --verify= setting: ${v}`);
    o.verify = v;
  }),
  opt('force', undefined, 'none', (o) => void (o.force = true)),
  opt('format', undefined, 'required', (o, v) => {
    if (v !== 'uncompressed' && v !== 'xz' && v !== 'gzip' && v !== 'bzip2' && v !== 'zstd') throw new CtlError(`Unknown format: ${v}`);
    o.format = v;
  }),
  opt('uid', undefined, 'required', (o, v) => void (o.uid = v)),
  opt('setenv', 'E', 'required', (o, v) => void o.setenv.push(v)),
  opt('follow', 'f', 'none', (o) => void (o.follow = true)),
  opt('root', undefined, 'required', (o, v) => {
    if (!v) throw new CtlError('--root= needs a directory.');
    o.root = v;
  }),
];

const TABLE = getoptTable(CTL_OPTIONS);

export interface CtlArgs {
  verb: string | undefined;
  args: string[];
  opts: CtlOptions;
  help: boolean;
  version: boolean;
}

/**
 * Parses argv (without the program name). Throws OptionError (from @nspawn/settings: getopt's own messages) or
 * CtlError (a bad value) at the first problem; `--help` and `--version` end the parsing, as in machinectl.
 */
export function parseCtlArgs(argv: string[], environ: Readonly<Record<string, string | undefined>> = process.env): CtlArgs {
  const opts: CtlOptions = { output: 'table', legend: true, readOnly: false, mkdir: false, follow: false, lines: 10, verify: 'yes', force: false, all: false, setenv: [], quiet: false };
  const done = (pos: string[], help = false, version = false): CtlArgs => ({ verb: pos[0], args: pos.slice(1), opts, help, version });
  const pos: string[] = [];
  // operands in order until the first one; then permutation, unless it is "shell": its machine name ends the options
  const it = getopt(argv, TABLE, 'return-in-order');
  for (;;) {
    const n = it.next();
    if (n.done) return done([...pos, ...n.value]);
    const item = n.value;
    if (item.kind === 'operand') {
      // shell's machine name: the rest of the command line, unparsed, is its command
      if (pos[0] === 'shell') return done([...pos, ...argv.slice(item.end - 1)]);
      pos.push(item.value);
      if (item.value !== 'shell') return permuted(argv.slice(item.end), pos, opts, environ, done);
      continue;
    }
    const o = item.option as CtlOption;
    if (o.long === 'help') return done(pos, true);
    if (o.long === 'version') return done(pos, false, true);
    o.apply(opts, item.value ?? '');
  }
}

/** After a verb other than shell: the options anywhere (glibc's permutation, or not with $POSIXLY_CORRECT). */
function permuted(
  rest: string[],
  pos: string[],
  opts: CtlOptions,
  environ: Readonly<Record<string, string | undefined>>,
  done: (pos: string[], help?: boolean, version?: boolean) => CtlArgs,
): CtlArgs {
  const it = getopt(rest, TABLE, defaultOrdering(environ));
  for (;;) {
    const n = it.next();
    if (n.done) return done([...pos, ...n.value]);
    if (n.value.kind !== 'option') continue;
    const o = n.value.option as CtlOption;
    if (o.long === 'help') return done(pos, true);
    if (o.long === 'version') return done(pos, false, true);
    o.apply(opts, n.value.value ?? '');
  }
}
