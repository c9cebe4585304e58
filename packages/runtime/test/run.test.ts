/**
 * Root integration tests: real namespaces, mounts and the native helper on a busybox tree.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nodePrepareEnv, nodeTree, prepareContainer, runContainer, type ContainerExtension, type RunHooks } from '../src/index.js';
import type { Settings } from '@nspawn/settings';
import { captureFiles, makeTree, mountsUnder, requireRoot } from './helpers.js';

beforeAll(requireRoot);

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

async function run(settings: Settings, hooks?: Partial<RunHooks>, extensions: ContainerExtension[] = []) {
  const t = makeTree();
  cleanups.push(t.cleanup);
  const cap = captureFiles(t.dir);
  cleanups.push(cap.close);
  const log: string[] = [];
  const prepared = prepareContainer({ consoleMode: 'pipe', ...settings, directory: t.root }, nodePrepareEnv(nodeTree));
  const code = await runContainer(prepared, { log: (l) => log.push(l), ...hooks }, undefined, cap.stdio, extensions);
  return { code, ...cap.read(), log, tree: t };
}
const sh = (script: string): Settings => ({ parameters: ['/bin/sh', '-c', script] });

describe('running a command', () => {
  it('exit codes pass through, 133 becomes 1', async () => {
    expect((await run(sh('exit 0'))).code).toBe(0);
    expect((await run(sh('exit 3'))).code).toBe(3);
    expect((await run(sh('exit 133'))).code).toBe(1);
  });

  it('is PID 1 with its own hostname, and sees the tree as /', async () => {
    const r = await run({ ...sh('echo "$$ $(hostname) $(cat /etc/os-release | grep ^ID=)"'), machineName: 'pinto' });
    expect(r.out.trim()).toBe('1 pinto ID=busybox');
  });

  it('-a puts a stub init at PID 1 and the payload at PID 2', async () => {
    const r = await run({ ...sh('echo $$; cat /proc/1/comm; exit 4'), startMode: 'pid2' });
    expect(r.out.trim().split('\n')).toEqual(['2', '(sd-stubinit)']);
    expect(r.code).toBe(4);
  });

  it('a payload killed by a signal ends the container as systemd-nspawn reports it', async () => {
    const r = await run({ ...sh('kill -SEGV $$'), startMode: 'pid2' });
    expect(r.code).toBe(255);
  });

  it('--console=read-only forwards output across a hang-up (no console open for a while), to the last byte', async () => {
    // PID 1 closes its console (the pty master then reads EIO), opens it again later, and exits right after writing
    const r = await run({
      ...sh('echo early; exec 0<&- 1>&- 2>&-; sleep 0.3; echo late >/dev/console; sleep 0.2; printf last >/dev/console'),
      consoleMode: 'read-only',
    });
    expect(r.code).toBe(0);
    expect(r.out.replace(/\r/g, '')).toBe('early\nlate\nlast\n');
  });

  it('a missing command is one clear line and exit 1', async () => {
    const r = await run({ parameters: ['/nope'] });
    expect(r.code).toBe(1);
    expect(r.log).toContain('execv(/nope) failed: No such file or directory (ENOENT)');
  });

  it('--user switches to the tree user, with HOME and groups', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    writeFileSync(`${t.root}/etc/passwd`, 'root:x:0:0:root:/root:/bin/sh\nal:x:1000:100:Al:/home/al:/bin/sh\n');
    writeFileSync(`${t.root}/etc/group`, 'root:x:0:\nusers:x:100:\nwheel:x:10:al\n');
    const cap = captureFiles(t.dir);
    cleanups.push(cap.close);
    const p = prepareContainer(
      { consoleMode: 'pipe', directory: t.root, user: 'al', parameters: ['/bin/sh', '-c', 'id; echo $HOME $USER; pwd'] },
      nodePrepareEnv(nodeTree),
    );
    expect(await runContainer(p, { log: () => {} }, undefined, cap.stdio)).toBe(0);
    expect(cap.read().out.split('\n')).toEqual(['uid=1000(al) gid=100(users) groups=10(wheel)', '/home/al al', '/', '']);
    expect(existsSync(`${t.root}/home/al`)).toBe(true);
  });
});

describe('whoever attaches to PID 1 (a registration) sees the container', () => {
  // nspawnd registers a machine from attach() and reads its os-release through /proc/PID/root: as with
  // systemd-nspawn 252 (whose inner child is cloned in the container's root), PID 1 is in its root by then
  for (const [what, extra] of [
    ['plain', {}],
    ['--private-users=BASE:COUNT', { privateUsers: { mode: 'fixed', shift: 1879048192, range: 65536 }, resolvConf: 'off', timezone: 'off', linkJournal: 'no' }],
    ['--private-network', { privateNetwork: true }],
  ] as Array<[string, Partial<Settings>]>) {
    it(`${what}: attach() reads the tree's os-release through /proc/PID/root, and PID 1 has not run the payload yet`, async () => {
      const seen: Array<{ os: string; ran: boolean }> = [];
      const probe: ContainerExtension = {
        name: 'probe',
        plan: (_run, plan) => {
          plan.sync = true;
        },
        attach: (_run, pid) => {
          seen.push({
            os: readFileSync(`/proc/${pid}/root/etc/os-release`, 'utf8').match(/^ID=(.*)$/m)?.[1] ?? '',
            ran: readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('/bin/sh'),
          });
        },
      };
      const r = await run({ ...sh('echo ran'), ...extra }, undefined, [probe]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toBe('ran\n');
      expect(seen).toEqual([{ os: 'busybox', ran: false }]);
    });
  }
});

describe('mounts stay inside', () => {
  it('nothing mounted for the container shows up in the host, during the run or after it', async () => {
    let during: string[] = [];
    let inside = '';
    const r = await run(sh('sleep 0.3'), {
      onStart: (pid) => {
        setTimeout(() => {
          during = mountsUnder('/var/tmp');
          try {
            inside = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
          } catch {
            inside = '';
          }
        }, 150);
      },
    });
    expect(r.code).toBe(0);
    expect(during.filter((m) => m.includes('nspawn-test-'))).toEqual([]);
    expect(inside).toContain(' /proc ');
    expect(mountsUnder(r.tree.dir)).toEqual([]);
  });

  it('a failed start leaves nothing mounted and says what failed', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    mkdirSync(`${t.dir}/src`);
    writeFileSync(`${t.root}/file`, '');
    const cap = captureFiles(t.dir);
    cleanups.push(cap.close);
    const log: string[] = [];
    // a directory bound over a file in a tree that is not a directory: mount(2) refuses
    const p = prepareContainer(
      { consoleMode: 'pipe', directory: t.root, customMounts: [{ type: 'bind', source: `${t.dir}/src`, destination: '/file/sub', readOnly: false, recursive: true }], parameters: ['/bin/true'] },
      nodePrepareEnv(nodeTree),
    );
    expect(await runContainer(p, { log: (l) => log.push(l) }, undefined, cap.stdio)).toBe(1);
    expect(log.join('\n')).toMatch(/\/file\/sub/);
    expect(mountsUnder(t.dir)).toEqual([]);
  });

  it('--bind, --bind-ro, --tmpfs and --read-only', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    mkdirSync(`${t.dir}/share`);
    writeFileSync(`${t.dir}/share/hello`, 'hi\n');
    const cap = captureFiles(t.dir);
    cleanups.push(cap.close);
    const script = [
      'cat /mnt/rw/hello',
      'touch /mnt/rw/new && echo rw-ok',
      'touch /mnt/ro/x 2>/dev/null || echo ro-refused',
      'touch /scratch/y && echo tmpfs-ok',
      'touch /etc/z 2>/dev/null || echo root-ro',
      'touch /tmp/t && echo tmp-rw',
    ].join('; ');
    const p = prepareContainer(
      {
        consoleMode: 'pipe',
        directory: t.root,
        readOnly: true,
        customMounts: [
          { type: 'bind', source: `${t.dir}/share`, destination: '/mnt/rw', readOnly: false, recursive: true },
          { type: 'bind', source: `${t.dir}/share`, destination: '/mnt/ro', readOnly: true, recursive: true },
          { type: 'tmpfs', destination: '/scratch', options: 'mode=0700' },
        ],
        parameters: ['/bin/sh', '-c', script],
      },
      nodePrepareEnv(nodeTree),
    );
    // the mount points must exist in a read-only tree
    mkdirSync(`${t.root}/mnt/rw`, { recursive: true });
    mkdirSync(`${t.root}/mnt/ro`, { recursive: true });
    mkdirSync(`${t.root}/scratch`, { recursive: true });
    expect(await runContainer(p, { log: () => {} }, undefined, cap.stdio)).toBe(0);
    expect(cap.read().out.split('\n').filter(Boolean)).toEqual(['hi', 'rw-ok', 'ro-refused', 'tmpfs-ok', 'root-ro', 'tmp-rw']);
    expect(existsSync(`${t.dir}/share/new`)).toBe(true);
  });

  it('--overlay writes to the upper directory, never the lower', async () => {
    const t = makeTree();
    cleanups.push(t.cleanup);
    mkdirSync(`${t.dir}/lower`);
    mkdirSync(`${t.dir}/upper`);
    writeFileSync(`${t.dir}/lower/a`, 'lower\n');
    const cap = captureFiles(t.dir);
    cleanups.push(cap.close);
    const p = prepareContainer(
      {
        consoleMode: 'pipe',
        directory: t.root,
        customMounts: [{ type: 'overlay', lowers: [`${t.dir}/lower`], upper: `${t.dir}/upper`, destination: '/o', readOnly: false }],
        parameters: ['/bin/sh', '-c', 'cat /o/a; echo new > /o/b'],
      },
      nodePrepareEnv(nodeTree),
    );
    expect(await runContainer(p, { log: () => {} }, undefined, cap.stdio)).toBe(0);
    expect(cap.read().out).toBe('lower\n');
    expect(readFileSync(`${t.dir}/upper/b`, 'utf8')).toBe('new\n');
    expect(existsSync(`${t.dir}/lower/b`)).toBe(false);
    // the work directory made for the run is gone again
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(t.dir);
  });
});

describe('kernel interfaces', () => {
  it('/proc/sys and /sys are read-only, /proc/kmsg is masked', async () => {
    const r = await run(sh('echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo procsys-ro; touch /sys/x 2>/dev/null || echo sys-ro; cat /proc/kallsyms 2>/dev/null | head -c 1 | wc -c'));
    expect(r.out.split('\n').filter(Boolean)).toEqual(['procsys-ro', 'sys-ro', '0']);
  });

  it('--private-network gives only lo, up', async () => {
    const r = await run({ ...sh('ls /sys/class/net; cat /sys/class/net/lo/operstate'), privateNetwork: true });
    expect(r.out.split('\n').filter(Boolean)).toEqual(['lo', 'unknown']);
  });

  it('--private-users=BASE:COUNT maps root to BASE', async () => {
    // the tree is owned by the host's root, which the user namespace does not map: no writes into it
    // (systemd does those before entering the namespace; ownership comes with @nspawn/uidrange)
    const r = await run({
      ...sh('cat /proc/self/uid_map; id -u'),
      privateUsers: { mode: 'fixed', shift: 1879048192, range: 65536 },
      resolvConf: 'off',
      timezone: 'off',
      linkJournal: 'no',
    });
    expect(r.log).toEqual([]);
    expect(r.out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/).join(' '))).toEqual(['0 1879048192 65536', '0']);
  });

  it('--personality=x86 reports i686', async () => {
    const r = await run({ ...sh('uname -m'), personality: 'x86' });
    expect(r.out.trim()).toBe('i686');
  });

  it('--no-new-privileges, --oom-score-adjust and --cpu-affinity', async () => {
    const r = await run({
      ...sh('grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj; grep Cpus_allowed_list /proc/self/status'),
      noNewPrivileges: true,
      oomScoreAdjust: 123,
      cpuAffinity: [0],
    });
    expect(r.out.split('\n').filter(Boolean).map((l) => l.replace(/\s+/g, ' '))).toEqual(['NoNewPrivs: 1', '123', 'Cpus_allowed_list: 0']);
  });
});
