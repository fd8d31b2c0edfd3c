export { SnapshotError } from './errors.js';
export { Progress, PROGRESS_EVERY_BYTES, PROGRESS_EVERY_MS, type NowMs } from './progress.js';
export { SECTOR_BYTES, SHA256_BYTES, checkLmdbHeader, copyData, inspectLayout, verifyHash, type HashCheck, type SnapshotLayout } from './file.js';
export { backendDigest, boltStatus, crc32c, isBoltFile, snapshotStatus, type SnapshotStatus, type StatusDeps } from './status.js';
export { backendPathIn, dataDirOf, planMembers, restoreSnapshot, walDirOf, type RestoreDeps, type RestoreOptions, type RestoreResult } from './restore.js';
export { LMDB_PAGE_BYTES } from '../storage/backend/index.js';
export { exportBolt, etcdSources, ETCD_STORAGE_VERSION, type EtcdSources, type ExportDeps, type ExportResult } from './tobolt.js';
export { boltImage, type SnapshotImage } from './image.js';
