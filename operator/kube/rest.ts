// A small Kubernetes REST client on a client-node KubeConfig (which supplies the server, the CA and
// the credentials, in-cluster or from a kubeconfig): JSON requests with the exact content type each
// verb needs (server-side apply, merge patch), typed errors with the status code, and a deadline.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { JsonObject } from '../api/index.js';

export const REQUEST_TIMEOUT_MS = 15_000;
export const RESPONSE_BYTES_MAX = 64 << 20;

export class KubeError extends Error {
  override readonly name = 'KubeError';
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(`${method} ${path}: ${String(status)} ${reason}: ${message}`);
  }
  get notFound(): boolean {
    return this.status === 404;
  }
  get conflict(): boolean {
    return this.status === 409;
  }
}

export const CONTENT = {
  json: 'application/json',
  merge: 'application/merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

export class KubeRest {
  private readonly server: URL;

  constructor(readonly kc: KubeConfig) {
    const c = kc.getCurrentCluster();
    if (c === null) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(c.server);
  }

  async request(method: string, path: string, body?: unknown, contentType: string = CONTENT.json): Promise<JsonObject> {
    const url = new URL(path, this.server);
    const opts: RequestOptions = { method, headers: { accept: 'application/json' }, timeout: REQUEST_TIMEOUT_MS };
    await this.kc.applyToHTTPSOptions(opts);
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = (opts.headers ?? {}) as Record<string, string>;
    if (data !== undefined) {
      headers['content-type'] = contentType;
      headers['content-length'] = String(Buffer.byteLength(data));
    }
    opts.headers = headers;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, opts, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > RESPONSE_BYTES_MAX) req.destroy(new Error(`${method} ${path}: response over ${String(RESPONSE_BYTES_MAX)} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: JsonObject = {};
          try {
            json = text === '' ? {} : (JSON.parse(text) as JsonObject);
          } catch {
            json = { message: text };
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(json);
          else reject(new KubeError(method, path, status, typeof json['reason'] === 'string' ? json['reason'] : '', typeof json['message'] === 'string' ? json['message'] : text.slice(0, 500)));
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${String(REQUEST_TIMEOUT_MS)} ms`)));
      req.on('error', reject);
      if (data !== undefined) req.write(data);
      req.end();
    });
  }

  get(path: string): Promise<JsonObject> {
    return this.request('GET', path);
  }

  /** Server-side apply with our field manager, forcing ownership of the fields we set. */
  apply(path: string, object: JsonObject, fieldManager: string): Promise<JsonObject> {
    return this.request('PATCH', `${path}?fieldManager=${encodeURIComponent(fieldManager)}&force=true`, object, CONTENT.apply);
  }

  merge(path: string, patch: unknown): Promise<JsonObject> {
    return this.request('PATCH', path, patch, CONTENT.merge);
  }

  delete(path: string, body?: unknown): Promise<JsonObject> {
    return this.request('DELETE', path, body);
  }

  post(path: string, body: unknown): Promise<JsonObject> {
    return this.request('POST', path, body);
  }

  put(path: string, body: unknown): Promise<JsonObject> {
    return this.request('PUT', path, body);
  }
}

/** The REST path of a resource (collection when name is undefined). */
export function resourcePath(apiVersion: string, plural: string, namespace: string | undefined, name?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = namespace === undefined ? '' : `/namespaces/${namespace}`;
  return `${base}${ns}/${plural}${name === undefined ? '' : `/${name}`}`;
}

/** kind -> [apiVersion, plural] of the kinds the operator writes. */
export const RESOURCES: Readonly<Record<string, readonly [string, string]>> = {
  ServiceAccount: ['v1', 'serviceaccounts'],
  RoleBinding: ['rbac.authorization.k8s.io/v1', 'rolebindings'],
  Service: ['v1', 'services'],
  PodDisruptionBudget: ['policy/v1', 'poddisruptionbudgets'],
  StatefulSet: ['apps/v1', 'statefulsets'],
  Pod: ['v1', 'pods'],
  PersistentVolumeClaim: ['v1', 'persistentvolumeclaims'],
  EtcdCluster: ['cairn.dev/v1alpha1', 'etcdclusters'],
  EtcdBackup: ['cairn.dev/v1alpha1', 'etcdbackups'],
  Secret: ['v1', 'secrets'],
  Lease: ['coordination.k8s.io/v1', 'leases'],
  Event: ['events.k8s.io/v1', 'events'],
};

export function pathOf(kind: string, namespace: string | undefined, name?: string): string {
  const r = RESOURCES[kind];
  if (r === undefined) throw new Error(`unknown kind ${kind}`);
  return resourcePath(r[0], r[1], namespace, name);
}
