// The S3 client for a backup destination: custom endpoint, region, path-style or virtual-hosted
// addressing, a custom CA bundle, static credentials. Checksums are computed only where S3 requires
// them (WHEN_REQUIRED): S3-compatible stores differ in their support of the SDK's default CRC32
// trailers; the backup's integrity is its own SHA-256, checked end to end.
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Agent as HttpsAgent } from 'node:https';
import { Agent as HttpAgent } from 'node:http';

/** Connect timeout of one request to the object store. */
export const S3_CONNECT_TIMEOUT_MS = 5_000;
/** A request whose socket is idle this long fails (an upload part streams continuously). */
export const S3_SOCKET_TIMEOUT_MS = 60_000;
/** Attempts of one S3 request (the SDK retries throttling and network errors with backoff). */
export const S3_MAX_ATTEMPTS = 3;
/** Sockets per destination: the multipart queue plus a few control calls. */
export const S3_MAX_SOCKETS = 8;

export interface S3Destination {
  readonly bucket: string;
  /** Key prefix, e.g. "prod/etcd/"; a missing trailing slash is added. */
  readonly prefix?: string;
  /** e.g. "https://s3.example.com:9000"; default AWS's regional endpoint. */
  readonly endpoint?: string;
  /** Default "us-east-1" (most S3-compatible stores ignore it but the signature needs one). */
  readonly region?: string;
  /** Path-style URLs (endpoint/bucket/key) instead of virtual-hosted (bucket.endpoint/key). */
  readonly forcePathStyle?: boolean;
  /** PEM bundle trusted for the endpoint's certificate (in addition to Node's roots). */
  readonly caBundlePem?: string;
}

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === '') return '';
  const p = prefix.replace(/^\/+/, '');
  return p.endsWith('/') ? p : `${p}/`;
}

export function s3Client(d: S3Destination, creds: S3Credentials | undefined): S3Client {
  const cfg: S3ClientConfig = {
    region: d.region ?? 'us-east-1',
    forcePathStyle: d.forcePathStyle ?? false,
    maxAttempts: S3_MAX_ATTEMPTS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: S3_CONNECT_TIMEOUT_MS,
      socketTimeout: S3_SOCKET_TIMEOUT_MS,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: S3_MAX_SOCKETS }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: S3_MAX_SOCKETS, ...(d.caBundlePem !== undefined ? { ca: d.caBundlePem } : {}) }),
    },
  };
  if (d.endpoint !== undefined) cfg.endpoint = d.endpoint;
  if (creds !== undefined) {
    cfg.credentials = {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(creds.sessionToken !== undefined ? { sessionToken: creds.sessionToken } : {}),
    };
  }
  return new S3Client(cfg);
}

/**
 * The same client, every request of it carrying `signal` (a run's deadline: RunDeadline): once the
 * signal is aborted, requests in flight are aborted and new ones fail at once. lib-storage's Upload
 * sends its own requests without a signal; given this client, its parts and its completion abort too.
 */
export function withAbortSignal(s3: S3Client, signal: AbortSignal): S3Client {
  const send = (command: Parameters<S3Client['send']>[0], options?: { readonly abortSignal?: unknown }): Promise<unknown> => s3.send(command, { ...options, abortSignal: signal });
  return new Proxy(s3, {
    get: (target, p): unknown => {
      if (p === 'send') return send;
      const v: unknown = Reflect.get(target, p);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** "s3://bucket/key" */
export function objectUri(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

/** Checks a destination at the gate (admission); returns the problems (empty: valid). */
export function destinationProblems(d: S3Destination): string[] {
  const out: string[] = [];
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(d.bucket) || d.bucket.includes('..')) {
    out.push(`destination.s3.bucket "${d.bucket}" is not an S3 bucket name (3-63 characters: lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit)`);
  }
  if (d.endpoint !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(d.endpoint);
    } catch {
      u = undefined;
    }
    if (u === undefined || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') {
      out.push(`destination.s3.endpoint "${d.endpoint}" is not an http(s) URL such as "https://s3.example.com:9000"`);
    } else if (u.pathname !== '/' && u.pathname !== '') {
      out.push(`destination.s3.endpoint "${d.endpoint}" has a path: give the bucket in destination.s3.bucket and the folder in destination.s3.prefix`);
    }
  }
  if (d.region !== undefined && !/^[a-z0-9-]+$/.test(d.region)) out.push(`destination.s3.region "${d.region}" is not a region name such as "us-east-1"`);
  if (d.prefix !== undefined && (d.prefix.length > 512 || d.prefix.includes('//') || d.prefix.includes('..'))) {
    out.push(`destination.s3.prefix "${d.prefix}" must be at most 512 characters without "//" or ".."`);
  }
  if (d.caBundlePem !== undefined && !d.caBundlePem.includes('-----BEGIN CERTIFICATE-----')) out.push('the CA bundle holds no PEM certificate');
  return out;
}
