#!/usr/bin/env node
// The fingerprint of the C toolchains the runtime's build probes (packages/runtime/scripts/build-helper.mjs: the
// machine's cc, then x86_64-linux-gnu-gcc / aarch64-linux-gnu-gcc / clang --target=... for the prebuilt x64 and
// arm64 helpers and sys addons). What that build makes depends on which of them work here, so turbo must not reuse
// a build made with another set: scripts/turbo.mjs puts this fingerprint in $NSPAWN_TOOLCHAIN, which turbo.json
// hashes into @nspawn/runtime#build (and so into everything built from the runtime: the CLI's and the daemon's
// bundles). Installing clang and libc6-dev-arm64-cross after a build then rebuilds the runtime with arm64.
//
// Each compiler (and target) is asked for the commands of a static link (`-### -static`): that names its version,
// its linker, its C library's start files and libgcc, or says what is missing; every file it names is stat()ed so
// that an upgraded package counts too. Turbo hashes its inputs before it runs any task, so this runs before turbo.
//   node scripts/toolchain.mjs          the fingerprint (one line)
//   node scripts/toolchain.mjs --json   and what it was made from
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

/**
 * The compilers the native programs are built with, [command, arguments]: keep in step with CROSS and COMPILERS of
 * packages/runtime/scripts/cc.mjs
 * (tools/packaging/test/scripts.test.ts checks that every one it names is here).
 */
export function probedCompilers(env = process.env) {
  return [
    [env.CC || 'cc', []],
    ['x86_64-linux-gnu-gcc', []],
    ['clang', ['--target=x86_64-linux-gnu']],
    ['aarch64-linux-gnu-gcc', []],
    ['clang', ['--target=aarch64-linux-gnu']],
  ];
}

/** The variables build-helper.mjs reads: they change what it builds. */
export const BUILD_ENV = ['CC', 'NSPAWN_HELPER_ARCH'];

/** What one compiler says it would run for a static link, and the files it names (size, mtime), or why not. */
async function probe(cc, args, env) {
  const r = await execa(cc, [...args, '-###', '-static', '-x', 'c', '/dev/null', '-o', '/dev/null'], {
    env,
    extendEnv: false,
    cwd: '/',
    reject: false,
    all: true,
    stdin: 'ignore',
    timeout: 30_000,
  });
  if (r.failed && r.exitCode === undefined) return { cc, args, missing: r.code ?? r.shortMessage };
  // (the temporary files' names change on every call; clang quotes each word, gcc does not)
  const text = (r.all ?? '').replace(/\/tmp\/[^\s"']+/g, 'TMP');
  const files = {};
  for (const [, p] of text.matchAll(/(?:^|[\s"'=]|-[LI])(\/[^\s"',:]+)/g)) {
    if (files[p] !== undefined || p.startsWith('/dev/')) continue;
    try {
      const st = statSync(p);
      // (a directory's mtime changes with anything installed into it: only files count)
      files[p] = st.isFile() ? `${st.size}:${Math.trunc(st.mtimeMs)}` : 'dir';
    } catch {
      files[p] = 'missing';
    }
  }
  return { cc, args, exitCode: r.exitCode, text, files };
}

/** { hash, inputs }: the same hash for the same toolchains, another one when any of them changed. */
export async function toolchainFingerprint(env = process.env) {
  const probes = await Promise.all(probedCompilers(env).map(([cc, args]) => probe(cc, args, { PATH: env.PATH ?? '', LC_ALL: 'C' })));
  const inputs = {
    node: `${process.version} ${process.arch} abi ${process.versions.modules}`,
    env: Object.fromEntries(BUILD_ENV.map((k) => [k, env[k] ?? null])),
    compilers: probes,
  };
  const hash = createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
  return { hash, inputs };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const f = await toolchainFingerprint();
  if (process.argv.includes('--json')) console.log(JSON.stringify(f, null, 2));
  else console.log(f.hash);
}
