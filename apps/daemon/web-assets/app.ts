/**
 * nspawnd's web view in the browser: three pages (Machines, one machine, Images) over nspawnd's /api. Plain DOM:
 * every value from the daemon goes in as text (textContent, never HTML), so a machine's os-release or an image's
 * name shows as written. Bundled with uPlot by esbuild at build time (dist/web/app.js); nothing is fetched from
 * anywhere but nspawnd.
 */
import uPlot from 'uplot';

// ---------------------------------------------------------------- helpers

type Child = Node | string | null | undefined | false;

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string, body?: Record<string, unknown>): Promise<T> {
  const r = await fetch(path, body === undefined ? { credentials: 'same-origin' } : { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  let v: unknown;
  try {
    v = await r.json();
  } catch {
    v = undefined;
  }
  if (!r.ok) {
    const msg = (v as { error?: string } | undefined)?.error ?? `${r.status} ${r.statusText}`;
    throw new ApiError(r.status, r.status === 401 ? 'The session is over: open the address `nspawnctl web` prints.' : msg);
  }
  return v as T;
}

function showError(msg: string | undefined): void {
  const e = $('error');
  if (!msg) {
    e.hidden = true;
    e.textContent = '';
    return;
  }
  e.hidden = false;
  e.textContent = msg;
}

function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}h ${mm}min`;
  if (mm > 0) return `${mm}min ${ss}s`;
  return `${ss}s`;
}

const pad = (n: number) => String(n).padStart(2, '0');
/** local time as 2026-12-06 04:43 */
function time(ms: number | null): string {
  if (ms === null) return '–';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A modal question; resolves with the input's value (or '' without one) on OK, undefined on Cancel. */
function ask(opts: { title: string; text: string; ok: string; danger?: boolean; field?: { label: string; value: string }; check?: string }): Promise<{ value: string; checked: boolean } | undefined> {
  const d = $<HTMLDialogElement>('dialog');
  $('dialog-title').textContent = opts.title;
  $('dialog-text').textContent = opts.text;
  const field = $('dialog-field');
  const input = $<HTMLInputElement>('dialog-input');
  field.hidden = !opts.field;
  input.required = !!opts.field;
  if (opts.field) {
    field.querySelector('span')!.textContent = opts.field.label;
    input.value = opts.field.value;
  }
  const check = $('dialog-check');
  const box = $<HTMLInputElement>('dialog-checkbox');
  check.hidden = !opts.check;
  box.checked = false;
  if (opts.check) check.querySelector('span')!.textContent = opts.check;
  const ok = $<HTMLButtonElement>('dialog-ok');
  ok.textContent = opts.ok;
  ok.className = opts.danger ? 'danger' : 'primary';
  d.returnValue = '';
  d.showModal();
  if (opts.field) input.select();
  return new Promise((resolve) => {
    d.addEventListener(
      'close',
      () => resolve(d.returnValue === 'ok' ? { value: opts.field ? input.value : '', checked: box.checked } : undefined),
      { once: true },
    );
  });
}

/** Runs ACTION with BUTTON busy; errors go to the banner. */
async function busy(button: HTMLButtonElement, label: string, action: () => Promise<unknown>, after?: () => unknown): Promise<void> {
  const old = button.textContent;
  button.disabled = true;
  button.textContent = label;
  try {
    await action();
    showError(undefined);
  } catch (e) {
    showError((e as Error).message);
  } finally {
    button.disabled = false;
    button.textContent = old;
    await after?.();
  }
}

function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHMNOZ]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\r/g, '');
}

// ---------------------------------------------------------------- machines

interface Sample {
  t: number;
  cpu: number | null;
  memory: number | null;
  tasks: number | null;
}

interface MachineRow {
  name: string;
  state: 'running' | 'closing' | 'opening' | 'off';
  os: string | null;
  addresses: string[];
  since: number | null;
  leader: number | null;
  sample: Sample | null;
}

interface MachineDetail extends MachineRow {
  id: string | null;
  rootDirectory: string | null;
  unit: string | null;
  image: { type: string; readOnly: boolean; path: string | null } | null;
  settings: { path: string; trusted: boolean; text: string; truncated: boolean } | null;
  settingsSearched: string[];
  shell: string;
  log: boolean;
  now: number;
}

const machinePath = (name: string) => `/machines/${encodeURIComponent(name)}`;
const machineApi = (name: string) => `/api/machines/${encodeURIComponent(name)}`;

function stateBadge(state: string): HTMLElement {
  return h('span', { class: `badge state-${state}` }, state);
}

/** The buttons of a machine in STATE: start, or poweroff, reboot and terminate (asked first). */
function machineActions(name: string, state: string, done: () => unknown): HTMLElement {
  const box = h('span', { class: 'actions' });
  const btn = (label: string, verb: string, busyLabel: string, cls = '') => {
    const b = h('button', { type: 'button', class: cls, 'data-action': verb }, label);
    b.addEventListener('click', async () => {
      if (verb === 'terminate') {
        const a = await ask({ title: `Terminate ${name}?`, text: `All processes of machine ${name} are killed at once, without a clean shutdown (nspawnctl terminate ${name}).`, ok: 'Terminate', danger: true });
        if (!a) return;
      }
      await busy(b, busyLabel, () => api(`${machineApi(name)}/${verb}`, {}), done);
    });
    return b;
  };
  if (state === 'off') box.append(btn('Start', 'start', 'Starting…', 'primary'));
  else if (state === 'running') box.append(btn('Poweroff', 'poweroff', 'Powering off…'), btn('Reboot', 'reboot', 'Rebooting…'), btn('Terminate', 'terminate', 'Terminating…', 'danger'));
  return box;
}

function uptime(since: number | null, now: number): string {
  return since === null ? '–' : duration(now - since);
}

async function machinesPage(main: HTMLElement): Promise<void> {
  const summary = h('p', { class: 'muted', id: 'summary' });
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'list', id: 'machines' },
    h('thead', {}, h('tr', {}, ...['Machine', 'State', 'OS', 'Addresses', 'Uptime', 'CPU', 'Memory', 'Tasks', ''].map((c) => h('th', {}, c)))),
    body,
  );
  main.replaceChildren(h('h1', {}, 'Machines'), summary, table);
  const refresh = async () => {
    let data: { machines: MachineRow[]; now: number };
    try {
      data = await api('/api/machines');
    } catch (e) {
      showError((e as Error).message);
      return;
    }
    const offset = Date.now() - data.now;
    const rows = data.machines.map((m) =>
      h(
        'tr',
        { 'data-machine': m.name, 'data-state': m.state },
        h('td', { class: 'name' }, h('a', { href: machinePath(m.name) }, m.name)),
        h('td', {}, stateBadge(m.state)),
        h('td', { class: 'os' }, m.os ?? '–'),
        h('td', { class: 'mono' }, m.addresses.length ? m.addresses.join(', ') : '–'),
        h('td', {}, uptime(m.since, Date.now() - offset)),
        h('td', { class: 'num' }, m.sample?.cpu !== null && m.sample?.cpu !== undefined ? `${m.sample.cpu.toFixed(1)}%` : '–'),
        h('td', { class: 'num' }, bytes(m.sample?.memory)),
        h('td', { class: 'num' }, m.sample?.tasks !== null && m.sample?.tasks !== undefined ? String(m.sample.tasks) : '–'),
        h('td', {}, machineActions(m.name, m.state, refresh)),
      ),
    );
    body.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: '9', class: 'muted' }, `No machines: no running machine, and no image in the store.`))]));
    const up = data.machines.filter((m) => m.state !== 'off').length;
    summary.textContent = `${up} running, ${data.machines.length - up} stopped.`;
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  };
  await refresh();
  setInterval(() => void refresh(), 2000);
}

/** A small time chart of one series over the last 10 minutes. */
class Chart {
  readonly plot: uPlot;
  private t: number[] = [];
  private v: Array<number | null> = [];

  constructor(
    readonly box: HTMLElement,
    label: string,
    color: string,
    private readonly scale: (x: number | null) => number | null,
    unit: string,
  ) {
    this.plot = new uPlot(
      {
        width: Math.max(240, box.clientWidth || 300),
        height: 150,
        title: label,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max * 1.15, unit === '%' ? 5 : 1)] } },
        axes: [{ stroke: '#667', grid: { stroke: '#eef' } }, { stroke: '#667', grid: { stroke: '#eef' }, size: 68, values: (_u, ticks) => ticks.map((x) => `${+x.toFixed(2)}${unit}`) }],
        series: [{}, { label, stroke: color, width: 1.5, fill: `${color}22`, points: { show: (u: uPlot) => (u.data[0]?.length ?? 0) < 40, size: 4 } as uPlot.Series.Points, spanGaps: false }],
      },
      [[], []],
      box,
    );
  }

  set(t: number[], v: Array<number | null>): void {
    this.t = t.slice();
    this.v = v.map(this.scale);
    this.draw();
  }

  add(t: number, v: number | null): void {
    this.t.push(t);
    this.v.push(this.scale(v));
    const from = t - 600;
    while (this.t.length && this.t[0]! < from) {
      this.t.shift();
      this.v.shift();
    }
    this.draw();
  }

  private draw(): void {
    const now = Date.now() / 1000;
    this.plot.batch(() => {
      this.plot.setData([this.t, this.v], false);
      this.plot.setScale('x', { min: now - 600, max: now });
    });
    this.box.dataset.points = String(this.v.filter((x) => x !== null).length);
  }

  resize(): void {
    this.plot.setSize({ width: Math.max(240, this.box.clientWidth), height: 150 });
  }
}

async function machinePage(main: HTMLElement, name: string): Promise<void> {
  const title = h('h1', {}, name, ' ');
  const state = h('span', { id: 'machine-state' });
  title.append(state);
  const actions = h('div', { id: 'machine-actions' });
  const info = h('dl', { class: 'info', id: 'machine-info' });
  const shellCode = h('code', { id: 'shell-line' }, `nspawnctl shell ${name}`);
  const copy = h('button', { type: 'button', id: 'copy-shell' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(shellCode.textContent ?? '');
      copy.textContent = 'Copied';
    } catch {
      // no clipboard (not a secure context): select it for ^C
      const r = document.createRange();
      r.selectNodeContents(shellCode);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(r);
      copy.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => (copy.textContent = 'Copy'), 2000);
  });
  const charts = h('div', { class: 'charts' });
  const cpuBox = h('div', { class: 'chart', id: 'chart-cpu' });
  const memBox = h('div', { class: 'chart', id: 'chart-memory' });
  const taskBox = h('div', { class: 'chart', id: 'chart-tasks' });
  charts.append(cpuBox, memBox, taskBox);
  const consolePre = h('pre', { class: 'console', id: 'console' });
  const consoleNote = h('p', { class: 'muted', id: 'console-note' });
  const settingsBox = h('div', { id: 'settings' });
  main.replaceChildren(
    h('p', { class: 'crumbs' }, h('a', { href: '/' }, 'Machines'), ' / ', name),
    h('div', { class: 'titlebar' }, title, actions),
    info,
    h('p', { class: 'shell' }, 'Shell: ', shellCode, ' ', copy),
    h('h2', {}, 'Last 10 minutes'),
    charts,
    h('h2', {}, 'Console'),
    consoleNote,
    consolePre,
    h('h2', {}, 'Settings file'),
    settingsBox,
  );

  const cpu = new Chart(cpuBox, 'CPU', '#1f77b4', (x) => x, '%');
  const mem = new Chart(memBox, 'Memory', '#2ca02c', (x) => (x === null ? null : x / 1048576), ' MiB');
  const tasks = new Chart(taskBox, 'Tasks', '#d62728', (x) => x, '');
  addEventListener('resize', () => [cpu, mem, tasks].forEach((c) => c.resize()));

  let lastState = '';
  const refresh = async () => {
    let m: MachineDetail;
    try {
      m = await api(machineApi(name));
    } catch (e) {
      showError((e as Error).message);
      if ((e as ApiError).status === 404) state.replaceChildren(stateBadge('gone'));
      return;
    }
    showError(undefined);
    const offset = Date.now() - m.now;
    state.replaceChildren(stateBadge(m.state));
    if (m.state !== lastState) {
      actions.replaceChildren(machineActions(name, m.state, refresh));
      lastState = m.state;
    }
    const row = (k: string, v: string, cls = '') => [h('dt', {}, k), h('dd', { class: cls }, v)];
    info.replaceChildren(
      ...row('OS', m.os ?? '–', 'os'),
      ...row('Addresses', m.addresses.length ? m.addresses.join(', ') : '–', 'mono'),
      ...row('Uptime', m.since === null ? '–' : `${uptime(m.since, Date.now() - offset)} (since ${time(m.since)})`),
      ...row('Leader', m.leader === null ? '–' : `PID ${m.leader}`),
      ...row('Root directory', m.rootDirectory ?? '–', 'mono'),
      ...row('Image', m.image ? `${m.image.type}${m.image.readOnly ? ', read-only' : ''}` : '–'),
      ...(m.unit ? row('Unit', m.unit, 'mono') : []),
    );
    if (m.settings) {
      settingsBox.replaceChildren(
        h('p', { class: 'muted' }, m.settings.path, m.settings.trusted ? ' (trusted: all of it applies)' : ' (beside the image: privileged settings are ignored)', m.settings.truncated ? ' — shown in part' : ''),
        h('pre', { class: 'settings', id: 'settings-text' }, m.settings.text),
      );
    } else settingsBox.replaceChildren(h('p', { class: 'muted', id: 'settings-none' }, `No settings file (looked for ${m.settingsSearched.join(', ')}).`));
    if (!m.log) consoleNote.textContent = 'No console log yet: nspawnd keeps one for the machines it starts.';
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  };
  await refresh();
  setInterval(() => void refresh(), 3000);

  try {
    const s = await api<{ t: number[]; cpu: Array<number | null>; memory: Array<number | null>; tasks: Array<number | null> }>(`${machineApi(name)}/stats`);
    cpu.set(s.t, s.cpu);
    mem.set(s.t, s.memory);
    tasks.set(s.t, s.tasks);
  } catch (e) {
    showError((e as Error).message);
  }

  // the console and the samples, live
  const MAX_CONSOLE = 512 * 1024;
  const es = new EventSource(`${machineApi(name)}/events`);
  es.addEventListener('console', (ev) => {
    const d = JSON.parse((ev as MessageEvent<string>).data) as { reset?: boolean; text: string; skipped?: number; missing?: boolean };
    const atBottom = consolePre.scrollTop + consolePre.clientHeight >= consolePre.scrollHeight - 8;
    let text = stripAnsi(d.text);
    if (d.reset) {
      if (d.skipped) text = `[… ${bytes(d.skipped)} earlier not shown …]\n${text}`;
      consolePre.textContent = text;
    } else {
      consolePre.append(document.createTextNode(text));
      if ((consolePre.textContent?.length ?? 0) > MAX_CONSOLE) consolePre.textContent = consolePre.textContent!.slice(-MAX_CONSOLE / 2);
    }
    consolePre.dataset.updated = String(Date.now());
    if (atBottom || d.reset) consolePre.scrollTop = consolePre.scrollHeight;
  });
  es.addEventListener('sample', (ev) => {
    const s = JSON.parse((ev as MessageEvent<string>).data) as Sample;
    cpu.add(s.t / 1000, s.cpu);
    mem.add(s.t / 1000, s.memory);
    tasks.add(s.t / 1000, s.tasks);
  });
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CLOSED) showError('The live console stopped: reload the page.');
  });
}

// ---------------------------------------------------------------- images

interface ImageRow {
  name: string;
  type: string;
  readOnly: boolean;
  usage: number | null;
  usageFromStore: boolean;
  usagePartial: boolean;
  limit: number | null;
  created: number | null;
  modified: number | null;
  os: string | null;
  running: boolean;
  hidden: boolean;
}

interface ImportJob {
  id: number;
  file: string;
  name: string;
  state: 'running' | 'done' | 'failed';
  done: number;
  total: number | null;
  error?: string;
}

async function imagesPage(main: HTMLElement): Promise<void> {
  const body = h('tbody');
  const table = h(
    'table',
    { class: 'list', id: 'images' },
    h('thead', {}, h('tr', {}, ...['Image', 'Type', 'Size', 'Read-only', 'OS', 'Created', 'Modified', 'State', ''].map((c) => h('th', {}, c)))),
    body,
  );
  const path = h('input', { id: 'import-path', placeholder: '/var/tmp/debian.tar.xz', required: true, spellcheck: 'false', autocomplete: 'off' });
  const iname = h('input', { id: 'import-name', placeholder: 'from the file name', spellcheck: 'false', autocomplete: 'off' });
  const go = h('button', { type: 'submit', class: 'primary', id: 'import-go' }, 'Import');
  const form = h(
    'form',
    { id: 'import-form', class: 'import' },
    h('label', { class: 'field' }, h('span', {}, 'Archive on the host'), path),
    h('label', { class: 'field' }, h('span', {}, 'Image name'), iname),
    go,
  );
  const jobs = h('div', { id: 'imports' });
  main.replaceChildren(
    h('h1', {}, 'Images'),
    table,
    h('h2', {}, 'Import a tar archive'),
    h('p', { class: 'muted' }, 'As nspawnctl import-tar FILE [NAME]: a tar archive (plain, gzip, xz, bzip2 or zstd) on the host becomes an image in the store.'),
    form,
    jobs,
  );
  let importsRunning = false;
  const renderJobs = (list: ImportJob[]) => {
    importsRunning = list.some((j) => j.state === 'running');
    jobs.replaceChildren(
      ...list
        .slice()
        .reverse()
        .map((j) => {
          const p = h('progress', { max: '1' });
          if (j.state !== 'running') p.value = 1;
          else if (j.total) p.value = Math.min(0.99, j.done / j.total);
          else p.removeAttribute('value');
          const what = j.state === 'running' ? (j.total ? `${Math.floor((100 * Math.min(j.done, j.total)) / j.total)}% (${bytes(j.done)} of ${bytes(j.total)})` : `${bytes(j.done)} read`) : j.state === 'done' ? `done: image ${j.name}` : `failed: ${j.error ?? ''}`;
          return h('div', { class: `job job-${j.state}`, 'data-job': String(j.id), 'data-state': j.state }, h('span', { class: 'mono' }, j.file), p, h('span', { class: 'job-state' }, what));
        }),
    );
  };
  const refresh = async () => {
    let data: { images: ImageRow[]; imports: ImportJob[] };
    try {
      data = await api('/api/images');
    } catch (e) {
      showError((e as Error).message);
      return;
    }
    body.replaceChildren(
      ...data.images.map((i) => {
        const ro = h('input', { type: 'checkbox', class: 'ro', title: 'read-only' });
        ro.checked = i.readOnly;
        ro.addEventListener('change', async () => {
          ro.disabled = true;
          try {
            await api('/api/images/read-only', { name: i.name, readOnly: ro.checked });
            showError(undefined);
          } catch (e) {
            ro.checked = !ro.checked;
            showError((e as Error).message);
          } finally {
            ro.disabled = false;
            await refresh();
          }
        });
        const clone = h('button', { type: 'button', 'data-action': 'clone' }, 'Clone');
        clone.addEventListener('click', async () => {
          const a = await ask({ title: `Clone ${i.name}`, text: `A copy of image ${i.name} (nspawnctl clone).`, ok: 'Clone', field: { label: 'New name', value: `${i.name}-copy` }, check: 'read-only' });
          if (a) await busy(clone, 'Cloning…', () => api('/api/images/clone', { name: i.name, newName: a.value, readOnly: a.checked }), refresh);
        });
        const rename = h('button', { type: 'button', 'data-action': 'rename', disabled: i.running, title: i.running ? 'running: stop it first' : undefined }, 'Rename');
        rename.addEventListener('click', async () => {
          const a = await ask({ title: `Rename ${i.name}`, text: `The image and its settings keep their content (nspawnctl rename).`, ok: 'Rename', field: { label: 'New name', value: i.name } });
          if (a) await busy(rename, 'Renaming…', () => api('/api/images/rename', { name: i.name, newName: a.value }), refresh);
        });
        const remove = h('button', { type: 'button', class: 'danger', 'data-action': 'remove', disabled: i.running, title: i.running ? 'running: stop it first' : undefined }, 'Remove');
        remove.addEventListener('click', async () => {
          const a = await ask({ title: `Remove ${i.name}?`, text: `Image ${i.name} is deleted from the store for good (nspawnctl remove).`, ok: 'Remove', danger: true });
          if (a) await busy(remove, 'Removing…', () => api('/api/images/remove', { name: i.name }), refresh);
        });
        const size = i.usage === null ? '–' : `${i.usageFromStore ? '' : '≈ '}${bytes(i.usage)}${i.usagePartial ? '+' : ''}`;
        return h(
          'tr',
          { 'data-image': i.name },
          h('td', { class: 'name' }, i.name),
          h('td', {}, i.type),
          h('td', { class: 'num', title: i.usageFromStore ? 'from the store (quota)' : 'counted on disk (du)' }, size),
          h('td', {}, ro),
          h('td', { class: 'os' }, i.os ?? '–'),
          h('td', { class: 'date' }, time(i.created)),
          h('td', { class: 'date' }, time(i.modified)),
          h('td', {}, i.running ? stateBadge('running') : '–'),
          h('td', {}, h('span', { class: 'actions' }, clone, rename, remove)),
        );
      }),
    );
    if (data.images.length === 0) body.replaceChildren(h('tr', {}, h('td', { colspan: '9', class: 'muted' }, 'No images in the store.')));
    renderJobs(data.imports);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await busy(go, 'Starting…', async () => {
      await api('/api/images/import', { path: path.value, ...(iname.value ? { name: iname.value } : {}) });
      path.value = '';
      iname.value = '';
    }, refresh);
  });
  await refresh();
  setInterval(() => void refresh(), 4000);
  setInterval(async () => {
    if (!importsRunning) return;
    try {
      const before = importsRunning;
      renderJobs((await api<{ imports: ImportJob[] }>('/api/imports')).imports);
      if (before && !importsRunning) await refresh();
    } catch {
      // the next round
    }
  }, 700);
}

// ---------------------------------------------------------------- routing

async function main(): Promise<void> {
  const main = $('main');
  const path = location.pathname;
  const m = /^\/machines\/([^/]+)$/.exec(path);
  document.querySelectorAll<HTMLAnchorElement>('nav a').forEach((a) => a.classList.toggle('current', a.dataset.nav === (path.startsWith('/images') ? 'images' : 'machines')));
  try {
    if (m) {
      const name = decodeURIComponent(m[1]!);
      document.title = `${name} · nspawnd`;
      await machinePage(main, name);
    } else if (path === '/images') {
      document.title = 'Images · nspawnd';
      await imagesPage(main);
    } else {
      document.title = 'Machines · nspawnd';
      await machinesPage(main);
    }
  } catch (e) {
    showError((e as Error).message);
  }
  document.body.dataset.ready = '1';
}

void main();
