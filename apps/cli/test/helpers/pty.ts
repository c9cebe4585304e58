/**
 * A command on a real terminal, driven like a user would: script(1) gives it a fresh pty, the test waits for text
 * on it (expect) and types (send). Every wait has a generous deadline; on a deadline or at close() the session is
 * killed by its PID (script(1) and what it runs with it: the pty hangs up).
 */
import { execa, type ResultPromise } from 'execa';

/** ANSI escape sequences (colours, bracketed paste, cursor queries) and CRs, which the matching ignores. */
export function plainText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\x1b[()][A-Z0-9]/g, '').replace(/\r/g, '');
}

export class PtySession {
  readonly child: ResultPromise<{ stdio: ['pipe', 'pipe', 'pipe']; buffer: false; reject: false }>;
  /** everything the terminal showed, as it came */
  raw = '';
  /** where the next expect() starts looking, in plainText(raw) */
  private pos = 0;
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;
  private code: number | null | undefined;

  constructor(cmdline: string, opts: { env?: NodeJS.ProcessEnv } = {}) {
    // execa as node's spawn(): output taken as it comes, never rejecting, the environment as given
    this.child = execa('script', ['-qfec', cmdline, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      extendEnv: false,
      buffer: false,
      reject: false,
      forceKillAfterDelay: false,
    });
    const take = (d: Buffer) => {
      this.raw += d.toString('utf8');
      for (const w of this.waiters.splice(0)) w();
    };
    this.child.stdout!.on('data', take);
    this.child.stderr!.on('data', take);
    this.exited = this.child.then((r) => {
      const code = r.exitCode ?? null;
      this.code = code;
      for (const w of this.waiters.splice(0)) w();
      return code;
    });
  }

  get text(): string {
    return plainText(this.raw);
  }

  /** The PID of script(1), the session's leader on the host. */
  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Waits until RE matches the terminal's text after what earlier expects consumed, and returns the match (the
   * position moves past it). Throws with the tail of the text when the deadline passes or the session ends first.
   */
  async expect(re: RegExp, what: string, timeoutMs = 60000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.text;
      const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
      g.lastIndex = this.pos;
      const m = g.exec(text);
      if (m) {
        this.pos = m.index + m[0].length;
        return m;
      }
      if (this.code !== undefined) throw new Error(`the session ended (status ${this.code}) before ${what}; it showed:\n${text.slice(-3000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; the terminal showed:\n${text.slice(-3000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  send(s: string): void {
    this.child.stdin!.write(s);
  }

  /** Waits for the end and returns script(1)'s status (the command's, with -e). */
  async wait(what: string, timeoutMs = 60000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
    const r = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (r === 'late') {
      this.kill();
      throw new Error(`${what}: still running after ${timeoutMs} ms; the terminal showed:\n${this.text.slice(-3000)}`);
    }
    return r;
  }

  /** Ends the session if it is still going: SIGKILL to script(1) by its PID (its pty hangs up on what runs in it). */
  kill(): void {
    if (this.code === undefined) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}
