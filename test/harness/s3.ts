// A real S3-compatible server for the backup tests: SeaweedFS's `weed server -s3` (master, volume
// server, filer and S3 gateway in one process) on loopback ports, its data in a temp dir, with two
// identities: an admin key pair and a read-only one (for access-denied tests). Start, wait until an
// object can be written, create buckets, kill -9, restart on the same ports and data, stop.
// The binary is built by hack/install-s3.sh (cached in ~/.cache/cairn); $CAIRN_WEED_BIN overrides.
// A missing binary is a MissingPrerequisite (tests go through skipOrFail: CI fails with the reason).
import { S3Client, CreateBucketCommand, PutObjectCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MissingPrerequisite } from './prereq.js';
import { pollUntil } from './poll.js';
import { REPO_ROOT, freePort, tempDir, trackChild } from './procs.js';

export interface S3Keys {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export const S3_ADMIN: S3Keys = { accessKeyId: 'CAIRNTESTADMIN', secretAccessKey: 'cairn-test-admin-secret' };
export const S3_READ_ONLY: S3Keys = { accessKeyId: 'CAIRNTESTREADER', secretAccessKey: 'cairn-test-reader-secret' };
export const S3_REGION = 'us-east-1';

const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 2_000;
const LOG_LINES = 200;
const PROBE_BUCKET = 'cairn-probe';

/** The weed binary: $CAIRN_WEED_BIN, else where hack/install-s3.sh puts it (its pinned version). */
export function weedBin(): string {
  const install = 'bash hack/install-s3.sh (builds SeaweedFS from Go modules into ~/.cache/cairn; needs Go >= 1.26 and network access to the Go module proxy)';
  const env = process.env['CAIRN_WEED_BIN'];
  let path: string;
  if (env !== undefined && env !== '') path = env;
  else {
    const script = readFileSync(join(REPO_ROOT, 'hack', 'install-s3.sh'), 'utf8');
    const ver = process.env['CAIRN_S3_VERSION'] ?? /ver="\$\{CAIRN_S3_VERSION:-([^}]+)\}"/.exec(script)?.[1];
    if (ver === undefined) throw new Error('test/harness/s3.ts: cannot read the default version from hack/install-s3.sh');
    path = join(process.env['CAIRN_CACHE'] ?? join(homedir(), '.cache', 'cairn'), `seaweedfs-${ver}`, 'bin', 'weed');
  }
  try {
    accessSync(path, fsConstants.X_OK);
  } catch (e) {
    throw new MissingPrerequisite(`SeaweedFS's weed binary (${path})`, install, { cause: e });
  }
  return path;
}

export interface S3Options {
  readonly buckets?: readonly string[];
  /** Also serve S3 over TLS (httpsEndpoint) with this certificate. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Accept virtual-hosted requests for <bucket>.<domainName> (e.g. "localhost"). */
  readonly domainName?: string;
  /** The address it listens on and advertises (default 127.0.0.1; localkube's node IP so pods reach it). */
  readonly ip?: string;
}

export interface S3Server {
  /** "http://127.0.0.1:<port>" */
  readonly endpoint: string;
  /** "https://127.0.0.1:<port>" with S3Options.tls, else undefined. */
  readonly httpsEndpoint: string | undefined;
  readonly port: number;
  readonly dataDir: string;
  /** An S3 client (path-style) with these keys (default the admin's). */
  client(keys?: S3Keys): S3Client;
  createBucket(name: string): Promise<void>;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** Starts again on the same ports and data dir; resolves once ready. */
  restart(): Promise<void>;
  /** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS. */
  stop(): Promise<void>;
  logTail(): string;
}

async function distinctPorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  for (let tries = 0; out.size < n; tries++) {
    if (tries > 200) throw new Error('s3 harness: no free ports');
    out.add(await freePort());
  }
  return [...out];
}

function s3ClientFor(endpoint: string, keys: S3Keys): S3Client {
  return new S3Client({
    endpoint,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: keys,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

class WeedServer implements S3Server {
  readonly endpoint: string;
  readonly httpsEndpoint: string | undefined;
  readonly port: number;
  private child: ChildProcess | undefined;
  private readonly lines: string[] = [];

  constructor(
    private readonly bin: string,
    private readonly ports: number[],
    readonly dataDir: string,
    private readonly configPath: string,
    private readonly opts: S3Options,
  ) {
    this.port = ports[6] ?? 0;
    const ip = opts.ip ?? '127.0.0.1';
    this.endpoint = `http://${ip}:${String(this.port)}`;
    this.httpsEndpoint = opts.tls !== undefined ? `https://${ip}:${String(ports[8] ?? 0)}` : undefined;
  }

  private args(): string[] {
    const [mp, mg, vp, vg, fp, fg, sp, sg] = this.ports.map(String);
    return [
      'server', '-s3',
      `-ip=${this.opts.ip ?? '127.0.0.1'}`, `-ip.bind=${this.opts.ip ?? '127.0.0.1'}`,
      `-dir=${join(this.dataDir, 'data')}`,
      `-master.port=${mp ?? ''}`, `-master.port.grpc=${mg ?? ''}`,
      `-volume.port=${vp ?? ''}`, `-volume.port.grpc=${vg ?? ''}`,
      `-filer.port=${fp ?? ''}`, `-filer.port.grpc=${fg ?? ''}`,
      `-s3.port=${sp ?? ''}`, `-s3.port.grpc=${sg ?? ''}`,
      '-s3.port.iceberg=0', '-s3.port.lance=0',
      `-s3.config=${this.configPath}`,
      `-filer.localSocket=${join(this.dataDir, 'filer.sock')}`,
      '-master.volumeSizeLimitMB=1024', '-volume.max=0', '-volume.preStopSeconds=0', '-master.electionTimeout=1s',
      ...(this.opts.tls !== undefined ? [`-s3.port.https=${String(this.ports[8] ?? 0)}`, `-s3.cert.file=${this.opts.tls.certFile}`, `-s3.key.file=${this.opts.tls.keyFile}`] : []),
      ...(this.opts.domainName !== undefined ? [`-s3.domainName=${this.opts.domainName}`] : []),
    ];
  }

  async start(): Promise<void> {
    mkdirSync(join(this.dataDir, 'data'), { recursive: true });
    const child = spawn(this.bin, this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    // A test that fails before stop() must still end: the child and its pipes do not hold the loop.
    child.unref();
    for (const s of [child.stdout, child.stderr]) if (s instanceof Socket) s.unref();
    this.child = child;
    const keep = (b: Buffer): void => {
      for (const l of b.toString('utf8').split('\n')) if (l !== '') this.lines.push(l);
      if (this.lines.length > LOG_LINES) this.lines.splice(0, this.lines.length - LOG_LINES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let exited: string | undefined;
    child.once('exit', (code, sig) => {
      exited = `exited (${String(code ?? sig)})`;
    });
    const admin = this.client();
    try {
      await pollUntil(
        'SeaweedFS S3 gateway accepting writes',
        async () => {
          if (exited !== undefined) throw new Error(`weed server ${exited}:\n${this.logTail()}`);
          try {
            await admin.send(new CreateBucketCommand({ Bucket: PROBE_BUCKET })).catch((e: unknown) => {
              if ((e as { name?: string }).name !== 'BucketAlreadyOwnedByYou' && (e as { name?: string }).name !== 'BucketAlreadyExists') throw e;
            });
            await admin.send(new PutObjectCommand({ Bucket: PROBE_BUCKET, Key: 'probe', Body: 'ok' }));
            await admin.send(new DeleteObjectCommand({ Bucket: PROBE_BUCKET, Key: 'probe' }));
            return true;
          } catch {
            return false;
          }
        },
        READY_TIMEOUT_MS,
        200,
      );
    } catch (e) {
      await this.kill();
      throw new Error(`${e instanceof Error ? e.message : String(e)}\nweed log tail:\n${this.logTail()}`, { cause: e });
    } finally {
      admin.destroy();
    }
  }

  client(keys: S3Keys = S3_ADMIN): S3Client {
    return s3ClientFor(this.endpoint, keys);
  }

  async createBucket(name: string): Promise<void> {
    const c = this.client();
    try {
      await c.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      c.destroy();
    }
  }

  private waitExit(signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
    const c = this.child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    // While we wait for it, the child holds the event loop (its exit must be delivered).
    c.ref();
    return new Promise((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill(signal);
    });
  }

  kill(): Promise<void> {
    return this.waitExit('SIGKILL', STOP_TIMEOUT_MS);
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  stop(): Promise<void> {
    return this.waitExit('SIGTERM', STOP_TIMEOUT_MS);
  }

  logTail(): string {
    return this.lines.slice(-40).join('\n');
  }
}

/** Starts SeaweedFS with S3 on fresh loopback ports; creates `buckets` once it accepts writes. */
export async function startS3(opts: S3Options = {}): Promise<S3Server> {
  const bin = weedBin();
  const dir = tempDir('cairn-s3-');
  const configPath = join(dir, 'identities.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      identities: [
        { name: 'admin', credentials: [{ accessKey: S3_ADMIN.accessKeyId, secretKey: S3_ADMIN.secretAccessKey }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] },
        { name: 'reader', credentials: [{ accessKey: S3_READ_ONLY.accessKeyId, secretKey: S3_READ_ONLY.secretAccessKey }], actions: ['Read', 'List'] },
      ],
    }),
  );
  const s = new WeedServer(bin, await distinctPorts(9), dir, configPath, opts);
  await s.start();
  try {
    for (const b of opts.buckets ?? []) await s.createBucket(b);
  } catch (e) {
    await s.stop();
    throw e;
  }
  return s;
}
