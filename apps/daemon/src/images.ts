/**
 * io.systemd.MachineImage over an image store (the store itself lives in @nspawn/btrfs; nspawnd only maps the
 * varlink calls onto it and refuses changes to the image of a running machine).
 */
import { type MachineImageInfo, VarlinkError, type VarlinkHandler } from '@nspawn/runtime';

/** One image as io.systemd.MachineImage.List describes it (the record nspawnctl reads too). */
export type ImageInfo = MachineImageInfo;

export interface ImageBackend {
  list(): Promise<ImageInfo[]>;
  get(name: string): Promise<ImageInfo | undefined>;
  clone(name: string, newName: string, readOnly: boolean): Promise<void>;
  rename(name: string, newName: string): Promise<void>;
  setReadOnly(name: string, readOnly: boolean): Promise<void>;
  remove(name: string): Promise<void>;
  setLimit(name: string | undefined, bytes: number): Promise<void>;
  /** removes hidden images (mode 'hidden', names starting with '.') or every image not in use ('all'); returns what went */
  clean(mode: 'all' | 'hidden', inUse: (name: string) => boolean): Promise<Array<{ name: string; usageExclusive?: number }>>;
}

export const noSuchImage = (name: unknown) => new VarlinkError('io.systemd.MachineImage.NoSuchImage', { message: `No image '${String(name)}' known` });

export function imageMethods(b: ImageBackend, running: (name: string) => boolean): Record<string, VarlinkHandler> {
  const need = async (p: Record<string, unknown>): Promise<ImageInfo> => {
    if (typeof p.name !== 'string') throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'name' });
    const i = await b.get(p.name);
    if (!i) throw noSuchImage(p.name);
    return i;
  };
  const notRunning = (name: string) => {
    if (running(name)) throw new VarlinkError('io.nspawn.MachineImage.Busy', { message: `Image '${name}' is in use by a running machine` });
  };
  const wrap = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      if (e instanceof VarlinkError) throw e;
      throw new VarlinkError('io.nspawn.MachineImage.Failed', { message: (e as Error).message });
    }
  };
  return {
    'io.systemd.MachineImage.List': async (p, ctx) => {
      if (typeof p.name === 'string') return { ...(await need(p)) };
      const all = (await b.list()).sort((x, y) => x.name.localeCompare(y.name));
      if (all.length === 0) throw new VarlinkError('io.systemd.MachineImage.NoSuchImage', {});
      if (!ctx.call.more && all.length > 1) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
      for (const i of all.slice(0, -1)) ctx.reply({ ...i });
      return { ...all[all.length - 1]! };
    },
    'io.systemd.MachineImage.Update': async (p) => {
      const i = await need(p);
      return wrap(async () => {
        if (typeof p.newName === 'string' && p.newName !== i.name) {
          notRunning(i.name);
          await b.rename(i.name, p.newName);
          i.name = p.newName;
        }
        if (typeof p.readOnly === 'boolean') await b.setReadOnly(i.name, p.readOnly);
        if (typeof p.limit === 'number') await b.setLimit(i.name, p.limit);
        return {};
      });
    },
    'io.systemd.MachineImage.Clone': async (p) => {
      const i = await need(p);
      if (typeof p.newName !== 'string') throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'newName' });
      const newName = p.newName;
      return wrap(async () => {
        await b.clone(i.name, newName, p.readOnly === true);
        return {};
      });
    },
    'io.systemd.MachineImage.Remove': async (p) => {
      const i = await need(p);
      notRunning(i.name);
      return wrap(async () => {
        await b.remove(i.name);
        return {};
      });
    },
    'io.systemd.MachineImage.SetPoolLimit': async (p) => {
      if (typeof p.limit !== 'number') throw new VarlinkError('org.varlink.service.InvalidParameter', { parameter: 'limit' });
      const limit = p.limit;
      return wrap(async () => {
        await b.setLimit(undefined, limit);
        return {};
      });
    },
    'io.systemd.MachineImage.CleanPool': async (p, ctx) => {
      const mode = p.mode === 'all' ? 'all' : 'hidden';
      const gone = await wrap(() => b.clean(mode, running));
      if (gone.length === 0) return {};
      for (const g of gone.slice(0, -1)) ctx.reply({ ...g });
      return { ...gone[gone.length - 1]! };
    },
  };
}
