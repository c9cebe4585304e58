import { describe, expect, it } from 'vitest';
import { type JournalFs, type JournalOptions, setupJournal } from './journal.js';
import { ContainerError } from './errors.js';
import { OpFlag } from './protocol.js';

const ID = '11111111222233334444555555555555';
const UUID = '11111111-2222-3333-4444-555555555555';
const HOST_ID = 'aaaaaaaabbbbccccddddeeeeeeeeeeee';
const P = `/var/log/journal/${ID}`;
const Q = `/m/box${P}`;

/** A host: directories, symlinks and mount points as sets; every change is recorded. */
function fakeFs(
  opts: { hostId?: string; dirs?: string[]; treeDirs?: string[]; links?: Record<string, string>; mounts?: string[]; files?: string[]; full?: string[] } = {},
) {
  // the host's directories, and the tree's (/m/box/...), which has /var
  const dirs = new Set([...(opts.dirs ?? ['/var/log/journal']), '/', '/m', '/m/box', '/m/box/var', ...(opts.treeDirs ?? [])]);
  const links = new Map(Object.entries(opts.links ?? {}));
  const files = new Set(opts.files ?? []);
  const err = (code: string) => Object.assign(new Error(code), { code });
  const parent = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';
  const chowned: string[] = [];
  const fs: JournalFs & { dirs: Set<string>; links: Map<string, string>; chowned: string[] } = {
    dirs,
    links,
    chowned,
    machineId: () => ('hostId' in opts ? opts.hostId : HOST_ID),
    isMountPoint: (p) => (opts.mounts ?? []).includes(p),
    readlink(p) {
      const l = links.get(p);
      if (l !== undefined) return l;
      if (dirs.has(p) || files.has(p)) throw err('EINVAL');
      throw err('ENOENT');
    },
    exists: (p) => dirs.has(p) || links.has(p) || files.has(p),
    mkdir(p) {
      if (dirs.has(p) || links.has(p)) throw err('EEXIST');
      if (!dirs.has(parent(p))) throw err('ENOENT');
      dirs.add(p);
    },
    chown: (p, u, g) => void chowned.push(`${p} ${u}:${g}`),
    symlink(t, p) {
      if (!dirs.has(parent(p))) throw err('ENOENT');
      links.set(p, t);
    },
    unlink: (p) => void links.delete(p),
    rmdir(p) {
      if (files.has(p)) throw err('ENOTDIR');
      if ((opts.full ?? []).includes(p)) throw err('ENOTEMPTY');
      dirs.delete(p);
    },
    hasEntries: (p) => (opts.full ?? []).includes(p),
  };
  return fs;
}

/** the tree /m/box as the fake host has it: paths resolve when their directory exists there */
const treeOf = (fs: { dirs: Set<string> }) => {
  const host = (p: string) => (p === '/' ? '/m/box' : `/m/box${p}`);
  return { isDirectory: (p: string) => fs.dirs.has(host(p)), resolve: (p: string) => (fs.dirs.has(host(p)) ? host(p) : undefined) };
};
/** setupJournal() on FS with options O */
const setup = (o: Partial<JournalOptions>, fs: ReturnType<typeof fakeFs>) =>
  setupJournal({ directory: '/m/box', uuid: UUID, mode: 'auto', try: false, readOnly: false, tree: treeOf(fs), ...o }, fs);
/** the directories made in the tree */
const mkdirs = (r: ReturnType<typeof setupJournal>) => r.host.filter((h) => h.startsWith('mkdir ')).map((h) => h.slice(6));
const binds = (r: ReturnType<typeof setupJournal>) => r.ops.filter((o) => o.kind === 'mount').map((o) => `${o.source} -> ${o.target}`);

describe('setupJournal (setup_journal())', () => {
  it('no: nothing at all', () => {
    expect(setup({ mode: 'no' }, fakeFs())).toEqual({ ops: [], warnings: [], host: [], made: [] });
  });
  it('auto: the missing /var/log/journal directories in the tree, and no link when the host has none', () => {
    const r = setup({}, fakeFs());
    expect(mkdirs(r)).toEqual(['/var/log', '/var/log/journal']);
    expect(binds(r)).toEqual([]);
    expect(r.host.filter((h) => h.startsWith('host:'))).toEqual([]);
  });
  it("auto: the host's directory for this machine is bound into the tree when it exists", () => {
    const r = setup({}, fakeFs({ dirs: ['/var/log/journal', P] }));
    expect(mkdirs(r)).toEqual(['/var/log', '/var/log/journal', P]);
    expect(binds(r)).toEqual([`${P} -> ${P}`]);
  });
  it('host: the directory is made on the host (not its parents) and bound in', () => {
    const fs = fakeFs();
    const r = setup({ mode: 'host' }, fs);
    expect(r.host).toEqual(['mkdir /var/log', 'mkdir /var/log/journal', `host: mkdir ${P}`, `mkdir ${P}`]);
    expect(fs.dirs.has(P)).toBe(true);
    expect(binds(r)).toEqual([`${P} -> ${P}`]);
  });
  it('a volatile root (inContainer): the directories are plan operations in the container, the tree untouched', () => {
    const fs = fakeFs();
    const r = setup({ mode: 'host', inContainer: true }, fs);
    expect(r.ops.map((o) => `${o.kind} ${o.target}`)).toEqual(['mkdir /var/log', 'mkdir /var/log/journal', `mkdir ${P}`, `mount ${P}`]);
    expect(r.host).toEqual(['container: mkdir /var/log', 'container: mkdir /var/log/journal', `host: mkdir ${P}`, `container: mkdir ${P}`]);
    expect([...fs.dirs].filter((d) => d.startsWith('/m/box/var/'))).toEqual([]);
    // auto with no directory of the machine's on the host: the three directories (try: each may fail), no link
    const auto = setup({ inContainer: true, tree: { isDirectory: () => false, resolve: () => undefined } }, fakeFs());
    expect(auto.ops.map((o) => `${o.kind} ${o.target} ${o.flags}`)).toEqual(['mkdir /var 1', 'mkdir /var/log 1', 'mkdir /var/log/journal 1'].map((x) => x.replace(/ 1$/, ` ${OpFlag.OPTIONAL}`)));
  });
  it('host without a persistent journal on the host: an error, skipped with try-host', () => {
    const fs = fakeFs({ dirs: [] });
    expect(() => setup({ mode: 'host' }, fs)).toThrow(new ContainerError(`Failed to create ${P}: No such file or directory`));
    const r = setup({ mode: 'host', try: true }, fs);
    expect(binds(r)).toEqual([]);
    expect(fs.dirs.has(P)).toBe(false);
  });
  it("guest: the host's directory becomes a symlink into the tree, the tree gets the directory", () => {
    const fs = fakeFs();
    const r = setup({ mode: 'guest' }, fs);
    expect(fs.links.get(P)).toBe(Q);
    expect(mkdirs(r)).toContain(P);
    expect(binds(r)).toEqual([]);
  });
  it('guest: an empty host directory is replaced, a full one is an error', () => {
    const fs = fakeFs({ dirs: ['/var/log/journal', P] });
    setup({ mode: 'guest' }, fs);
    expect(fs.links.get(P)).toBe(Q);
    expect(() => setup({ mode: 'guest' }, fakeFs({ dirs: ['/var/log/journal', P], full: [P] }))).toThrow(
      `Failed to remove ${P}: Directory not empty`,
    );
    expect(() => setup({ mode: 'guest' }, fakeFs({ files: [P] }))).toThrow(`${P} already exists and is neither a symlink nor a directory`);
  });
  it('guest without /var/log/journal on the host: an error, skipped with try-guest', () => {
    expect(() => setup({ mode: 'guest' }, fakeFs({ dirs: [] }))).toThrow(`Failed to symlink ${Q} to ${P}: No such file or directory`);
    expect(binds(setup({ mode: 'guest', try: true }, fakeFs({ dirs: [] })))).toEqual([]);
  });
  it('a symlink already pointing into this tree is kept (guest, auto); one elsewhere is replaced', () => {
    const fs = fakeFs({ links: { [P]: Q } });
    const r = setup({ mode: 'auto' }, fs);
    expect(fs.links.get(P)).toBe(Q);
    expect(r.host.filter((h) => h.startsWith('host:'))).toEqual([]);
    expect(mkdirs(r).at(-1)).toBe(P);
    const other = fakeFs({ links: { [P]: '/elsewhere' } });
    const r2 = setup({ mode: 'guest' }, other);
    expect(r2.host.filter((h) => h.startsWith('host:'))).toEqual([`host: unlink ${P}`, `host: symlink ${P} -> ${Q}`]);
  });
  it('a mount point already there: an error, skipped with try- and auto', () => {
    expect(() => setup({ mode: 'host' }, fakeFs({ dirs: ['/var/log/journal', P], mounts: [P] }))).toThrow(`${P}: already a mount point, refusing to use for journal`);
    expect(binds(setup({ mode: 'auto' }, fakeFs({ dirs: ['/var/log/journal', P], treeDirs: ['/m/box/var/log', '/m/box/var/log/journal', Q], mounts: [Q] })))).toEqual([]);
  });
  it('the same machine ID as the host: refused, a warning with try- and auto', () => {
    expect(() => setup({ mode: 'host' }, fakeFs({ hostId: ID }))).toThrow(`Host and machine ids are equal (${ID}): refusing to link journals`);
    expect(setup({}, fakeFs({ hostId: ID })).warnings).toEqual([`Host and machine ids are equal (${ID}): refusing to link journals`]);
  });
  it('a read-only tree without /var/log/journal: nothing with try- and auto, an error otherwise', () => {
    expect(setup({ readOnly: true }, fakeFs({ dirs: ['/var/log/journal', P] })).ops).toEqual([]);
    expect(() => setup({ mode: 'host', readOnly: true }, fakeFs())).toThrow('Failed to create /var/log: Read-only file system');
  });
  it('a host without a machine ID: host and guest fail, auto and try- make the directories only', () => {
    expect(() => setup({ mode: 'host' }, fakeFs({ hostId: undefined }))).toThrow('Failed to retrieve machine ID: No such file or directory');
    const r = setup({ mode: 'guest', try: true }, fakeFs({ hostId: undefined }));
    expect(mkdirs(r)).toEqual(['/var/log', '/var/log/journal']);
    expect(r.host.filter((h) => h.startsWith('host:'))).toEqual([]);
  });
  it("with a user namespace what is made in the tree belongs to the container's root, the host's directory does not", () => {
    const fs = fakeFs();
    setup({ mode: 'host', uidShift: 1879048192 }, fs);
    expect(fs.chowned).toEqual(['/m/box/var/log', '/m/box/var/log/journal', `/m/box${P}`].map((d) => `${d} 1879048192:1879048192`));
  });
  it('made: the host paths of what was made in the tree, for a caller that chowns once it knows the root is not idmapped', () => {
    const fs = fakeFs();
    const r = setup({ mode: 'guest' }, fs);
    expect(r.made).toEqual(['/m/box/var/log', '/m/box/var/log/journal', `/m/box${P}`]);
    // no uidShift: nothing chowned here (an idmapped root wants the disk's 0, which mkdir gave)
    expect(fs.chowned).toEqual([]);
    // what existed is not listed
    expect(setup({ mode: 'guest' }, fs).made).toEqual([]);
  });
  it('a tree without /var gets it too', () => {
    const fs = fakeFs();
    fs.dirs.delete('/m/box/var');
    expect(mkdirs(setup({ mode: 'auto' }, fs))).toEqual(['/var', '/var/log', '/var/log/journal']);
  });
  it('a journal directory in the tree that has files already is used, with a warning', () => {
    const r = setup({ mode: 'host' }, fakeFs({ full: [Q] }));
    expect(r.warnings).toEqual([`${Q} is not empty, proceeding anyway.`]);
    expect(binds(r)).toEqual([`${P} -> ${P}`]);
  });
});
