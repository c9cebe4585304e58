/**
 * Is this a systemd host, and who is calling: what systemd-nspawn 252 asks before it talks to machined.
 */
import { lstatSync, readFileSync } from 'node:fs';

/** `sd_booted()`: systemd is PID 1 when /run/systemd/system/ exists (made very early at boot by systemd). */
export function isSystemdBooted(root = '/'): boolean {
  try {
    return lstatSync(`${root.replace(/\/$/, '')}/run/systemd/system/`).isDirectory();
  } catch {
    return false;
  }
}

/** The cgroup path of a process in systemd's main hierarchy (name=systemd on legacy/hybrid hosts, else cgroup2). */
export function mainCgroupPath(procCgroup: string): string | undefined {
  const lines = procCgroup.split('\n').filter(Boolean);
  const named = lines.find((l) => l.split(':')[1] === 'name=systemd');
  const unified = lines.find((l) => l.startsWith('0::'));
  const line = named ?? unified;
  return line === undefined ? undefined : line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
}

/**
 * `cg_path_get_owner_uid()`: the UID of the user slice (`user-UID.slice`) the path is in, counting only the
 * leading run of slices (so `user@1000.service/app.slice/...` is still user 1000's); undefined outside one.
 */
export function cgroupOwnerUid(path: string): number | undefined {
  let slice: string | undefined;
  for (const part of path.split('/').filter(Boolean)) {
    if (!part.endsWith('.slice')) break;
    slice = part;
  }
  const m = slice && /^user-(\d+)\.slice$/.exec(slice);
  return m ? Number(m[1]) : undefined;
}

/**
 * systemd-nspawn's refusal of `--keep-unit --register=yes` from a user session (it would register the user's
 * session scope or user@.service as the machine): the one-line message, or undefined when the caller may.
 */
export function keepUnitRegisterError(procCgroup = readProcCgroup()): string | undefined {
  const path = procCgroup === undefined ? undefined : mainCgroupPath(procCgroup);
  if (path !== undefined && cgroupOwnerUid(path) !== undefined)
    return '--keep-unit --register=yes may not be used when invoked from a user session.';
  return undefined;
}

function readProcCgroup(): string | undefined {
  try {
    return readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return undefined;
  }
}
