import { describe, expect, it } from 'vitest';
import { parseBooleanC, safeAtoi, safeAtou16, safeAtou32, safeAtou64, strtoull, utf8IsValid, decodeUtf8 } from './c-util.js';
import {
  EXTRACT_DONT_COALESCE_SEPARATORS,
  EXTRACT_RETAIN_ESCAPE,
  EXTRACT_UNQUOTE,
  extractFirstWord,
  splitWords,
} from './extract-word.js';
import { capabilityFromName } from './capabilities.js';
import { ifnameValid, interfacePair } from './net-values.js';
import { checkAbsolutePath, pathSimplify } from './paths.js';
import { formatRlimitValue, rlimitParse } from './rlimits.js';
import { signalFromString } from './signals.js';
import { USEC_INFINITY, parseSize, parseTime } from './units.js';
import {
  parseBoolean,
  parseLinkJournal,
  parsePrivateUsers,
  parseResolvConfMode,
  parseTimezoneMode,
  parseUserNsOwnership,
} from './values.js';

const v = <T>(r: { ok: true; value: T } | { ok: false; errno: string }) => (r.ok ? r.value : r.errno);

describe('C number parsing', () => {
  it('follows strtoull() and safe_atou*()', () => {
    expect(strtoull('  -1', 10)).toEqual({ value: (1n << 64n) - 1n, end: 4, erange: false });
    expect(strtoull('0x', 0)).toMatchObject({ value: 0n, end: 1 });
    expect(strtoull('99999999999999999999', 10).erange).toBe(true);
    expect(v(safeAtou64('0x10'))).toBe(16n);
    expect(v(safeAtou64('010'))).toBe(8n);
    expect(v(safeAtou64('0o10'))).toBe(8n);
    expect(v(safeAtou64('0b101'))).toBe(5n);
    expect(v(safeAtou64(' 7'))).toBe(7n);
    expect(v(safeAtou64('-0'))).toBe(0n);
    expect(v(safeAtou64('-1'))).toBe('ERANGE');
    expect(v(safeAtou64('08'))).toBe('EINVAL');
    expect(v(safeAtou64(''))).toBe('EINVAL');
    expect(v(safeAtou64('1 '))).toBe('EINVAL');
    expect(v(safeAtou32('4294967296'))).toBe('ERANGE');
    expect(v(safeAtou16('65536'))).toBe('ERANGE');
    expect(v(safeAtoi('-2147483648'))).toBe(-2147483648);
    expect(v(safeAtoi('2147483648'))).toBe('ERANGE');
    expect(v(safeAtoi('+0x1f'))).toBe(31);
  });

  it('parses booleans ASCII case-insensitively only', () => {
    expect(v(parseBooleanC('YeS'))).toBe(true);
    expect(v(parseBooleanC('OFF'))).toBe(false);
    expect(v(parseBooleanC('\u212Aill'))).toBe('EINVAL');
    expect(v(parseBooleanC(''))).toBe('EINVAL');
  });

  it('checks UTF-8 like systemd', () => {
    expect(utf8IsValid('a\u00e9\u{1F600}')).toBe(true);
    expect(utf8IsValid('\uFDD0')).toBe(false);
    expect(utf8IsValid('\u{1FFFF}')).toBe(false);
    expect(decodeUtf8(new Uint8Array([0xc3, 0xa9, 0xc0, 0x80, 0xed, 0xa0, 0x80]))).toBe('\u00e9\uDCC0\uDC80\uDCED\uDCA0\uDC80');
  });
});

describe('extract_first_word()', () => {
  it('splits on whitespace, coalescing, with backslash escapes', () => {
    expect(splitWords('  a\\ b  c\\\\d "e"')).toEqual({ ok: true, words: ['a b', 'c\\d', '"e"'] });
    expect(splitWords('x\\')).toEqual({ ok: false, errno: 'EINVAL' });
  });

  it('unquotes and keeps backslashes with UNQUOTE|RETAIN_ESCAPE (Environment=, Parameters=)', () => {
    const f = EXTRACT_UNQUOTE | EXTRACT_RETAIN_ESCAPE;
    expect(splitWords(`a"b c"d 'e"f' \\x "g\\"`, undefined, f)).toEqual({ ok: true, words: ['ab cd', 'e"f', '\\x', 'g\\'] });
    expect(splitWords('"open', undefined, f)).toEqual({ ok: false, errno: 'EINVAL' });
    expect(splitWords('""', undefined, f)).toEqual({ ok: true, words: [''] });
  });

  it('keeps empty fields with DONT_COALESCE_SEPARATORS (Bind=, LimitX=)', () => {
    expect(extractFirstWord('a\\:b:c:d', ':', EXTRACT_DONT_COALESCE_SEPARATORS)).toEqual({ ok: true, word: 'a:b', rest: 'c:d' });
    expect(extractFirstWord('', ':', EXTRACT_DONT_COALESCE_SEPARATORS)).toEqual({ ok: true, word: '', rest: null });
    expect(extractFirstWord(':x', ':', EXTRACT_DONT_COALESCE_SEPARATORS)).toEqual({ ok: true, word: '', rest: 'x' });
    expect(extractFirstWord('a:', ':', EXTRACT_DONT_COALESCE_SEPARATORS)).toEqual({ ok: true, word: 'a', rest: '' });
    expect(extractFirstWord(null, ':', EXTRACT_DONT_COALESCE_SEPARATORS)).toEqual({ ok: true, word: null, rest: null });
  });
});

describe('time spans, sizes and resource limits', () => {
  it('parse_time()', () => {
    expect(v(parseTime('1h 30min', 1n))).toBe(5_400_000_000n);
    expect(v(parseTime('1.5s', 1n))).toBe(1_500_000n);
    expect(v(parseTime('.5s', 1n))).toBe(500_000n);
    expect(v(parseTime('5', 1_000_000n))).toBe(5_000_000n);
    expect(v(parseTime('2 3', 1_000_000n))).toBe(5_000_000n);
    expect(v(parseTime('1M', 1n))).toBe(2_629_800_000_000n);
    expect(v(parseTime('1m', 1n))).toBe(60_000_000n);
    expect(v(parseTime('1\u00b5s', 1n))).toBe(1n);
    expect(v(parseTime(' infinity ', 1n))).toBe(USEC_INFINITY);
    expect(v(parseTime('infinityx', 1n))).toBe('EINVAL');
    expect(v(parseTime('1.2.3', 1n))).toBe('EINVAL');
    expect(v(parseTime('3.', 1n))).toBe('EINVAL');
    expect(v(parseTime('-1', 1n))).toBe('ERANGE');
    expect(v(parseTime('', 1n))).toBe('EINVAL');
    expect(v(parseTime('1x', 1n))).toBe('EINVAL');
  });

  it('parse_size()', () => {
    expect(v(parseSize('1K'))).toBe(1024n);
    expect(v(parseSize('1.5M'))).toBe(1572864n);
    expect(v(parseSize('1G 512M'))).toBe(1610612736n);
    expect(v(parseSize('10B'))).toBe(10n);
    expect(v(parseSize('1M 1G'))).toBe('EINVAL');
    expect(v(parseSize('16E'))).toBe('ERANGE');
    expect(v(parseSize('-1'))).toBe('ERANGE');
    expect(v(parseSize('K'))).toBe('EINVAL');
  });

  it('rlimit_parse() and the matching formatter', () => {
    expect(v(rlimitParse('CPU', '1.5'))).toEqual({ soft: 2n, hard: 2n });
    expect(v(rlimitParse('RTTIME', '1s'))).toEqual({ soft: 1_000_000n, hard: 1_000_000n });
    expect(v(rlimitParse('NOFILE', 'infinity:infinity'))).toEqual({ soft: 'infinity', hard: 'infinity' });
    expect(v(rlimitParse('NOFILE', 'infinity:1'))).toBe('EILSEQ');
    expect(v(rlimitParse('NICE', 'infinity'))).toBe('EINVAL');
    for (const [name, val] of [
      ['CPU', 18446744073710n],
      ['CPU', 18446744073709n],
      ['RTTIME', (1n << 64n) - 2n],
      ['AS', (1n << 64n) - 2n],
    ] as const)
      expect(v(rlimitParse(name, formatRlimitValue(name, val)))).toEqual({ soft: val, hard: val });
  });
});

describe('names', () => {
  it('signals', () => {
    expect(v(signalFromString('SIGRTMIN'))).toBe(34);
    expect(v(signalFromString('RTMAX'))).toBe(64);
    expect(v(signalFromString('RTMIN+0x2'))).toBe(36);
    expect(v(signalFromString('SIG15'))).toBe('EINVAL');
    expect(v(signalFromString('RTMAX+1'))).toBe('EINVAL');
    expect(v(signalFromString('0'))).toBe('ERANGE');
  });

  it('capabilities need the CAP_ prefix, any case, or a number up to 62', () => {
    expect(capabilityFromName('cap_sys_admin')).toBe(21);
    expect(capabilityFromName('CAP_Sys_Admin')).toBe(21);
    expect(capabilityFromName('sys_admin')).toBe(-1);
    expect(capabilityFromName('0x3')).toBe(3);
    expect(capabilityFromName('63')).toBe(-1);
    expect(capabilityFromName('CAP_\u212AILL')).toBe(-1);
  });

  it('interface names', () => {
    for (const ok of ['eth0', 'a', 'x'.repeat(15), '-1', '0x0', 'a\\b"'] as const) expect(ifnameValid(ok), ok).toBe(true);
    for (const bad of ['', 'x'.repeat(16), '1', '0x1', '+1', 'a:b', 'a/b', 'a%d', 'a b', '.', '..', 'all', 'default', '\u00e9'])
      expect(ifnameValid(bad), bad).toBe(false);
    expect(interfacePair('MACVLAN', 'eth0')).toEqual(['eth0', 'mv-eth0']);
    expect(interfacePair('IPVLAN', 'eth0')).toEqual(['eth0', 'iv-eth0']);
    expect(interfacePair('Interface', 'eth0:c')).toEqual(['eth0', 'c']);
  });

  it('paths', () => {
    expect(pathSimplify('//a/./b//')).toBe('/a/b');
    expect(pathSimplify('/../../a')).toBe('/a');
    expect(pathSimplify('/')).toBe('/');
    expect(checkAbsolutePath('/a/..')).toEqual({ ok: false, why: 'Path is not normalized, ignoring: /a/..' });
  });
});

describe('command-line value parsers (values.ts)', () => {
  it('parseBoolean() is ASCII case-insensitive', () => {
    expect(parseBoolean('TRUE')).toBe(true);
    expect(() => parseBoolean('\u212A')).toThrow();
  });

  it('--private-users=: yes reads the base from the directory, digits are a base UID', () => {
    expect(parsePrivateUsers('yes')).toEqual({ mode: 'fixed', range: 65536 });
    expect(parsePrivateUsers('no')).toEqual({ mode: 'no' });
    expect(parsePrivateUsers('1')).toEqual({ mode: 'fixed', shift: 1, range: 65536 });
    expect(parsePrivateUsers('pick')).toEqual({ mode: 'pick', range: 65536 });
  });

  it('accepts booleans where systemd does', () => {
    expect(parseResolvConfMode('yes')).toBe('auto');
    expect(parseResolvConfMode('no')).toBe('off');
    expect(parseTimezoneMode('yes')).toBe('auto');
    expect(parseUserNsOwnership('yes')).toBe('auto');
    expect(parseUserNsOwnership('foreign')).toBe('foreign');
    expect(parseLinkJournal('yes')).toEqual({ mode: 'auto', try: false });
    expect(parseLinkJournal('false')).toEqual({ mode: 'no', try: false });
    expect(() => parseLinkJournal('sometimes')).toThrow();
  });
});
