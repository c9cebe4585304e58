import { describe, expect, it } from 'vitest';
import { isLoopback, parseWebConfig, webConfigFromEnv } from './config.js';

describe('--web', () => {
  it('takes ADDR:PORT, [V6]:PORT, or a port alone (loopback)', () => {
    expect(parseWebConfig('127.0.0.1:8484')).toEqual({ host: '127.0.0.1', port: 8484 });
    expect(parseWebConfig('8484')).toEqual({ host: '127.0.0.1', port: 8484 });
    expect(parseWebConfig(':0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseWebConfig('localhost:80')).toEqual({ host: '127.0.0.1', port: 80 });
    expect(parseWebConfig('[::1]:8484')).toEqual({ host: '::1', port: 8484 });
  });
  it('refuses what is no address or port, in one line naming the value', () => {
    expect(() => parseWebConfig('example.com:80')).toThrow("--web=example.com:80: 'example.com' is not an IP address (give ADDR:PORT, e.g. 127.0.0.1:8484)");
    expect(() => parseWebConfig('127.0.0.1:http')).toThrow(/'http' is not a port number/);
    expect(() => parseWebConfig('127.0.0.1:65536')).toThrow(/not a port number/);
    expect(() => parseWebConfig('::1:80')).toThrow(/IPv6 address goes in brackets/);
    expect(() => parseWebConfig('')).toThrow(/not a port number/);
  });
  it('needs TLS off loopback', () => {
    expect(() => parseWebConfig('0.0.0.0:8443')).toThrow('--web=0.0.0.0:8443: 0.0.0.0 is not a loopback address: serving the web view there needs TLS (--web-cert=FILE --web-key=FILE)');
    expect(() => parseWebConfig('[::]:8443')).toThrow(/:: is not a loopback address/);
    expect(parseWebConfig('0.0.0.0:8443', { cert: '/c.pem', key: '/k.pem' })).toEqual({ host: '0.0.0.0', port: 8443, cert: '/c.pem', key: '/k.pem' });
    expect(parseWebConfig('127.0.0.1:8443', { cert: '/c.pem', key: '/k.pem' }).cert).toBe('/c.pem');
    expect(() => parseWebConfig('0.0.0.0:8443', { cert: '/c.pem' })).toThrow('--web-cert and --web-key go together: --web-cert was given alone');
  });
  it('is read from $NSPAWND_WEB (with $NSPAWND_WEB_CERT/KEY); unset, empty or "no" is off', () => {
    expect(webConfigFromEnv({})).toBeUndefined();
    expect(webConfigFromEnv({ NSPAWND_WEB: '' })).toBeUndefined();
    expect(webConfigFromEnv({ NSPAWND_WEB: 'no' })).toBeUndefined();
    expect(webConfigFromEnv({ NSPAWND_WEB: '127.0.0.1:1' })).toEqual({ host: '127.0.0.1', port: 1 });
    expect(() => webConfigFromEnv({ NSPAWND_WEB: '10.1.2.3:1' })).toThrow(/^NSPAWND_WEB=10\.1\.2\.3:1: /);
    expect(webConfigFromEnv({ NSPAWND_WEB: '10.1.2.3:1', NSPAWND_WEB_CERT: '/c', NSPAWND_WEB_KEY: '/k' })).toEqual({ host: '10.1.2.3', port: 1, cert: '/c', key: '/k' });
  });
  it('tells loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a), a).toBe(true);
    for (const a of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'localhost', '']) expect(isLoopback(a), a).toBe(false);
  });
});
