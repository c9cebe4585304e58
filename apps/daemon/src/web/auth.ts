/**
 * Who may use the web view: whoever shows the token nspawnd made at start (root can read it: `nspawnctl web`).
 * The first page swaps the token in the URL for a cookie (HttpOnly, SameSite=Strict, Secure under TLS); every
 * other request needs that cookie (or the token), and a request that changes something needs the cookie and must
 * come from the view's own origin (CSRF). Pure: the server (./server.ts) applies it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { isLoopback } from './config.js';

/** A new token: 32 random bytes, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Whether GIVEN is TOKEN, in a time that does not depend on where they differ (or on GIVEN's length). */
export function tokenMatches(given: string | undefined, token: string): boolean {
  if (typeof given !== 'string' || given.length > 1024) return false;
  // equal-length digests for timingSafeEqual; the comparison itself is constant-time
  return timingSafeEqual(digest(given), digest(token));
}

/** The cookie's name: one per port (cookies do not tell ports apart), `__Host-` under TLS. */
export function cookieName(port: number, tls: boolean): string {
  return `${tls ? '__Host-' : ''}nspawnd-web-${port}`;
}

/** The Set-Cookie header that stores TOKEN: for this origin's whole path, HttpOnly, SameSite=Strict, Secure under TLS. */
export function sessionCookie(name: string, token: string, tls: boolean): string {
  return `${name}=${token}; Path=/; HttpOnly; SameSite=Strict${tls ? '; Secure' : ''}`;
}

/** The value of cookie NAME in a Cookie header (the first one), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header || header.length > 16384) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** The hostname of a Host header ("[::1]:8484" -> "::1", "localhost:8484" -> "localhost"), lower case. */
export function hostnameOf(host: string): string {
  const h = host.trim().toLowerCase();
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(h);
  if (v6) return v6[1]!;
  const i = h.lastIndexOf(':');
  return i >= 0 && !h.slice(0, i).includes(':') ? h.slice(0, i) : h;
}

/**
 * Whether a Host header may name a view served on BOUND: on loopback only loopback names (localhost, 127.0.0.0/8,
 * ::1), so that a page of another site whose name was rebound to 127.0.0.1 (DNS rebinding) gets nothing; on any
 * other address any name (TLS and the token protect it there).
 */
export function hostAllowed(host: string | undefined, bound: string): boolean {
  if (!host || host.length > 255) return false;
  if (!isLoopback(bound)) return true;
  const name = hostnameOf(host);
  return name === 'localhost' || (isIP(name) !== 0 && isLoopback(name));
}

/**
 * Whether a request that changes something comes from the view itself: Sec-Fetch-Site (browsers send it) must be
 * `same-origin`, and Origin, when sent (a browser sends it with every POST), must be this very origin
 * (SCHEME://Host). A request with neither is refused: no browser of this decade leaves both out of a POST.
 * Returns why not, or undefined when it is fine.
 */
export function crossOriginReason(headers: IncomingHttpHeaders, tls: boolean): string | undefined {
  const site = headers['sec-fetch-site'];
  const origin = headers.origin;
  if (site === undefined && origin === undefined) return 'no Origin or Sec-Fetch-Site header';
  if (site !== undefined && site !== 'same-origin') return `Sec-Fetch-Site is ${String(site)}`;
  if (origin !== undefined) {
    const host = headers.host;
    if (!host || origin !== `${tls ? 'https' : 'http'}://${host}`) return `Origin ${origin} is not this view's`;
  }
  return undefined;
}
