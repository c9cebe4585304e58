export { siphash24, hexKey } from './siphash.js';
export {
  shortenIfname,
  generateMac,
  hostMachineId,
  vethNames,
  zoneBridgeName,
  ifnameValid,
  formatMac,
  parseMac,
  HASH_KEYS,
  IFNAMSIZ,
  type MacPurpose,
  type VethNames,
} from './naming.js';
export { linkInfo, altnameProps, attr, type LinkInfo, type VethPeer, MACVLAN_MODE, IPVLAN_MODE } from './attrs.js';
export { Rtnl, NetlinkError, ipBytes, formatIp, type LinkSummary, type NewLinkOptions } from './netlink.js';
export {
  createVeth,
  createVethExtra,
  parseVethExtra,
  createBridge,
  joinBridge,
  joinZone,
  leaveZone,
  createMacvlan,
  createIpvlan,
  moveInterfaces,
  moveInterfacesBack,
  nsenterMover,
  type InterfaceMover,
  removeLinks,
  type Ctx,
  type VethResult,
  type ZoneOptions,
} from './links.js';
export { lockFile, flockLocker, ZONE_LOCK_PATH, type FdLocker } from './lock.js';
export { allocateSubnet, nthAddress, ip4ToInt, intToIp4, IPV4_POOLS, type Allocation, type Subnet4, type TakenPrefix } from './pool.js';
export { nftScript, applyNft, nftTableExists, NFT_TABLE, type NftContainer, type PortForward } from './nft.js';
export { rewriteHosts, syncHostsFile, HOSTS_BEGIN, HOSTS_END } from './hosts.js';
export {
  STATE_DIR,
  readRecords,
  writeRecord,
  removeRecord,
  withStateLock,
  syncShared,
  collectLeftovers,
  ownerSelf,
  processStartTime,
  type NetRecord,
  type StateOptions,
  type SyncErrors,
} from './state.js';
export { startIpv6Proxy, type PortProxy } from './proxy.js';
export { startDhcpServer, parseDhcp, buildReply, answer, DHCP, type DhcpServer, type DhcpServerOptions, type DhcpLease, type DhcpMessage } from './dhcp.js';
export {
  planNetwork,
  takenPrefixes,
  broadcastOf,
  requestHasLinks,
  checkNetRequest,
  NetPlanError,
  type NetRequest,
  type PortRequest,
  type HostFacts,
  type NetPlan,
  type Addressing,
  type PlannedVeth,
  type PlannedLink,
  type PlannedHostAddress,
  type ContainerNetStep,
} from './plan.js';
export {
  applyNetworkPlan,
  undoNetworkPlan,
  netlinkEffects,
  type NetEffects,
  type NetlinkEffectsOptions,
  type AppliedNetwork,
  type ApplyOptions,
  type UndoOptions,
} from './apply.js';
export { startNetwork, readHostFacts, hostNameservers, zoneAddressKeeper, type StartNetworkOptions, type NetworkSession } from './session.js';
