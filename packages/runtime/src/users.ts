/**
 * Resolves `--user=` inside the container's own /etc/passwd and /etc/group, as systemd-nspawn does with
 * `getent` in the container (we read the files directly: trees without getent or NSS work too).
 */
import type { Tree } from './host.js';

export interface ResolvedUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  groups: number[];
}

export class UserError extends Error {
  override name = 'UserError';
}

export function resolveUser(tree: Tree, user: string): ResolvedUser | undefined {
  if (user === 'root' || user === '0') return undefined; // systemd: reset to 0, HOME=/root
  const passwd = tree.readFile('/etc/passwd');
  if (passwd === undefined) throw new UserError(`Failed to resolve user ${user}: ${tree.root}/etc/passwd is missing.`);
  const numeric = /^[0-9]+$/.test(user);
  let entry: string[] | undefined;
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length < 7) continue;
    if ((numeric && f[2] === user) || (!numeric && f[0] === user)) {
      entry = f;
      break;
    }
  }
  if (!entry) throw new UserError(`Failed to resolve user ${user}.`);
  const [name = '', , uidS = '', gidS = '', , home = '', shell = ''] = entry;
  const uid = Number(uidS);
  const gid = Number(gidS);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uidS === '' || gidS === '')
    throw new UserError(`UID or GID of user ${user} are invalid.`);
  if (!home.startsWith('/')) throw new UserError(`Home directory of user ${user} is not absolute.`);
  // supplementary groups: the groups that list the user as a member, as `getent initgroups` gives them to
  // systemd-nspawn's change_uid_gid() (the primary group is not added)
  const groups: number[] = [];
  for (const line of (tree.readFile('/etc/group') ?? '').split('\n')) {
    const f = line.split(':');
    if (f.length < 4) continue;
    const members = (f[3] ?? '').split(',').map((m) => m.trim());
    const g = Number(f[2]);
    if (members.includes(name) && Number.isInteger(g) && !groups.includes(g)) groups.push(g);
  }
  return { name, uid, gid, home, shell, groups };
}
