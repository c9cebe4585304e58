/** The helper's messages on its control socket, one line each (native/control.c writes them). */
/** A message from the helper on its control socket. */
export type HelperEvent =
  | { type: 'pid'; pid: number }
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'warning'; message: string }
  | { type: 'escape'; action: 'kill' | 'poweroff' | 'reboot' }
  /** a message of the container's init on /run/host/notify: one line per tag nspawn handles (READY=1, STATUS=...) */
  | { type: 'notify'; message: string }
  | { type: 'exit'; code: number }
  /**
   * after the end: the helper holds --console=passive's pty master and waits for "drain" (what the console still
   * holds goes to its stdout) or "drop" on the control socket
   */
  | { type: 'held' }
  /** the helper left the running container to its reaper (plan.leaveAfterStart) */
  | { type: 'left' }
  | { type: 'signal'; signal: number };

export function parseHelperLine(line: string): HelperEvent | undefined {
  const sp = line.indexOf(' ');
  const word = sp < 0 ? line : line.slice(0, sp);
  const rest = sp < 0 ? '' : line.slice(sp + 1);
  switch (word) {
    case 'pid':
      return { type: 'pid', pid: Number(rest) };
    case 'ready':
      return { type: 'ready' };
    case 'error':
      return { type: 'error', message: rest };
    case 'warning':
      return { type: 'warning', message: rest };
    case 'escape':
      return rest === 'kill' || rest === 'poweroff' || rest === 'reboot' ? { type: 'escape', action: rest } : undefined;
    case 'notify':
      return { type: 'notify', message: rest };
    case 'exit':
      return { type: 'exit', code: Number(rest) };
    case 'signal':
      return { type: 'signal', signal: Number(rest) };
    case 'left':
      return { type: 'left' };
    case 'held':
      return { type: 'held' };
    default:
      return undefined;
  }
}
