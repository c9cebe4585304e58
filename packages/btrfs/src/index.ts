/**
 * @nspawn/btrfs: btrfs subvolumes by ioctl, image locks shared with systemd-nspawn, `--template` and
 * `--ephemeral` roots, and the image store of /var/lib/machines.
 */
export { SysError } from './sys.js';
export {
  BTRFS_SUPER_MAGIC,
  type ChildSubvolume,
  createSubvolume,
  deleteSubvolume,
  enableQuota,
  isBtrfs,
  isSubvolume,
  isSubvolumeReadOnly,
  listSubvolumes,
  type QuotaInfo,
  quotaEnabled,
  setSubvolumeLimit,
  setSubvolumeReadOnly,
  type SnapshotOptions,
  snapshotSubvolume,
  type SubvolumeInfo,
  subvolumeInfo,
  subvolumeQuota,
} from './subvolume.js';
export {
  GLOBAL_LOCK_DIR,
  globalLockPath,
  ImageBusyError,
  type ImageLock,
  isImageLocked,
  localLockPath,
  type LockImageOptions,
  lockImage,
  lockingDisabled,
} from './lock.js';
export { type RemoveOptions, isStrictlyInside, removeTree } from './remove.js';
export { type CopyOptions, type CopyStats, copyTree } from './copy.js';
export { isImmutable, setImmutable } from './attrs.js';
export { isMountPoint, type MountEntry, mountTable, parseMountInfo } from './mounts.js';
export {
  cleanEphemeralOrphans,
  createEphemeral,
  EPHEMERAL_MOUNT_SOURCE,
  EPHEMERAL_PREFIX,
  type EphemeralMode,
  type EphemeralOptions,
  type EphemeralRemoval,
  type EphemeralRoot,
  ephemeralModeFromEnv,
  ephemeralSnapshotPath,
  removeEphemeral,
  removeEphemeralOrphan,
} from './ephemeral.js';
export { populateFromTemplate, type TemplateOptions, type TemplateResult } from './template.js';
export {
  cleanImages,
  cloneImage,
  DEFAULT_IMAGE_ROOT,
  ImageError,
  type ImageErrorCode,
  type ImageInfo,
  findImage,
  type ImageLocation,
  imageNameIsValid,
  imageStatus,
  type ImageType,
  listImages,
  removeImage,
  renameImage,
  setImageLimit,
  setImageReadOnly,
  type StoreOptions,
  storeIsBtrfs,
} from './store.js';
