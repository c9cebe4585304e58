#!/usr/bin/env node
// Man pages from man/*.md into dist/man/ (roff), for npm's "man" field and `man -l`. The markdown is a
// small dialect, enough for man pages and no more:
//   # HEADING            .SH            ## Sub heading      .SS
//   `term`               .TP term, when the next line starts with ": " (the description; more lines
//   : description        indented by two spaces continue it)
//   - item               a bullet       ```                 a literal block
//   `code` **bold**      bold           *text*              italic
// man/NAME.SECTION.md becomes dist/man/NAME.SECTION. In nspawn.1.md, <!-- OPTIONS --> is replaced by every
// option of --help in its group (src/help.ts), then the other options the parser accepts.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));

/** Escapes text for roff; `inline` formatting becomes fonts. */
export function inline(text) {
  const esc = (s) => s.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  let out = '';
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    out += esc(text.slice(last, m.index));
    if (m[1] !== undefined || m[2] !== undefined) out += `\\fB${esc(m[1] ?? m[2])}\\fR`;
    else out += `\\fI${esc(m[3])}\\fR`;
    last = m.index + m[0].length;
  }
  return out + esc(text.slice(last));
}
/** A roff text line: never starts with a control character. */
const line = (s) => (/^[.']/.test(s) ? `\\&${s}` : s);

/** Markdown (the dialect above) to roff. */
export function toRoff(md, { name, section, date = '', source = `nspawn ${pkg.version}`, manual = 'nspawn manual' }) {
  const out = [`.TH ${name.toUpperCase()} ${section} "${date}" "${source}" "${manual}"`];
  const lines = md.split('\n');
  let para = [];
  const flush = () => {
    if (para.length) out.push('.PP', ...para.map((p) => line(inline(p))));
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (/^<!--.*-->$/.test(l.trim())) continue;
    if (l.startsWith('```')) {
      flush();
      out.push('.PP', '.RS 4', '.nf');
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) out.push(line(lines[i].replace(/\\/g, '\\e').replace(/-/g, '\\-')));
      out.push('.fi', '.RE');
      continue;
    }
    let m;
    if ((m = /^# (.*)$/.exec(l))) {
      flush();
      out.push(`.SH "${m[1].toUpperCase()}"`);
    } else if ((m = /^## (.*)$/.exec(l))) {
      flush();
      out.push(`.SS "${m[1]}"`);
    } else if (lines[i + 1]?.startsWith(': ') && l.trim() !== '') {
      flush();
      const desc = [lines[++i].slice(2)];
      while (lines[i + 1]?.startsWith('  ') && lines[i + 1].trim() !== '') desc.push(lines[++i].trim());
      out.push('.TP', line(inline(l.trim())), ...desc.map((d) => line(inline(d))));
    } else if ((m = /^- (.*)$/.exec(l))) {
      flush();
      const item = [m[1]];
      while (lines[i + 1]?.startsWith('  ') && lines[i + 1].trim() !== '') item.push(lines[++i].trim());
      out.push('.IP \\(bu 2', ...item.map((d) => line(inline(d))));
    } else if (l.trim() === '') {
      flush();
    } else {
      para.push(l.trim());
    }
  }
  flush();
  return `${out.join('\n')}\n`;
}

/** what nspawn(1) says of an option --help does not list (default: "See systemd-nspawn(1).") */
const UNLISTED_NOTES = {
  'share-system':
    "Deprecated: the host's IPC, PID and UTS namespaces are shared, as with `SYSTEMD_NSPAWN_SHARE_SYSTEM=1` (see ENVIRONMENT), after systemd-nspawn 252's warning \"Please do not use --share-system anymore, use $SYSTEMD_NSPAWN_SHARE_* instead.\" Unlike the variables it does not keep an `--oci-bundle=`'s `linux.namespaces` out.",
};

/** nspawn(1)'s OPTIONS: --help's groups as definition lists, then what the parser accepts beyond them. */
export async function nspawnOptionsMarkdown() {
  const { HELP } = await import(pathToFileURL(join(here, 'src/help.ts')).href);
  const require = createRequire(join(here, 'package.json'));
  const settings = await import(pathToFileURL(require.resolve('@nspawn/settings')).href);
  const md = [];
  const seen = new Set();
  let entry;
  const end = () => {
    if (entry) md.push(entry.term, `: ${entry.desc.join(' ')}`, '');
    entry = undefined;
  };
  for (const l of HELP.split('\n').slice(1)) {
    const opt = /^ {2}(?:(-\w)(?: |$)| {3})(--[\w-]+(?:\[?=\S*)?)?\s*(.*)$/.exec(l);
    if (/^[A-Z][\w /]*:$/.test(l)) {
      end();
      md.push(`## ${l.slice(0, -1)}`, '');
    } else if (opt && (opt[1] || opt[2])) {
      end();
      const names = [opt[1], opt[2]].filter(Boolean);
      for (const n of names) seen.add(n.replace(/^--?([\w-]+).*/, '$1'));
      entry = { term: names.map((n) => `\`${n}\``).join(', '), desc: opt[3] ? [opt[3]] : [] };
    } else if (entry && /^ {20,}\S/.test(l)) {
      entry.desc.push(l.trim());
    } else end();
  }
  end();
  const term = (o) => `\`${o.long.length > 1 ? `--${o.long}${o.arg === 'required' ? '=VALUE' : o.arg === 'optional' ? '[=VALUE]' : ''}` : `-${o.short}`}\`${o.short && o.long.length > 1 ? `, \`-${o.short}\`` : ''}`;
  const others = settings.COMMAND_LINE_OPTIONS.filter((o) => !seen.has(o.long) && !(o.short && seen.has(o.short)));
  const accepted = others.filter((o) => !o.refused);
  const refused = others.filter((o) => o.refused);
  if (accepted.length) {
    md.push('## Accepted for compatibility', '', 'systemd-nspawn options that neither its --help nor nspawn\'s lists, accepted as systemd-nspawn 252 accepts them:', '');
    for (const o of accepted) md.push(term(o), `: ${UNLISTED_NOTES[o.long] ?? 'See systemd-nspawn(1).'}`, '');
  }
  if (refused.length) {
    md.push(
      '## Refused by this build',
      '',
      'systemd-nspawn options that nspawn parses and checks like systemd-nspawn (a bad value gets systemd-nspawn\'s error), and then refuses with "*OPTION* is not supported yet by this nspawn build." (exit status 1, before anything is set up). The `.nspawn` keys of the same features are refused the same way.',
      '',
    );
    for (const o of refused) md.push(term(o), ': Refused: not supported yet.', '');
  }
  return md.join('\n');
}

/** Every man page: [{ file: 'nspawn.1', roff }]. */
export async function manPages() {
  const dir = join(here, 'man');
  const pages = [];
  for (const f of readdirSync(dir).filter((f) => /^[\w.-]+\.\d\.md$/.test(f)).sort()) {
    const [, name, section] = /^(.+)\.(\d)\.md$/.exec(f);
    let md = readFileSync(join(dir, f), 'utf8');
    if (md.includes('<!-- OPTIONS -->')) md = md.replace('<!-- OPTIONS -->', await nspawnOptionsMarkdown());
    pages.push({ file: `${name}.${section}`, roff: toRoff(md, { name, section }) });
  }
  return pages;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = join(here, 'dist/man');
  mkdirSync(out, { recursive: true });
  for (const p of await manPages()) writeFileSync(join(out, p.file), p.roff);
}
