/** Fakes shared by the unit tests: a tree with nothing but /usr, a bare host, a base container config. */
import type { HostFacts, Tree } from '@nspawn/runtime';
import type { ContainerConfig } from '@nspawn/runtime';
import type { HelperPlan } from '@nspawn/runtime';

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
