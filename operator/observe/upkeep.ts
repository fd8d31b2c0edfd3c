// Observation for storage upkeep and restores: whether spec.defrag's cron has come due (croner, in
// the schedule's time zone, since the last round or the cluster's creation), and the bootstrap source
// of a restore resolved from the spec or the named EtcdBackup (its status and destination).
import { backupSpecWithDefaults, type EtcdCluster, type Json, type JsonObject, type S3Object } from '../api/index.js';
import { isDue, objectUri, scheduleProblem } from '../backup/index.js';
import type { RestoreSource } from '../plan/index.js';

const obj = (v: Json | undefined): JsonObject => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {});
const str = (v: Json | undefined): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: Json | undefined): number | undefined => (typeof v === 'number' ? v : undefined);

/** spec.defrag's schedule fired in (last round or creation, now]; false without one or when it does not parse. */
export function defragDue(c: EtcdCluster, createdAt: string | undefined, now: string): boolean {
  const d = c.spec.defrag;
  if (d === undefined) return false;
  const sched = d.timeZone !== undefined ? { schedule: d.schedule, timeZone: d.timeZone } : { schedule: d.schedule };
  if (scheduleProblem(sched) !== undefined) return false;
  const from = c.status?.maintenance?.lastDefragTime ?? createdAt;
  if (from === undefined) return false;
  return isDue(sched, new Date(from), new Date(now));
}

/** The restore's object: from spec.bootstrap.fromBackup.s3, or the EtcdBackup it names. */
export function restoreSource(c: EtcdCluster, backups: readonly JsonObject[] | undefined, clusters: readonly EtcdCluster[]): RestoreSource | undefined {
  const from = c.spec.bootstrap?.fromBackup;
  if (from === undefined) return undefined;
  if (from.s3 !== undefined) return { ok: true, uri: objectUri(from.s3.bucket, from.s3.key), location: from.s3 };
  const name = from.backupRef?.name;
  if (name === undefined) return { ok: false, why: 'spec.bootstrap.fromBackup names neither backupRef nor s3' };
  if (backups === undefined) return { ok: false, why: 'EtcdBackups are not observed by this operator' };
  const b = backups.find((x) => obj(x['metadata'])['name'] === name && obj(x['metadata'])['namespace'] === c.metadata.namespace);
  if (b === undefined) return { ok: false, why: `EtcdBackup ${name} not found in ${c.metadata.namespace}` };
  const st = obj(b['status']);
  const key = str(st['key']);
  const sha256 = str(st['sha256']);
  const size = num(st['size']);
  if (st['phase'] !== 'Succeeded' || key === undefined || sha256 === undefined || size === undefined) return { ok: false, why: `EtcdBackup ${name} has not succeeded (phase ${str(st['phase']) ?? 'none'})` };
  const spec = backupSpecWithDefaults(b['spec']);
  const dest = spec.destination ?? clusters.find((x) => x.metadata.name === spec.clusterName && x.metadata.namespace === c.metadata.namespace)?.spec.backup?.destination;
  if (dest === undefined) return { ok: false, why: `EtcdBackup ${name} has no destination and its cluster ${spec.clusterName} has no spec.backup.destination` };
  const location: S3Object = { ...dest.s3, key };
  return { ok: true, uri: objectUri(location.bucket, key), location, expect: { sizeBytes: size, sha256, revision: num(st['revision']) ?? 0 } };
}
