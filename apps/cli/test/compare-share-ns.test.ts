/**
 * $SYSTEMD_NSPAWN_SHARE_NS_IPC, _PID, _UTS, $SYSTEMD_NSPAWN_SHARE_SYSTEM and the deprecated --share-system, side by
 * side with systemd-nspawn 252 (nspawn.c: parse_share_ns_env() at the end of parse_argv(), getenv_bool(), and
 * arg_clone_ns_flags = 0 with a warning for the option): the container shares the host's namespace instead of getting
 * its own, gets no hostname without a UTS namespace of its own (setup_hostname()), is not registered and refuses -b and
 * -a without a PID or UTS namespace (verify_arguments()). Each alone and together, the order they are read in (the
 * variables after the options, SHARE_SYSTEM last), --share-system's warning, values that are not booleans, and against
 * an OCI bundle's linux.namespaces (a variable keeps them out, --share-system does not). Every run is checked for
 * leftovers (mounts, run record, cgroups) and the host's hostname for changes.
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedProbeLines, guardHostHostname, hostHostname, namespaceProbe, type Own, withoutMounts } from './helpers/namespace-probe.js';
import { OciBundleRuns } from './helpers/oci-bundle.js';

const ROOT = 'nt-sharens-root';
const runs = new OciBundleRuns(ROOT, 'nt-sharens-');
guardHostHostname();
beforeAll(() => runs.start());
afterAll(() => {
  expect(runs.finish()).toEqual([]);
});

const PROBE = ['/bin/sh', '-c', namespaceProbe(5)];
const WARNING = 'Please do not use --share-system anymore, use $SYSTEMD_NSPAWN_SHARE_* instead.';
const REFUSAL = '--boot cannot be used without namespacing.';
const ALL: Own[] = ['pid', 'ipc', 'uts'];

/** the same -D run under both tools: they agree, and the probe says OWN; STDERR: what both printed */
async function probeBoth(env: NodeJS.ProcessEnv, own: readonly Own[], args: string[] = [], stderr: string[] = []) {
  const before = hostHostname();
  const seen = await runs.bothDirectory([...args, ...PROBE], env);
  expect(hostHostname(), "the host's hostname after the runs").toBe(before);
  expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
  // what they agree on is what the variables say (the comparison can fail)
  expect(seen.nspawn.status).toBe(5);
  expect(seen.nspawn.stderr).toEqual(stderr);
  expect(withoutMounts(seen.nspawn.lines)).toEqual(expectedProbeLines(own, ROOT));
  expect(seen.nspawn.lines.filter((l) => l.startsWith('mount: ')).length).toBeGreaterThanOrEqual(2);
  return seen;
}

describe('$SYSTEMD_NSPAWN_SHARE_* and --share-system, as systemd-nspawn 252', () => {
  const CASES: Array<[string, NodeJS.ProcessEnv, Own[]]> = [
    ['SYSTEMD_NSPAWN_SHARE_NS_IPC=1', { SYSTEMD_NSPAWN_SHARE_NS_IPC: '1' }, ['pid', 'uts']],
    ['SYSTEMD_NSPAWN_SHARE_NS_PID=yes', { SYSTEMD_NSPAWN_SHARE_NS_PID: 'yes' }, ['ipc', 'uts']],
    ['SYSTEMD_NSPAWN_SHARE_NS_UTS=true', { SYSTEMD_NSPAWN_SHARE_NS_UTS: 'true' }, ['pid', 'ipc']],
    ['SYSTEMD_NSPAWN_SHARE_SYSTEM=on', { SYSTEMD_NSPAWN_SHARE_SYSTEM: 'on' }, []],
    ['the three SHARE_NS ones together (any case)', { SYSTEMD_NSPAWN_SHARE_NS_IPC: 'Y', SYSTEMD_NSPAWN_SHARE_NS_PID: 'T', SYSTEMD_NSPAWN_SHARE_NS_UTS: 'YES' }, []],
    ['IPC and UTS shared, PID not', { SYSTEMD_NSPAWN_SHARE_NS_IPC: '1', SYSTEMD_NSPAWN_SHARE_NS_UTS: '1', SYSTEMD_NSPAWN_SHARE_NS_PID: '0' }, ['pid']],
    ['all false', { SYSTEMD_NSPAWN_SHARE_NS_IPC: '0', SYSTEMD_NSPAWN_SHARE_NS_PID: 'no', SYSTEMD_NSPAWN_SHARE_NS_UTS: 'off', SYSTEMD_NSPAWN_SHARE_SYSTEM: 'false' }, ALL],
    ['SHARE_SYSTEM=0 is read last: it wins over SHARE_NS_PID=1', { SYSTEMD_NSPAWN_SHARE_NS_PID: '1', SYSTEMD_NSPAWN_SHARE_SYSTEM: '0' }, ALL],
    ['SHARE_SYSTEM=1 wins over SHARE_NS_UTS=0', { SYSTEMD_NSPAWN_SHARE_NS_UTS: 'n', SYSTEMD_NSPAWN_SHARE_SYSTEM: '1' }, []],
  ];
  for (const [what, env, own] of CASES)
    it(`${what}: the host's namespaces shared, the hostname set only in a UTS namespace of its own`, async () => {
      await probeBoth(env, own);
    });

  it('--share-system: all three shared, with 252\'s warning first', async () => {
    await probeBoth({}, [], ['--share-system'], [WARNING]);
  });

  it('the variables are read after the options: SHARE_NS_PID=0 takes the PID namespace back from --share-system', async () => {
    await probeBoth({ SYSTEMD_NSPAWN_SHARE_NS_PID: '0' }, ['pid'], ['--share-system'], [WARNING]);
  });

  it('--hostname= is not set either without a UTS namespace', async () => {
    const seen = await probeBoth({ SYSTEMD_NSPAWN_SHARE_NS_UTS: '1' }, ['pid', 'ipc'], ['--hostname=sharens-cli']);
    expect(seen.nspawn.lines).toContain(`hostname: ${hostHostname()}`);
    // the contrast: with its own UTS namespace the name is set
    const own = await runs.bothDirectory(['--hostname=sharens-cli', '/bin/hostname']);
    expect(own.nspawn).toEqual(own['systemd-nspawn']);
    expect(own.nspawn).toEqual({ status: 0, lines: ['sharens-cli'], stderr: [] });
  });

  describe('values that are not booleans', () => {
    const BAD: Array<[string, string]> = [
      ['SYSTEMD_NSPAWN_SHARE_NS_IPC', 'maybe'],
      ['SYSTEMD_NSPAWN_SHARE_NS_PID', ''],
      ['SYSTEMD_NSPAWN_SHARE_NS_UTS', ' 1'],
      ['SYSTEMD_NSPAWN_SHARE_SYSTEM', '2'],
    ];
    for (const [name, value] of BAD)
      it(`${name}=${JSON.stringify(value)}: refused naming the variable, nothing run`, async () => {
        const seen = await runs.bothDirectory(PROBE, { [name]: value });
        expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
        expect(seen.nspawn).toEqual({ status: 1, lines: [], stderr: [`Failed to parse $${name}: Invalid argument`] });
      });

    it('the first bad one in 252\'s order is named; --share-system warns before; --help does not read them', async () => {
      const env = { SYSTEMD_NSPAWN_SHARE_SYSTEM: 'x', SYSTEMD_NSPAWN_SHARE_NS_UTS: 'yy' };
      const seen = await runs.bothDirectory(['--share-system', ...PROBE], env);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn).toEqual({ status: 1, lines: [], stderr: [WARNING, 'Failed to parse $SYSTEMD_NSPAWN_SHARE_NS_UTS: Invalid argument'] });
      const help = await runs.bothDirectory(['--help'], env);
      expect(help.nspawn.status).toBe(0);
      expect(help['systemd-nspawn'].status).toBe(0);
      expect(help.nspawn.stderr).toEqual(help['systemd-nspawn'].stderr);
      expect(help.nspawn.stderr).toEqual([]);
    });
  });

  describe('without a PID or UTS namespace: -b and -a refused, no registration', () => {
    const REFUSING: Array<[string, NodeJS.ProcessEnv, string[], string[]]> = [
      ['SHARE_NS_PID', { SYSTEMD_NSPAWN_SHARE_NS_PID: '1' }, [], []],
      ['SHARE_NS_UTS', { SYSTEMD_NSPAWN_SHARE_NS_UTS: '1' }, [], []],
      ['SHARE_SYSTEM', { SYSTEMD_NSPAWN_SHARE_SYSTEM: '1' }, [], []],
      ['--share-system', {}, ['--share-system'], [WARNING]],
    ];
    for (const [what, env, args, warnings] of REFUSING)
      for (const flag of ['-b', '-a'])
        it(`${what}: ${flag}`, async () => {
          const seen = await runs.bothDirectory([...args, flag], env);
          expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
          expect(seen.nspawn).toEqual({ status: 1, lines: [], stderr: [...warnings, REFUSAL] });
        });

    it('with the IPC namespace shared only, -a runs (the stub init as PID 1)', async () => {
      const seen = await runs.bothDirectory(['-a', '/bin/sh', '-c', 'echo "pid: $$"; exit 4'], { SYSTEMD_NSPAWN_SHARE_NS_IPC: '1' });
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn).toEqual({ status: 4, lines: ['pid: 2'], stderr: [] });
    });

    it('--register=yes is turned off: the run needs no machined (252 would fail without a system bus)', async () => {
      const hostHasSystemBus = existsSync('/run/dbus/system_bus_socket');
      for (const env of [{ SYSTEMD_NSPAWN_SHARE_NS_PID: '1' }, { SYSTEMD_NSPAWN_SHARE_NS_UTS: '1' }]) {
        const seen = await runs.bothDirectory(['--register=yes', '/bin/sh', '-c', 'exit 6'], env);
        expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
        expect(seen.nspawn).toEqual({ status: 6, lines: [], stderr: [] });
      }
      // with both namespaces 252 registers: on a host without a system bus that fails (the contrast that makes the
      // check above mean something there)
      if (!hostHasSystemBus) {
        const seen = await runs.runDirectory('systemd-nspawn', ['--register=yes', '/bin/sh', '-c', 'exit 6'], { SYSTEMD_NSPAWN_SHARE_NS_IPC: '1' });
        expect(seen).toMatchObject({ status: 1, stderr: expect.arrayContaining(['Failed to open system bus: No such file or directory']) });
      }
    });
  });

  describe('with -U', () => {
    it('the host\'s IPC namespace: runs under both (/dev/mqueue, which it may not mount, is not fatal)', async () => {
      const probe = 'echo "pid: $$"; [ -d /dev/mqueue ] && echo "mqueue dir"; grep -c " /dev/mqueue " /proc/self/mountinfo; exit 7';
      const seen = await runs.bothDirectory(['-U', '/bin/sh', '-c', probe], { SYSTEMD_NSPAWN_SHARE_NS_IPC: '1' });
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn).toEqual({ status: 7, lines: ['pid: 1', 'mqueue dir', '0'], stderr: [] });
      // with its own IPC namespace the mqueue is mounted
      const own = await runs.bothDirectory(['-U', '/bin/sh', '-c', probe]);
      expect(own.nspawn).toEqual(own['systemd-nspawn']);
      expect(own.nspawn).toEqual({ status: 7, lines: ['pid: 1', 'mqueue dir', '1'], stderr: [] });
    });

    it('a known difference: the host\'s PID namespace fails under both on /proc, in other words', async () => {
      // a user namespace may not mount the proc of a PID namespace it does not own (EPERM): 252 words it as its
      // mount_verbose() does and adds "Child died too early.", nspawn's helper says which mount() failed
      const seen = await runs.bothDirectory(['-U', '/bin/sh', '-c', 'exit 7'], { SYSTEMD_NSPAWN_SHARE_NS_PID: '1' });
      expect(seen['systemd-nspawn']).toEqual({
        status: 1,
        lines: [],
        stderr: ['Failed to mount proc (type proc) on /proc (MS_NOSUID|MS_NODEV|MS_NOEXEC ""): Operation not permitted', 'Child died too early.'],
      });
      expect(seen.nspawn).toEqual({ status: 1, lines: [], stderr: ['mount(proc proc on /proc): Operation not permitted'] });
    });
  });

  describe('against an OCI bundle\'s linux.namespaces (read after the variables, as a .nspawn file is)', () => {
    const bundle = (own: readonly Own[]) => ({
      ociVersion: '1.0.0',
      root: { path: ROOT },
      hostname: 'oci-host',
      process: { args: PROBE, terminal: false },
      linux: { namespaces: [{ type: 'mount' }, { type: 'cgroup' }, ...own.map((type) => ({ type }))] },
    });
    const compare = async (own: readonly Own[], args: string[], env: NodeJS.ProcessEnv, expected: readonly Own[], stderr: string[] = []) => {
      const seen = await runs.both(bundle(own), args, env);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn).toMatchObject({ status: 5, stderr });
      expect(withoutMounts(seen.nspawn.lines)).toEqual(expectedProbeLines(expected, 'oci-host'));
    };

    it('--share-system does not keep them out: the bundle\'s three namespaces win', async () => {
      await compare(ALL, ['--share-system'], {}, ALL, [WARNING]);
    });
    it('a variable keeps them out: SHARE_NS_PID=1 against a bundle with all three, SHARE_NS_PID=0 against one with none', async () => {
      await compare(ALL, [], { SYSTEMD_NSPAWN_SHARE_NS_PID: '1' }, ['ipc', 'uts']);
      await compare([], [], { SYSTEMD_NSPAWN_SHARE_NS_PID: '0' }, ALL);
    });
    it('--settings=override lets the bundle win over a variable', async () => {
      await compare(ALL, ['--settings=override'], { SYSTEMD_NSPAWN_SHARE_SYSTEM: '1' }, ALL);
    });
  });
});
