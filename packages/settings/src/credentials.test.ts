import { describe, expect, it } from 'vitest';
import { parseCommandLine } from './cli-args.js';
import { credentialNameValid, cunescapeBytes } from './credentials.js';

const parse = (argv: string[], environ: NodeJS.ProcessEnv = {}) => parseCommandLine(['-D', '/x', ...argv], { cwd: '/', environ });
const err = (argv: string[], environ: NodeJS.ProcessEnv = {}) => {
  try {
    parse(argv, environ);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('accepted');
};
const bytes = (s: string) => Uint8Array.from(Buffer.from(s, 'latin1'));

describe('credentialNameValid (credential_name_valid())', () => {
  it.each(['a', 'foo.bar', 'x-y_z', 'A'.repeat(255), '...', ' spaced ', '~!@#$%^&*()'])('%j is valid', (n) => expect(credentialNameValid(n)).toBe(true));
  it.each(['', '.', '..', 'a/b', 'a:b', 'tab\there', 'A'.repeat(256), 'del\x7f', 'ü'])('%j is not', (n) => expect(credentialNameValid(n)).toBe(false));
});

describe('cunescapeBytes (cunescape(UNESCAPE_ACCEPT_NUL))', () => {
  it.each([
    ['plain', bytes('plain')],
    ['a\\nb\\tc\\\\d\\"\\s', bytes('a\nb\tc\\d" ')],
    ['\\x41\\x00\\xff', bytes('A\0\xff')],
    ['\\101\\000\\377', bytes('A\0\xff')],
    ['\\u00e9', Uint8Array.from([0xc3, 0xa9])],
    ['\\U0001F600', Uint8Array.from([0xf0, 0x9f, 0x98, 0x80])],
    ['é', Uint8Array.from([0xc3, 0xa9])],
  ])('%j', (s, want) => expect(cunescapeBytes(s)).toEqual(want));
  it.each(['a\\', '\\q', '\\x4', '\\xzz', '\\400', '\\U00110000', '\\UD800DC00', '\\uXYZW', '\\8'])('%j is refused', (s) => expect(cunescapeBytes(s)).toBeNull());
  it('refuses NUL without UNESCAPE_ACCEPT_NUL', () => expect(cunescapeBytes('\\x00', false)).toBeNull());
});

describe('--set-credential= and --load-credential=', () => {
  it('keeps the credentials in order, with the bytes or the path', () => {
    const cl = parse(['--set-credential=a:x\\x00y', '--load-credential=b:/etc/hostname', '--load-credential=c:sub/file'], { CREDENTIALS_DIRECTORY: '/run/creds' });
    expect(cl.settings.credentials).toEqual([
      { id: 'a', data: bytes('x\0y') },
      { id: 'b', path: '/etc/hostname', socket: true },
      { id: 'c', path: '/run/creds/sub/file', socket: false },
    ]);
    expect(cl.set.has('credentials')).toBe(true);
  });
  it('takes an empty value, a value with colons, and backslashes in the ID', () => {
    expect(parse(['--set-credential=a:']).settings.credentials).toEqual([{ id: 'a', data: new Uint8Array() }]);
    expect(parse(['--set-credential=a:b:c']).settings.credentials).toEqual([{ id: 'a', data: bytes('b:c') }]);
    expect(parse(['--set-credential=a\\b:c']).settings.credentials).toEqual([{ id: 'ab', data: bytes('c') }]);
  });
  it.each([
    [['--set-credential=a'], 'Missing value for --set-credential=: a'],
    [['--set-credential='], 'Missing value for --set-credential=: '],
    [['--set-credential=:x'], 'Credential name is not valid: '],
    [['--set-credential=..:x'], 'Credential name is not valid: ..'],
    [['--set-credential=a:x\\'], 'Failed to unescape credential data: x\\'],
    [['--set-credential=a:1', '--load-credential=a:/x'], "Duplicate credential 'a', refusing."],
    [['--load-credential=a:/x', '--set-credential=a:1'], "Duplicate credential 'a', refusing."],
    [['--load-credential=a'], 'Missing value for --load-credential=: a'],
    [['--load-credential=a:rel'], 'Credential not available (no credentials passed at all): a'],
  ])('%j: %s', (argv, msg) => expect(err(argv)).toBe(msg));
  it('refuses a relative path when $CREDENTIALS_DIRECTORY is not absolute and normalized', () => {
    expect(err(['--load-credential=a:rel'], { CREDENTIALS_DIRECTORY: 'rel' })).toBe('Credential not available (no credentials passed at all): a');
    expect(err(['--load-credential=a:rel'], { CREDENTIALS_DIRECTORY: '/a/../b' })).toBe('Credential not available (no credentials passed at all): a');
  });
});
