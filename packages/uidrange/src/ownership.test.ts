import { describe, expect, it } from 'vitest';
import { resolveOwnership } from './ownership.js';

const dir = '/m/x';
describe('resolveOwnership (systemd-nspawn 252)', () => {
  it('defaults: auto with pick, off otherwise', () => {
    expect(resolveOwnership({ mode: 'pick', directory: dir, ownerBase: 0 })).toEqual({ ownership: 'map', shift: 0, fallback: true });
    expect(resolveOwnership({ mode: 'fixed', shift: 0x100000, directory: dir })).toEqual({ ownership: 'off', shift: 0x100000, fallback: false });
    expect(resolveOwnership({ mode: 'fixed', directory: dir, ownerBase: 0x70000 })).toEqual({ ownership: 'off', shift: 0x70000, fallback: false });
  });
  it('a tree already shifted is chowned under auto and refused under map', () => {
    expect(resolveOwnership({ mode: 'pick', directory: dir, ownerBase: 0x100000 })).toEqual({ ownership: 'chown', shift: 0x100000, fallback: false });
    expect(() => resolveOwnership({ mode: 'pick', requested: 'map', directory: dir, ownerBase: 0x100000 })).toThrow(
      'UID base of /m/x is not zero, UID mapping not supported.',
    );
  });
  it('explicit choices stay', () => {
    expect(resolveOwnership({ mode: 'pick', requested: 'chown', directory: dir, ownerBase: 0 }).ownership).toBe('chown');
    expect(resolveOwnership({ mode: 'pick', requested: 'map', directory: dir, ownerBase: 0 })).toEqual({ ownership: 'map', shift: 0, fallback: false });
    expect(resolveOwnership({ mode: 'pick', requested: 'off', directory: dir, ownerBase: 0x100000 }).ownership).toBe('off');
  });
  it("refuses chown with --read-only or --volatile, with systemd's words", () => {
    expect(() => resolveOwnership({ mode: 'pick', requested: 'chown', directory: dir, readOnly: true })).toThrow(
      '--read-only and --private-users-ownership=chown may not be combined.',
    );
    expect(() => resolveOwnership({ mode: 'pick', requested: 'chown', directory: dir, volatile: true })).toThrow(
      '--volatile= and --private-users-ownership=chown may not be combined.',
    );
  });
});
