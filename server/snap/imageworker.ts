// The worker thread of image.ts: opens the LMDB copy, plans the bbolt layout of etcd's buckets
// (tobolt.ts), posts the size, then one chunk of pages per 'pull' until the end; 'stop' closes the
// database and ends the thread.
import { parentPort, workerData } from 'node:worker_threads';
import { BACKEND_MAP_BYTES } from '../base/limits.js';
import { Backend } from '../storage/backend/index.js';
import { boltPages, planBolt } from './bbolt/index.js';
import { ETCD_STORAGE_VERSION, etcdSources } from './tobolt.js';
import type { ImageWorkerData } from './image.js';

const port = parentPort;
if (port === null) throw new Error('imageworker.ts runs as a worker thread');
const { path, chunkBytes } = workerData as ImageWorkerData;

let backend: Backend | undefined;
let closed = false;

async function stop(): Promise<void> {
  if (closed) return;
  closed = true;
  const b = backend;
  backend = undefined;
  if (b !== undefined) await b.close().catch(() => undefined);
  port?.close();
}

function fail(err: unknown): void {
  port?.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
}

try {
  backend = Backend.open(path, BACKEND_MAP_BYTES);
  const e = etcdSources(backend);
  const plan = planBolt(e.sources);
  const pages = boltPages(e.sources, plan);
  let sent = 0;
  port.postMessage({ type: 'plan', bytes: plan.bytes, version: ETCD_STORAGE_VERSION, revision: e.revision });
  port.on('message', (m: { type: string }) => {
    if (m.type === 'stop') {
      void stop();
      return;
    }
    if (m.type !== 'pull' || closed) return;
    try {
      const parts: Buffer[] = [];
      let n = 0;
      while (n < chunkBytes) {
        const r = pages.next();
        if (r.done === true) break;
        parts.push(r.value);
        n += r.value.length;
      }
      if (n === 0) {
        if (sent !== plan.bytes) throw new Error(`wrote ${sent} bytes of a planned ${plan.bytes}`);
        port.postMessage({ type: 'end' });
        return;
      }
      const buf = new ArrayBuffer(n);
      const view = Buffer.from(buf);
      let at = 0;
      for (const p of parts) at += p.copy(view, at);
      sent += n;
      port.postMessage({ type: 'data', buf, length: n }, [buf]);
    } catch (err) {
      fail(err);
    }
  });
} catch (err) {
  fail(err);
}
