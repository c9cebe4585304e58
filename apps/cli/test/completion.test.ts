// Shell completions: generated from the parser's option table; checked against the real systemd-nspawn 252 (every
// option its --help lists is offered, and "=" is appended exactly where its getopt requires an argument); bash
// completes options, values, image names (/var/lib/machines or $NSPAWN_MACHINES_DIR) and running machines (their
// cgroup scopes, or `nspawnctl list --no-legend`); zsh loads and offers the same.
import { spawn } from 'node:child_process';
import { execaSync } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_LINE_OPTIONS, REFUSED_OPTIONS } from '@nspawn/settings';
import { bashCompletion, NSPAWNCTL_VERBS, zshCompletion } from '../scripts/completions.mjs';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const SYSTEMD_NSPAWN = '/usr/bin/systemd-nspawn';

/**
 * The options systemd-nspawn 252's --help lists: [short or '', long]. (The independent expectation: the completion
 * is generated from our parser's table, so comparing it with that table could not fail.)
 */
function systemdHelpOptions(): Array<[string, string]> {
  expect(existsSync(SYSTEMD_NSPAWN), `needs ${SYSTEMD_NSPAWN} (Debian: systemd-container; scripts/setup.sh --test)`).toBe(true);
  const help = execaSync(SYSTEMD_NSPAWN, ['--help'], { env: { SYSTEMD_PAGER: 'cat', COLUMNS: '200' }, stripFinalNewline: false }).stdout;
  const out: Array<[string, string]> = [];
  // ("  -D --directory=PATH ...", "     --version ...", "  -U     Equivalent to ..."; an option listed twice, as
  // --private-users=no and =yes|pick, counts once)
  for (const m of help.matchAll(/^ {2}(?:-(\w)| {2}) (?:--([a-z0-9-]+))?/gm))
    if ((m[1] || m[2]) && !out.some(([, l]) => m[2] && l === m[2])) out.push([m[1] ?? '', m[2] ?? '']);
  return out;
}

/**
 * What the real getopt of systemd-nspawn says of --NAME given alone as the last word: 'required' (it requires an
 * argument), 'unknown' (unrecognized), or 'ok'. Harmless: -D names a path that does not exist, so a command line
 * that parses stops at "Failed to resolve path" before anything is done.
 */
function systemdGetopt(name: string): 'required' | 'unknown' | 'ok' {
  const r = execaSync(SYSTEMD_NSPAWN, ['-D', join(dir, 'no-such-tree'), '--register=no', `--${name}`], { timeout: 10_000, reject: false, stripFinalNewline: false });
  if (/option '--[^']+' requires an argument/.test(r.stderr)) return 'required';
  if (/unrecognized option/.test(r.stderr)) return 'unknown';
  expect(r.stderr, `--${name}`).toMatch(/Failed to resolve path|^$/m);
  return 'ok';
}
let dir = '';
let bashFile = '';
let zshFile = '';
let machines = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nspawn-test-compl-'));
  bashFile = join(dir, 'nspawn.bash');
  zshFile = join(dir, '_nspawn');
  writeFileSync(bashFile, bashCompletion());
  writeFileSync(zshFile, zshCompletion());
  machines = join(dir, 'machines');
  for (const m of ['dc-alpha', 'dc-beta', '.dc-hidden']) mkdirSync(join(machines, m), { recursive: true });
  writeFileSync(join(machines, 'dc-raw.raw'), '');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What bash completion offers for the words (the last one is the word being completed). */
function complete(fn: '_nspawn' | '_nspawnctl', words: string[], env: Record<string, string> = {}): string[] {
  const script = `source ${bashFile}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = execaSync('bash', ['-c', script], { env: { NSPAWN_MACHINES_DIR: machines, ...env }, reject: false, stripFinalNewline: false });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('bash', () => {
  it('the generated file is what the build installs', () => {
    const built = join(REPO, 'apps/cli/dist/completions/nspawn.bash');
    expect(existsSync(built), `${built} is missing: build apps/cli first (pnpm build)`).toBe(true);
    expect(readFileSync(built, 'utf8')).toBe(bashCompletion());
  });
  it('offers every option systemd-nspawn 252\'s --help lists, long and short, but those this build refuses', () => {
    const all = complete('_nspawn', ['nspawn', '-']);
    const help = systemdHelpOptions();
    expect(help.length).toBeGreaterThan(60);
    for (const [short, long] of help) {
      if (REFUSED_OPTIONS.includes(`--${long}`)) {
        expect(all.filter((o) => o === `--${long}` || o === `--${long}=`), `--${long} is refused but offered`).toEqual([]);
        if (short) expect(all, `-${short} is refused but offered`).not.toContain(`-${short}`);
        continue;
      }
      if (long) expect(all.filter((o) => o === `--${long}` || o === `--${long}=`), `--${long}`).toHaveLength(1);
      if (short) expect(all, `-${short}`).toContain(`-${short}`);
    }
  });
  it('appends "=" exactly to the options whose argument systemd-nspawn\'s getopt requires, and offers none it does not know', () => {
    const long = complete('_nspawn', ['nspawn', '--']);
    // (those this build refuses are not offered)
    expect(long.length).toBeGreaterThan(50);
    // options beyond systemd-nspawn 252 (matched by their full name only, e.g. systemd 254's --image-policy=): as the
    // parser table says
    const beyond = new Map(COMMAND_LINE_OPTIONS.filter((o) => o.exact).map((o) => [o.long, o.arg]));
    expect(beyond.size).toBeGreaterThan(0);
    const wrong = long.filter((o) => {
      const name = o.replace(/^--|=$/g, '');
      if (beyond.has(name)) return (beyond.get(name) === 'required') !== o.endsWith('=');
      const real = systemdGetopt(name);
      return real === 'unknown' || (real === 'required') !== o.endsWith('=');
    });
    expect(wrong).toEqual([]);
  });
  it('completes option names and values (split at = as bash does, or not)', () => {
    expect(complete('_nspawn', ['nspawn', '--bo'])).toEqual(['--boot']);
    expect(complete('_nspawn', ['nspawn', '--console', '=', 'p'])).toEqual(['passive', 'pipe']);
    expect(complete('_nspawn', ['nspawn', '--console', '='])).toEqual(['autopipe', 'interactive', 'passive', 'pipe', 'read-only']);
    expect(complete('_nspawn', ['nspawn', '--private-users=pi'])).toEqual(['--private-users=pick']);
    expect(complete('_nspawn', ['nspawn', '--settings', '=', 't'])).toEqual(['trusted']);
    expect(complete('_nspawn', ['nspawn', '--resolv-conf', '=', 'bind-'])).toEqual(['bind-host', 'bind-static', 'bind-stub', 'bind-uplink']);
  });
  it('completes directories for -D and stops completing options after the command', () => {
    expect(complete('_nspawn', ['nspawn', '-D', `${machines}/dc-a`])).toEqual([`${machines}/dc-alpha`]);
    expect(complete('_nspawn', ['nspawn', '-D', machines, '/bin/bas'])).toContain('/bin/bash');
    expect(complete('_nspawn', ['nspawn', '-D', machines, 'ls', '--bo'])).toEqual([]);
  });
  it('completes image names for -M (hidden ones left out, .raw stripped)', () => {
    expect(complete('_nspawn', ['nspawn', '-M', 'dc-'])).toEqual(['dc-alpha', 'dc-beta', 'dc-raw']);
    expect(complete('_nspawn', ['nspawn', '--machine', '=', 'dc-b'])).toEqual(['dc-beta']);
  });
  it('nspawnctl: verbs, options with values, machine and image names per verb', () => {
    expect(complete('_nspawnctl', ['nspawnctl', ''])).toEqual(Object.keys(NSPAWNCTL_VERBS).sort());
    expect(complete('_nspawnctl', ['nspawnctl', 'po'])).toEqual(['poweroff']);
    expect(complete('_nspawnctl', ['nspawnctl', '-o', 'json', 'remove', 'dc-a'])).toEqual(['dc-alpha']);
    expect(complete('_nspawnctl', ['nspawnctl', '--output', '=', 'json-'])).toEqual(['json-pretty']);
    expect(complete('_nspawnctl', ['nspawnctl', '--kill-whom', '=', ''])).toEqual(['all', 'leader']);
    expect(complete('_nspawnctl', ['nspawnctl', '--no-l'])).toEqual(['--no-legend']);
  });
  it('nspawnctl list --no-legend supplies running machines when nspawnctl is on PATH', () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'nspawnctl'), '#!/bin/sh\n[ "$1 $2" = "list --no-legend" ] && printf "dc-listed container nspawn debian 12 -\\n"\n', { mode: 0o755 });
    expect(complete('_nspawnctl', ['nspawnctl', 'login', 'dc-l'], { PATH: `${bin}:${process.env.PATH}` })).toEqual(['dc-listed']);
  });

  it.skipIf(process.getuid?.() !== 0)('completes a running container\'s name from its cgroup scope (no daemon)', async () => {
    const tree = join(dir, 'tree');
    execaSync(join(REPO, 'scripts/make-busybox-tree.sh'), [tree], { stdio: 'ignore' });
    const child = spawn(join(REPO, 'apps/cli/bin/nspawn'), ['-q', '-P', '-D', tree, '-M', 'dc-cmpl-run', '/bin/sh', '-c', 'echo up; sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((ok, fail) => {
        child.stdout!.on('data', (d: Buffer) => d.toString().includes('up') && ok());
        child.on('exit', (c) => fail(new Error(`nspawn exited ${c}`)));
      });
      expect(complete('_nspawnctl', ['nspawnctl', 'poweroff', 'dc-cmpl'], { NSPAWN_MACHINES_DIR: join(dir, 'none') })).toEqual(['dc-cmpl-run']);
      expect(complete('_nspawn', ['nspawn', '-M', 'dc-cmpl'], { NSPAWN_MACHINES_DIR: join(dir, 'none') })).toEqual(['dc-cmpl-run']);
    } finally {
      const done = new Promise((ok) => child.on('exit', ok));
      child.kill('SIGTERM');
      await done;
    }
  });
});

describe('zsh', () => {
  it('parses, offers every option of systemd-nspawn\'s --help to _arguments, and lists images', () => {
    expect(execaSync('zsh', ['--version'], { reject: false }).exitCode, 'needs zsh (Debian: zsh; scripts/setup.sh --test)').toBe(0);
    expect(execaSync('zsh', ['-n', zshFile], { reject: false }).exitCode).toBe(0);
    // _arguments and _wanted replaced by printers: what the completion would offer
    const script = `_arguments() { print -rl -- "$@" }; _wanted() { shift 3; print -rl -- "$@" }; compadd() { print -rl -- "$@" }
service=nspawn; source ${zshFile}
print -- ---images; __nspawn_zsh_image_names`;
    const r = execaSync('zsh', ['-f', '-c', script], { env: { NSPAWN_MACHINES_DIR: machines }, reject: false, stripFinalNewline: false });
    expect(r.stderr).toBe('');
    const [specs, images] = r.stdout.split('---images\n');
    for (const [, long] of systemdHelpOptions()) {
      if (!long) continue;
      const spec = new RegExp(`^'?--${long}(=-?)?\\[`, 'm');
      if (REFUSED_OPTIONS.includes(`--${long}`)) expect(specs, `--${long} is refused but offered`).not.toMatch(spec);
      else expect(specs, `--${long}`).toMatch(spec);
    }
    expect(specs).toMatch(/^--directory=\[Root directory for the container\]:directory:_files -\/$/m);
    expect(images!.split('\n').filter(Boolean).sort()).toEqual(['dc-alpha', 'dc-beta', 'dc-raw']);
  });
  it('nspawnctl: verbs', () => {
    const script = `_arguments() { print -rl -- "$@" }; service=nspawnctl; source ${zshFile}`;
    const r = execaSync('zsh', ['-f', '-c', script], { reject: false, stripFinalNewline: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`1:verb:(${Object.keys(NSPAWNCTL_VERBS).join(' ')})`);
  });
});
