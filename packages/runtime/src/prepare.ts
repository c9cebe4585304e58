/**
 * From the merged Settings to a ContainerConfig: systemd-nspawn's checks and defaults (determine_names(),
 * the OS-tree check, console and kill-signal defaults, --user resolution), and a clear error for every
 * setting whose feature this build does not have yet.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { basename } from 'node:path';
import {
  type Settings,
  hostnameCleanup,
  hostnameIsValid,
  id128ToUuid,
  SIGRTMIN,
} from '@nspawn/settings';
import type { HelperConsole } from './protocol.js';
import type { ContainerConfig } from './plan.js';
import type { Tree } from './host.js';
import { resolveUser } from './users.js';

export class ContainerError extends Error {
  override name = 'ContainerError';
}

export interface PrepareEnv {
  stdinIsTTY: boolean;
  stdoutIsTTY: boolean;
  /** the tree view for a directory (nodeTree in production) */
  tree(root: string): Tree;
  exists(path: string): boolean;
  /** SYSTEMD_NSPAWN_API_VFS_WRITABLE and friends */
  environ: NodeJS.ProcessEnv;
  hostname(): string;
}

export const nodePrepareEnv = (tree: (root: string) => Tree): PrepareEnv => ({
  stdinIsTTY: process.stdin.isTTY === true,
  stdoutIsTTY: process.stdout.isTTY === true,
  tree,
  exists: (p) => {
    try {
      lstatSync(p);
      return true;
    } catch {
      return existsSync(p);
    }
  },
  environ: process.env,
  hostname: osHostname,
});

/** Features parsed from the command line or a .nspawn file that later work will implement. */
function unsupportedFeatures(s: Settings): string[] {
  const out: string[] = [];
  const add = (cond: unknown, what: string) => {
    if (cond) out.push(what);
  };
  add(s.startMode === 'boot', '--boot');
  add(s.ephemeral, '--ephemeral');
  add(s.template, '--template');
  add(s.image, '--image');
  add(s.volatile && s.volatile !== 'no', '--volatile');
  add(s.networkVeth, '--network-veth');
  add(s.networkBridge, '--network-bridge');
  add(s.networkZone, '--network-zone');
  add(s.networkMacvlan?.length, '--network-macvlan');
  add(s.networkIpvlan?.length, '--network-ipvlan');
  add(s.networkInterfaces?.length, '--network-interface');
  add(s.networkVethExtra?.length, '--network-veth-extra');
  add(s.networkNamespacePath, '--network-namespace-path');
  add(s.exposePorts?.length, '--port');
  add(s.privateUsers && s.privateUsers.mode === 'pick', '--private-users=pick (-U)');
  add(s.privateUsersOwnership && s.privateUsersOwnership !== 'off' && s.privateUsers?.mode === 'fixed', '--private-users-ownership');
  add(s.capability?.length, '--capability');
  add(s.dropCapability?.length, '--drop-capability');
  add(s.ambientCapability?.length, '--ambient-capability');
  add(s.noNewPrivileges, '--no-new-privileges');
  add(s.systemCallFilter && (s.systemCallFilter.allow.length || s.systemCallFilter.deny.length), '--system-call-filter');
  add(s.notifyReady, '--notify-ready');
  add(s.linkJournal && s.linkJournal !== 'no' && s.linkJournal !== 'auto', '--link-journal');
  add(s.bindUser?.length, '--bind-user');
  add(s.pivotRoot, '--pivot-root');
  add(s.oomScoreAdjust !== undefined, '--oom-score-adjust');
  add(s.cpuAffinity?.length, '--cpu-affinity');
  add(s.suppressSync, '--suppress-sync');
  return out;
}

export interface Prepared {
  config: ContainerConfig;
  /** 0 when none was chosen: SIGINT/SIGTERM then kill the container at once, like systemd-nspawn */
  killSignal: number;
  quiet: boolean;
  keepUnit: boolean;
}

export function prepareContainer(s: Settings, env: PrepareEnv, unsupported: readonly string[] = []): Prepared {
  const notYet = [...unsupported, ...unsupportedFeatures(s)];
  if (notYet.length > 0) throw new ContainerError(`${notYet[0]} is not supported yet by this nspawn build.`);

  let directory = s.directory;
  if (directory === undefined && s.machineName !== undefined) directory = `/var/lib/machines/${s.machineName}`;
  if (directory === undefined) directory = process.cwd();
  if (!env.exists(directory)) throw new ContainerError(`Failed to resolve path ${directory}: No such file or directory`);
  if (directory === '/')
    throw new ContainerError(
      'Spawning container on root directory is not supported. Consider using --ephemeral, --volatile=yes or --volatile=state.',
    );
  const tree = env.tree(directory);
  if (!tree.isDirectory('/usr'))
    throw new ContainerError(`Directory ${directory} doesn't look like it has an OS tree (/usr/ directory is missing). Refusing.`);

  let machineName = s.machineName;
  if (machineName === undefined) {
    machineName = hostnameCleanup(basename(directory));
    if (!hostnameIsValid(machineName)) throw new ContainerError('Failed to determine machine name automatically, please use -M.');
  }

  let consoleMode: HelperConsole;
  const tty = env.stdinIsTTY && env.stdoutIsTTY;
  switch (s.consoleMode) {
    case undefined:
      consoleMode = tty ? 'interactive' : 'read-only';
      break;
    case 'autopipe':
      consoleMode = tty ? 'interactive' : 'pipe';
      break;
    default:
      consoleMode = s.consoleMode;
  }
  const quiet = s.quiet === true || consoleMode === 'pipe';

  const user = s.user !== undefined ? resolveUser(tree, s.user) : undefined;
  if (s.workingDirectory !== undefined && !s.workingDirectory.startsWith('/'))
    throw new ContainerError(`Working directory ${s.workingDirectory} is not an absolute path.`);

  for (const m of s.customMounts ?? []) {
    if (m.type === 'bind' && !m.sourceInRoot && !env.exists(m.source))
      throw new ContainerError(`Failed to stat ${m.source}: No such file or directory (--bind ${m.source}:${m.destination})`);
    if (m.type === 'overlay')
      for (const l of m.lowers)
        if (!l.startsWith('+') && !env.exists(l)) throw new ContainerError(`Failed to stat ${l}: No such file or directory (--overlay)`);
  }

  const apiEnv = env.environ.SYSTEMD_NSPAWN_API_VFS_WRITABLE;
  let apiVfsWritable: ContainerConfig['apiVfsWritable'] = 'no';
  if (apiEnv === 'network') apiVfsWritable = 'network';
  else if (apiEnv !== undefined && ['1', 'yes', 'y', 'true', 't', 'on'].includes(apiEnv.toLowerCase())) apiVfsWritable = 'yes';

  const startMode = s.startMode ?? 'pid1';
  const config: ContainerConfig = {
    directory,
    machineName,
    hostname: s.hostname ?? machineName,
    uuid: s.uuid ?? id128ToUuid(randomBytes(16).toString('hex')),
    startMode,
    parameters: s.parameters ?? [],
    environment: s.environment ?? [],
    readOnly: s.readOnly === true,
    customMounts: s.customMounts ?? [],
    console: consoleMode,
    privateNetwork: s.privateNetwork === true,
    rlimits: s.rlimits ?? {},
    resolvConf: s.resolvConf ?? 'auto',
    timezone: s.timezone ?? 'auto',
    useCgns: s.useCgns ?? true,
    apiVfsWritable,
  };
  if (s.user !== undefined) config.userName = s.user;
  if (user) config.user = user;
  if (s.workingDirectory !== undefined) config.workingDirectory = s.workingDirectory;
  if (s.personality !== undefined) config.personality = s.personality;
  if (s.privateUsers?.mode === 'fixed') config.userns = { shift: s.privateUsers.shift ?? 0, range: s.privateUsers.range ?? 65536 };

  return {
    config,
    killSignal: s.killSignal ?? (startMode === 'boot' ? SIGRTMIN + 3 : 0),
    quiet,
    keepUnit: s.keepUnit === true,
  };
}
