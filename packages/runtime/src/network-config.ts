import type { ExposePort } from '@nspawn/settings';

/** The network options of a container (prepare.ts copies them from the settings). */
export interface NetworkConfig {
  veth?: boolean;
  vethExtra?: string[];
  bridge?: string;
  zone?: string;
  macvlan?: string[];
  ipvlan?: string[];
  interfaces?: string[];
  namespacePath?: string;
  ports?: ExposePort[];
  /** configure addresses, routes, masquerading, DHCP and names (default: unless the host runs systemd-networkd); false: links only, like systemd-nspawn */
  autoConfigure?: boolean;
}
