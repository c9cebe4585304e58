/** The one error a start refuses with: its message is the line nspawn prints (as systemd-nspawn would). */
export class ContainerError extends Error {
  override name = 'ContainerError';
}
