/**
 * systemd's unit-file syntax (src/shared/conf-parser.c config_parse() and src/basic/fileio.c read_line()):
 * physical lines end at "\n", "\r", "\0" or a combination of them; lines whose first non-blank character is '#'
 * or ';' are comments (even inside a continuation); a line ending in an unescaped backslash continues on the next
 * line, the backslash becoming a space, and is reported under the number of its last line; a UTF-8 byte order
 * mark is dropped; keys and section names are case-sensitive; values are stripped of surrounding whitespace.
 * Bad section headers, text that is not UTF-8 clean and over-long lines make systemd refuse the whole file.
 */
import { cescape, strstrip, stringIsSafe, utf8IsValid, utf8Length, WHITESPACE } from './c-util.js';

/** LONG_LINE_MAX: a physical or continued line of this many bytes or more is refused. */
export const LONG_LINE_MAX = 1024 * 1024;

/** What the parser reports; `fatal` ones make systemd reject the whole file. */
export interface SyntaxEvent {
  line: number;
  message: string;
  fatal: boolean;
}

export interface ConfParserCallbacks {
  /** the section names that exist */
  sections: readonly string[];
  /** true if section.key is a known key (the assignment is then passed to assign) */
  known(section: string, key: string): boolean;
  /** a known key's assignment; returns false to stop parsing (a fatal error it reported itself) */
  assign(section: string, key: string, value: string, line: number): boolean;
  report(event: SyntaxEvent): void;
}

const EOL_TEN = 1;
const EOL_THIRTEEN = 2;
const EOL_ZERO = 4;
const eolOf = (c: string): number => (c === '\n' ? EOL_TEN : c === '\r' ? EOL_THIRTEEN : c === '\0' ? EOL_ZERO : 0);

/**
 * read_line() applied until EOF: the physical lines. `tooLong` is the 1-based number of the first line systemd
 * refuses as too long (parsing stops there), if any.
 */
export function splitPhysicalLines(text: string): { lines: string[]; tooLong?: number } {
  const lines: string[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const start = i;
    while (i < n && eolOf(text[i]!) === 0) i++;
    const content = text.slice(start, i);
    if (content.length * 3 >= LONG_LINE_MAX && utf8Length(content) >= LONG_LINE_MAX) return { lines, tooLong: lines.length + 1 };
    let seen = 0;
    while (i < n) {
      const e = eolOf(text[i]!);
      if (e === 0 || seen & EOL_ZERO || seen & e) break;
      seen |= e;
      i++;
    }
    lines.push(content);
  }
  return { lines };
}

/** Whether the line ends in a backslash that is not itself escaped (continuation). */
function endsEscaped(p: string): boolean {
  let escaped = false;
  for (let k = 0; k < p.length; k++) {
    if (escaped) escaped = false;
    else if (p[k] === '\\') escaped = true;
  }
  return escaped;
}

const isComment = (raw: string): boolean => {
  let k = 0;
  while (k < raw.length && WHITESPACE.includes(raw[k]!)) k++;
  return k < raw.length && (raw[k] === '#' || raw[k] === ';');
};

interface ParseState {
  section: string | null;
  sectionIgnored: boolean;
}

/** parse_line(): one logical line. Returns false when parsing must stop. */
function parseLine(cb: ConfParserCallbacks, st: ParseState, line: number, raw: string): boolean {
  const l = strstrip(raw);
  if (l === '') return true;
  const fatal = (message: string): boolean => {
    cb.report({ line, message, fatal: true });
    return false;
  };
  if (!utf8IsValid(l)) return fatal(`String is not UTF-8 clean, ignoring assignment: ${cescape(l)}`);
  if (l[0] === '[') {
    if (l[l.length - 1] !== ']') return fatal(`Invalid section header '${l}'`);
    const name = l.slice(1, -1);
    if (!stringIsSafe(name)) return fatal(`Bad characters in section header '${l}'`);
    if (!cb.sections.includes(name)) {
      if (!name.startsWith('X-')) cb.report({ line, message: `Unknown section '${name}'. Ignoring.`, fatal: false });
      st.section = null;
      st.sectionIgnored = true;
    } else {
      st.section = name;
      st.sectionIgnored = false;
    }
    return true;
  }
  if (st.section === null) {
    if (!st.sectionIgnored) cb.report({ line, message: 'Assignment outside of section. Ignoring.', fatal: false });
    return true;
  }
  const e = l.indexOf('=');
  if (e < 0) {
    cb.report({ line, message: "Missing '=', ignoring line.", fatal: false });
    return true;
  }
  if (e === 0) {
    cb.report({ line, message: "Missing key name before '=', ignoring line.", fatal: false });
    return true;
  }
  const key = strstrip(l.slice(0, e));
  const value = strstrip(l.slice(e + 1));
  if (cb.known(st.section, key)) return cb.assign(st.section, key, value, line);
  if (!key.startsWith('X-'))
    cb.report({ line, message: `Unknown key '${key}' in section [${st.section}], ignoring.`, fatal: false });
  return true;
}

/** config_parse(): runs the callbacks over the file. Returns false if systemd would refuse the file. */
export function parseConfText(text: string, cb: ConfParserCallbacks): boolean {
  const { lines, tooLong } = splitPhysicalLines(text);
  const st: ParseState = { section: null, sectionIgnored: false };
  let continuation: string | null = null;
  let bomSeen = false;
  let line = 0;
  for (const buf of lines) {
    line++;
    if (isComment(buf)) continue;
    let l = buf;
    if (!bomSeen && l.startsWith('\uFEFF')) {
      l = l.slice(1);
      bomSeen = true;
    }
    let p: string;
    if (continuation !== null) {
      if (utf8Length(continuation) + utf8Length(l) > LONG_LINE_MAX) {
        cb.report({ line, message: 'Continuation line too long', fatal: true });
        return false;
      }
      p = continuation + l;
    } else p = l;
    if (endsEscaped(p)) {
      continuation = p.slice(0, -1) + ' ';
      continue;
    }
    if (!parseLine(cb, st, line, p)) return false;
    continuation = null;
  }
  if (tooLong !== undefined) {
    cb.report({ line: tooLong, message: 'Line too long', fatal: true });
    return false;
  }
  if (continuation !== null) return parseLine(cb, st, line + 1, continuation);
  return true;
}
