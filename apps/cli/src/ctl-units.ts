/**
 * `nspawnctl install-units [--root=DIR] [--force]`: the systemd units for the installed nspawn, written into
 * ROOT/etc/systemd/system (ROOT default /):
 * - nspawn@.service: systemd 252's systemd-nspawn@.service, directive for directive, with our nspawn (the real path
 *   of the nspawn beside the running nspawnctl) in ExecStart= and the same flags;
 * - nspawnd.service: nspawnd, the registry and supervisor;
 * - machines.target (only where the host has none: systemd-container ships one) and its wiring: the
 *   multi-user.target.wants/machines.target link `systemctl enable machines.target` makes.
 *
 * Each file starts with a line that holds a hash of the rest: a file with that line and a matching hash is ours and
 * unedited. A file that differs from what would be written is refused (one line naming it), unless --force is given
 * and the file is ours and unedited. Drop-ins (nspawn@.service.d/, nspawn@NAME.service.d/) are never touched. All
 * files are checked before any is written: a refusal writes nothing.
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CtlError, type CtlOptions, out } from './ctl-common.js';

/** The flags of systemd 252's systemd-nspawn@.service, before `--machine=%i`. */
export const UNIT_FLAGS = ['--quiet', '--keep-unit', '--boot', '--link-journal=try-guest', '--network-veth', '-U', '--settings=override'] as const;

const MARK = '# Installed by `nspawnctl install-units`; edit with `systemctl edit` (drop-ins), not here. sha256:';

/** nspawn@.service for NSPAWN (an absolute path, or a bare name as in apps/daemon/units). */
export function nspawnService(nspawn: string): string {
  return `# One container per instance, as systemd-nspawn@.service (systemd 252) runs it:
#   systemctl enable --now nspawn@NAME.service     (image NAME in /var/lib/machines)
#   systemctl edit nspawn@NAME.service             (an ExecStart= of its own: an empty ExecStart= line first)
[Unit]
Description=Container %i
Documentation=man:nspawn(1)
Wants=modprobe@tun.service modprobe@loop.service modprobe@dm_mod.service
PartOf=machines.target
Before=machines.target
After=network.target modprobe@tun.service modprobe@loop.service modprobe@dm-mod.service
# nspawn's own: a container started while nspawnd runs registers with it
After=nspawnd.service
RequiresMountsFor=/var/lib/machines/%i

[Service]
ExecStart=${nspawn} ${UNIT_FLAGS.join(' ')} --machine=%i
KillMode=mixed
Type=notify
RestartForceExitStatus=133
SuccessExitStatus=133
Slice=machine.slice
Delegate=yes
TasksMax=16384
WatchdogSec=3min

DevicePolicy=closed
DeviceAllow=/dev/net/tun rwm
DeviceAllow=char-pts rw

# as systemd-nspawn@.service (for --image=)
DeviceAllow=/dev/loop-control rw
DeviceAllow=block-loop rw
DeviceAllow=block-blkext rw

# as systemd-nspawn@.service (LUKS images; nspawn does not open them)
DeviceAllow=/dev/mapper/control rw
DeviceAllow=block-device-mapper rw

[Install]
WantedBy=machines.target
`;
}

/** nspawnd.service for NSPAWND. */
export function nspawndService(nspawnd: string): string {
  return `# nspawnd on a systemd host: the machine registry and the supervisor of containers started with
# \`nspawnctl start\`. Its containers outlive a restart of the daemon (KillMode=process).
[Unit]
Description=nspawn machine registry and container supervisor
Documentation=man:nspawnd(8)
After=local-fs.target

[Service]
ExecStart=${nspawnd}
KillMode=process
Restart=on-failure
RuntimeDirectory=nspawn
RuntimeDirectoryPreserve=yes

[Install]
WantedBy=machines.target
`;
}

/** machines.target as systemd ships it (for a host without systemd-container), wanting nspawnd. */
export function machinesTarget(): string {
  return `# Starts every enabled nspawn@NAME.service at boot (systemd's machines.target, for hosts without one).
[Unit]
Description=Containers
Documentation=man:systemd.special(7)
Before=multi-user.target
Wants=nspawnd.service

[Install]
WantedBy=multi-user.target
`;
}

/** Where systemd 252 looks for a vendor machines.target (under ROOT). */
const VENDOR_DIRS = ['usr/lib/systemd/system', 'lib/systemd/system', 'usr/local/lib/systemd/system'];

async function stamp(body: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return `${MARK}${createHash('sha256').update(body).digest('hex')}\n${body}`;
}

/** 'ours': a file this command wrote and nobody edited since (its hash line matches the rest). */
async function isOursUnedited(text: string): Promise<boolean> {
  const nl = text.indexOf('\n');
  if (nl < 0 || !text.startsWith(MARK)) return false;
  return (await stamp(text.slice(nl + 1))) === text;
}

/** The real path of the command NAME beside the running nspawnctl (bin/nspawnctl -> bin/NAME). */
export function installedCommand(name: string, argv1 = process.argv[1] ?? ''): string {
  const p = join(dirname(realpathSync(argv1)), name);
  if (!existsSync(p)) throw new CtlError(`${p} not found: install-units needs ${name} installed beside nspawnctl.`);
  return realpathSync(p);
}

export interface UnitPlan {
  /** absolute path -> content */
  files: Map<string, string>;
  /** link path -> target */
  links: Map<string, string>;
}

/** What install-units writes under ROOT for the given commands (stamped files). */
export async function planUnits(root: string, nspawn: string, nspawnd: string): Promise<UnitPlan> {
  const etc = join(root, 'etc/systemd/system');
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  files.set(join(etc, 'nspawn@.service'), await stamp(nspawnService(nspawn)));
  files.set(join(etc, 'nspawnd.service'), await stamp(nspawndService(nspawnd)));
  const vendor = VENDOR_DIRS.map((d) => join(root, d, 'machines.target')).find((p) => existsSync(p));
  if (!vendor) files.set(join(etc, 'machines.target'), await stamp(machinesTarget()));
  // the link `systemctl enable machines.target` makes, to the path of the unit as seen on the host (not under ROOT)
  const target = vendor ? `/${vendor.slice(root.length).replace(/^\/+/, '')}` : '/etc/systemd/system/machines.target';
  links.set(join(etc, 'multi-user.target.wants/machines.target'), target);
  return { files, links };
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

async function installUnits(_args: string[], opts: CtlOptions): Promise<number> {
  if (_args.length) throw new CtlError(`install-units takes no arguments (got '${_args[0]}'); the directory is --root=DIR.`);
  const root = resolve(opts.root ?? '/');
  if (opts.root !== undefined && !existsSync(root)) throw new CtlError(`--root=${opts.root}: no such directory.`);
  const plan = await planUnits(root, installedCommand('nspawn'), installedCommand('nspawnd'));
  // check everything first: a refusal writes nothing
  const write: string[] = [];
  for (const [p, text] of plan.files) {
    if (!exists(p)) {
      write.push(p);
      continue;
    }
    if (!lstatSync(p).isFile()) throw new CtlError(`${p} exists and is not a regular file: not replaced (remove it first).`);
    const old = readFileSync(p, 'utf8');
    if (old === text) {
      out(`${p} is up to date.\n`);
      continue;
    }
    if (!(await isOursUnedited(old)))
      throw new CtlError(`${p} exists with other content (not an unedited file of install-units): not replaced; override it with drop-ins (systemctl edit) or remove it.`);
    if (!opts.force) throw new CtlError(`${p} was installed by an earlier install-units with other content: replace it with --force.`);
    write.push(p);
  }
  for (const l of plan.links.keys()) {
    if (!exists(l)) continue;
    if (!lstatSync(l).isSymbolicLink()) throw new CtlError(`${l} exists and is not a symbolic link: not replaced.`);
  }
  for (const p of write) {
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
    const tmp = `${p}.nspawnctl-tmp`;
    writeFileSync(tmp, plan.files.get(p)!, { mode: 0o644 });
    renameSync(tmp, p);
    out(`Installed ${p}.\n`);
  }
  for (const [l, target] of plan.links) {
    if (exists(l)) continue;
    mkdirSync(dirname(l), { recursive: true, mode: 0o755 });
    symlinkSync(target, l);
    out(`Created symlink ${l} → ${target}.\n`);
  }
  // systemctl daemon-reload, when systemd runs this host (and the units went to it, not to another root)
  if (root === '/' && existsSync('/run/systemd/system')) {
    const { execa } = await import('execa');
    const r = await execa('systemctl', ['daemon-reload'], { reject: false });
    if (r.exitCode !== 0) throw new CtlError(`systemctl daemon-reload failed: ${`${r.stderr}`.trim() || `exit status ${r.exitCode}`}`);
    out('Reloaded systemd (systemctl daemon-reload).\n');
  } else if (root === '/') out('systemd does not run this host (no /run/systemd/system): no daemon-reload.\n');
  return 0;
}

export const unitVerbs = { 'install-units': installUnits };
