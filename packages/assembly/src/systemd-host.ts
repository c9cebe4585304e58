/**
 * What every start asks about systemd, without loading the systemd extension (src/systemd.ts, with @nspawn/machined
 * and its D-Bus client): whether this is a systemd host (sd_booted()), and which runs machined knows.
 */
import { lstatSync } from 'node:fs';
import type { ContainerRun } from '@nspawn/runtime';

/** `sd_booted()`: systemd is PID 1 when /run/systemd/system/ exists (@nspawn/machined's isSystemdBooted(), read here). */
export function sdBooted(): boolean {
  try {
    return lstatSync('/run/systemd/system/').isDirectory();
  } catch {
    return false;
  }
}

/** the runs whose machine machined knows now: registerExtension() does not tell nspawnd about them too */
const withMachined = new WeakSet<ContainerRun>();

/** Whether machined knows RUN's machine (then nspawnd is not told: it reads machines from machined). */
export function registeredWithMachined(run: ContainerRun): boolean {
  return withMachined.has(run);
}

/** Notes (YES) or forgets that machined knows RUN's machine (src/systemd.ts). */
export function noteRegisteredWithMachined(run: ContainerRun, yes: boolean): void {
  if (yes) withMachined.add(run);
  else withMachined.delete(run);
}
