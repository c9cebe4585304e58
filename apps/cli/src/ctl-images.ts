/** nspawnctl's image verbs over io.systemd.MachineImage, and the tar transfers. */
import type { MachineInfo } from '@nspawn/runtime';
import type { CtlOptions } from './nspawnctl.js';

export interface CtlContext {
  call(method: string, params: Record<string, unknown>, more?: boolean): Promise<Record<string, unknown>[]>;
  out(text: string): void;
  err(text: string): void;
  machine(name: string): Promise<MachineInfo>;
  execIn(m: MachineInfo, user: string, cmd: string[] | undefined, env: string[]): Promise<number>;
}

export type Verb = (args: string[], opts: CtlOptions, ctx: CtlContext) => Promise<number>;

export const imageVerbs: Record<string, Verb> = {};
export const tarVerbs: Record<string, Verb> = {};
