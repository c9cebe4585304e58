import { describe, expect, it } from 'vitest';
import { LONG_LINE_MAX, splitPhysicalLines } from './conf-parser.js';
import { formatDiagnostic } from './model.js';
import { parseNspawnFile } from './nspawn-file.js';

const P = '/run/systemd/nspawn/m.nspawn';
const parse = (text: string | Uint8Array) => parseNspawnFile(text, { path: P, cwd: '/' });
const lines = (text: string | Uint8Array) => parse(text).diagnostics.map((d) => `${d.line}: ${d.message}`);

describe('physical lines (read_line)', () => {
  it('ends lines at \\n, \\r, \\r\\n, \\n\\r and \\0', () => {
    expect(splitPhysicalLines('a\nb\r\nc\rd\n\re\0f').lines).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(splitPhysicalLines('a\n\nb').lines).toEqual(['a', '', 'b']);
    expect(splitPhysicalLines('a\r\n\r\nb\n').lines).toEqual(['a', '', 'b']);
    expect(splitPhysicalLines('a\n\r\nb').lines).toEqual(['a', '', 'b']);
    expect(splitPhysicalLines('a\0\nb').lines).toEqual(['a', '', 'b']);
    expect(splitPhysicalLines('').lines).toEqual([]);
    expect(splitPhysicalLines('\n').lines).toEqual(['']);
  });

  it('counts lines the same way for the line numbers of diagnostics', () => {
    expect(lines('[Exec]\r\nBoot=x\r\n\r\nFoo=1\r\n')).toEqual([
      '2: Failed to parse Boot= parameter, ignoring: Invalid argument',
      "4: Unknown key 'Foo' in section [Exec], ignoring.",
    ]);
  });
});

describe('unit file syntax', () => {
  it('skips comments and blank lines', () => {
    const r = parse('# c\n  ; c\n\n   \n[Exec]\n\t# Hostname=bad_\nHostname=ok\nEnvironment=A=#1 ;x\n');
    expect(r.diagnostics).toEqual([]);
    expect(r.settings).toEqual({ hostname: 'ok', environment: ['A=#1', ';x'] });
  });

  it('strips whitespace around keys and values', () => {
    expect(parse('[Exec]\n  Hostname \t=\t  abc  \n').settings).toEqual({ hostname: 'abc' });
  });

  it('joins continuation lines, with the backslash as a space, reported at the last line', () => {
    const r = parse('[Exec]\nEnvironment=A=1 \\\n  B=2 \\\n  C=3\nBoot=\\\nmaybe\n');
    expect(r.settings.environment).toEqual(['A=1', 'B=2', 'C=3']);
    expect(lines('[Exec]\nBoot=\\\nmaybe\n')).toEqual(['3: Failed to parse Boot= parameter, ignoring: Invalid argument']);
  });

  it('skips comment lines inside a continuation and ends it at an empty line', () => {
    expect(parse('[Exec]\nEnvironment=A=1 \\\n# B=2\n C=3\n').settings.environment).toEqual(['A=1', 'C=3']);
    expect(parse('[Exec]\nEnvironment=A=1 \\\n\nC=3\n').diagnostics.map((d) => d.line)).toEqual([4]);
  });

  it('does not continue after an escaped backslash', () => {
    expect(parse('[Exec]\nEnvironment=A=1\\\\\nHostname=h\n').settings).toEqual({ environment: ['A=1\\\\'], hostname: 'h' });
  });

  it('parses a continuation left open at the end of the file under the next line number', () => {
    expect(lines('[Exec]\nEnvironment="A \\')).toEqual(['3: Invalid syntax (unbalanced quotes), ignoring.']);
    expect(parse('[Exec]\nHostname=a\\\n').settings).toEqual({ hostname: 'a' });
  });

  it('drops a byte order mark', () => {
    expect(parse('\uFEFF[Exec]\nHostname=a\n').settings).toEqual({ hostname: 'a' });
    expect(parse(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('[Exec]\nHostname=a\n')])).settings).toEqual({ hostname: 'a' });
  });

  it('treats section names and keys case-sensitively', () => {
    expect(lines('[exec]\nHostname=a\n[Exec]\nhostname=a\n')).toEqual([
      "1: Unknown section 'exec'. Ignoring.",
      "4: Unknown key 'hostname' in section [Exec], ignoring.",
    ]);
  });

  it('warns about unknown keys and sections but not X- extensions, nor keys in unknown sections', () => {
    expect(lines('[Exec]\nX-Mine=1\nNope=1\n[X-Ext]\nA=1\n[Other]\nB=1\n[Files]\nHostname=a\n')).toEqual([
      "3: Unknown key 'Nope' in section [Exec], ignoring.",
      "6: Unknown section 'Other'. Ignoring.",
      "9: Unknown key 'Hostname' in section [Files], ignoring.",
    ]);
  });

  it('reports assignments outside sections and lines without a key or =', () => {
    expect(lines('Hostname=a\n[Exec]\nHostname\n=a\n[]\nx=1\n')).toEqual([
      '1: Assignment outside of section. Ignoring.',
      "3: Missing '=', ignoring line.",
      "4: Missing key name before '=', ignoring line.",
      "5: Unknown section ''. Ignoring.",
    ]);
  });

  it('formats structural diagnostics exactly like systemd', () => {
    const d = parse('[Exec]\nNope=1\n').diagnostics[0]!;
    expect(formatDiagnostic(d)).toBe(`${P}:2: Unknown key 'Nope' in section [Exec], ignoring.`);
  });
});

describe('files systemd refuses', () => {
  const refused = (text: string | Uint8Array, line: number, message: string) => {
    const r = parse(text);
    expect(r.fatal).toBe(true);
    expect(r.settings).toEqual({});
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ line });
    expect(errors[0]!.message).toContain(message);
  };

  it('refuses bad section headers and stops there', () => {
    refused('[Exec]\nHostname=a\n[Files\nBoot=bad\n', 3, "Invalid section header '[Files'");
    refused('[Exec] # comment\n', 1, 'Invalid section header');
    refused('[Ex"ec]\n', 1, "Bad characters in section header '[Ex\"ec]'");
    expect(parse('[Exec]\nBoot=x\n[Bad\nBoot=y\n').diagnostics.map((d) => d.line)).toEqual([2, 3]);
  });

  it('refuses text that is not UTF-8 clean', () => {
    refused(new Uint8Array([...new TextEncoder().encode('[Exec]\nHostname=a'), 0xff, 0x0a]), 2, 'not UTF-8 clean');
    refused('[Exec]\nEnvironment=A=\uFFFE\n', 2, 'not UTF-8 clean');
    refused('[Exec]\nEnvironment=A=\uD800\n', 2, 'not UTF-8 clean');
    // but not in comments
    expect(parse(new Uint8Array([0x23, 0xff, 0x0a])).fatal).toBe(false);
    expect(parse('[Exec]\nEnvironment=A=\u00e9\u65e5\u{1F600}\n').settings.environment).toEqual(['A=\u00e9\u65e5\u{1F600}']);
  });

  it('refuses over-long lines', () => {
    refused(`[Exec]\nEnvironment=${'x'.repeat(LONG_LINE_MAX)}\n`, 2, 'Line too long');
    refused(`[Exec]\nEnvironment=${'x'.repeat(LONG_LINE_MAX / 2)}\\\n${'y'.repeat(LONG_LINE_MAX / 2)}\n`, 3, 'Continuation line too long');
    expect(parse(`[Exec]\nEnvironment=${'x'.repeat(LONG_LINE_MAX - 20)}\n`).fatal).toBe(false);
  });
});
