// Real archives, as GNU tar and export-tar write them, extracted and compared with the tree they came from: types,
// modes (set-ID included), owners, times, link targets, hard links, contents, holes and extended attributes (file
// capabilities, POSIX ACLs, trusted.*, user.*). Once with openat2, once with the O_NOFOLLOW walk.
import { execaSync } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setOpenat2 } from '@nspawn/syscall';
import { exportTar, extractTar, importTar } from '../src/index.js';

let base: string;
let src: string;
const sh = (script: string) => execaSync('sh', ['-ec', script], { stdin: 'inherit', stderr: 'inherit', stripFinalNewline: false }).stdout;

beforeAll(() => {
  base = mkdtempSync('/tmp/nspawn-test-im-fmt-');
  src = join(base, 'src');
  const long = Array.from({ length: 15 }, (_, i) => `${i}${'l'.repeat(200)}`).join('/');
  sh(`
    cd ${base} && mkdir -p src/etc src/usr/bin src/var/mail src/dev src/deep && cd src
    echo hello > etc/hostname && chmod 0640 etc/hostname && chown 12:34 etc/hostname
    printf '#!/bin/sh\\n' > usr/bin/ping && chmod 4755 usr/bin/ping
    cp usr/bin/ping usr/bin/capped && chmod 0755 usr/bin/capped && setcap cap_net_raw,cap_setuid+ep usr/bin/capped
    setfacl -m u:1234:rwx,g:55:r etc/hostname && setfacl -d -m u:77:rx var/mail
    chmod 2775 var/mail && chown 0:8 var/mail && chmod 1777 deep
    setfattr -n user.note -v 'a note' etc/hostname && setfattr -n trusted.t -v 0xff0080 etc/hostname
    ln usr/bin/ping usr/bin/ping6 && ln -s ../usr/bin/ping etc/link && ln -s /nonexistent/abs etc/abslink
    mknod dev/null c 1 3 && chmod 0666 dev/null && mkfifo dev/fifo && mknod dev/sda b 8 0
    truncate -s 64M sparse && printf data | dd of=sparse bs=1 seek=33554432 conv=notrunc status=none
    mkdir -p "$(dirname '${long}')" && echo deep > '${long}'
    touch -h -d '2001-02-03 04:05:06.123456789' etc/link etc/hostname usr/bin/ping var/mail
  `);
});
afterAll(() => {
  setOpenat2(true);
  rmSync(base, { recursive: true, force: true });
});

/** what a tree is: every entry's type, mode, owner, size, link target, mtime, inode group, content, xattrs */
function describeTree(dir: string): string {
  return sh(`
    cd ${dir}
    find . -mindepth 1 -printf '%p %y %m %U:%G %l %T@ %n\\n' | sort
    find . -type f -mindepth 1 -print0 | sort -z | xargs -0 sha256sum
    find . -type f -links +1 -printf '%i %p\\n' | sort | awk '{print $2}' | xargs -r ls -i | awk '{print $1}' | sort | uniq -c | awk '{print $1}'
    getfattr -R -h -d -m - -e hex . 2>/dev/null | grep -v '^$'
  `);
}

function compare(tar: string, dir: string) {
  return extractTar(tar, dir).then((stats) => {
    expect(describeTree(dir)).toBe(describeTree(src));
    const st = statSync(join(dir, 'sparse'));
    expect(st.size).toBe(64 * 1024 * 1024);
    return { stats, blocks: st.blocks };
  });
}

const formats: Array<[string, string]> = [
  ['posix, --sparse (PAX 1.0)', '--format=posix --sparse --sparse-version=1.0'],
  ['posix, --sparse-version=0.1', '--format=posix --sparse --sparse-version=0.1'],
  ['posix, --sparse-version=0.0', '--format=posix --sparse --sparse-version=0.0'],
];

describe.each([
  ['openat2', true],
  ['the O_NOFOLLOW walk', false],
])('GNU tar archives, extracted with %s', (_n, openat2) => {
  beforeAll(() => setOpenat2(openat2));
  for (const [what, flags] of formats)
    it(`${what}: the same tree, xattrs, capabilities, ACLs and holes included`, async () => {
      const tar = join(base, `${what.replace(/\W+/g, '_')}.tar`);
      sh(`tar --numeric-owner --xattrs --xattrs-include='*' ${flags} -C ${src} -cf ${tar} .`);
      const out = mkdtempSync(join(base, 'out-'));
      const { stats, blocks } = await compare(tar, out);
      expect(blocks * 512).toBeLessThan(1024 * 1024);
      expect(stats.xattrs).toBe(5); // 2 ACLs, user.note, trusted.t, the capability
      expect(sh(`getcap ${out}/usr/bin/capped`)).toMatch(/cap_setuid,cap_net_raw=ep/);
      expect(sh(`getfacl -pn ${out}/etc/hostname`)).toContain('user:1234:rwx');
      rmSync(out, { recursive: true });
    });

  it('GNU format with -S (type S sparse members), without xattrs', async () => {
    const tar = join(base, 'gnu.tar');
    sh(`tar --numeric-owner --format=gnu -S -C ${src} -cf ${tar} ./sparse ./etc/link ./usr`);
    const out = mkdtempSync(join(base, 'out-'));
    await extractTar(tar, out);
    const a = sh(`cd ${src} && cmp sparse ${out}/sparse && stat -c '%s %a' sparse usr/bin/ping`);
    expect(sh(`cd ${out} && stat -c '%s %a' sparse usr/bin/ping`)).toBe(a.trim() + '\n');
    expect(statSync(join(out, 'sparse')).blocks * 512).toBeLessThan(1024 * 1024);
    rmSync(out, { recursive: true });
  });
});

describe('export-tar, then import-tar', () => {
  it('gives the same tree back (compressed too), xattrs and holes included', async () => {
    for (const suffix of ['.tar', '.tar.gz', '.tar.xz']) {
      const file = join(base, `exported${suffix}`);
      await exportTar(src, file);
      const store = mkdtempSync(join(base, 'store-'));
      const r = await importTar(file, { name: 'back', root: store });
      expect(describeTree(r.path), suffix).toBe(describeTree(src));
      expect(statSync(join(r.path, 'sparse')).blocks * 512, suffix).toBeLessThan(1024 * 1024);
      rmSync(store, { recursive: true });
    }
  });

  it('an archive with no root entry gets a 0755 root; a damaged compressed one is one line', async () => {
    const store = mkdtempSync(join(base, 'store-'));
    const tar = join(base, 'noroot.tar');
    sh(`tar -C ${src} -cf ${tar} etc/hostname`);
    const r = await importTar(tar, { name: 'noroot', root: store });
    expect(statSync(r.path).mode & 0o7777).toBe(0o755);
    writeFileSync(join(base, 'bad.tar.xz'), Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(100, 1)]));
    await expect(importTar(join(base, 'bad.tar.xz'), { name: 'bad', root: store })).rejects.toThrow(/^Failed to decompress .*bad\.tar\.xz with xz: .*$/);
    mkdirSync(join(store, 'x'));
    rmSync(store, { recursive: true });
  });
});
