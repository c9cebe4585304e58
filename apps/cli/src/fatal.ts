import { writeSync } from 'node:fs';

/**
 * An error nobody expected (a bug): its stack on stderr and exit status 1. Rethrown, Node would report it quoting the
 * source line it came from, which in the minified bundle is most of the bundle.
 */
export function fatal(command: string, e: unknown): void {
  writeSync(2, `${command}: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
}
