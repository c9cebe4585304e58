/**
 * For the web view's tests: Debian's chromium driven by playwright-core (no browser can be downloaded here), with
 * its temporary profile in a directory of ours, and stopped by the PID we started (its process group) whatever
 * happens; plain HTTP requests with full control of the headers.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { type Browser, type BrowserServer, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** what the machine's notes say Chromium needs here: no sandbox as root, no GPU, nothing that calls home */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface TestBrowser {
  browser: Browser;
  pid: number;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh --test)`);
  // playwright makes its profile and artifacts under the temporary directory: ours, removed at the end
  const tmp = mkdtempSync('/tmp/dm-web-chromium-');
  const oldTmp = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  let server: BrowserServer;
  try {
    // launchServer: the browser's process (its PID) is ours to end
    server = await chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60000 });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    if (oldTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = oldTmp;
  }
  const pid = server.process().pid;
  let browser: Browser;
  try {
    if (pid === undefined) throw new Error('playwright gave no browser process');
    browser = await chromium.connect(server.wsEndpoint());
  } catch (e) {
    await server.kill().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return {
    browser,
    pid,
    close: async () => {
      await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
      await Promise.race([server.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
      // what is left of the browser we started: its process group (playwright starts it as a group leader)
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        process.kill(pgrp === pid ? -pid : pid, 'SIGKILL');
      } catch {
        // gone
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request to BASE (http://host:port) with exactly these headers. */
export function httpRequest(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, method, path, headers, agent: false }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

export const screenshotDir = (repo: string) => join(repo, 'apps/daemon/docs');
