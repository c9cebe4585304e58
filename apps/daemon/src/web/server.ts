/**
 * nspawnd's web view (`nspawnd --web=ADDR:PORT`): a small HTTP(S) server on node:http, loaded only with --web (a
 * bundle of its own, dist/nspawnd-web.cjs). It has no path of its own to the machines: every list and action is a
 * call of the very varlink methods nspawnd serves on its socket (the daemon hands them over as `call`), so the view
 * sees and does what `nspawnctl` sees and does. Beside those it reads what nspawnd keeps itself: the console logs
 * (./console.ts), the cgroup statistics over time (./stats.ts), the .nspawn files.
 *
 * Access (./auth.ts): a token made at start, in a 0600 file of the runtime directory (`nspawnctl web` prints the
 * address with it); the first page swaps it for a cookie; everything else without it is 401, and a POST must also
 * come from the view's own origin.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { hostname } from 'node:os';
import { extname, join } from 'node:path';
import { imageNameIsValid, machineNameIsValid, settingsSearchPath } from '@nspawn/settings';
import { cookieName, cookieValue, crossOriginReason, hostAllowed, newToken, sessionCookie, tokenMatches } from './auth.js';
import { type WebAccess, type WebConfig, WEB_ACCESS_FILE, WebConfigError } from './config.js';
import { LogHub } from './console.js';
import { ImportJobs, ImportRefused } from './imports.js';
import { DirectorySizes } from './sizes.js';
import { EventStreams, MAX_STREAMS } from './sse.js';
import { SAMPLE_MS, StatsSampler, type StatsReading } from './stats.js';

/** A machine as io.systemd.Machine.List answers (the fields the view reads). */
interface MachineEntry {
  name: string;
  id?: string;
  class?: string;
  service?: string;
  state?: string;
  leader?: { pid?: number };
  rootDirectory?: string;
  unit?: string;
  timestamp?: { realtime?: number };
  addresses?: Array<{ family: number; address: number[] }>;
  OSRelease?: string[];
  managed?: boolean;
}

/** An image as io.systemd.MachineImage.List answers. */
interface ImageEntry {
  name: string;
  path?: string;
  type: string;
  readOnly: boolean;
  usage?: number;
  usageExclusive?: number;
  limit?: number;
  creationTimestamp?: number;
  modificationTimestamp?: number;
  hostname?: string;
  OSRelease?: string[];
}

/** What the daemon gives the view. */
export interface WebContext {
  config: WebConfig;
  /** nspawnd's runtime directory: the access file goes there */
  runtimeDir: string;
  /** the console logs (NAME.log) */
  logsDir: string;
  /** the image store */
  imagesDir: string;
  /**
   * Calls one of the varlink methods nspawnd serves, as its socket would (the same parameter checks, the same
   * handler): the replies, or a thrown VarlinkError.
   */
  call(method: string, params: Record<string, unknown>, more?: boolean): Promise<Array<Record<string, unknown>>>;
  /** readMachineStats() of @nspawn/runtime, for the host's cgroup layout */
  readStats(name: string): StatsReading | undefined;
  formatAddress(a: { family: number; address: number[] }): string;
  log(line: string): void;
  /** for tests: where the static files are (default: beside this module, `web/`), the token, the sample interval */
  assetsDir?: string;
  token?: string;
  sampleMs?: number;
  maxStreams?: number;
}

export interface WebServer {
  /** "http://127.0.0.1:8484/" */
  url: string;
  token: string;
  port: number;
  /** open event streams */
  readonly streams: number;
  readonly sampler: StatsSampler;
  close(): Promise<void>;
}

const here = import.meta.dirname;

/** The static files' directory: dist/web beside the bundle, or apps/daemon/dist/web from the sources (tests). */
function findAssets(given?: string): string {
  const candidates = given ? [given] : [join(here, 'web'), join(here, '../../dist/web')];
  for (const c of candidates) if (existsSync(join(c, 'index.html'))) return c;
  throw new Error(`the web view's files are missing (looked in ${candidates.join(', ')}): run 'pnpm build'`);
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

const BODY_MAX = 64 * 1024;
/** how long a list answers every page that asks (they poll every 2-4 s) */
const LIST_TTL_MS = 1000;
const SETTINGS_MAX = 256 * 1024;

/** A failure to answer with STATUS and a one-line MESSAGE. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A varlink error (thrown by the daemon's methods: another bundle's class, so told by its shape) as an HttpError. */
function fromVarlink(e: unknown, what: { machine?: string; image?: string }): HttpError {
  const v = e as { error?: unknown; parameters?: Record<string, unknown>; message?: string };
  if (typeof v?.error !== 'string') return new HttpError(500, (e as Error)?.message ?? String(e));
  const message = typeof v.parameters?.message === 'string' ? v.parameters.message : undefined;
  switch (v.error) {
    case 'io.systemd.Machine.NoSuchMachine':
      return new HttpError(404, `No machine '${what.machine ?? '?'}' known.`);
    case 'io.systemd.MachineImage.NoSuchImage':
      return new HttpError(404, message ?? `No image '${what.image ?? what.machine ?? '?'}' known.`);
    case 'org.varlink.service.InvalidParameter':
      return new HttpError(400, `Invalid ${String(v.parameters?.parameter ?? 'parameter')}.`);
    case 'io.systemd.Machine.MachineExists':
    case 'io.nspawn.MachineImage.Busy':
    case 'io.nspawn.MachineImage.Exists':
      return new HttpError(409, message ?? v.error);
    case 'io.systemd.MachineImage.NotSupported':
      return new HttpError(501, message ?? v.error);
    default:
      return new HttpError(500, message ?? v.error);
  }
}

const osName = (release: string[] | undefined) => {
  const f = (k: string) => release?.find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1);
  return f('PRETTY_NAME') ?? f('NAME') ?? null;
};

function readBounded(path: string, max: number): { text: string; truncated: boolean } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, max));
    const n = buf.length ? readSync(fd, buf, 0, buf.length, 0) : 0;
    return { text: buf.subarray(0, n).toString('utf8'), truncated: size > max };
  } finally {
    closeSync(fd);
  }
}

export async function startWeb(ctx: WebContext): Promise<WebServer> {
  const { config } = ctx;
  const tls = config.cert !== undefined;
  const assets = findAssets(ctx.assetsDir);
  const files = new Map<string, string>();
  for (const f of readdirSync(assets)) if (TYPES[extname(f)] && f !== 'index.html') files.set(f, join(assets, f));
  const indexHtml = readFileSync(join(assets, 'index.html'));
  const token = ctx.token ?? newToken();

  let server: Server;
  if (tls) {
    const read = (opt: string, f: string) => {
      try {
        return readFileSync(f);
      } catch (e) {
        throw new WebConfigError(`${opt}=${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file' : (e as Error).message}`);
      }
    };
    const cert = read('--web-cert', config.cert!);
    const key = read('--web-key', config.key!);
    try {
      server = createHttpsServer({ cert, key });
    } catch (e) {
      throw new WebConfigError(`--web-cert=${config.cert} --web-key=${config.key}: ${(e as Error).message}`);
    }
  } else server = createHttpServer();
  server.maxConnections = (ctx.maxStreams ?? MAX_STREAMS) * 2;
  server.headersTimeout = 20000;
  server.requestTimeout = 30000;

  const streams = new EventStreams(ctx.maxStreams ?? MAX_STREAMS);
  const logs = new LogHub();
  const sizes = new DirectorySizes();
  const imports = new ImportJobs(ctx.imagesDir, here, ctx.log);
  const sampler = new StatsSampler(
    {
      names: async () => (await running()).map((m) => m.name),
      read: (n) => ctx.readStats(n),
    },
    ctx.sampleMs ?? SAMPLE_MS,
  );

  // ---- the daemon's methods, as the view needs them
  async function running(name?: string): Promise<MachineEntry[]> {
    try {
      return (await ctx.call('io.systemd.Machine.List', name === undefined ? {} : { name, acquireMetadata: 'yes' }, name === undefined)) as unknown as MachineEntry[];
    } catch (e) {
      if ((e as { error?: string }).error === 'io.systemd.Machine.NoSuchMachine') return [];
      throw fromVarlink(e, { machine: name });
    }
  }
  async function runningWithMetadata(): Promise<MachineEntry[]> {
    try {
      return (await ctx.call('io.systemd.Machine.List', { acquireMetadata: 'yes' }, true)) as unknown as MachineEntry[];
    } catch (e) {
      if ((e as { error?: string }).error === 'io.systemd.Machine.NoSuchMachine') return [];
      throw fromVarlink(e, {});
    }
  }
  async function images(name?: string): Promise<ImageEntry[]> {
    try {
      return (await ctx.call('io.systemd.MachineImage.List', name === undefined ? {} : { name }, name === undefined)) as unknown as ImageEntry[];
    } catch (e) {
      const err = (e as { error?: string }).error;
      if (err === 'io.systemd.MachineImage.NoSuchImage' || err === 'org.varlink.service.MethodNotFound') return [];
      throw fromVarlink(e, { image: name });
    }
  }
  async function act(method: string, params: Record<string, unknown>, what: { machine?: string; image?: string }): Promise<Record<string, unknown>> {
    lists.clear();
    try {
      return (await ctx.call(method, params)).at(-1) ?? {};
    } catch (e) {
      throw fromVarlink(e, what);
    } finally {
      // (a page may have asked while it ran)
      lists.clear();
    }
  }

  const describe = (m: MachineEntry) => ({
    name: m.name,
    state: m.state ?? 'running',
    os: osName(m.OSRelease),
    addresses: (m.addresses ?? []).map((a) => ctx.formatAddress(a)),
    since: m.timestamp?.realtime !== undefined ? Math.round(m.timestamp.realtime / 1000) : null,
    leader: m.leader?.pid ?? null,
    service: m.service ?? null,
    managed: m.managed === true,
    sample: sampler.latest(m.name) ?? null,
  });

  /**
   * The lists every open page asks for every few seconds, answered from one call per LIST_TTL_MS however many pages
   * are open (an action drops them: the next asks nspawnd again).
   */
  const lists = new Map<string, { at: number; value: Promise<unknown> }>();
  function cached<T>(key: string, make: () => Promise<T>): Promise<T> {
    const c = lists.get(key);
    if (c && Date.now() - c.at < LIST_TTL_MS) return c.value as Promise<T>;
    const value = make();
    lists.set(key, { at: Date.now(), value });
    value.catch(() => lists.delete(key));
    return value;
  }

  /** Machines: the running ones, then the images nspawnd could start (a machine name, not hidden; raw ones with -i). */
  async function machinesList() {
    const [run, imgs] = await Promise.all([runningWithMetadata(), images()]);
    const names = new Set(run.map((m) => m.name));
    const rows: Array<ReturnType<typeof describe> | Record<string, unknown>> = run.map(describe);
    for (const i of imgs)
      if (!names.has(i.name) && machineNameIsValid(i.name))
        rows.push({ name: i.name, state: 'off', os: osName(i.OSRelease), addresses: [], since: null, leader: null, service: null, managed: false, sample: null });
    rows.sort((a, b) => ((a.name as string) < (b.name as string) ? -1 : 1));
    return { machines: rows, now: Date.now() };
  }

  function machineName(raw: string): string {
    let name: string;
    try {
      name = decodeURIComponent(raw);
    } catch {
      throw new HttpError(400, 'Invalid machine name.');
    }
    if (!machineNameIsValid(name)) throw new HttpError(400, `Invalid machine name '${name.length > 80 ? `${name.slice(0, 80)}...` : name}'.`);
    return name;
  }

  /** 404 unless NAME is a running machine or an image it can be started from. */
  async function known(name: string): Promise<void> {
    if ((await running(name)).length > 0 || (await images(name)).length > 0) return;
    throw new HttpError(404, `No machine '${name}' known.`);
  }

  /** One machine: running, or an image it can be started from; 404 when neither. */
  async function machineDetail(name: string) {
    const [m] = await running(name);
    const [img] = m ? await images(name).catch(() => []) : await images(name);
    if (!m && !img) throw new HttpError(404, `No machine '${name}' known.`);
    const root = m?.rootDirectory ?? img?.path ?? join(ctx.imagesDir, name);
    const searched = settingsSearchPath(name, root);
    let settings: { path: string; trusted: boolean; text: string; truncated: boolean } | null = null;
    for (const s of searched) {
      try {
        if (!existsSync(s.path)) continue;
        settings = { path: s.path, trusted: s.trusted, ...readBounded(s.path, SETTINGS_MAX) };
      } catch (e) {
        settings = { path: s.path, trusted: s.trusted, text: `(cannot be read: ${(e as Error).message})`, truncated: false };
      }
      break;
    }
    const base = m ? describe(m) : { name, state: 'off', os: osName(img?.OSRelease), addresses: [], since: null, leader: null, service: null, managed: false, sample: null };
    return {
      ...base,
      id: m?.id ?? null,
      class: m?.class ?? 'container',
      rootDirectory: m?.rootDirectory ?? img?.path ?? null,
      unit: m?.unit ?? null,
      image: img ? { type: img.type, readOnly: img.readOnly, path: img.path ?? null } : null,
      settings,
      settingsSearched: searched.map((s) => s.path),
      shell: `nspawnctl shell ${name}`,
      log: existsSync(join(ctx.logsDir, `${name}.log`)),
      now: Date.now(),
    };
  }

  async function imagesList() {
    const [imgs, run] = await Promise.all([images(), running()]);
    const names = new Set(run.map((m) => m.name));
    const paths = new Set<string>();
    const rows = imgs.map((i) => {
      let usage = i.usage ?? null;
      let usagePartial = false;
      if (usage === null && i.type !== 'raw' && i.path) {
        paths.add(i.path);
        const s = sizes.get(i.path);
        if (s) {
          usage = s.bytes;
          usagePartial = s.partial;
        }
      }
      return {
        name: i.name,
        type: i.type,
        readOnly: i.readOnly,
        usage,
        usageFromStore: i.usage !== undefined,
        usagePartial,
        limit: i.limit ?? null,
        created: i.creationTimestamp !== undefined ? Math.round(i.creationTimestamp / 1000) : null,
        modified: i.modificationTimestamp !== undefined ? Math.round(i.modificationTimestamp / 1000) : null,
        os: osName(i.OSRelease),
        running: names.has(i.name),
        hidden: i.name.startsWith('.'),
      };
    });
    sizes.retain(paths);
    return { images: rows, imports: imports.list(), now: Date.now() };
  }

  function imageNameOf(body: Record<string, unknown>, field: string): string {
    const v = body[field];
    if (typeof v !== 'string' || !imageNameIsValid(v)) throw new HttpError(400, `Invalid image name${typeof v === 'string' ? ` '${v.length > 80 ? `${v.slice(0, 80)}...` : v}'` : ` (${field})`}.`);
    return v;
  }

  // ---- HTTP
  const send = (res: ServerResponse, status: number, body: string | Buffer, type: string, extra: Record<string, string> = {}) => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), ...extra });
    res.end(body);
  };
  const sendJson = (res: ServerResponse, status: number, v: unknown) => send(res, status, JSON.stringify(v), 'application/json; charset=utf-8');
  const page = (res: ServerResponse, status: number, title: string, text: string) =>
    send(
      res,
      status,
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><link rel="stylesheet" href="/static/style.css"></head>` +
        `<body><main class="error-page"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p><p><a href="/">Machines</a></p></main></body></html>\n`,
      'text/html; charset=utf-8',
    );

  function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > BODY_MAX) {
          // the rest is read and dropped (the answer comes first; the request timeout ends a sender that goes on)
          req.removeAllListeners('data');
          req.resume();
          reject(new HttpError(413, `The request is over ${BODY_MAX} bytes.`));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        if (size === 0) return resolve({});
        try {
          const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
          resolve(v as Record<string, unknown>);
        } catch {
          reject(new HttpError(400, 'The request body is not a JSON object.'));
        }
      });
      req.on('error', reject);
    });
  }

  // (named after the port once it is known)
  let cookieKey = cookieName(config.port, tls);

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const parts = path.split('/').filter((p) => p !== '');
    if (method === 'GET' || method === 'HEAD') {
      if (path === '/' || path === '/images' || path === '/index.html') return send(res, 200, indexHtml, TYPES['.html']!);
      if (parts[0] === 'machines' && parts.length === 2) {
        // the page of a machine that is not known is a 404 with the reason, as the API says it
        await known(machineName(parts[1]!));
        return send(res, 200, indexHtml, TYPES['.html']!);
      }
      if (parts[0] === 'static' && parts.length === 2) {
        const f = files.get(parts[1]!);
        if (!f) throw new HttpError(404, `No file '${parts[1]}'.`);
        return send(res, 200, readFileSync(f), TYPES[extname(f)]!, { 'Cache-Control': 'private, max-age=300' });
      }
      if (path === '/api/machines') return sendJson(res, 200, await cached('machines', machinesList));
      if (parts[0] === 'api' && parts[1] === 'machines' && parts.length >= 3) {
        const name = machineName(parts[2]!);
        if (parts.length === 3) return sendJson(res, 200, await machineDetail(name));
        if (parts.length === 4 && parts[3] === 'stats') {
          await known(name);
          return sendJson(res, 200, { name, intervalMs: sampler.intervalMs, ...sampler.history(name) });
        }
        if (parts.length === 4 && parts[3] === 'events') {
          await known(name);
          const s = streams.accept(req, res, SECURITY_HEADERS);
          if (!s) return;
          const { tail, stop } = logs.watch(join(ctx.logsDir, `${name}.log`), (e) => s.send('console', e.kind === 'reset' ? { reset: true, text: e.text, skipped: e.skipped } : { text: e.text }));
          s.send('console', { reset: true, text: tail?.text ?? '', skipped: tail?.skipped ?? 0, missing: tail === undefined });
          const unsub = sampler.onSample((n, sample) => {
            if (n === name) s.send('sample', sample);
          });
          s.onClose(() => {
            stop();
            unsub();
          });
          return;
        }
      }
      if (path === '/api/images') return sendJson(res, 200, { ...(await cached('images', imagesList)), imports: imports.list() });
      if (path === '/api/imports') return sendJson(res, 200, { imports: imports.list() });
      throw new HttpError(404, `Nothing at ${path}.`);
    }
    if (method !== 'POST') throw new HttpError(405, `${method} is not allowed here.`);
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (type !== 'application/json') throw new HttpError(415, 'A change is asked for with a JSON body (Content-Type: application/json).');
    const body = await readBody(req);
    if (parts[0] === 'api' && parts[1] === 'machines' && parts.length === 4) {
      const name = machineName(parts[2]!);
      const what = { machine: name };
      switch (parts[3]) {
        case 'start':
          await act('io.nspawn.Machine.Start', { name }, what);
          return sendJson(res, 200, { ok: true });
        case 'poweroff':
          await act('io.nspawn.Machine.Poweroff', { name }, what);
          return sendJson(res, 200, { ok: true });
        case 'reboot':
          // what `nspawnctl reboot` sends: SIGINT to the leader (systemd's ctrl-alt-del)
          await act('io.systemd.Machine.Kill', { name, whom: 'leader', signal: 2 }, what);
          return sendJson(res, 200, { ok: true });
        case 'terminate':
          await act('io.systemd.Machine.Terminate', { name }, what);
          return sendJson(res, 200, { ok: true });
      }
    }
    if (parts[0] === 'api' && parts[1] === 'images' && parts.length === 3) {
      if (parts[2] === 'import') {
        try {
          const job = imports.start(body.path, body.name);
          return sendJson(res, 202, { ok: true, id: job.id });
        } catch (e) {
          if (e instanceof ImportRefused) throw new HttpError(400, e.message);
          throw e;
        }
      }
      const name = imageNameOf(body, 'name');
      const what = { image: name };
      switch (parts[2]) {
        case 'read-only':
          if (typeof body.readOnly !== 'boolean') throw new HttpError(400, 'readOnly must be true or false.');
          await act('io.systemd.MachineImage.Update', { name, readOnly: body.readOnly }, what);
          return sendJson(res, 200, { ok: true });
        case 'clone':
          await act('io.systemd.MachineImage.Clone', { name, newName: imageNameOf(body, 'newName'), readOnly: body.readOnly === true }, what);
          return sendJson(res, 200, { ok: true });
        case 'rename':
          await act('io.systemd.MachineImage.Update', { name, newName: imageNameOf(body, 'newName') }, what);
          return sendJson(res, 200, { ok: true });
        case 'remove':
          await act('io.systemd.MachineImage.Remove', { name }, what);
          return sendJson(res, 200, { ok: true });
      }
    }
    throw new HttpError(404, `Nothing at ${path}.`);
  }

  const refreshTo = (target: string) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${escapeHtml(target)}"><title>nspawnd</title></head>` +
    `<body><p><a href="${escapeHtml(target)}">Continue</a></p></body></html>\n`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const isApi = (req.url ?? '').startsWith('/api/');
    const fail = (status: number, message: string, extra: Record<string, string> = {}) => {
      if (res.headersSent) return void res.destroy();
      if (isApi || status === 401 || status === 403) send(res, status, isApi ? JSON.stringify({ error: message }) : `${message}\n`, isApi ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8', extra);
      else page(res, status, status === 404 ? 'Not found' : `Error ${status}`, message);
    };
    try {
      if (!hostAllowed(req.headers.host, config.host)) return fail(400, `Host ${String(req.headers.host)} is not this view's.`);
      let url: URL;
      try {
        // origin-form only ("/path?query"); "//x" is a path here, not an authority
        if (!(req.url ?? '').startsWith('/')) throw new Error();
        url = new URL(`http://view${req.url}`);
      } catch {
        return fail(400, 'Bad request URL.');
      }
      const viaCookie = tokenMatches(cookieValue(req.headers.cookie, cookieKey), token);
      const given = url.searchParams.get('token') ?? undefined;
      const method = req.method ?? 'GET';
      const viaToken = given !== undefined && (method === 'GET' || method === 'HEAD') && tokenMatches(given, token);
      if (!viaCookie && !viaToken) return fail(401, 'Unauthorized: open the address `nspawnctl web` prints (as root).');
      if (viaToken) {
        if (!isApi) {
          // the token for a cookie, and the same page again without the token in its address: a refresh by the page
          // itself, so that the SameSite=Strict cookie goes along even when the link was followed from another site
          url.searchParams.delete('token');
          // (one leading slash: "//host" would be another site)
          const target = `/${url.pathname.replace(/^[/\\]+/, '')}${url.search === '?' ? '' : url.search}`;
          return send(res, 200, refreshTo(target), 'text/html; charset=utf-8', { 'Set-Cookie': sessionCookie(cookieKey, token, tls) });
        }
      }
      if (req.method === 'POST') {
        // the cookie alone: a token in the address is not a reason to change anything
        if (!viaCookie) return fail(401, 'Unauthorized: a change needs the session cookie.');
        const why = crossOriginReason(req.headers, tls);
        if (why) return fail(403, `Cross-origin request refused: ${why}.`);
      }
      await route(req, res, url);
    } catch (e) {
      if (e instanceof HttpError) return fail(e.status, e.message);
      ctx.log(`web: ${req.method} ${req.url}: ${(e as Error).message}`);
      return fail(500, (e as Error).message);
    }
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => void handle(req, res));
  server.on('clientError', (_e, sock) => sock.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new WebConfigError(`--web=${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}: ${e.code === 'EADDRINUSE' ? 'the address is in use' : e.code === 'EADDRNOTAVAIL' ? 'no such address on this host' : e.message}`)),
    );
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  cookieKey = cookieName(port, tls);
  const wildcard = config.host === '0.0.0.0' || config.host === '::';
  const shown = wildcard ? hostname() : config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${tls ? 'https' : 'http'}://${shown}:${port}/`;

  // the access file: root only, made anew at each start
  const access = join(ctx.runtimeDir, WEB_ACCESS_FILE);
  const a: WebAccess = { url, token, pid: process.pid };
  writeFileSync(`${access}.tmp`, `${JSON.stringify(a)}\n`, { mode: 0o600 });
  renameSync(`${access}.tmp`, access);
  sampler.start();

  return {
    url,
    token,
    port,
    get streams() {
      return streams.size;
    },
    sampler,
    close: async () => {
      sampler.stop();
      streams.closeAll();
      logs.close();
      imports.close();
      try {
        unlinkSync(access);
      } catch {
        // gone
      }
      const closed = new Promise<void>((r) => server.close(() => r()));
      // keep-alive connections and requests under way too: the daemon is stopping
      server.closeAllConnections();
      await closed;
    },
  };
}
