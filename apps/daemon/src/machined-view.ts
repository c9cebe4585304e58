/**
 * nspawnd on a systemd host (issue 18, item 2): machined is the registry there. When the host runs systemd
 * (`/run/systemd/system/`, sd_booted()) and machined answers on the system bus, nspawn registers with machined only,
 * and nspawnd defers to it: io.systemd.Machine.List, Kill and Terminate (and io.nspawn.Machine.Poweroff) read and act
 * through machined (@nspawn/machined), so that every machine machinectl lists is nspawnd's too, systemd-nspawn's
 * included. Its own machines (started through it, or registered with it) stay listed beside them.
 *
 * The D-Bus connection is opened once and opened again when it broke. A host without systemd, or one where
 * machined does not answer when nspawnd starts, is left as it was: nspawnd is the registry.
 */
import { isSystemdBooted, type Machined, MachinedError, type MachineProperties, openMachined } from '@nspawn/machined';
import { type MachineInfo, machineInfoFromMachined, VarlinkError } from '@nspawn/runtime';

export interface MachinedView {
  /** every machine machined lists, but its hidden ones (`.host`), as machinectl list shows them */
  list(metadata: boolean): Promise<MachineInfo[]>;
  /** machine NAME, or undefined when machined has none of that name */
  get(name: string, metadata: boolean): Promise<MachineInfo | undefined>;
  /** KillMachine (whom: leader or all) */
  kill(name: string, whom: 'leader' | 'all', signal: number): Promise<void>;
  /** TerminateMachine: machined stops the machine's unit */
  terminate(name: string): Promise<void>;
  close(): void;
}

/** machined's answer as io.systemd.Machine's MachineInfo (@nspawn/runtime's machineInfoFromMachined()). */
export const machineInfoFromProperties = machineInfoFromMachined;

/** A MachinedError as the varlink error nspawnd answers. */
function varlinkError(e: unknown, name: string): unknown {
  if (!(e instanceof MachinedError)) return e;
  if (e.kind === 'no-such-machine') return new VarlinkError('io.systemd.Machine.NoSuchMachine', { message: `No machine '${name}' known` });
  if (e.kind === 'access-denied') return new VarlinkError('org.varlink.service.PermissionDenied', { message: e.message });
  return new VarlinkError('io.nspawn.Failed', { message: e.message });
}

class BusMachinedView implements MachinedView {
  private client: Promise<Machined> | undefined;

  constructor(first: Machined) {
    this.client = Promise.resolve(first);
  }

  /** runs F on the connection; once more on a new one when the bus went away under it */
  private async use<T>(f: (m: Machined) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.client ??= openMachined();
      let m: Machined;
      try {
        m = await this.client;
      } catch (e) {
        this.client = undefined;
        throw e;
      }
      try {
        return await f(m);
      } catch (e) {
        const broken = e instanceof MachinedError && e.kind === 'no-bus';
        if (!broken || attempt > 0) throw e;
        m.close();
        this.client = undefined;
      }
    }
  }

  async list(metadata: boolean): Promise<MachineInfo[]> {
    const rows = await this.use((m) => m.list());
    const out: MachineInfo[] = [];
    for (const r of rows) {
      if (r.name.startsWith('.')) continue;
      try {
        out.push(machineInfoFromProperties(await this.use((m) => m.getMachineProperties(r.name, r.objectPath)), metadata));
      } catch (e) {
        // gone between the two calls
        if (!(e instanceof MachinedError && e.kind === 'no-such-machine')) throw e;
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async get(name: string, metadata: boolean): Promise<MachineInfo | undefined> {
    try {
      return machineInfoFromProperties(await this.use((m) => m.getMachineProperties(name)), metadata);
    } catch (e) {
      if (e instanceof MachinedError && e.kind === 'no-such-machine') return undefined;
      throw varlinkError(e, name);
    }
  }

  async kill(name: string, whom: 'leader' | 'all', signal: number): Promise<void> {
    await this.use((m) => m.kill(name, whom, signal)).catch((e: unknown) => {
      throw varlinkError(e, name);
    });
  }

  async terminate(name: string): Promise<void> {
    await this.use((m) => m.terminate(name)).catch((e: unknown) => {
      throw varlinkError(e, name);
    });
  }

  close(): void {
    const c = this.client;
    this.client = undefined;
    void c?.then((m) => m.close(), () => undefined);
  }
}

/**
 * machined, when this is a systemd host and machined answers (ListMachines) on the system bus; undefined otherwise,
 * with the reason logged when the host runs systemd (a host without it says nothing: that is the usual case).
 * `$NSPAWND_MACHINED=no` keeps nspawnd its own registry even there.
 */
export async function openMachinedView(log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<MachinedView | undefined> {
  if (env.NSPAWND_MACHINED === 'no' || !isSystemdBooted()) return undefined;
  let m: Machined | undefined;
  try {
    m = await openMachined({ timeoutMs: 5000 });
    await m.list();
    return new BusMachinedView(m);
  } catch (e) {
    m?.close();
    log(`a systemd host, but machined does not answer (${(e as Error).message}): nspawnd is the registry`);
    return undefined;
  }
}
