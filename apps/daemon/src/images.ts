/**
 * io.systemd.MachineImage over an image store (the store itself lives in @nspawn/btrfs; nspawnd only maps the
 * varlink calls onto it and refuses changes to the image of a running machine). Every name is checked with
 * image_name_is_valid() before the store sees it, as machined's image-varlink.c does: InvalidParameter "name" or
 * "newName" for ".", "..", "a/b", "" and the like.
 */
import { type MachineImageInfo, VarlinkError, type VarlinkMethod, type VarlinkParams } from '@nspawn/runtime';
import { imageNameIsValid } from '@nspawn/settings';

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

const invalid = (parameter: string) => new VarlinkError('org.varlink.service.InvalidParameter', { parameter });
const NAME: VarlinkParams[string] = { type: 'string', required: true };

/** NAME of P (a parameter of that name) when it is a valid image name; InvalidParameter otherwise. */
function imageName(p: Record<string, unknown>, parameter: string): string {
  const v = p[parameter];
  if (typeof v !== 'string' || !imageNameIsValid(v)) throw invalid(parameter);
  return v;
}

export function imageMethods(b: ImageBackend, running: (name: string) => boolean): Record<string, VarlinkMethod> {
  const need = async (p: Record<string, unknown>): Promise<ImageInfo> => {
    const name = imageName(p, 'name');
    const i = await b.get(name);
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
  const methods: Record<string, [VarlinkParams, VarlinkMethod['handler']]> = {
    'io.systemd.MachineImage.List': [{ name: 'string', acquireMetadata: 'string' }, async (p, ctx) => {
      if (p.name !== undefined && p.name !== null) return { ...(await need(p)) };
      const all = (await b.list()).sort((x, y) => x.name.localeCompare(y.name));
      if (all.length === 0) throw new VarlinkError('io.systemd.MachineImage.NoSuchImage', {});
      if (!ctx.call.more && all.length > 1) throw new VarlinkError('org.varlink.service.ExpectedMore', {});
      for (const i of all.slice(0, -1)) ctx.reply({ ...i });
      return { ...all[all.length - 1]! };
    }],
    'io.systemd.MachineImage.Update': [{ name: NAME, newName: 'string', readOnly: 'boolean', limit: 'integer' }, async (p) => {
      const newName = p.newName === undefined || p.newName === null ? undefined : imageName(p, 'newName');
      const i = await need(p);
      return wrap(async () => {
        if (newName !== undefined && newName !== i.name) {
          notRunning(i.name);
          await b.rename(i.name, newName);
          i.name = newName;
        }
        if (typeof p.readOnly === 'boolean') await b.setReadOnly(i.name, p.readOnly);
        if (typeof p.limit === 'number') await b.setLimit(i.name, p.limit);
        return {};
      });
    }],
    'io.systemd.MachineImage.Clone': [{ name: NAME, newName: NAME, readOnly: 'boolean' }, async (p) => {
      const newName = imageName(p, 'newName');
      const i = await need(p);
      return wrap(async () => {
        await b.clone(i.name, newName, p.readOnly === true);
        return {};
      });
    }],
    'io.systemd.MachineImage.Remove': [{ name: NAME }, async (p) => {
      const i = await need(p);
      notRunning(i.name);
      return wrap(async () => {
        await b.remove(i.name);
        return {};
      });
    }],
    'io.systemd.MachineImage.SetPoolLimit': [{ limit: { type: 'integer', required: true } }, async (p) => {
      const limit = p.limit as number;
      return wrap(async () => {
        await b.setLimit(undefined, limit);
        return {};
      });
    }],
    'io.systemd.MachineImage.CleanPool': [{ mode: 'string' }, async (p, ctx) => {
      if (p.mode !== undefined && p.mode !== null && p.mode !== 'all' && p.mode !== 'hidden') throw invalid('mode');
      const mode = p.mode === 'all' ? 'all' : 'hidden';
      const gone = await wrap(() => b.clean(mode, running));
      if (gone.length === 0) return {};
      for (const g of gone.slice(0, -1)) ctx.reply({ ...g });
      return { ...gone[gone.length - 1]! };
    }],
  };
  return Object.fromEntries(Object.entries(methods).map(([k, [params, handler]]) => [k, { params, handler }]));
}
