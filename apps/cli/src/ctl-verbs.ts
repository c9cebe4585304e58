/**
 * nspawnctl's verbs by group, each group's module imported when one of its verbs runs (so that `nspawnctl list`
 * initialises neither the tar transfers, whose @nspawn/import loads crypto, zlib and streams, nor the copies or
 * the units), and which verbs any user may run.
 */
import { machineImageSocketPath } from '@nspawn/runtime';
import { call, CtlError, type CtlVerb, err, json, machine, out, table } from './ctl-common.js';
import type { Verb } from './ctl-images.js';

/** What any user may run, as with machinectl: they only read from nspawnd (its socket lets anyone list). */
export const READ_ONLY_VERBS: ReadonlySet<string> = new Set(['list', 'status', 'show', 'list-images', 'image-status', 'show-image', 'list-transfers']);

/** The image verbs get what they need through a context (ctl-images.ts stays free of the other modules). */
const imageVerb =
  (v: Verb): CtlVerb =>
  async (args, opts) => {
    const { execIn } = await import('./ctl-exec.js');
    return v(args, opts, {
      call: (m, p, more, onReply) => call(m, p, more, machineImageSocketPath(), onReply),
      out,
      err,
      machine,
      execIn,
      table,
      json,
      fail: (msg) => {
        throw new CtlError(msg);
      },
    });
  };

const images = (f: (m: typeof import('./ctl-images.js')) => Record<string, Verb>) => async () => {
  const verbs = f(await import('./ctl-images.js'));
  return Object.fromEntries(Object.entries(verbs).map(([k, v]) => [k, imageVerb(v)]));
};

/** Each group's verbs (test/ctl-verbs.test.ts checks them against its module) and how to load them. */
export const VERB_GROUPS: ReadonlyArray<readonly [readonly string[], () => Promise<Record<string, CtlVerb>>]> = [
  [['list', 'status', 'show', 'start', 'login', 'shell', 'poweroff', 'reboot', 'terminate', 'kill', 'top'], async () => (await import('./ctl-machines.js')).machineVerbs],
  [['copy-to', 'copy-from', 'bind'], async () => (await import('./ctl-copy.js')).copyVerbs],
  [['enable', 'disable', 'logs'], async () => (await import('./ctl-daemon.js')).daemonVerbs],
  [['web'], async () => (await import('./ctl-web.js')).webVerbs],
  [['install-units'], async () => (await import('./ctl-units.js')).unitVerbs],
  [['list-images', 'image-status', 'clone', 'rename', 'read-only', 'remove', 'set-limit'], images((m) => m.imageVerbs)],
  [['clean'], async () => ({ clean: imageVerb((await import('./ctl-clean.js')).clean) })],
  [['pull-raw', 'import-raw', 'import-fs', 'export-raw', 'list-transfers', 'cancel-transfer', 'show-image'], async () => Object.fromEntries(Object.entries((await import('./ctl-transfers.js')).transferVerbs).map(([k, v]) => [k, imageVerb(v)]))],
  [['pull-tar', 'import-tar', 'export-tar'], async () => Object.fromEntries(Object.entries((await import('./ctl-tar.js')).tarVerbs).map(([k, v]) => [k, imageVerb(v)]))],
];

