// Bad input against the reference etcd and Cairn side by side: the same request to both must get
// the same gRPC code and (where etcd's text is fixed) the same message, and both servers must keep
// serving afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCairn, startEtcd, type ServerProc } from '../harness/procs.js';
import { EtcdClient, encodeRequest, statusName, type CallResult } from '../harness/client.js';

let etcd: ServerProc;
let cairn: ServerProc;
let ec: EtcdClient;
let cc: EtcdClient;

before(async () => {
  [etcd, cairn] = await Promise.all([startEtcd(), startCairn()]);
  ec = new EtcdClient(etcd.endpoint);
  cc = new EtcdClient(cairn.endpoint);
  await Promise.all([ec.waitReady(), cc.waitReady()]);
});

after(async () => {
  ec.close();
  cc.close();
  await Promise.all([etcd.stop(), cairn.stop()]);
});

function brief<T>(r: CallResult<T>): string {
  return r.ok ? 'OK' : `${statusName(r.code)}: ${r.details}`;
}

async function both<T>(call: (c: EtcdClient) => Promise<CallResult<T>>): Promise<[CallResult<T>, CallResult<T>]> {
  return [await call(ec), await call(cc)];
}

/** Same code and same text as etcd. */
async function sameError<T>(what: string, call: (c: EtcdClient) => Promise<CallResult<T>>, expected: string): Promise<void> {
  const [e, c] = await both(call);
  assert.equal(brief(e), expected, `${what}: the reference etcd answered ${brief(e)}`);
  assert.equal(brief(c), brief(e), `${what}: Cairn differs from etcd`);
}

/** Same code as etcd (the message text is the gRPC library's own, which differs between Go and Node). */
async function sameCode<T>(what: string, call: (c: EtcdClient) => Promise<CallResult<T>>): Promise<void> {
  const [e, c] = await both(call);
  assert.equal(e.ok, false, `${what}: etcd accepted it`);
  assert.equal(c.ok, false, `${what}: Cairn accepted it (${brief(c)})`);
  if (!e.ok && !c.ok) assert.equal(statusName(c.code), statusName(e.code), `${what}: etcd ${brief(e)} / Cairn ${brief(c)}`);
}

async function stillServing(): Promise<void> {
  for (const c of [ec, cc]) {
    const put = await c.put({ key: Buffer.from('alive'), value: Buffer.from('yes') });
    assert.ok(put.ok, `${c.endpoint} stopped serving: ${brief(put)}`);
    const get = await c.range({ key: Buffer.from('alive') });
    assert.ok(get.ok && (get.value['kvs'] as unknown[]).length === 1);
  }
}

const k = (s: string): Buffer => Buffer.from(s);

test('a put over --max-request-bytes is refused with etcd\'s error', async () => {
  await sameError('1.6 MiB put', (c) => c.put({ key: k('big'), value: Buffer.alloc(1_600_000, 1) }), 'INVALID_ARGUMENT: etcdserver: request is too large');
  await stillServing();
});

test('a message over the gRPC receive limit (max-request-bytes + 512 KiB) is refused', async () => {
  await sameCode('2.2 MiB put', (c) => c.put({ key: k('huge'), value: Buffer.alloc(2_200_000, 2) }));
  await stillServing();
});

test('a txn over --max-txn-ops is refused', async () => {
  const ops = Array.from({ length: 129 }, (_, i) => ({ request_put: { key: k(`t${i}`), value: k('v') } }));
  await sameError('129 puts', (c) => c.txn({ success: ops }), 'INVALID_ARGUMENT: etcdserver: too many operations in txn request');
  const cmps = Array.from({ length: 129 }, (_, i) => ({ key: k(`c${i}`), target: 'VERSION', result: 'EQUAL', version: 0 }));
  await sameError('129 compares', (c) => c.txn({ compare: cmps }), 'INVALID_ARGUMENT: etcdserver: too many operations in txn request');
  await stillServing();
});

test('duplicate keys in a txn are refused', async () => {
  const put = (key: string): object => ({ request_put: { key: k(key), value: k('v') } });
  await sameError('two puts', (c) => c.txn({ success: [put('d'), put('d')] }), 'INVALID_ARGUMENT: etcdserver: duplicate key given in txn request');
  await sameError(
    'put inside a deleted range',
    (c) => c.txn({ success: [{ request_delete_range: { key: k('a'), range_end: k('z') } }, put('m')] }),
    'INVALID_ARGUMENT: etcdserver: duplicate key given in txn request',
  );
  await stillServing();
});

test('empty keys and empty request ops are refused', async () => {
  await sameError('empty put key', (c) => c.put({ key: Buffer.alloc(0), value: k('v') }), 'INVALID_ARGUMENT: etcdserver: key is not provided');
  await sameError('empty range key', (c) => c.range({ key: Buffer.alloc(0) }), 'INVALID_ARGUMENT: etcdserver: key is not provided');
  await sameError('empty delete key', (c) => c.deleteRange({ key: Buffer.alloc(0) }), 'INVALID_ARGUMENT: etcdserver: key is not provided');
  await sameError('empty compare key', (c) => c.txn({ compare: [{ key: Buffer.alloc(0) }] }), 'INVALID_ARGUMENT: etcdserver: key is not provided');
  await sameError('empty RequestOp', (c) => c.txn({ success: [{}] }), 'INVALID_ARGUMENT: etcdserver: key not found');
  await stillServing();
});

test('malformed protobuf bytes are refused and the server keeps serving', async () => {
  const garbage: [string, Buffer][] = [
    ['truncated varint', Buffer.from([0x08, 0xff])],
    ['length past end', Buffer.from([0x0a, 0x7f, 0x61])],
    ['illegal field 0', Buffer.from([0x00, 0x01])],
    ['bad wire type', Buffer.from([0x0f, 0x01])],
  ];
  for (const [what, bytes] of garbage) {
    for (const method of ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact']) {
      await sameCode(`${what} on KV/${method}`, (c) => c.unaryRaw('KV', method, bytes));
    }
  }
  // A well-formed prefix followed by garbage inside a nested message.
  const txn = Buffer.concat([encodeRequest('KV', 'Txn', { success: [{ request_put: { key: k('n'), value: k('v') } }] }), Buffer.from([0x12, 0x03, 0x12, 0x05, 0x0a])]);
  await sameCode('garbage nested op', (c) => c.unaryRaw('KV', 'Txn', txn));
  await stillServing();
});

test('unknown fields are ignored, as protobuf requires', async () => {
  const req = Buffer.concat([encodeRequest('KV', 'Put', { key: k('unk'), value: k('v') }), Buffer.from([0xf8, 0x07, 0x01])]);
  const [e, c] = await both((cl) => cl.unaryRaw('KV', 'Put', req));
  assert.ok(e.ok, brief(e));
  assert.ok(c.ok, brief(c));
});

test('an unknown service and an unknown method answer UNIMPLEMENTED, and the KV service is unaffected', async () => {
  const none = await cc.unaryRaw('v3nonepb.None', 'None', Buffer.alloc(0));
  assert.equal(none.ok ? 'OK' : `${statusName(none.code)}: ${none.details}`, 'UNIMPLEMENTED: unknown service v3nonepb.None');
  const odd = await cc.unaryRaw('Maintenance', 'Frobnicate', Buffer.alloc(0));
  assert.equal(odd.ok ? 'OK' : `${statusName(odd.code)}: ${odd.details}`, 'UNIMPLEMENTED: unknown method Frobnicate for service etcdserverpb.Maintenance');
  await stillServing();
});

test('a txn that deletes [k, "\\0") and then puts with ignore_value into it fails cleanly (etcd 3.4 panics on it)', async () => {
  await cc.put({ key: k('q1'), value: k('old') });
  const before = await cc.range({ key: k('q1') });
  assert.ok(before.ok);
  const r = await cc.txn({
    success: [
      { request_delete_range: { key: k('q'), range_end: Buffer.from([0]) } },
      { request_put: { key: k('q1'), ignore_value: true } },
    ],
  });
  assert.equal(brief(r), 'INVALID_ARGUMENT: etcdserver: key not found');
  const after = await cc.range({ key: k('q1') });
  assert.ok(after.ok);
  assert.deepEqual(after.value['kvs'], before.value['kvs'], 'nothing of the failed txn was applied');
  assert.equal((after.value['header'] as { revision: string }).revision, (before.value['header'] as { revision: string }).revision, 'no revision was used');
  await stillServing();
});
