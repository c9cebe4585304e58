import { describe, expect, it } from 'vitest';
import { cookieName, cookieValue, crossOriginReason, hostAllowed, hostnameOf, newToken, sessionCookie, tokenMatches } from './auth.js';

describe('the token', () => {
  it('is 32 random bytes in base64url, a new one each time', () => {
    const a = newToken();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(newToken()).not.toBe(a);
  });
  it('matches only itself: not a prefix, not a longer string, not another of the same length, not nothing', () => {
    const t = newToken();
    expect(tokenMatches(t, t)).toBe(true);
    expect(tokenMatches(t.slice(0, -1), t)).toBe(false);
    expect(tokenMatches(`${t}x`, t)).toBe(false);
    expect(tokenMatches(`${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`, t)).toBe(false);
    expect(tokenMatches('', t)).toBe(false);
    expect(tokenMatches(undefined, t)).toBe(false);
    expect(tokenMatches('x'.repeat(5000), t)).toBe(false);
  });
});

describe('the cookie', () => {
  it('is named after the port, __Host- under TLS', () => {
    expect(cookieName(8484, false)).toBe('nspawnd-web-8484');
    expect(cookieName(8484, true)).toBe('__Host-nspawnd-web-8484');
  });
  it('is HttpOnly, SameSite=Strict, for the whole path; Secure under TLS only', () => {
    expect(sessionCookie('c', 'T', false)).toBe('c=T; Path=/; HttpOnly; SameSite=Strict');
    expect(sessionCookie('c', 'T', true)).toBe('c=T; Path=/; HttpOnly; SameSite=Strict; Secure');
  });
  it('is found among others in a Cookie header, by its exact name', () => {
    expect(cookieValue('a=1; nspawnd-web-1=tok; b=2', 'nspawnd-web-1')).toBe('tok');
    expect(cookieValue('xnspawnd-web-1=tok', 'nspawnd-web-1')).toBeUndefined();
    expect(cookieValue('nspawnd-web-10=tok', 'nspawnd-web-1')).toBeUndefined();
    expect(cookieValue(undefined, 'c')).toBeUndefined();
    expect(cookieValue('c', 'c')).toBeUndefined();
    expect(cookieValue(`c=${'x'.repeat(20000)}`, 'c')).toBeUndefined();
  });
});

describe('the Host header', () => {
  it('is read for its name', () => {
    expect(hostnameOf('127.0.0.1:8484')).toBe('127.0.0.1');
    expect(hostnameOf('[::1]:8484')).toBe('::1');
    expect(hostnameOf('LocalHost')).toBe('localhost');
  });
  it('names loopback on a loopback view (DNS rebinding gets nothing), anything elsewhere', () => {
    for (const h of ['127.0.0.1:8484', 'localhost:8484', '[::1]:8484', '127.1.2.3']) expect(hostAllowed(h, '127.0.0.1'), h).toBe(true);
    for (const h of ['evil.example:8484', '10.0.0.1:8484', '', undefined]) expect(hostAllowed(h, '127.0.0.1'), String(h)).toBe(false);
    expect(hostAllowed('nspawn.example:8443', '0.0.0.0')).toBe(true);
    expect(hostAllowed(undefined, '0.0.0.0')).toBe(false);
  });
});

describe('the same-origin check of a change (CSRF)', () => {
  const host = '127.0.0.1:8484';
  it('takes a same-origin fetch of the view', () => {
    expect(crossOriginReason({ host, origin: 'http://127.0.0.1:8484', 'sec-fetch-site': 'same-origin' }, false)).toBeUndefined();
    expect(crossOriginReason({ host, origin: 'http://127.0.0.1:8484' }, false)).toBeUndefined();
    expect(crossOriginReason({ host: 'h:8443', origin: 'https://h:8443' }, true)).toBeUndefined();
  });
  it('refuses another site, another port, another scheme, or a request that says nothing', () => {
    expect(crossOriginReason({ host, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' }, false)).toMatch(/Sec-Fetch-Site is cross-site/);
    expect(crossOriginReason({ host, 'sec-fetch-site': 'same-site' }, false)).toMatch(/same-site/);
    expect(crossOriginReason({ host, origin: 'http://127.0.0.1:9999' }, false)).toMatch(/not this view's/);
    expect(crossOriginReason({ host, origin: 'https://127.0.0.1:8484' }, false)).toMatch(/not this view's/);
    expect(crossOriginReason({ host, origin: 'null' }, false)).toMatch(/not this view's/);
    expect(crossOriginReason({ host }, false)).toMatch(/no Origin or Sec-Fetch-Site/);
    expect(crossOriginReason({ origin: 'http://127.0.0.1:8484' }, false)).toMatch(/not this view's/);
  });
});
