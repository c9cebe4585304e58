/**
 * Fakes for unit tests of planning and of a ContainerExtension's plan(): a tree with nothing but /usr, a bare host, a
 * minimal container config and a helper plan with nothing in it but a command. Pure data; nothing touches the host.
 * The engine's own tests and @nspawn/assembly's use them; an extension written elsewhere can too.
 */
import type { HostFacts, Tree } from './host.js';
import type { ContainerConfig } from './plan.js';
import type { HelperPlan } from './protocol.js';

/** A tree at ROOT with nothing in it but an empty /usr. */
export function emptyTree(root = '/srv/tree'): Tree {
  return {
    root,
    resolve: () => undefined,
    readFile: () => undefined,
    isDirectory: (p) => p === '/usr',
    readdir: () => [],
    lexists: () => false,
    readlink: () => undefined,
  };
}

/** A host with no device nodes, no resolv.conf, unified cgroups and default limits; OVER replaces fields. */
export function bareHost(over: Partial<HostFacts> = {}): HostFacts {
  return {
    devNodes: {},
    hasResolvConf: false,
    cgroups: { kind: 'unified' },
    nrOpen: 1048576,
    pid1Limits: {},
    inaccessibleFile: '/run/nspawn/inaccessible/reg',
    ...over,
  };
}

/** A container config that runs /bin/true in /srv/tree as PID 1, with no network; OVER replaces fields. */
export function baseConfig(over: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    directory: '/srv/tree',
    machineName: 'tree',
    hostname: 'tree',
    uuid: '01234567-89ab-cdef-0123-456789abcdef',
    startMode: 'pid1',
    parameters: ['/bin/true'],
    environment: [],
    readOnly: false,
    customMounts: [],
    console: 'pipe',
    privateNetwork: false,
    rlimits: {},
    resolvConf: 'auto',
    timezone: 'auto',
    useCgns: true,
    ...over,
  };
}

/** A helper plan with nothing in it but a command. */
export function basePlan(over: Partial<HelperPlan> = {}): HelperPlan {
  return {
    root: '/r',
    cloneFlags: 0,
    sync: false,
    ops: [],
    console: 'pipe',
    rlimits: [],
    asPid2: false,
    loopback: false,
    env: [],
    argv: ['/bin/true'],
    searchPath: false,
    fallback: [],
    stubEnv: [],
    ...over,
  };
}
