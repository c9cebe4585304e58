// Each library installs alone from its tarball into a fresh project outside the workspace, with no C
// compiler on PATH, and its README example runs there (lib/standalone.mjs; the convention is in
// CONTRIBUTING.md). The runtime's helper comes prebuilt, or is built when no prebuilt one fits.
import { chmodSync, copyFileSync, existsSync, mkdtempSync, openSync, readSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLibrary } from '../lib/standalone.mjs';
import { libraries, noCompilerEnv, packAll, tarballFiles } from '../lib/workspace.mjs';
import { readmeExample } from '../lib/readme-example.mjs';

const libs = libraries();
let work: string;
let tarballs: Map<string, string>;
let env: NodeJS.ProcessEnv;
const projects = new Map<string, string>();
/** each library's README example's output */
const outputs = new Map<string, string>();

/** CMD ARGS to completion (execa, not rejecting): { status, stdout, stderr, error } */
async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const r = await execa(cmd, args, { reject: false, stdin: 'ignore', stripFinalNewline: false, ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.env ? { env: opts.env, extendEnv: false } : {}) });
  return { status: r.exitCode, stdout: r.stdout, stderr: r.stderr, error: r.code };
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'nspawn-test-standalone-'));
  tarballs = packAll(libs, join(work, 'tarballs'));
  env = noCompilerEnv(join(work, 'bin'));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('every library', () => {
  it('is found in packages/* (the five libraries once merged)', () => {
    expect(libs.map((l) => l.name)).toEqual(expect.arrayContaining(['@nspawn/settings', '@nspawn/runtime', '@nspawn/assembly']));
  });

  it('the install environment has no C compiler', async () => {
    for (const cc of ['cc', 'gcc', 'clang', 'c99', 'x86_64-linux-gnu-gcc']) {
      const r = await run('bash', ['-c', `command -v ${cc}`], { env });
      expect(r.status, `${cc} found on the no-compiler PATH: ${r.stdout}`).not.toBe(0);
    }
    expect((await run('bash', ['-c', 'command -v node && command -v npm'], { env })).status).toBe(0);
  });

  for (const lib of libs) {
    it(`${lib.name}: README has an example`, () => {
      expect(readmeExample(readFileSync(join(lib.dir, 'README.md'), 'utf8')), `${lib.name} README.md`).toBeDefined();
    });
    it(`${lib.name}: installs alone from its tarball and its README example runs`, async () => {
      const { project, output } = await checkLibrary(lib, tarballs, work, env);
      projects.set(lib.name, project);
      outputs.set(lib.name, output);
      // nothing of the workspace leaks in: every @nspawn package came from a tarball
      const installed = join(project, 'node_modules', ...lib.name.split('/'));
      expect(existsSync(join(installed, 'package.json'))).toBe(true);
      expect(readFileSync(join(installed, 'package.json'), 'utf8')).not.toMatch(/workspace:/);
    });
  }
});

describe('@nspawn/net example', () => {
  it('gave the container side (a netns of its own) an address and reached the host side from it; nothing is left', async () => {
    const out = outputs.get('@nspawn/net');
    expect(out, 'the @nspawn/net example did not run').toBeDefined();
    const made = /^ve-nt-readme (\d+\.\d+\.\d+\.\d+), host0 (\d+\.\d+\.\d+\.\d+)\/28, DHCP on$/m.exec(out!);
    expect(made, out).not.toBeNull();
    expect(out).toContain(`container side: ${made![2]}/28\n`);
    expect(out).toContain(`container reached the host at ${made![1]}\n`);
    // cleaned up: the link, the example's nft table, its records
    expect(existsSync('/sys/class/net/ve-nt-readme')).toBe(false);
    expect((await run('nft', ['list', 'table', 'ip', 'nt_readme'])).status).not.toBe(0);
    const state = join(projects.get('@nspawn/net')!, 'net-state');
    expect((await run('bash', ['-c', `ls ${state}/*.json 2>/dev/null | wc -l`])).stdout.trim()).toBe('0');
  });
});

/** ELF e_machine of a file: 62 x86-64, 183 aarch64. */
function elfMachine(file: string): number {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(20);
  readSync(fd, b, 0, 20, 0);
  closeSync(fd);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  return b.readUInt16LE(18);
}

describe.skipIf(!libs.some((l) => l.name === '@nspawn/runtime'))('@nspawn/runtime helper', () => {
  const installedRuntime = () => join(projects.get('@nspawn/runtime') ?? '', 'node_modules/@nspawn/runtime');

  it('the tarball ships a static helper for x64 and arm64', async () => {
    const files = tarballFiles(tarballs.get('@nspawn/runtime')!);
    expect(files).toEqual(expect.arrayContaining(['native/prebuilt/nspawn-helper-linux-x64', 'native/prebuilt/nspawn-helper-linux-arm64']));
    // and the sys addon the hand-over and -U use, per architecture
    expect(files).toEqual(expect.arrayContaining(['native/prebuilt/nspawn-sys-linux-x64.node', 'native/prebuilt/nspawn-sys-linux-arm64.node']));
    const rt = installedRuntime();
    expect(elfMachine(join(rt, 'native/prebuilt/nspawn-sys-linux-x64.node'))).toBe(62);
    expect(elfMachine(join(rt, 'native/prebuilt/nspawn-sys-linux-arm64.node'))).toBe(183);
    expect(elfMachine(join(rt, 'native/prebuilt/nspawn-helper-linux-x64'))).toBe(62);
    expect(elfMachine(join(rt, 'native/prebuilt/nspawn-helper-linux-arm64'))).toBe(183);
    for (const a of ['x64', 'arm64']) {
      const out = (await execa('file', [join(rt, `native/prebuilt/nspawn-helper-linux-${a}`)])).stdout;
      expect(out).toMatch(/statically linked/);
    }
  });

  it('the arm64 helper runs (on an emulated arm64: qemu-aarch64-static, from scripts/setup.sh --test)', async () => {
    // (an executable copy: the tarball's files lose their exec bit, which the runtime gives back when it installs one)
    const exe = join(mkdtempSync('/tmp/nspawn-test-arm64-'), 'nspawn-helper');
    try {
      // (inside the try: a missing arm64 helper must not leave the directory behind)
      copyFileSync(join(installedRuntime(), 'native/prebuilt/nspawn-helper-linux-arm64'), exe);
      chmodSync(exe, 0o755);
      // its peercred mode on a stdin that is no socket: the C library's error, through the helper's own message
      const r = await run('qemu-aarch64-static', [exe, 'peercred']);
      expect(r.error, 'qemu-aarch64-static is missing: apt-get install qemu-user-static').toBeUndefined();
      expect(r.stderr).toBe('nspawn-helper peercred: Socket operation on non-socket\n');
      expect(r.status).toBe(1);
    } finally {
      rmSync(dirname(exe), { recursive: true, force: true });
    }
  });
  it('installed without a compiler: the prebuilt helper for this machine was put in place and runs', async () => {
    const rt = installedRuntime();
    const helper = join(rt, 'native/build/nspawn-helper');
    expect(readFileSync(helper).equals(readFileSync(join(rt, `native/prebuilt/nspawn-helper-linux-${process.arch}`)))).toBe(true);
    const r = await run(helper, []);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no plan on fd 3/);
    // the sys addon too: the prebuilt one, which loads into this Node
    const addon = join(rt, 'native/build/nspawn-sys.node');
    expect(readFileSync(addon).equals(readFileSync(join(rt, `native/prebuilt/nspawn-sys-linux-${process.arch}.node`)))).toBe(true);
    const m = { exports: {} as { execve?: unknown } };
    process.dlopen(m, addon);
    expect(typeof m.exports.execve).toBe('function');
  });

  it('no prebuilt helper for the architecture and no compiler: a clear error, no helper left', async () => {
    const rt = installedRuntime();
    rmSync(join(rt, 'native/build'), { recursive: true, force: true });
    const r = await run('node', ['scripts/build-helper.mjs'], { cwd: rt, env: { ...env, NSPAWN_HELPER_ARCH: 'riscv64' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no prebuilt helper for riscv64/);
    expect(r.stderr).toMatch(/install a C compiler/);
    expect(existsSync(join(rt, 'native/build/nspawn-helper'))).toBe(false);
  });

  it('a prebuilt helper built from other C sources (a checkout after a change) is not used: built instead', async () => {
    const rt = installedRuntime();
    rmSync(join(rt, 'native/build'), { recursive: true, force: true });
    const c = join(rt, 'native/nspawn-helper.c');
    const original = readFileSync(c);
    writeFileSync(c, Buffer.concat([original, Buffer.from('\n__attribute__((used)) const char nspawn_stale_probe[] = "pk-stale-probe";\n')]));
    try {
      const r = await run('node', ['scripts/build-helper.mjs'], { cwd: rt, env: process.env });
      expect(r.status, r.stderr).toBe(0);
      expect(readFileSync(join(rt, 'native/build/nspawn-helper')).includes('pk-stale-probe')).toBe(true);
    } finally {
      writeFileSync(c, original);
    }
  });

  it('a prebuilt helper that does not run here: falls back to building it with the compiler', async () => {
    const rt = installedRuntime();
    const other = process.arch === 'x64' ? 'arm64' : 'x64';
    rmSync(join(rt, 'native/build'), { recursive: true, force: true });
    const r = await run('node', ['scripts/build-helper.mjs'], { cwd: rt, env: { ...process.env, NSPAWN_HELPER_ARCH: other } });
    expect(r.status, r.stderr).toBe(0);
    const helper = join(rt, 'native/build/nspawn-helper');
    expect((await run(helper, [])).stderr).toMatch(/no plan on fd 3/);
    if (/does not run here/.test(r.stderr)) expect(elfMachine(helper)).toBe(process.arch === 'x64' ? 62 : 183);
  });
});
