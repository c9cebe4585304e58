/**
 * --oci-bundle= whose linux.namespaces lacks the PID, IPC or UTS namespace, side by side with systemd-nspawn 252
 * (nspawn-oci.c oci_namespaces() keeps only the ones given in arg_clone_ns_flags): the container shares the host's
 * namespace instead, gets no hostname without a UTS namespace of its own (setup_hostname()), is not registered and
 * refuses -b and -a without a PID or UTS namespace (verify_arguments()). Each missing alone and all together: what
 * the container sees (its PID, the host's processes, /proc/self/ns/* against the host's, the hostname), the exit
 * status, the host's hostname before and after, the refusals, and that nothing is left behind; also the audit login
 * UID (reset only with a PID namespace of its own) and linux.sysctl (never applied by 252, so never checked per
 * namespace either).
 *
 * Needs root and /usr/bin/systemd-nspawn; it fails, never skips, without them.
 */
import { execa } from 'execa';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMON_FLAGS, TOOL_ENV, toolCommand, TOOLS } from './helpers/containers.js';
import { expectedProbeLines, guardHostHostname, hostHostname, namespaceProbe, type Own, withoutMounts } from './helpers/namespace-probe.js';
import { OciBundleRuns, stderrLines } from './helpers/oci-bundle.js';

const ROOT = 'nt-ocins-root';
const runs = new OciBundleRuns(ROOT, 'nt-ocins-');
guardHostHostname();
beforeAll(() => runs.start());
afterAll(() => {
  expect(runs.finish()).toEqual([]);
});

/** what the container sees, in lines that do not depend on the host's PIDs or namespace numbers */
const PROBE = namespaceProbe(5);

/** a bundle with a mount and a cgroup namespace and those of OWN (252 needs the cgroup one on a cgroup v1 host) */
const config = (own: readonly Own[], o: Record<string, unknown> = {}, args = ['/bin/sh', '-c', PROBE]) => ({
  ociVersion: '1.0.0',
  root: { path: ROOT },
  hostname: 'oci-host',
  ...o,
  process: { args, terminal: false },
  linux: { namespaces: [{ type: 'mount' }, { type: 'cgroup' }, ...own.map((type) => ({ type }))] },
});

const CASES: Array<[string, Own[]]> = [
  ['no PID namespace', ['ipc', 'uts']],
  ['no IPC namespace', ['pid', 'uts']],
  ['no UTS namespace', ['pid', 'ipc']],
  ['none of the three', []],
];

describe('--oci-bundle= without a PID, IPC or UTS namespace, as systemd-nspawn 252', () => {
  for (const [what, own] of CASES)
    it(`${what}: the host's namespace is shared, the hostname set only in a UTS namespace of its own`, async () => {
      const before = hostHostname();
      const seen = await runs.both(config(own));
      expect(hostHostname(), "the host's hostname after the runs").toBe(before);
      expect(hostname()).toBe(before);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      // what they agree on is what the bundle says (the comparison can fail)
      expect(seen.nspawn.status).toBe(5);
      expect(seen.nspawn.stderr).toEqual([]);
      expect(withoutMounts(seen.nspawn.lines)).toEqual(expectedProbeLines(own, 'oci-host'));
      expect(seen.nspawn.lines.filter((l) => l.startsWith('mount: ')).length).toBeGreaterThanOrEqual(2);
    });

  it('the command line\'s --hostname= is not set either without a UTS namespace', async () => {
    const before = hostHostname();
    const seen = await runs.both(config(['pid', 'ipc']), ['--hostname=cli-host']);
    expect(hostHostname()).toBe(before);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn.lines).toContain(`hostname: ${before}`);
  });

  it('linux.sysctl is not applied whatever the namespaces (252 never takes it: patch_sysctl() has nothing to check)', async () => {
    // keys patch_sysctl() would refuse without those namespaces, and one it never allows; a write could not reach
    // the host anyway (/proc/sys is read-only in the container when it would run)
    const sysctl = { 'kernel.hostname': 'sysctl-host', 'kernel.msgmax': '1234', 'vm.swappiness': '11' };
    const host = () => ['kernel/hostname', 'kernel/msgmax', 'vm/swappiness'].map((k) => readFileSync(`/proc/sys/${k}`, 'utf8'));
    const before = host();
    const seen = await runs.both({ ...config([]), linux: { ...config([]).linux, sysctl } });
    expect(host()).toEqual(before);
    expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
    expect(seen.nspawn).toMatchObject({ status: 5, stderr: [] });
    expect(seen.nspawn.lines).toContain(`hostname: ${before[0]!.trim()}`);
  });

  it('--settings=no keeps the bundle\'s namespaces out: all three of its own, as 252', async () => {
    // (and its root.path and process.args: the tree and the command come from the command line)
    const tree = join(runs.dir, 'settings-no', ROOT);
    cpSync(runs.template, tree, { recursive: true, verbatimSymlinks: true });
    try {
      const seen = await runs.both(config([]), ['--settings=no', '-D', tree, '/bin/sh', '-c', PROBE]);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn.lines).toEqual(expect.arrayContaining(['pid 1: yes', 'ns pid: own', 'ns ipc: own', 'ns uts: own', `hostname: ${ROOT}`]));
    } finally {
      expect(runs.leftovers(tree)).toEqual([]);
    }
  });

  describe('without a PID or UTS namespace: -b and -a refused, no registration', () => {
    for (const [what, own] of CASES.filter(([, o]) => !o.includes('pid') || !o.includes('uts')))
      for (const flag of ['-b', '-a'])
        it(`${what}: ${flag}`, async () => {
          const before = hostHostname();
          const seen = await runs.both(config(own), [flag]);
          expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
          expect(seen.nspawn).toEqual({ status: 1, lines: [], stderr: ['--boot cannot be used without namespacing.'] });
          expect(hostHostname()).toBe(before);
        });

    it('with an IPC namespace missing only, -a runs (the stub init as PID 1)', async () => {
      // -a on the command line keeps the bundle's process.args out: the command comes from there too
      const seen = await runs.both(config(['pid', 'uts']), ['-a', '/bin/sh', '-c', 'echo "pid: $$"; exit 4']);
      expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
      expect(seen.nspawn).toMatchObject({ status: 4, lines: ['pid: 2'] });
    });

    it('--register=yes is turned off: the run needs no machined (252 would fail without a system bus)', async () => {
      const hostHasSystemBus = existsSync('/run/dbus/system_bus_socket');
      for (const own of [['ipc', 'uts'], ['pid', 'ipc']] as Own[][]) {
        const seen = await runs.both(config(own, {}, ['/bin/sh', '-c', 'exit 6']), ['--register=yes']);
        expect(seen.nspawn).toEqual(seen['systemd-nspawn']);
        expect(seen.nspawn).toEqual({ status: 6, lines: [], stderr: [] });
      }
      // with both namespaces 252 registers: on a host without a system bus that fails (the contrast that makes the
      // check above mean something there; nspawn, which registers with nspawnd when one runs, does not fail)
      if (!hostHasSystemBus) {
        const seen = await runs.run('systemd-nspawn', config(['pid', 'uts'], {}, ['/bin/sh', '-c', 'exit 6']), ['--register=yes']);
        expect(seen).toMatchObject({ status: 1, stderr: expect.arrayContaining(['Failed to open system bus: No such file or directory']) });
      }
    });
  });

  it('the audit login UID: reset with a PID namespace of its own, the caller\'s kept without (reset_audit_loginuid())', async () => {
    // each tool started by a shell that first sets its own login UID (root may, unless audit made it immutable)
    const seen = {} as Record<string, string>;
    for (const own of [['pid', 'ipc', 'uts'], ['ipc', 'uts']] as Own[][])
      for (const tool of TOOLS) {
        const bundle = runs.makeBundle(tool, config(own, {}, ['/bin/sh', '-c', 'echo "loginuid: $(cat /proc/self/loginuid)"']));
        // (the reference in its own cgroup: toolCommand())
        const [cmd, pre] = toolCommand(tool);
        const r = await execa('/bin/sh', ['-c', 'echo 4242 > /proc/self/loginuid && exec "$@"', 'sh', cmd, ...pre, ...COMMON_FLAGS, '-q', `--oci-bundle=${bundle}`], {
          env: TOOL_ENV,
          extendEnv: false,
          input: '',
          reject: false,
          timeout: 20000,
        });
        expect(runs.leftovers(bundle), `${tool} left something behind`).toEqual([]);
        expect(stderrLines(String(r.stderr))).toEqual([]);
        expect(r.exitCode).toBe(0);
        seen[`${own.includes('pid') ? 'own' : 'host'} PID namespace, ${tool}`] = r.stdout.trim();
      }
    expect(seen).toEqual({
      'own PID namespace, systemd-nspawn': 'loginuid: 4294967295',
      'own PID namespace, nspawn': 'loginuid: 4294967295',
      'host PID namespace, systemd-nspawn': 'loginuid: 4242',
      'host PID namespace, nspawn': 'loginuid: 4242',
    });
  });

  it('a known difference: what the payload left running in the host\'s PID namespace outlives 252\'s run, not nspawn\'s', async () => {
    const args = ['/bin/sh', '-c', 'sleep 4271 </dev/null >/dev/null 2>&1 & echo "bg: $!"'];
    const stillRunning = (pid: number) => existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x004271\x00';
    const bgOf = (lines: string[]) => Number(lines.find((l) => l.startsWith('bg: '))?.slice(4));
    const left: number[] = [];
    try {
      const theirs = await runs.run('systemd-nspawn', config(['ipc', 'uts'], {}, args));
      const ours = await runs.run('nspawn', config(['ipc', 'uts'], {}, args));
      expect(theirs.status).toBe(0);
      expect(ours.status).toBe(0);
      const [t, o] = [bgOf(theirs.lines), bgOf(ours.lines)];
      expect(t).toBeGreaterThan(1);
      expect(o).toBeGreaterThan(1);
      if (stillRunning(t)) left.push(t);
      if (stillRunning(o)) left.push(o);
      // 252 with --keep-unit has no scope of the machine to stop; nspawn kills what is left in the machine's cgroup
      expect(left).toEqual([t]);
      // with a PID namespace of its own, the kernel ends the payload's children with it under both
      const withPid = await runs.both(config(['pid', 'ipc', 'uts'], {}, args));
      expect(withPid.nspawn).toEqual(withPid['systemd-nspawn']);
      expect(withPid.nspawn.lines).toEqual(['bg: 2']);
    } finally {
      for (const pid of left) process.kill(pid, 'SIGKILL');
    }
  });
});
