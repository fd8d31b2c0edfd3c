// SeaweedFS for localkube: one `weed server -s3` on the host (the binary from hack/install-s3.sh,
// built from Go modules), a bucket and the credentials a user can try backups with at once:
//   endpoint S3_ENDPOINT (node IP: pods and host), bucket S3_BUCKET, keys S3_KEYS, and the Secret
//   S3_SECRET in namespace default holding them (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO_ROOT } from '../../test/harness/procs.js';
import { NODE_IP, S3_BUCKET, S3_ENDPOINT, S3_INTERNAL_PORTS, S3_KEYS, S3_PORT, S3_SECRET } from './layout.js';

export const S3_READY_TIMEOUT_MS = 90_000;

/** The weed binary (hack/install-s3.sh prints its path; cached after the first build). */
export function weedBinary(): string {
  const out = execFileSync('bash', [join(REPO_ROOT, 'hack', 'install-s3.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 3_600_000 });
  const bin = out.trim().split('\n').pop() ?? '';
  if (!existsSync(bin)) throw new Error(`hack/install-s3.sh printed no weed binary (got "${bin}")`);
  return bin;
}

/** The weed server's arguments; writes its identities file. */
export function weedArgs(dir: string): string[] {
  const data = join(dir, 's3');
  mkdirSync(join(data, 'data'), { recursive: true });
  const identities = join(data, 'identities.json');
  writeFileSync(identities, JSON.stringify({ identities: [{ name: 'localkube', credentials: [{ accessKey: S3_KEYS.accessKeyId, secretKey: S3_KEYS.secretAccessKey }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] }] }));
  const p = S3_INTERNAL_PORTS;
  return [
    'server', '-s3',
    '-ip=127.0.0.1', '-ip.bind=127.0.0.1', `-s3.ip.bind=${NODE_IP}`,
    `-dir=${join(data, 'data')}`,
    `-master.port=${String(p.master)}`, `-master.port.grpc=${String(p.master + 10000)}`,
    `-volume.port=${String(p.volume)}`, `-volume.port.grpc=${String(p.volume + 10000)}`,
    `-filer.port=${String(p.filer)}`, `-filer.port.grpc=${String(p.filer + 10000)}`,
    `-s3.port=${String(S3_PORT)}`, `-s3.port.grpc=${String(S3_PORT + 10000)}`,
    '-s3.port.iceberg=0', '-s3.port.lance=0',
    `-s3.config=${identities}`,
    `-filer.localSocket=${join(data, 'filer.sock')}`,
    '-master.volumeSizeLimitMB=1024', '-volume.max=0', '-volume.preStopSeconds=0', '-master.electionTimeout=1s',
  ];
}

function client(): S3Client {
  return new S3Client({ endpoint: S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true, credentials: { ...S3_KEYS }, maxAttempts: 1 });
}

/** True once the bucket exists (created here when missing). */
export async function ensureBucket(): Promise<boolean> {
  const s3 = client();
  try {
    try {
      await s3.send(new HeadBucketCommand({ Bucket: S3_BUCKET }));
      return true;
    } catch {
      await s3.send(new CreateBucketCommand({ Bucket: S3_BUCKET }));
      return true;
    }
  } catch {
    return false;
  } finally {
    s3.destroy();
  }
}

/** The Secret with the keys, in namespace default (kubectl apply input). */
export function s3SecretJson(): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: S3_SECRET, namespace: 'default', labels: { 'app.kubernetes.io/part-of': 'localkube' } },
    stringData: { AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey },
  });
}

/** What `status` prints about S3. */
export function s3Summary(): string {
  return `s3: ${S3_ENDPOINT} bucket ${S3_BUCKET} keys ${S3_KEYS.accessKeyId}/${S3_KEYS.secretAccessKey} (Secret default/${S3_SECRET}); path-style`;
}
