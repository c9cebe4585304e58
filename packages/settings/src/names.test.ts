import { describe, expect, it } from 'vitest';
import * as settings from './index.js';
import { filenameIsValid, hostnameIsValid, imageNameIsValid, machineNameIsValid } from './names.js';

describe('hostname_is_valid()', () => {
  it('takes labels of letters, digits and inner hyphens joined by single dots, up to 64 bytes', () => {
    for (const ok of ['a', 'A9', 'foo-bar', 'foo.bar', 'a.b.c', 'x'.repeat(64), '0', '9a', 'a--b']) expect(hostnameIsValid(ok), ok).toBe(true);
    for (const bad of ['', '.', '..', '.a', 'a.', 'a..b', '-a', 'a-', 'a-.b', 'a.-b', 'a_b', 'a b', 'a/b', 'x'.repeat(65), 'é', 'a\0', '.host'])
      expect(hostnameIsValid(bad), JSON.stringify(bad)).toBe(false);
  });
  it('a trailing dot only with VALID_HOSTNAME_TRAILING_DOT and two labels; ".host" only with VALID_HOSTNAME_DOT_HOST', () => {
    expect(hostnameIsValid('a.b.', { trailingDot: true })).toBe(true);
    expect(hostnameIsValid('a.', { trailingDot: true })).toBe(false);
    expect(hostnameIsValid('a.b.')).toBe(false);
    expect(hostnameIsValid('.host', { dotHost: true })).toBe(true);
  });
});

describe('machine names', () => {
  it('are host names: no underscore (runtime accepted one before), no "..", no "/"', () => {
    expect(machineNameIsValid('dm-a.b')).toBe(true);
    for (const bad of ['dm-a.b_c', '_x', 'a..b', '..', '.', 'a/b', '', 'x'.repeat(65), '.host']) expect(machineNameIsValid(bad), bad).toBe(false);
    expect(machineNameIsValid('.host', { dotHost: true })).toBe(true);
  });
});

describe('image_name_is_valid()', () => {
  it('a file name: never ".", "..", empty, with "/", or over 255 bytes', () => {
    for (const bad of ['', '.', '..', 'a/b', '/', '../x', 'x/..', 'x'.repeat(256), 'é'.repeat(128)]) expect(imageNameIsValid(bad), bad).toBe(false);
    expect(imageNameIsValid('x'.repeat(255))).toBe(true);
    expect(imageNameIsValid('é'.repeat(127))).toBe(true); // 254 bytes
  });
  it('no control characters, valid UTF-8, not a ".#" temporary; hidden names, underscores and spaces are fine', () => {
    for (const bad of ['a\0b', 'tab\there', 'nl\n', 'del\x7f', '.#tmp', '.#machine.foo', 'half\ud800', '\udc00x']) expect(imageNameIsValid(bad), JSON.stringify(bad)).toBe(false);
    for (const ok of ['.hidden', 'my_image', 'with space', 'débian', '...', '.x', 'a.raw', '😀']) expect(imageNameIsValid(ok), ok).toBe(true);
  });
  it('filename_is_valid() alone lets control characters through', () => {
    expect(filenameIsValid('tab\there')).toBe(true);
    expect(filenameIsValid('..')).toBe(false);
  });
});

describe('exports', () => {
  it('one rule: the package entry and the older values.ts names are the same functions', () => {
    expect(settings.hostnameIsValid).toBe(hostnameIsValid);
    expect(settings.machineNameIsValid).toBe(machineNameIsValid);
    expect(settings.imageNameIsValid).toBe(imageNameIsValid);
  });
});
