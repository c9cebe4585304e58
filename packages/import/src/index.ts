export { ImportError } from './errors.js';
export { extractTar, safeComponents, keptXattr, type ExtractStats, type ExtractOptions } from './extract.js';
export { readArchive, parsePaxRecords, type Member, type MemberType } from './archive.js';
export * from './pull.js';
export { IMPORT_KEYRINGS, type ProgressFn, type VerifyMode, freeBytes, verifyDownload, openDownload, type Download } from './fetch.js';
export {
  type Compression,
  type ExportFormat,
  exportFormatFromName,
  exportRaw,
  importRaw,
  pullRaw,
  rawNameFromUrl,
  type RawExportOptions,
  type RawImportOptions,
  type RawPullOptions,
  type RawResult,
  sniffCompression,
  writeSparse,
} from './raw.js';
export { type FsImportOptions, importFs } from './fs.js';
