// Facts about this machine's kernel that decide whether a test can run at all (used by the tests that depend on
// them and by scripts/skip-allow-list.mjs, which checks the same fact again when the summary is made).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Can this kernel execute i386 programs (CONFIG_IA32_EMULATION)? A tiny static `gcc -m32` program is built and
 * run: { ok: false } only when the kernel refuses the exec with ENOEXEC ("Exec format error"); when gcc -m32 itself
 * is missing, or anything else goes wrong, the answer is { ok: true } (the tests then fail, saying what to install:
 * a missing compiler never proves a missing kernel feature).
 */
export function kernelRunsI386() {
  const dir = mkdtempSync(join(tmpdir(), 'nspawn-test-i386-'));
  try {
    writeFileSync(join(dir, 't.c'), 'int main(void) { return 0; }\n');
    const cc = spawnSync('gcc', ['-m32', '-static', '-o', join(dir, 't'), join(dir, 't.c')], { encoding: 'utf8' });
    if (cc.status !== 0) return { ok: true, detail: `gcc -m32 failed (${(cc.stderr || cc.error?.message || '').trim().split('\n').pop()}): nothing proven` };
    // (libuv execs with execvp(), which hands a file the kernel refuses with ENOEXEC to /bin/sh as a script: the
    // program, which exits 0, then "exits" with the shell's syntax error instead)
    const r = spawnSync(join(dir, 't'), [], { encoding: 'utf8' });
    if (r.status === 0) return { ok: true, detail: 'a static i386 program ran' };
    const said = `${r.error?.message ?? ''}${r.stderr ?? ''}`.trim().split('\n').pop();
    return { ok: false, detail: `a static i386 program did not run (exit ${r.status}: ${said}): no IA32 emulation in this kernel` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
