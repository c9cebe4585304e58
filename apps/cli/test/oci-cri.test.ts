// Root: the path Kubernetes takes. containerd 1.6 (Debian's) started here with its CRI plugin and a runtime handler
// "nspawn" (runtime_type io.containerd.runc.v2, BinaryName = nspawn-oci behind an argv-logging wrapper), a pause
// image built here (a static /pause from gcc -static) as its sandbox_image, and a small CRI client (gRPC, the CRI
// v1 proto) that runs a pod sandbox and a container in it with runtime_handler "nspawn". The pod uses the host's
// network (NamespaceMode NODE): no CNI, nothing of the host's network is touched; IPC is the pod's, so the
// container joins the sandbox's namespace by its /proc path, as every pod's containers do.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from './helpers/busybox-tree.js';
import {
  argvLoggingRuntime, type Containerd, cgroupDirs, dockerArchive, mountsUnder, nsOf, pauseTree, removeCgroupTrees, requireContainerd,
  startContainerd,
} from './helpers/containerd.js';
import { type CriClient, criClient } from './helpers/cri.js';

const PAUSE = 'localhost/cr-pause:1';
const BUSYBOX = 'localhost/cr-busybox:1';
// the pods' cgroup parent: every container's cgroupsPath is under it (removed after, in every hierarchy)
const CGROUP_PARENT = `cr-pods-${process.pid}`;
let dir = '';
let cd: Containerd | undefined;
let cri: CriClient | undefined;
let argvLog = '';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  requireContainerd();
  dir = mkdtempSync(join(tmpdir(), 'cr-cri-'));
  argvLog = join(dir, 'argv.log');
  const runtime = argvLoggingRuntime(dir, argvLog);
  makeBusyboxTree(join(dir, 'busybox'), { probe: false });
  await dockerArchive(join(dir, 'busybox'), join(dir, 'busybox.tar'), BUSYBOX, { Cmd: ['/bin/sh'] });
  await pauseTree(join(dir, 'pause'));
  await dockerArchive(join(dir, 'pause'), join(dir, 'pause.tar'), PAUSE, { Entrypoint: ['/pause'] });
  cd = await startContainerd(join(dir, 'containerd'), { sandboxImage: PAUSE, handlers: { nspawn: runtime } });
  for (const tar of ['pause.tar', 'busybox.tar']) {
    const imp = await cd.ctr(['images', 'import', join(dir, tar)], 'k8s.io');
    if (imp.exitCode !== 0) throw new Error(`ctr images import ${tar}: ${imp.all}`);
  }
  cri = criClient(cd.address);
}, 180000);

afterAll(async () => {
  cri?.close();
  const errors: string[] = [];
  try {
    await cd?.stop();
  } catch (e) {
    errors.push((e as Error).message);
  }
  const left = removeCgroupTrees(CGROUP_PARENT);
  if (left.length > 0) errors.push(`cgroups left: ${left.join(' ')}`);
  if (dir && mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
  if (errors.length > 0) throw new Error(errors.join('; '));
}, 180000);

describe('CRI: a pod with runtime_handler "nspawn" through containerd (root)', () => {
  it('containerd answers the CRI Version call and lists the images imported here', async () => {
    const v = await cri!.runtime<{ runtime_name: string; runtime_api_version: string }>('Version', { version: 'v1' });
    expect(v.runtime_name).toBe('containerd');
    expect(v.runtime_api_version).toBe('v1');
    const images = await cri!.image<{ images: Array<{ repo_tags: string[] }> }>('ListImages', {});
    const tags = images.images.flatMap((i) => i.repo_tags);
    expect(tags).toEqual(expect.arrayContaining([PAUSE, BUSYBOX]));
  });

  it('runs a pod sandbox (the local pause image) and a container in it on nspawn-oci; stops and removes them', async () => {
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    const sandboxConfig = {
      metadata: { name: 'cr-pod', uid: `cr-uid-${process.pid}`, namespace: 'cr-test', attempt: 0 },
      // no hostname: the kubelet sends none for a host-network pod (no UTS namespace of its own to set it in;
      // runc and nspawn-oci refuse a hostname without one)
      log_directory: logs,
      labels: { app: 'cr' },
      linux: {
        cgroup_parent: `/${CGROUP_PARENT}`,
        security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
      },
    };
    const run = await cri!.runtime<{ pod_sandbox_id: string }>('RunPodSandbox', { config: sandboxConfig, runtime_handler: 'nspawn' });
    const podId = run.pod_sandbox_id;
    expect(podId).toMatch(/^[0-9a-f]{64}$/);
    try {
      const st = await cri!.runtime<{ status: { state: string }; info: Record<string, string> }>('PodSandboxStatus', { pod_sandbox_id: podId, verbose: true });
      expect(st.status.state).toBe('SANDBOX_READY');
      const info = JSON.parse(st.info.info!) as { pid: number; runtimeHandler: string; runtimeOptions?: { binary_name?: string } };
      expect(info.runtimeHandler).toBe('nspawn');
      // the sandbox's task is the pause binary, PID 1 of its own PID and IPC namespaces, in the pod's cgroup
      expect(readFileSync(`/proc/${info.pid}/comm`, 'utf8').trim()).toBe('pause');
      expect(readFileSync(`/proc/${info.pid}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
      expect(nsOf(info.pid, 'ipc')).not.toBe(nsOf('self', 'ipc'));
      expect(nsOf(info.pid, 'net')).toBe(nsOf('self', 'net'));
      expect(readFileSync(`/proc/${info.pid}/cgroup`, 'utf8')).toContain(`/${CGROUP_PARENT}/${podId}`);
      // nspawn-oci created it: the shim called the wrapper for the sandbox's id
      expect(readFileSync(argvLog, 'utf8')).toMatch(new RegExp(`create --bundle \\S+ --pid-file \\S+ ${podId}$`, 'm'));

      // the kubelet's default (a PID namespace of the container's own), and shareProcessNamespace (the pod's: joined
      // by /proc/PID/ns/pid of the sandbox, whose pause is then its PID 1)
      for (const [pidMode, pid1] of [['CONTAINER', 'sh'], ['POD', 'pause']] as const) {
        const name = `cr-c-${pidMode.toLowerCase()}`;
        const created = await cri!.runtime<{ container_id: string }>('CreateContainer', {
          pod_sandbox_id: podId,
          sandbox_config: sandboxConfig,
          config: {
            metadata: { name, attempt: 0 },
            image: { image: BUSYBOX },
            command: ['/bin/sh', '-c', 'echo hello from the pod; echo ipc=$(readlink /proc/self/ns/ipc); echo pid1=$(cat /proc/1/comm); exit 3'],
            log_path: `${name}.log`,
            linux: { security_context: { namespace_options: { network: 'NODE', pid: pidMode, ipc: 'POD' } } },
          },
        });
        const cid = created.container_id;
        await cri!.runtime('StartContainer', { container_id: cid });
        let status: { state: string; exit_code: number; reason: string } | undefined;
        for (let i = 0; i < 200; i++) {
          status = (await cri!.runtime<{ status: { state: string; exit_code: number; reason: string } }>('ContainerStatus', { container_id: cid })).status;
          if (status.state === 'CONTAINER_EXITED') break;
          await sleep(100);
        }
        expect(status?.state).toBe('CONTAINER_EXITED');
        expect(status?.exit_code).toBe(3);
        // its stdout reached containerd's CRI log (the kubelet's format: TIME STREAM TAG TEXT)
        const log = readFileSync(join(logs, `${name}.log`), 'utf8');
        expect(log).toMatch(/ stdout F hello from the pod$/m);
        // it joined the sandbox's IPC namespace (by /proc/PID/ns/ipc)
        expect(log).toContain(`ipc=${nsOf(info.pid, 'ipc')}`);
        expect(log, log).toMatch(new RegExp(` stdout F pid1=${pid1}$`, 'm'));
        expect(readFileSync(argvLog, 'utf8')).toMatch(new RegExp(`create --bundle \\S+ --pid-file \\S+ ${cid}$`, 'm'));
        await cri!.runtime('RemoveContainer', { container_id: cid });
      }
      // a running container in the pod's PID namespace (the CRI's default): ExecSync (what the kubelet's exec probes
      // call) and StopContainer (SIGTERM: sleep is not a PID 1 there, so it dies of it)
      const long = await cri!.runtime<{ container_id: string }>('CreateContainer', {
        pod_sandbox_id: podId,
        sandbox_config: sandboxConfig,
        config: { metadata: { name: 'cr-long', attempt: 0 }, image: { image: BUSYBOX }, command: ['sleep', '300'], log_path: 'cr-long.log', linux: {} },
      });
      await cri!.runtime('StartContainer', { container_id: long.container_id });
      const probe = await cri!.runtime<{ stdout: Buffer; stderr: Buffer; exit_code: number }>('ExecSync', {
        container_id: long.container_id,
        cmd: ['/bin/sh', '-c', 'echo probe in $(cat /proc/1/comm); echo oops >&2; exit 4'],
        timeout: 20,
      });
      expect(probe.stdout.toString()).toBe('probe in pause\n');
      expect(probe.stderr.toString()).toBe('oops\n');
      expect(probe.exit_code).toBe(4);
      await cri!.runtime('StopContainer', { container_id: long.container_id, timeout: 1 });
      const ls = await cri!.runtime<{ status: { state: string; exit_code: number } }>('ContainerStatus', { container_id: long.container_id });
      expect(ls.status.state).toBe('CONTAINER_EXITED');
      expect(ls.status.exit_code).toBe(128 + 15);
      await cri!.runtime('RemoveContainer', { container_id: long.container_id });
      const list = await cri!.runtime<{ containers: unknown[] }>('ListContainers', { filter: { pod_sandbox_id: podId } });
      expect(list.containers).toEqual([]);
    } finally {
      await cri!.runtime('StopPodSandbox', { pod_sandbox_id: podId }).catch(() => {});
      await cri!.runtime('RemovePodSandbox', { pod_sandbox_id: podId }).catch(() => {});
    }
    const pods = await cri!.runtime<{ items: unknown[] }>('ListPodSandbox', {});
    expect(pods.items).toEqual([]);
    // nothing of nspawn-oci's is left: its state (the handler's Root), the rootfs mounts, the pod's cgroups
    expect(existsSync(join(dir, 'containerd/nspawn-root/k8s.io')) ? readFileSyncDir(join(dir, 'containerd/nspawn-root/k8s.io')) : []).toEqual([]);
    expect(mountsUnder(join(dir, 'containerd/state'))).toEqual([]);
    expect(cgroupDirs(`${CGROUP_PARENT}/${podId}`)).toEqual([]);
  });
});

function readFileSyncDir(d: string): string[] {
  return (process.getBuiltinModule('node:fs') as typeof import('node:fs')).readdirSync(d);
}
