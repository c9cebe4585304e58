/**
 * getopt_long() as glibc (2.36) implements it, for systemd-nspawn's and machinectl's command lines: clustered
 * short options (`-qa`), attached and separate arguments (`-ojson`, `-o json`, `--output=json`, `--output json`),
 * `--` ends the options, unique prefixes of long options (`--no-pag` is `--no-pager`), and glibc's messages,
 * without the "PROGRAM: " glibc puts in front (the caller adds its name).
 *
 * Written here rather than taken from a library: node:util's parseArgs() and the getopt packages on npm have
 * neither glibc's prefix matching with its ambiguity rule nor its three orderings and messages, which scripts
 * written for systemd-nspawn and machinectl rely on.
 */
import { SettingsError } from './model.js';

export type ArgKind = 'none' | 'required' | 'optional';

/** One option: a long name, a short letter, or both (as a `struct option` with its letter in the optstring). */
export interface GetoptOption {
  readonly long?: string;
  readonly short?: string;
  readonly arg: ArgKind;
  /** matched by its full name only: an option beyond systemd-nspawn 252 stays out of 252's abbreviations */
  readonly exact?: boolean;
}

/**
 * How options and other arguments may mix (glibc's orderings):
 * - `require-order` ("+" in front of the optstring, or $POSIXLY_CORRECT): options end at the first non-option;
 * - `permute` (getopt_long's default): options anywhere, the other arguments are returned in their order;
 * - `return-in-order` ("-"): the other arguments are yielded in place, between the options.
 */
export type GetoptOrdering = 'require-order' | 'permute' | 'return-in-order';

/**
 * What the parser yields: an option with its argument (undefined when it has none), or (return-in-order) an
 * operand; `end` is the index in argv after the element(s) it came from.
 */
export type GetoptItem<O extends GetoptOption> =
  | { readonly kind: 'option'; readonly option: O; readonly value: string | undefined; readonly end: number }
  | { readonly kind: 'operand'; readonly value: string; readonly end: number };

/** A command-line syntax error as getopt_long() reports it ("unrecognized option '--x'", ...). */
export class OptionError extends SettingsError {
  override name = 'OptionError';
}

/** The options looked up by long name and by letter (build once per table). */
export interface GetoptTable<O extends GetoptOption> {
  readonly options: readonly O[];
  readonly byLong: ReadonlyMap<string, O>;
  readonly byShort: ReadonlyMap<string, O>;
}

export function getoptTable<O extends GetoptOption>(options: readonly O[]): GetoptTable<O> {
  const byLong = new Map<string, O>();
  const byShort = new Map<string, O>();
  for (const o of options) {
    if (o.long !== undefined && !byLong.has(o.long)) byLong.set(o.long, o);
    if (o.short !== undefined && !byShort.has(o.short)) byShort.set(o.short, o);
  }
  return { options, byLong, byShort };
}

/** process_long_option()'s lookup: the exact name, else the one option the name is a prefix of. */
function findLong<O extends GetoptOption>(table: GetoptTable<O>, name: string, text: string): O {
  const exact = table.byLong.get(name);
  if (exact) return exact;
  let found: O | undefined;
  let ambiguous: O[] | undefined;
  for (const o of table.options) {
    if (o.long === undefined || o.exact || !o.long.startsWith(name)) continue;
    if (found === undefined) found = o;
    // glibc: another option with the same argument kind and the same meaning is not a second possibility
    else if (o !== found) (ambiguous ??= [found]).push(o);
  }
  if (ambiguous)
    throw new OptionError(`option '--${text}' is ambiguous; possibilities:${ambiguous.map((o) => ` '--${o.long}'`).join('')}`, `--${text}`);
  if (!found) throw new OptionError(`unrecognized option '--${text}'`, `--${text}`);
  return found;
}

/**
 * Parses argv (without the program name) as getopt_long() does, yielding options (and, in return-in-order, the
 * other arguments) in command-line order; throws OptionError at the first syntax error, as systemd's tools stop
 * there. Returns the arguments left: after the options (require-order), the non-options in their order (permute),
 * or what follows `--` (return-in-order).
 */
export function* getopt<O extends GetoptOption>(
  argv: readonly string[],
  table: GetoptTable<O>,
  ordering: GetoptOrdering,
): Generator<GetoptItem<O>, string[], undefined> {
  const operands: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    if (a === '--') return [...operands, ...argv.slice(i + 1)];
    if (a[0] !== '-' || a.length === 1) {
      if (ordering === 'require-order') return argv.slice(i);
      if (ordering === 'permute') operands.push(a);
      else yield { kind: 'operand', value: a, end: i + 1 };
      i++;
      continue;
    }
    i++;
    if (a[1] === '-') {
      const text = a.slice(2);
      const eq = text.indexOf('=');
      const name = eq < 0 ? text : text.slice(0, eq);
      const o = findLong(table, name, text);
      let value: string | undefined;
      if (eq >= 0) {
        if (o.arg === 'none') throw new OptionError(`option '--${o.long}' doesn't allow an argument`, `--${o.long}`, text.slice(eq + 1));
        value = text.slice(eq + 1);
      } else if (o.arg === 'required') {
        if (i >= argv.length) throw new OptionError(`option '--${o.long}' requires an argument`, `--${o.long}`);
        value = argv[i++]!;
      }
      yield { kind: 'option', option: o, value, end: i };
      continue;
    }
    // a cluster of short options; one that takes an argument takes the rest of the element, or the next one
    for (let k = 1; k < a.length; k++) {
      const c = a[k]!;
      const o = table.byShort.get(c);
      if (!o) throw new OptionError(`invalid option -- '${c}'`, `-${c}`);
      if (o.arg === 'none') {
        yield { kind: 'option', option: o, value: undefined, end: i };
        continue;
      }
      let value: string | undefined = a.slice(k + 1);
      if (value === '') {
        if (o.arg === 'optional') value = undefined;
        else if (i < argv.length) value = argv[i++]!;
        else throw new OptionError(`option requires an argument -- '${c}'`, `-${c}`);
      }
      yield { kind: 'option', option: o, value, end: i };
      break;
    }
  }
  return operands;
}

/** The ordering getopt_long() uses for an optstring without "+" or "-": permute, unless $POSIXLY_CORRECT is set. */
export function defaultOrdering(environ: Readonly<Record<string, string | undefined>>): GetoptOrdering {
  return environ.POSIXLY_CORRECT !== undefined ? 'require-order' : 'permute';
}
