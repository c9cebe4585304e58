/**
 * Running containers' names on the host: a block of /etc/hosts that nspawn owns, between two marker lines,
 * rewritten from the running containers' records (and removed when none is left). Lines outside the block are
 * never changed. (systemd uses nss-mymachines for this; a hosts block works on any libc, without machined.)
 */
import { readFileSync, writeFileSync } from 'node:fs';

export const HOSTS_BEGIN = '# BEGIN nspawn: running containers (managed by nspawn, do not edit)';
export const HOSTS_END = '# END nspawn';

/** TEXT with our block replaced by ENTRIES (none: the block removed) */
export function rewriteHosts(text: string, entries: Array<{ address: string; names: string[] }>): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const l of lines) {
    if (l === HOSTS_BEGIN) {
      inside = true;
      continue;
    }
    if (inside) {
      if (l === HOSTS_END) inside = false;
      continue;
    }
    out.push(l);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  if (entries.length > 0) out.push(HOSTS_BEGIN, ...entries.map((e) => `${e.address}\t${e.names.join(' ')}`), HOSTS_END);
  return out.join('\n') + '\n';
}

export function syncHostsFile(entries: Array<{ address: string; names: string[] }>, path = '/etc/hosts'): void {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    if (entries.length === 0) return;
  }
  const next = rewriteHosts(text, entries);
  // in place (not rename): /etc/hosts may be a bind mount
  if (next !== text) writeFileSync(path, next);
}
