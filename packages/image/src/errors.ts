/**
 * One error type for everything this package refuses: a one-line message that names the image (and the partition,
 * header or value at fault), with an errno-style code systemd 252 would have returned for the same refusal.
 */
export class ImageError extends Error {
  override name = 'ImageError';
  constructor(
    message: string,
    /** ENOPKG (no usable table or file system), ENXIO (no root), ENOTUNIQ, EADDRNOTAVAIL, EBUSY, EUNATCH, ... */
    readonly code: string,
    /** the image path the error is about */
    readonly image: string,
  ) {
    super(message);
  }
}

/** Wraps another error (a system call's, a child process') into an ImageError naming the image and the step. */
export function imageError(image: string, what: string, e: unknown, code?: string): ImageError {
  if (e instanceof ImageError) return e;
  const c = code ?? (e as { code?: unknown } | undefined)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  return new ImageError(`${image}: ${what}: ${msg}`, typeof c === 'string' ? c : 'EIO', image);
}
