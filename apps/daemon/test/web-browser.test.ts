/**
 * nspawnd's web view in a real browser (Debian's chromium through playwright-core), as root, on busybox machines:
 * the token swapped for a cookie, a wrong one refused, machines listed, started, rebooted, powered off and
 * terminated through the page (and seen so by nspawnctl), the console updating live, the charts drawing points, the
 * settings file and the shell line, the images (read-only, clone, rename, remove, remove refused while running,
 * import-tar with its progress), a POST from another origin refused, names and os-release text from a container
 * shown as text (no XSS). Screenshots of each page go to the test's directory, and into apps/daemon/docs with
 * NSPAWN_WEB_SCREENSHOTS=1.
 */
import { execa } from 'execa';
import { copyFileSync, cpSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusybox, REPO, requireRoot, TestDaemon, waitFor } from './helpers.js';
import { httpRequest, launchBrowser, screenshotDir, type TestBrowser } from './web-helpers.js';

// the page's globals, in callbacks that run in the browser (this tsconfig has no DOM library)
declare const document: { querySelector(s: string): any; querySelectorAll(s: string): { length: number } };
declare const window: Record<string, unknown>;

const XSS_OS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
const XSS_IMAGE = 'dm-web-<img src=x onerror=window.__xss=3>';

let d: TestDaemon;
let tb: TestBrowser | undefined;
let ctx: BrowserContext;
let page: Page;
let url = '';
let base = '';
let shots = '';
let evil: Server | undefined;

const running = () => d.list();

beforeAll(async () => {
  requireRoot();
  d = new TestDaemon('dm-web-');
  shots = join(d.base, 'shots');
  mkdirSync(shots);
  makeBusybox(join(d.machines, 'dm-web-a'));
  // a machine whose init answers systemd's poweroff (SIGRTMIN+4) and reboot (SIGINT), and says so on its console
  const sig = join(d.machines, 'dm-web-sig');
  makeBusybox(sig);
  rmSync(join(sig, 'sbin/init'));
  writeFileSync(
    join(sig, 'sbin/init'),
    '#!/bin/sh\necho "dm-web-sig: up"\ntrap \'echo "dm-web-sig: poweroff"; exit 0\' 38\ntrap \'echo "dm-web-sig: reboot"; reboot -f\' INT\ni=0\nwhile :; do i=$((i+1)); echo "dm-web-sig: tick $i"; sleep 1; done\n',
    { mode: 0o755 },
  );
  // a machine whose os-release tries to get into the page
  const xss = join(d.machines, 'dm-web-xss');
  makeBusybox(xss);
  rmSync(join(xss, 'etc/os-release'));
  writeFileSync(join(xss, 'etc/os-release'), `NAME=x\nID=busybox\nPRETTY_NAME="${XSS_OS.replace(/"/g, '\\"')}"\n`);
  // an image whose name does (a valid image name, not a machine name)
  mkdirSync(join(d.machines, XSS_IMAGE));
  writeFileSync(join(d.machines, 'dm-web-a.nspawn'), '[Exec]\nEnvironment=DM_WEB=settings-shown\n');
  // configured through the environment ($NSPAWND_WEB), a free port
  await d.start({ NSPAWND_WEB: '127.0.0.1:0' });
  const r = d.ctl(['web']);
  expect(r.status, r.stderr).toBe(0);
  url = r.stdout;
  base = new URL(url).origin;
  tb = await launchBrowser();
  ctx = await tb.browser.newContext({ viewport: { width: 1200, height: 800 } });
  page = await ctx.newPage();
});

afterAll(async () => {
  await tb?.close();
  await new Promise((r) => (evil ? evil.close(r) : r(undefined)));
  if (d) {
    await d.cleanup();
  }
});

/** A picture of the page as tall as its content (a short viewport, the full page). */
async function shot(p: Page, name: string): Promise<void> {
  const file = join(shots, `web-${name}.png`);
  const size = p.viewportSize()!;
  await p.setViewportSize({ width: size.width, height: 200 });
  try {
    await p.screenshot({ path: file, fullPage: true });
  } finally {
    await p.setViewportSize(size);
  }
  expect(statSync(file).size).toBeGreaterThan(5000);
  if (process.env.NSPAWN_WEB_SCREENSHOTS === '1') {
    mkdirSync(screenshotDir(REPO), { recursive: true });
    copyFileSync(file, join(screenshotDir(REPO), `web-${name}.png`));
  }
}

const row = (name: string) => page.locator(`#machines tr[data-machine="${name}"]`);

describe('access', () => {
  it('nspawnctl web prints one line: the address with the token', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}\n$/);
    const f = join(d.base, 'run/web-access.json');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(f).uid).toBe(0);
  });

  it('refuses a wrong token and a missing one (401), static files included', async () => {
    const other = await tb!.browser.newContext();
    try {
      const p = await other.newPage();
      const wrong = await p.goto(`${base}/?token=${'A'.repeat(43)}`);
      expect(wrong!.status()).toBe(401);
      expect(await p.textContent('body')).toContain('Unauthorized');
      expect((await other.request.get(`${base}/static/app.js`)).status()).toBe(401);
      expect((await other.request.get(`${base}/api/machines`)).status()).toBe(401);
      expect(await other.cookies()).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('swaps the token for an HttpOnly SameSite=Strict cookie and drops it from the address', async () => {
    await page.goto(url.trim());
    await page.waitForURL(`${base}/`);
    await page.waitForSelector('body[data-ready]');
    const cookies = await ctx.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Strict', secure: false, path: '/' });
    expect(page.url()).not.toContain('token');
  });
});

describe('machines', () => {
  it('lists the machines and the images they start from; starts one through the page', async () => {
    await row('dm-web-a').waitFor();
    expect(await row('dm-web-a').getAttribute('data-state')).toBe('off');
    await row('dm-web-a').locator('button[data-action=start]').click();
    await page.locator('#machines tr[data-machine="dm-web-a"][data-state=running]').waitFor({ timeout: 20000 });
    expect(running()).toContain('dm-web-a');
    await expect.poll(() => row('dm-web-a').locator('td.os').textContent(), { timeout: 15000 }).toBe('BusyBox (nspawn default image)');
  });

  it('shows the machine: console live, charts drawing, settings file, the shell line', async () => {
    await page.click('#machines a[href="/machines/dm-web-a"]');
    await page.waitForURL(`${base}/machines/dm-web-a`);
    await page.waitForSelector('body[data-ready]');
    await expect.poll(() => page.textContent('#console'), { timeout: 15000 }).toContain('BusyBox v');
    // something new on the console shows up without a reload
    const marker = `dm-web-marker-${Date.now()}`;
    const s = d.ctl(['shell', 'dm-web-a', '/bin/sh', '-c', `echo ${marker} > /dev/console`]);
    expect(s.status, s.stderr).toBe(0);
    await expect.poll(() => page.textContent('#console'), { timeout: 5000 }).toContain(marker);
    expect(await page.textContent('#shell-line')).toBe('nspawnctl shell dm-web-a');
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await page.click('#copy-shell');
    await expect.poll(() => page.textContent('#copy-shell')).toBe('Copied');
    expect(await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText())).toBe('nspawnctl shell dm-web-a');
    expect(await page.textContent('#settings-text')).toBe('[Exec]\nEnvironment=DM_WEB=settings-shown\n');
    // the charts get points from the cgroup samples (one every 2 s), and draw them
    await expect.poll(() => page.getAttribute('#chart-memory', 'data-points').then(Number), { timeout: 15000 }).toBeGreaterThanOrEqual(3);
    expect(Number(await page.getAttribute('#chart-tasks', 'data-points'))).toBeGreaterThanOrEqual(3);
    expect(Number(await page.getAttribute('#chart-cpu', 'data-points'))).toBeGreaterThanOrEqual(2);
    const drawn = await page.evaluate(() => {
      // pixels of the memory series' colour (#2ca02c) on its canvas
      const c = document.querySelector('#chart-memory canvas');
      const img = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < img.length; i += 4) if (Math.abs(img[i] - 0x2c) < 40 && Math.abs(img[i + 1] - 0xa0) < 40 && Math.abs(img[i + 2] - 0x2c) < 40 && img[i + 3] > 200) n++;
      return n;
    });
    expect(drawn).toBeGreaterThan(10);
    await shot(page, 'machine');
  });

  it('terminates with a confirmation: Cancel keeps it, Terminate ends it', async () => {
    await page.locator('#machine-actions button[data-action=terminate]').click();
    await expect.poll(() => page.isVisible('#dialog')).toBe(true);
    expect(await page.textContent('#dialog-title')).toBe('Terminate dm-web-a?');
    await page.click('#dialog-cancel');
    await new Promise((r) => setTimeout(r, 500));
    expect(running()).toContain('dm-web-a');
    await page.locator('#machine-actions button[data-action=terminate]').click();
    await page.click('#dialog-ok');
    await waitFor(() => !running().includes('dm-web-a'), 15000);
    await expect.poll(() => page.textContent('#machine-state'), { timeout: 10000 }).toBe('off');
  });

  it('reboots and powers off through the page (the signals nspawnctl sends)', async () => {
    await page.goto(`${base}/`);
    await row('dm-web-sig').locator('button[data-action=start]').click();
    await page.locator('#machines tr[data-machine="dm-web-sig"][data-state=running]').waitFor({ timeout: 20000 });
    await page.goto(`${base}/machines/dm-web-sig`);
    await expect.poll(() => page.textContent('#console'), { timeout: 10000 }).toContain('dm-web-sig: tick 2');
    await page.locator('#machine-actions button[data-action=reboot]').click();
    // up again: a second "up" after the reboot, live on the console
    await expect.poll(async () => ((await page.textContent('#console')) ?? '').split('dm-web-sig: up').length - 1, { timeout: 15000 }).toBe(2);
    expect(await page.textContent('#console')).toContain('dm-web-sig: reboot');
    expect(running()).toContain('dm-web-sig');
    await page.locator('#machine-actions button[data-action=poweroff]').click();
    await waitFor(() => !running().includes('dm-web-sig'), 15000);
    await expect.poll(() => page.textContent('#console'), { timeout: 5000 }).toContain('dm-web-sig: poweroff');
  });

  it('shows what a container says about itself as text (no XSS)', async () => {
    expect(d.ctl(['start', 'dm-web-xss']).status).toBe(0);
    await page.goto(`${base}/`);
    await page.locator('#machines tr[data-machine="dm-web-xss"][data-state=running]').waitFor({ timeout: 10000 });
    await expect.poll(() => row('dm-web-xss').locator('td.os').textContent()).toBe(XSS_OS);
    expect(await page.evaluate(() => [window.__xss, document.querySelectorAll('main img, main script').length])).toEqual([undefined, 0]);
    await page.goto(`${base}/machines/dm-web-xss`);
    await expect.poll(() => page.textContent('#machine-info dd.os')).toBe(XSS_OS);
    expect(await page.evaluate(() => [window.__xss, document.querySelectorAll('main img, main script').length])).toEqual([undefined, 0]);
    expect(d.ctl(['terminate', 'dm-web-xss']).status).toBe(0);
    await waitFor(() => !running().includes('dm-web-xss'), 10000);
  });

  it('answers an unknown machine with 404 and its name', async () => {
    const r = await page.goto(`${base}/machines/dm-web-nope`);
    expect(r!.status()).toBe(404);
    expect(await page.textContent('main')).toContain("No machine 'dm-web-nope' known.");
  });
});

describe('images', () => {
  it('lists them (an odd name as text), marks read-only, clones, renames and removes through the page', async () => {
    await page.goto(`${base}/images`);
    const img = (n: string) => page.locator(`#images tr[data-image="${n}"]`);
    await img('dm-web-a').waitFor();
    expect(await page.locator('#images td.name').allTextContents()).toContain(XSS_IMAGE);
    expect(await page.evaluate(() => [window.__xss, document.querySelectorAll('main img').length])).toEqual([undefined, 0]);
    // an odd name goes through an action as it is: removed, and nothing else
    for (const odd of [XSS_IMAGE, 'dm-web-xss']) {
      await page.locator('#images tr', { has: page.locator('td.name', { hasText: odd }) }).first().locator('button[data-action=remove]').click();
      expect(await page.textContent('#dialog-title')).toBe(`Remove ${odd}?`);
      await page.click('#dialog-ok');
      await expect.poll(() => page.locator('#images td.name').allTextContents(), { timeout: 10000 }).not.toContain(odd);
    }
    expect(readdirSync(d.machines).sort()).toEqual(['dm-web-a', 'dm-web-a.nspawn', 'dm-web-sig']);
    // clone, asked for a name in the dialog
    await img('dm-web-a').locator('button[data-action=clone]').click();
    await page.fill('#dialog-input', 'dm-web-copy');
    await page.click('#dialog-ok');
    await img('dm-web-copy').waitFor({ timeout: 15000 });
    // read-only on, as nspawnctl sees it
    await img('dm-web-copy').locator('input.ro').check();
    await expect.poll(() => (JSON.parse(d.ctl(['list-images', '-o', 'json']).stdout) as Array<{ name: string; ro: boolean }>).find((i) => i.name === 'dm-web-copy')?.ro).toBe(true);
    await page.locator('#images tr[data-image="dm-web-copy"] input.ro:checked').waitFor();
    await img('dm-web-copy').locator('input.ro').uncheck();
    await expect.poll(() => (JSON.parse(d.ctl(['list-images', '-o', 'json']).stdout) as Array<{ name: string; ro: boolean }>).find((i) => i.name === 'dm-web-copy')?.ro).toBe(false);
    // rename
    await img('dm-web-copy').locator('button[data-action=rename]').click();
    await page.fill('#dialog-input', 'dm-web-renamed');
    await page.click('#dialog-ok');
    await img('dm-web-renamed').waitFor({ timeout: 10000 });
    expect(d.ctl(['image-status', 'dm-web-copy']).stderr).toContain("No image 'dm-web-copy' known.");
    // remove, confirmed
    await img('dm-web-renamed').locator('button[data-action=remove]').click();
    expect(await page.textContent('#dialog-title')).toBe('Remove dm-web-renamed?');
    await page.click('#dialog-ok');
    await img('dm-web-renamed').waitFor({ state: 'detached', timeout: 10000 });
    expect(d.ctl(['image-status', 'dm-web-renamed']).status).toBe(1);
  });

  it('refuses to remove the image of a running machine', async () => {
    expect(d.ctl(['start', 'dm-web-a']).status).toBe(0);
    expect(d.ctl(['start', 'dm-web-sig']).status).toBe(0);
    await page.goto(`${base}/`);
    // once a CPU figure is there (two samples)
    await page.locator('#machines tr[data-machine="dm-web-a"][data-state=running] td.num:has-text("%")').waitFor({ timeout: 15000 });
    await page.locator('#machines tr[data-machine="dm-web-sig"][data-state=running] td.num:has-text("%")').waitFor({ timeout: 15000 });
    await shot(page, 'machines');
    await page.goto(`${base}/images`);
    const rm = page.locator('#images tr[data-image="dm-web-a"] button[data-action=remove]');
    await expect.poll(() => rm.isDisabled(), { timeout: 10000 }).toBe(true);
    // and nspawnd says no when asked all the same, by the page's own code path
    const answer = await page.evaluate(async () => {
      const r = await fetch('/api/images/remove', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'dm-web-a' }) });
      return [r.status, await r.json()];
    });
    expect(answer).toEqual([409, { error: "Image 'dm-web-a' is in use by a running machine" }]);
    expect(d.ctl(['image-status', 'dm-web-a']).status).toBe(0);
  });

  it('imports a tar archive with its progress shown', async () => {
    const tree = join(d.base, 'import-tree');
    cpSync(join(d.machines, 'dm-web-sig'), tree, { recursive: true, verbatimSymlinks: true });
    // bulk, so that there is a progress to see
    await execa('dd', ['if=/dev/urandom', `of=${join(tree, 'bulk')}`, 'bs=1M', 'count=96', 'status=none']);
    const tar = join(d.base, 'dm-web-imported.tar');
    await execa('tar', ['-C', tree, '-cf', tar, '.']);
    rmSync(tree, { recursive: true, force: true });
    await page.goto(`${base}/images`);
    await page.fill('#import-path', tar);
    await page.click('#import-go');
    // the progress as the page gets it, while it runs
    const seen: number[] = [];
    await expect
      .poll(
        async () => {
          const j = (await page.evaluate(async () => ((await (await fetch('/api/imports')).json()) as { imports: unknown }).imports)) as Array<{ state: string; done: number; total: number }>;
          if (j[0]?.state === 'running') seen.push(j[0].done / j[0].total);
          return j[0]?.state;
        },
        { timeout: 60000, interval: 50 },
      )
      .toBe('done');
    await page.locator('#imports .job[data-state=done]').waitFor({ timeout: 10000 });
    expect(await page.textContent('#imports .job-state')).toBe('done: image dm-web-imported');
    expect(seen.some((f) => f > 0 && f < 1), `progress seen: ${seen.join(', ')}`).toBe(true);
    await page.locator('#images tr[data-image="dm-web-imported"]').waitFor({ timeout: 10000 });
    expect(d.ctl(['image-status', 'dm-web-imported']).status).toBe(0);
    await shot(page, 'images');
    // a second import of the same name fails with import-tar's reason
    await page.fill('#import-path', tar);
    await page.click('#import-go');
    await page.locator('#imports .job[data-state=failed]').waitFor({ timeout: 30000 });
    expect(await page.locator('#imports .job[data-state=failed] .job-state').textContent()).toMatch(/already exists/);
    rmSync(tar);
  });
});

describe('cross-site requests', () => {
  it('refuses a POST from another origin of the same site (the cookie goes along: the origin check stops it)', async () => {
    expect(running()).toContain('dm-web-a');
    // a page on another port of 127.0.0.1 (same site: SameSite=Strict does not stop it) posts a form to the view
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(
        `<!doctype html><form id=f method=POST enctype="text/plain" action="${base}/api/machines/dm-web-a/terminate"><input name='{"a":"' value='"}'></form>` +
          `<script>fetch("${base}/api/machines/dm-web-a/terminate",{method:"POST",mode:"no-cors",credentials:"include",headers:{"Content-Type":"text/plain"},body:"{}"}).finally(()=>f.submit())</script>`,
      );
    });
    await new Promise<void>((r) => evil!.listen(0, '127.0.0.1', () => r()));
    const port = (evil.address() as { port: number }).port;
    const p = await ctx.newPage();
    try {
      const landed = p.waitForURL(`${base}/api/machines/dm-web-a/terminate`);
      await p.goto(`http://127.0.0.1:${port}/`);
      await landed;
      expect(await p.textContent('body')).toBe('{"error":"Cross-origin request refused: Sec-Fetch-Site is same-site."}');
    } finally {
      await p.close();
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(running()).toContain('dm-web-a');
    // the same POST from the view itself works
    const own = await httpRequest(base, 'POST', '/api/machines/dm-web-a/terminate', { Cookie: (await ctx.cookies()).map((c) => `${c.name}=${c.value}`).join('; '), 'Content-Type': 'application/json', Origin: base }, '{}');
    expect(own.status).toBe(200);
    await waitFor(() => !running().includes('dm-web-a'), 10000);
  });
});
