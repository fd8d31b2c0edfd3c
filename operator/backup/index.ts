// Backups of a Cairn cluster to S3-compatible object storage, and restores from them (issue 15).
// At the act level of the operator: imports the generated etcd codecs, @grpc/grpc-js, the AWS SDK
// and croner; nothing of plan/, observe/ or controller/.
export { BACKUP_REASONS, BackupError, classifyS3Error, type BackupReason } from './errors.js';
export { RunDeadline, underDeadline, BACKUP_RUN_TIMEOUT_MS, BACKUP_CLEANUP_TIMEOUT_MS } from './deadline.js';
export { SnapshotSource, SnapshotVerifier, verifiedSnapshotStream, SHA256_BYTES, SECTOR_BYTES, SNAPSHOT_QUEUE_MESSAGES, SNAPSHOT_IDLE_TIMEOUT_MS, type MemberInfo, type VerifiedSnapshot } from './snapshot.js';
export { s3Client, withAbortSignal, normalizePrefix, objectUri, destinationProblems, type S3Credentials, type S3Destination } from './store.js';
export {
  runBackup,
  BackupSlots,
  checkBucket,
  sweepIncomplete,
  listBackups,
  deleteBackup,
  backupKey,
  clusterPrefix,
  stampOf,
  parseStamp,
  jsonStderr,
  META,
  PART_BYTES,
  QUEUE_PARTS,
  COPY_OBJECT_MAX_BYTES,
  type BackupOptions,
  type BackupRecord,
  type StoredBackup,
  type LogLine,
} from './backup.js';
export { toDelete, policyProblems, parseDuration, type RetentionPolicy, type RetainedItem } from './retention.js';
export { scheduleProblem, validateSchedule, nextRun, isDue, type Schedule } from './schedule.js';
export { restoreMember, restoreFile, fileSha256, downloadVerified, verifyObject, snapshotRevision, DEFAULT_BUMP_REVISION, type RestoreMember, type RestoreOptions, type RestoreResult, type DownloadCheck, type FileRestoreOptions } from './restore.js';
export { sourceOrder, type SourceCandidate } from './source.js';
export { backupCluster, prune, SOURCE_ATTEMPTS_MAX, type Attempt, type ClusterBackupOptions, type ClusterBackupResult } from './cluster.js';
