// grpc.health.v1.Health on etcd 3.6.8 and on Cairn, over a real gRPC client (@grpc/grpc-js, the
// service's own wire format): Check("") is SERVING, Check of another name is NOT_FOUND "unknown
// service", Watch("") starts with SERVING and Watch of another name with SERVICE_UNKNOWN. With
// --feature-gates=StopGRPCServiceOnDefrag=true a Defragment turns it NOT_SERVING and back (a client with
// gRPC health checking then goes to the other members; etcd's TestFailoverOnDefrag), with etcd's log
// lines; without the gate a Defragment changes nothing.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { refBinOrSkip } from '../harness/bins.js';
import { EtcdClient } from '../harness/client.js';
import { pollUntil } from '../harness/poll.js';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';
import { decodeHealthCheckRequest, encodeHealthCheckResponse, ServingStatus } from '../../server/api/grpchealth.js';
import { Reader, Writer } from '../../proto/wire.js';

const CHECK = '/grpc.health.v1.Health/Check';
const WATCH = '/grpc.health.v1.Health/Watch';

// The client side of the wire: our own encoder for requests, a decoder for responses.
function encodeRequest(service: string): Buffer {
  const w = new Writer(16);
  if (service !== '') {
    w.tag(1, 2);
    w.string(service);
  }
  return w.finish();
}

/** HealthCheckResponse: empty (status 0) or field 1 as a varint, nothing else (etcd's and ours). */
function decodeStatus(buf: Buffer): number {
  if (buf.length === 0) return 0;
  assert.equal(buf[0], 0x08, `a HealthCheckResponse starts with field 1, varint: ${buf.toString('hex')}`);
  const r = new Reader(buf, 1);
  const status = r.uint32();
  assert.equal(r.pos, buf.length, `nothing after the status: ${buf.toString('hex')}`);
  return status;
}

const id = (b: Buffer): Buffer => b;

function check(client: grpc.Client, service: string): Promise<string> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(CHECK, id, id, encodeRequest(service), (err, res) => {
      if (err !== null) resolve(`${grpc.status[err.code]} ${err.details}`);
      else resolve(`status ${decodeStatus(res ?? Buffer.alloc(0))}`);
    });
  });
}

interface Watch {
  readonly seen: number[];
  cancel(): void;
}

function watch(client: grpc.Client, service: string): Watch {
  const seen: number[] = [];
  const call = client.makeServerStreamRequest(WATCH, id, id, encodeRequest(service));
  call.on('data', (b: Buffer) => seen.push(decodeStatus(b)));
  call.on('error', () => undefined); // the cancel at the end
  return { seen, cancel: () => call.cancel() };
}

async function answers(s: ServerProc): Promise<Record<string, unknown>> {
  const client = new grpc.Client(s.endpoint, grpc.credentials.createInsecure());
  try {
    const all = watch(client, '');
    const other = watch(client, 'etcdserverpb.KV');
    await pollUntil('the first Watch answers', () => Promise.resolve(all.seen.length > 0 && other.seen.length > 0), 10_000, 10);
    const out = {
      checkAll: await check(client, ''),
      checkOther: await check(client, 'etcdserverpb.KV'),
      watchAll: [...all.seen],
      watchOther: [...other.seen],
    };
    all.cancel();
    other.cancel();
    return out;
  } finally {
    client.close();
  }
}

/** Statuses a Watch("") saw around a Defragment (the NOT_SERVING/SERVING pair is written before the answer). */
async function aroundDefrag(s: ServerProc): Promise<number[]> {
  const client = new grpc.Client(s.endpoint, grpc.credentials.createInsecure());
  const etcd = new EtcdClient(s.endpoint);
  try {
    const w = watch(client, '');
    await pollUntil('the first Watch answer', () => Promise.resolve(w.seen.length > 0), 10_000, 10);
    const r = await etcd.unary('Maintenance', 'Defragment', {});
    assert.ok(r.ok, `Defragment: ${r.ok ? '' : r.details}`);
    assert.equal(await check(client, ''), `status ${ServingStatus.SERVING}`, 'SERVING once the Defragment answered');
    w.cancel();
    return [...w.seen];
  } finally {
    etcd.close();
    client.close();
  }
}

test('the codec: an empty request is service "", status 0 is the empty message', () => {
  assert.deepEqual(decodeHealthCheckRequest(encodeRequest('')), { service: '' });
  assert.deepEqual(decodeHealthCheckRequest(encodeRequest('a.B')), { service: 'a.B' });
  assert.equal(encodeHealthCheckResponse(ServingStatus.UNKNOWN).length, 0);
  assert.equal(decodeStatus(encodeHealthCheckResponse(ServingStatus.NOT_SERVING)), ServingStatus.NOT_SERVING);
});

/** etcd 3.6.8 and Cairn with the same extra flags, stopped when the test ends; undefined without etcd 3.6.8. */
async function bothServers(t: TestContext, extraArgs: string[] = []): Promise<{ e: ServerProc; c: ServerProc } | undefined> {
  const etcdBin = refBinOrSkip(t, 'etcd-3.6');
  if (etcdBin === undefined) return undefined;
  const e = await startEtcd({ etcdBin, extraArgs });
  t.after(() => e.stop());
  const c = await startCairn({ extraArgs });
  t.after(() => c.stop());
  return { e, c };
}

test('grpc.health.v1.Health answers as etcd 3.6.8', async (t: TestContext) => {
  const both = await bothServers(t);
  if (both === undefined) return;
  const { e, c } = both;
  const want = await answers(e);
  assert.deepEqual(want, { checkAll: 'status 1', checkOther: 'NOT_FOUND unknown service', watchAll: [1], watchOther: [3] }, 'etcd 3.6.8');
  assert.deepEqual(await answers(c), want);
  // Without the gate a Defragment changes nothing.
  assert.deepEqual(await aroundDefrag(c), [ServingStatus.SERVING]);
});

test('StopGRPCServiceOnDefrag: NOT_SERVING during a Defragment, with etcd 3.6.8\'s log lines', async (t: TestContext) => {
  const both = await bothServers(t, ['--feature-gates=StopGRPCServiceOnDefrag=true']);
  if (both === undefined) return;
  const { e, c } = both;
  const logged = (s: ServerProc): string[] =>
    s.stderrLines().flatMap((l) => {
      const m = /"msg":"((?:starting|finished) defragment|grpc service status changed)"(.*)$/.exec(l);
      if (m === null) return [];
      const f = (k: string): string | undefined => new RegExp(`"${k}":"([^"]*)"`).exec(m[2] ?? '')?.[1];
      return [[/"level":"(\w+)"/.exec(l)?.[1], m[1], f('service'), f('status'), f('reason')].filter((x) => x !== undefined).join(' ')];
    });
  const beforeEtcd = logged(e).length;
  const beforeCairn = logged(c).length;
  // etcd's health server keeps only the newest pending update per watcher: a quick defrag may show
  // only SERVING there. Cairn writes each change in order.
  const etcdSeen = await aroundDefrag(e);
  assert.equal(etcdSeen[0], ServingStatus.SERVING);
  assert.deepEqual(await aroundDefrag(c), [ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
  const want = logged(e).slice(beforeEtcd);
  assert.deepEqual(
    want,
    ['info starting defragment', 'warn grpc service status changed  NOT_SERVING defrag is active', 'info finished defragment', 'info grpc service status changed  SERVING'],
    'etcd 3.6.8',
  );
  assert.deepEqual(logged(c).slice(beforeCairn), want);
});
