/**
 * --bind-user=USER (BindUser=) as systemd-nspawn 252's nspawn-bind-user.c does it, with the host's users read from
 * its /etc/passwd, /etc/shadow and /etc/group (what NSS gives 252 on a host without userdb services):
 *
 * - each host user (not root, not nobody, outside the container's UID range, with a private group of the same name)
 *   gets the first container UID from 60514 on (MAP_UID_MIN) that neither the container's /etc/passwd nor its
 *   /etc/group uses, as its UID and GID; its name must be in neither file;
 * - its records go to /run/host/userdb as 252 writes them (NAME.user, NAME.group, NAME.user-privileged with the
 *   hashed password when the shadow entry has one, each with a UID.SUFFIX symlink), JSON on one line;
 * - its home is bound (plain MS_BIND) on /run/host/home/NAME, and the container's user namespace maps the container
 *   UID/GID to the host user's own (make_uid_map_string()).
 *
 * resolveBindUsers() is pure (the host's databases and the tree given); bindUserOps() makes the plan's steps.
 */
import { ContainerError } from './errors.js';
import type { Tree } from './host.js';
import type { Op } from './protocol.js';

/** MAP_UID_MIN and MAP_UID_MAX: the container UIDs bound users get */
export const MAP_UID_MIN = 60514;
export const MAP_UID_MAX = 60577;
const UID_NOBODY = 65534;

export interface HostPasswd {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
export interface HostGroup {
  name: string;
  gid: number;
}

/** The host's user database as NSS's files module reads it (first entry of a name or ID wins). */
export interface HostUserDb {
  passwd: HostPasswd[];
  group: HostGroup[];
  /** sp_pwdp by user name, for the users that have a shadow entry */
  shadow: Map<string, string>;
}

/** A bound user, resolved. */
export interface BindUser {
  name: string;
  hostUid: number;
  hostGid: number;
  /** container UID and GID (the same number) */
  uid: number;
  /** the host's home directory, bound on /run/host/home/NAME */
  home: string;
  /** /run/host/userdb's files: name -> content, and their UID.SUFFIX links */
  records: Array<{ file: string; link: string; content: string; mode: number }>;
}

const num = (s: string | undefined): number | undefined => (s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined);

/** fgetpwent(): NAME:PASSWD:UID:GID:GECOS:DIR:SHELL lines; others are skipped. */
export function parsePasswd(text: string): HostPasswd[] {
  const out: HostPasswd[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const uid = num(f[2]);
    const gid = num(f[3]);
    if (f.length < 7 || !f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5]! });
  }
  return out;
}

/** fgetgrent(): NAME:PASSWD:GID:MEMBERS lines. */
export function parseGroup(text: string): HostGroup[] {
  const out: HostGroup[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const gid = num(f[2]);
    if (f.length < 4 || !f[0] || gid === undefined) continue;
    out.push({ name: f[0], gid });
  }
  return out;
}

/** fgetspent(): the password field by name. */
export function parseShadow(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 2 || !f[0] || out.has(f[0])) continue;
    out.set(f[0], f[1]!);
  }
  return out;
}

/**
 * looks_like_hashed_password(): anything but "x" and "*" after the "!" lock prefixes ("!" alone, a locked empty
 * password, counts); mojibake (utf8_only()) does not.
 */
export function looksLikeHashedPassword(s: string | undefined): boolean {
  if (s === undefined || s.includes('\ufffd')) return false;
  const rest = s.replace(/^!+/, '');
  return rest !== 'x' && rest !== '*';
}

/** The host's /etc/passwd, /etc/shadow, /etc/group through READ (missing files: empty). */
export function hostUserDb(read: (path: string) => string | undefined): HostUserDb {
  return {
    passwd: parsePasswd(read('/etc/passwd') ?? ''),
    group: parseGroup(read('/etc/group') ?? ''),
    shadow: parseShadow(read('/etc/shadow') ?? ''),
  };
}

/** json_variant_format(JSON_FORMAT_NEWLINE): compact, in the order built, with a newline */
const json = (v: unknown): string => `${JSON.stringify(v)}\n`;

/**
 * bind_user_prepare() and convert_user(): NAMES (duplicates dropped, strv_uniq()) resolved in DB against the tree's
 * /etc/passwd and /etc/group, for a container of UID range SHIFT:RANGE. Throws 252's refusals.
 */
export function resolveBindUsers(names: readonly string[], db: HostUserDb, tree: Pick<Tree, 'readFile'>, shift: number, range: number): BindUser[] {
  const cPasswd = parsePasswd(tree.readFile('/etc/passwd') ?? '');
  const cGroup = parseGroup(tree.readFile('/etc/group') ?? '');
  const out: BindUser[] = [];
  let current = MAP_UID_MIN;
  for (const name of [...new Set(names)]) {
    const u = db.passwd.find((p) => p.name === name);
    if (!u) throw new ContainerError(`Failed to resolve user '${name}': No such process`);
    if (u.uid === 0 || u.name === 'root') throw new ContainerError("Mapping 'root' user not supported, sorry.");
    if (u.uid === UID_NOBODY || u.name === 'nobody') throw new ContainerError("Mapping 'nobody' user not supported, sorry.");
    if (u.uid >= shift && u.uid < shift + range) throw new ContainerError(`UID of user '${u.name}' to map is already in container UID range, refusing.`);
    const g = db.group.find((x) => x.gid === u.gid);
    if (!g) throw new ContainerError(`Failed to resolve group of user '${u.name}': No such process`);
    if (g.gid >= shift && g.gid < shift + range) throw new ContainerError(`GID of group '${g.name}' to map is already in container GID range, refusing.`);
    if (u.name !== g.name) throw new ContainerError('Sorry, mapping users without private groups is currently not supported.');
    // find_free_uid()
    for (;; current++) {
      if (current > MAP_UID_MAX || current >= range)
        throw new ContainerError(`No suitable available UID in range ${MAP_UID_MIN}…${MAP_UID_MAX} in container detected, can't map user.`);
      const c = current;
      if (cPasswd.some((p) => p.uid === c)) continue;
      if (!cGroup.some((x) => x.gid === c)) break;
    }
    // convert_user()
    if (cPasswd.some((p) => p.name === u.name)) throw new ContainerError(`Sorry, the user '${u.name}' already exists in the container.`);
    if (cGroup.some((x) => x.name === g.name)) throw new ContainerError(`Sorry, the group '${g.name}' already exists in the container.`);
    const uid = current++;
    const home = `/run/host/home/${u.name}`;
    const pw = db.shadow.get(u.name);
    const hashed = looksLikeHashedPassword(pw) ? [pw!] : [];
    const records: BindUser['records'] = [];
    const add = (file: string, suffix: string, content: unknown, mode: number) =>
      records.push({ file: `${file}${suffix}`, link: `${uid}${suffix}`, content: json(content), mode });
    add(g.name, '.group', { groupName: g.name, gid: uid, service: 'io.systemd.NSpawn' }, 0o644);
    if (hashed.length > 0) add(u.name, '.user-privileged', { privileged: { hashedPassword: hashed } }, 0o600);
    add(u.name, '.user', { userName: u.name, uid, gid: uid, homeDirectory: home, service: 'io.systemd.NSpawn' }, 0o644);
    out.push({ name: u.name, hostUid: u.uid, hostGid: g.gid, uid, home: u.home, records });
  }
  return out;
}

/**
 * bind_user_setup(): /run/host/home and /run/host/userdb (0755) with the records and their links, made by the
 * container's root (so owned by it), and each home's mount point. The homes themselves are bound with the custom
 * mounts (bindUserMounts()).
 */
export function bindUserOps(users: readonly BindUser[]): Op[] {
  if (users.length === 0) return [];
  const ops: Op[] = [
    { kind: 'mkdir', target: '/run/host/home', mode: 0o755 },
    { kind: 'mkdir', target: '/run/host/userdb', mode: 0o755 },
  ];
  for (const u of users) {
    for (const r of u.records)
      ops.push(
        { kind: 'symlink', source: r.file, target: `/run/host/userdb/${r.link}` },
        { kind: 'write', target: `/run/host/userdb/${r.file}`, data: r.content, mode: r.mode },
      );
    ops.push({ kind: 'mkdir', target: `/run/host/home/${u.name}`, mode: 0o755 });
  }
  return ops;
}

/** The maps' extra lines: container UID/GID to the host user's (make_uid_map_string()'s pairs), by container UID. */
export function bindUserMaps(users: readonly BindUser[]): Array<{ uid: number; hostUid: number; gid: number; hostGid: number }> {
  return users.map((u) => ({ uid: u.uid, hostUid: u.hostUid, gid: u.uid, hostGid: u.hostGid })).sort((a, b) => a.uid - b.uid);
}
