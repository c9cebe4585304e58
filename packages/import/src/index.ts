export { ImportError } from './errors.js';
export { extractTar, safeComponents, keptXattr, type ExtractStats, type ExtractOptions } from './extract.js';
export { readArchive, parsePaxRecords, type Member, type MemberType } from './archive.js';
export * from './pull.js';
