/**
 * What nspawnd's transfers (transfers.ts) call in @nspawn/import: a module of its own so that the bundle keeps it
 * apart (dist/nspawnd-transfers.cjs, loaded at the first transfer: a start of nspawnd reads none of it).
 */
export { exportRaw, importFs, importRaw, pullRaw } from '@nspawn/import';
