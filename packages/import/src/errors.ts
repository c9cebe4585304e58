/** An import that cannot go on: the message is one line naming the URL, archive, member or image. */
export class ImportError extends Error {
  override name = 'ImportError';
}
