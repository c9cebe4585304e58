/**
 * nspawnctl's read-only verbs on a systemd host where nspawnd does not run: machined's machines, asked of machined
 * itself (@nspawn/machined), as machinectl shows them. Imported only then (its D-Bus library is a bundle of its own).
 */
import { MACHINED, type Machined, MachinedError, openMachined } from '@nspawn/machined';
import { type MachineInfo, machineInfoFromMachined } from '@nspawn/runtime';

const gone = (e: unknown) => e instanceof MachinedError && e.kind === 'no-such-machine';

/**
 * machined's GetMachineOSRelease where the leader's /proc did not give it (a user who is not root may not read
 * another's root directory; machined, root, reads it for anyone, as for machinectl list)
 */
async function withOsRelease(m: Machined, info: MachineInfo): Promise<MachineInfo> {
  if (info.OSRelease) return info;
  try {
    const [fields] = (await m.bus.call({ ...MACHINED, member: 'GetMachineOSRelease', signature: 's', body: [info.name] })) as [Record<string, string>];
    const lines = Object.entries(fields ?? {}).map(([k, v]) => `${k}=${v}`);
    if (lines.length > 0) info.OSRelease = lines;
  } catch {
    // none known
  }
  return info;
}

/** machine NAME (none when machined has no such machine), or every machine but the hidden ones (`.host`) */
export async function machinedMachines(name?: string): Promise<MachineInfo[]> {
  const m = await openMachined({ timeoutMs: 5000 });
  try {
    if (name !== undefined) {
      try {
        return [await withOsRelease(m, machineInfoFromMachined(await m.getMachineProperties(name), true))];
      } catch (e) {
        if (gone(e)) return [];
        throw e;
      }
    }
    const out: MachineInfo[] = [];
    for (const r of await m.list()) {
      if (r.name.startsWith('.')) continue;
      try {
        out.push(await withOsRelease(m, machineInfoFromMachined(await m.getMachineProperties(r.name, r.objectPath), true)));
      } catch (e) {
        if (!gone(e)) throw e;
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    m.close();
  }
}
