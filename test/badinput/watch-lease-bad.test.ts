// Bad input on the Watch and Lease services. Where etcd defines the answer, the reference etcd and
// the target (Cairn, or a second etcd with CAIRN_DIFF_TARGET=etcd) get the same requests in the same
// order from fresh stores and must give the same replies (headers compared by revision only), codes
// and messages. Cairn's own limits (--max-watchers-per-stream, --max-watchers) have no etcd
// counterpart: those tests exist only when the target is Cairn and say so in their names. The
// clients that stop reading run against the target in both modes. BADINPUT_DEBUG=1 prints what etcd
// answered to each compared scenario.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCairn, startEtcd, startTarget, targetKind, type ServerProc } from '../harness/procs.js';
import { EtcdClient, decodeResponse, encodeRequest, openKeepAlive, openWatch, statusName, type BidiStream, type CallResult, type Msg } from '../harness/client.js';
import { grpcFrame, ownChannel, PeakSampler, procStatusKb, RawGrpcStream, waitReady, WatchStream } from '../watch/streams.js';

const kind = targetKind();
let ref: ServerProc;
let tgt: ServerProc;
let rc: EtcdClient;
let tc: EtcdClient;

before(async () => {
  [ref, tgt] = await Promise.all([startEtcd(), startTarget(kind)]);
  rc = new EtcdClient(ref.endpoint);
  tc = new EtcdClient(tgt.endpoint);
  await Promise.all([rc.waitReady(), tc.waitReady()]);
});

after(async () => {
  rc.close();
  tc.close();
  await Promise.all([ref.stop(), tgt.stop()]);
});

const k = (s: string): Buffer => Buffer.from(s);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A message made comparable: headers reduced to their revision, bytes shown as text. */
function norm(v: unknown, path = ''): unknown {
  if (Buffer.isBuffer(v)) return `bytes:${v.toString('latin1')}`;
  if (Array.isArray(v)) return v.map((x) => norm(x, path));
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (path.endsWith('header')) return { revision: o['revision'] };
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(o).sort()) out[key] = norm(o[key], `${path}.${key}`);
    return out;
  }
  return v;
}

function brief(r: CallResult<Msg>): unknown {
  return r.ok ? { ok: norm(r.value, 'resp') } : { code: statusName(r.code), details: r.details };
}

/** Runs the same scenario on etcd and on the target (one after the other) and compares what each returns. */
async function same(what: string, scenario: (c: EtcdClient, server: ServerProc) => Promise<unknown>, expectEtcd?: (obs: unknown) => void): Promise<unknown> {
  const e = await scenario(rc, ref);
  const t = await scenario(tc, tgt);
  if (process.env['BADINPUT_DEBUG'] === '1') console.log(`# ${what}: etcd ${JSON.stringify(e)}`);
  expectEtcd?.(e);
  assert.deepEqual(t, e, `${what}: the ${kind} target differs from etcd`);
  return e;
}

/** The next reply on a stream, normalized. */
async function nextNorm(s: BidiStream, timeoutMs = 5_000): Promise<unknown> {
  return norm(await s.next(timeoutMs), 'resp');
}

function createReq(key: string, extra: Record<string, unknown> = {}): object {
  return { create_request: { key: k(key), ...extra } };
}

/** Both servers must still serve: a put and a watch that sees it. */
async function stillServing(): Promise<void> {
  for (const c of [rc, tc]) {
    const s = openWatch(c);
    try {
      s.send(createReq('alive'));
      const created = await s.next(5_000);
      assert.equal(created['created'], true, `${c.endpoint}: a watch can still be created`);
      const put = await c.put({ key: k('alive'), value: k('yes') });
      assert.ok(put.ok, `${c.endpoint} stopped serving puts`);
      const ev = await s.next(5_000);
      assert.equal((ev['events'] as unknown[]).length, 1, `${c.endpoint}: the watch saw the put`);
    } finally {
      s.cancel();
    }
  }
}

// ------------------------------------------------------------------------------------- Watch

test('watch create with key >= range_end: created and canceled at once, watch_id -1, "mvcc: watcher range is empty"', async () => {
  await same(
    'empty range',
    async (c) => {
      const s = openWatch(c);
      try {
        s.send(createReq('b', { range_end: k('a') }));
        const r1 = await nextNorm(s);
        s.send(createReq('b', { range_end: k('b') }));
        const r2 = await nextNorm(s);
        s.send(createReq('b', { range_end: k('c') }));
        const r3 = await nextNorm(s); // the stream still works, and the refused creates used no id
        return [r1, r2, r3];
      } finally {
        s.cancel();
      }
    },
    (obs) => {
      const [r1] = obs as Array<Record<string, unknown>>;
      assert.equal(r1?.['created'], true);
      assert.equal(r1?.['canceled'], true);
      assert.equal(r1?.['watch_id'], '-1');
      assert.equal(r1?.['cancel_reason'], 'mvcc: watcher range is empty');
    },
  );
});

test('watch create with a duplicate client watch_id is refused; auto ids skip ids the client took', async () => {
  await same(
    'duplicate watch_id',
    async (c) => {
      const s = openWatch(c);
      try {
        const out: unknown[] = [];
        for (const id of ['5', '5', '0', '1', '0', '0', '1']) {
          s.send(createReq(`dup${id}`, { watch_id: id }));
          out.push(await nextNorm(s));
        }
        return out;
      } finally {
        s.cancel();
      }
    },
    (obs) => {
      const r = obs as Array<Record<string, unknown>>;
      assert.equal(r[0]?.['watch_id'], '5');
      assert.equal(r[1]?.['watch_id'], '-1');
      assert.equal(r[1]?.['cancel_reason'], 'mvcc: duplicate watch ID provided on the WatchStream');
    },
  );
});

test('cancel of an unknown watch id gets no reply (the next reply is the next create\'s)', async () => {
  await same(
    'unknown cancel',
    async (c) => {
      const s = openWatch(c);
      try {
        s.send({ cancel_request: { watch_id: '99' } });
        s.send({ cancel_request: { watch_id: '-1' } });
        s.send(createReq('u1'));
        const created = await nextNorm(s);
        // Cancel a real watcher twice: one reply, then nothing for the second.
        s.send({ cancel_request: { watch_id: '0' } });
        const canceled = await nextNorm(s);
        s.send({ cancel_request: { watch_id: '0' } });
        s.send(createReq('u2'));
        const created2 = await nextNorm(s);
        return { created, canceled, created2, extra: s.buffered };
      } finally {
        s.cancel();
      }
    },
    (obs) => {
      const o = obs as Record<string, Record<string, unknown>>;
      assert.equal(o['created']?.['created'], true);
      assert.equal(o['canceled']?.['canceled'], true);
      assert.equal(o['created2']?.['created'], true);
    },
  );
});

test('a WatchRequest with no field set gets no reply and does not end the stream', async () => {
  await same('empty WatchRequest', async (c) => {
    const s = openWatch(c);
    try {
      s.send({});
      s.send({ create_request: null });
      s.send(createReq('e1'));
      const created = await nextNorm(s);
      return { created, ended: s.ended };
    } finally {
      s.cancel();
    }
  });
});

test('garbage bytes on the Watch stream end that stream with the same code as etcd; the server keeps serving', async () => {
  const cases: [string, Buffer][] = [
    ['truncated varint', grpcFrame(Buffer.from([0x08, 0xff]))],
    ['length past end', grpcFrame(Buffer.from([0x0a, 0x7f, 0x61]))],
    ['illegal field 0', grpcFrame(Buffer.from([0x00, 0x01]))],
    ['bad wire type', grpcFrame(Buffer.from([0x0f, 0x01]))],
    ['garbage inside create_request', grpcFrame(Buffer.concat([Buffer.from([0x0a, 0x04]), Buffer.from([0x0a, 0x09, 0x61, 0x62])]))],
  ];
  for (const [what, bytes] of cases) {
    await same(what, async (_c, server) => {
      const raw = new RawGrpcStream(server.endpoint, '/etcdserverpb.Watch/Watch');
      try {
        // A valid create first: the stream is live when the garbage arrives.
        raw.write(grpcFrame(encodeRequest('Watch', 'Watch', { create_request: { key: k('g') } })));
        await raw.until(() => raw.messages.length >= 1, 5_000, 'created reply');
        raw.write(bytes);
        await raw.until(() => raw.closed, 5_000, 'the stream to end');
        const replies = raw.messages.map((m) => norm(decodeResponse('Watch', 'Watch', m), 'resp'));
        return { replies, code: raw.status === undefined ? 'no status' : statusName(raw.status.code) };
      } finally {
        raw.close();
      }
    });
  }
  await stillServing();
});

// ------------------------------------------------------------------------------------- Lease

test('LeaseKeepAlive for an unknown lease answers TTL 0 and keeps the stream open', async () => {
  await same(
    'keepalive unknown',
    async (c) => {
      const s = openKeepAlive(c);
      try {
        s.send({ ID: '123456789' });
        const r1 = await nextNorm(s);
        s.send({ ID: '0' });
        const r2 = await nextNorm(s);
        s.send({ ID: '-5' });
        const r3 = await nextNorm(s);
        return [r1, r2, r3, s.ended];
      } finally {
        s.cancel();
      }
    },
    (obs) => {
      const [r1] = obs as Array<Record<string, unknown>>;
      assert.equal(r1?.['TTL'], '0');
      assert.equal(r1?.['ID'], '123456789');
    },
  );
});

test('LeaseRevoke of an unknown lease is NotFound "etcdserver: requested lease not found"', async () => {
  const e = await same('revoke unknown', async (c) => [
    brief(await c.unary('Lease', 'LeaseRevoke', { ID: '424242' })),
    brief(await c.unary('Lease', 'LeaseRevoke', { ID: '0' })),
    brief(await c.unary('Lease', 'LeaseRevoke', { ID: '-1' })),
  ]);
  assert.deepEqual((e as unknown[])[0], { code: 'NOT_FOUND', details: 'etcdserver: requested lease not found' });
});

test('LeaseTimeToLive of an unknown lease answers TTL -1 without error', async () => {
  const e = await same('ttl unknown', async (c) => [
    brief(await c.unary('Lease', 'LeaseTimeToLive', { ID: '31337' })),
    brief(await c.unary('Lease', 'LeaseTimeToLive', { ID: '31337', keys: true })),
    brief(await c.unary('Lease', 'LeaseTimeToLive', { ID: '0' })),
  ]);
  const first = (e as Array<{ ok?: Record<string, unknown> }>)[0]?.ok;
  assert.equal(first?.['TTL'], '-1');
  assert.equal(first?.['ID'], '31337');
});

test('LeaseGrant with an existing id, a huge TTL, a negative TTL or a negative id answers like etcd', async () => {
  const e = await same('grant edge cases', async (c) => {
    const out: Record<string, unknown> = {};
    out['first'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '777', TTL: '60' }));
    out['again'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '777', TTL: '60' }));
    out['maxTtl'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '778', TTL: '9000000000' }));
    out['hugeTtl'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '779', TTL: '9000000001' }));
    out['int64MaxTtl'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '780', TTL: '9223372036854775807' }));
    out['negativeTtl'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '781', TTL: '-10' }));
    out['zeroTtl'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '782', TTL: '0' }));
    out['oneTtl'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '783', TTL: '1' }));
    out['negativeId'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '-42', TTL: '60' }));
    out['negativeIdTtl'] = brief(await c.unary('Lease', 'LeaseTimeToLive', { ID: '-42' }));
    out['int64MaxId'] = brief(await c.unary('Lease', 'LeaseGrant', { ID: '9223372036854775807', TTL: '60' }));
    // What a grant left behind (TimeToLive of the negative-TTL lease shows the raised TTL).
    const ttl = await c.unary('Lease', 'LeaseTimeToLive', { ID: '781' });
    out['negativeTtlGranted'] = ttl.ok ? ttl.value['grantedTTL'] : brief(ttl);
    const leases = await c.unary('Lease', 'LeaseLeases', {});
    out['leases'] = leases.ok ? (leases.value['leases'] as Msg[]).map((l) => l['ID']).sort() : brief(leases);
    return out;
  });
  const o = e as Record<string, unknown>;
  assert.deepEqual(o['again'], { code: 'FAILED_PRECONDITION', details: 'etcdserver: lease already exists' });
  assert.deepEqual(o['hugeTtl'], { code: 'OUT_OF_RANGE', details: 'etcdserver: too large lease TTL' });
});

test('Put with an unknown lease is NotFound "etcdserver: requested lease not found" and writes nothing', async () => {
  const e = await same('put unknown lease', async (c) => {
    const put = brief(await c.put({ key: k('leased'), value: k('v'), lease: '5555' }));
    const txn = brief(await c.txn({ success: [{ request_put: { key: k('leased'), value: k('v'), lease: '5555' } }] }));
    const neg = brief(await c.put({ key: k('leased'), value: k('v'), lease: '-3' }));
    const get = await c.range({ key: k('leased') });
    return { put, txn, neg, get: get.ok ? { count: get.value['count'], rev: (get.value['header'] as Msg)['revision'] } : brief(get) };
  });
  assert.deepEqual((e as Record<string, unknown>)['put'], { code: 'NOT_FOUND', details: 'etcdserver: requested lease not found' });
  await stillServing();
});

// ------------------------------------------------------------------- Cairn's watcher limits

if (kind === 'cairn') {
  const refusedLimit = (m: Msg, what: string): void => {
    assert.equal(m['created'], true, `${what}: created`);
    assert.equal(m['canceled'], true, `${what}: canceled`);
    assert.equal(m['watch_id'], '-1', `${what}: watch_id`);
    assert.match(String(m['cancel_reason']), /^cairn: too many watchers/, `${what}: cancel_reason`);
  };
  const accepted = (m: Msg, what: string): string => {
    assert.equal(m['created'], true, `${what}: created (${JSON.stringify(norm(m))})`);
    assert.equal(m['canceled'], false, `${what}: not canceled (${String(m['cancel_reason'])})`);
    assert.notEqual(m['watch_id'], '-1', what);
    return String(m['watch_id']);
  };

  test('(Cairn target only) --max-watchers-per-stream 3: the 4th create is refused, canceling one frees a slot', async () => {
    const cairn = await startCairn({ extraArgs: ['--max-watchers-per-stream', '3'] });
    const c = new EtcdClient(cairn.endpoint);
    try {
      const s = openWatch(c);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        s.send(createReq(`l${i}`));
        ids.push(accepted(await s.next(), `create ${i + 1}`));
      }
      s.send(createReq('l3'));
      refusedLimit(await s.next(), '4th create');
      s.send({ cancel_request: { watch_id: ids[1] } });
      const canceled = await s.next();
      assert.equal(canceled['canceled'], true);
      assert.equal(canceled['watch_id'], ids[1]);
      s.send(createReq('l4'));
      accepted(await s.next(), 'create after a cancel');
      s.send(createReq('l5'));
      refusedLimit(await s.next(), 'create over the limit again');
      // Another stream has its own 3 slots.
      const s2 = openWatch(c);
      for (let i = 0; i < 3; i++) {
        s2.send(createReq(`m${i}`));
        accepted(await s2.next(), `second stream, create ${i + 1}`);
      }
      // The limited stream still delivers events to the watchers it has.
      await c.put({ key: k('l0'), value: k('x') });
      const ev = await s.next();
      assert.equal(ev['watch_id'], ids[0]);
      s.cancel();
      s2.cancel();
    } finally {
      c.close();
      await cairn.stop();
    }
  });

  test('(Cairn target only) --max-watchers 5 over two streams: the 6th create is refused; a cancel or a closed stream frees slots', async () => {
    const cairn = await startCairn({ extraArgs: ['--max-watchers', '5'] });
    const c = new EtcdClient(cairn.endpoint);
    try {
      const s1 = openWatch(c);
      const s2 = openWatch(c);
      const ids1: string[] = [];
      for (let i = 0; i < 3; i++) {
        s1.send(createReq(`a${i}`));
        ids1.push(accepted(await s1.next(), `stream 1 create ${i + 1}`));
      }
      for (let i = 0; i < 2; i++) {
        s2.send(createReq(`b${i}`));
        accepted(await s2.next(), `stream 2 create ${i + 1}`);
      }
      s2.send(createReq('b2'));
      refusedLimit(await s2.next(), '6th create (stream 2)');
      s1.send(createReq('a3'));
      refusedLimit(await s1.next(), '6th create (stream 1)');
      s1.send({ cancel_request: { watch_id: ids1[0] } });
      assert.equal((await s1.next())['canceled'], true);
      s2.send(createReq('b3'));
      accepted(await s2.next(), 'stream 2 after a cancel on stream 1');
      s2.send(createReq('b4'));
      refusedLimit(await s2.next(), 'full again');
      // Closing stream 1 (2 watchers) frees its slots once the server sees the stream go.
      s1.cancel();
      const deadline = Date.now() + 10_000;
      let got: Msg | undefined;
      while (Date.now() < deadline) {
        s2.send(createReq('b5'));
        got = await s2.next();
        if (got['watch_id'] !== '-1') break;
        await sleep(50);
      }
      assert.ok(got !== undefined);
      accepted(got, 'create after stream 1 closed');
      s2.send(createReq('b6'));
      accepted(await s2.next(), 'second freed slot');
      s2.send(createReq('b7'));
      refusedLimit(await s2.next(), 'full with stream 2 alone');
      s2.cancel();
    } finally {
      c.close();
      await cairn.stop();
    }
  });
}

// ------------------------------------------------------------------- clients that stop reading

test(`a client that never reads its watch stream while 100 MB are written under its prefix: the server keeps serving${kind === 'cairn' ? ' with bounded memory' : ' (memory bound asserted only on the Cairn target: etcd 3.4 holds its raft log in memory)'}; the events come when it reads`, { timeout: 180_000 }, async () => {
  const server = await startTarget(kind);
  const writers = [new EtcdClient(server.endpoint), new EtcdClient(server.endpoint)];
  const probe = new EtcdClient(server.endpoint);
  const ch = ownChannel(server.endpoint);
  try {
    await Promise.all([...writers.map((c) => c.waitReady()), probe.waitReady(), waitReady(ch)]);
    const events: Msg[] = [];
    const replies: Msg[] = [];
    const stream = new WatchStream(ch, (m) => {
      replies.push(m);
      for (const e of m['events'] as Msg[]) events.push(e);
    });
    stream.send(createReq('hot/', { range_end: k('hot0') }));
    // Warm up (JIT, buffers, caches) with the client reading, then measure the baseline.
    const VALUE = 100 * 1024;
    const value = (i: number): Buffer => Buffer.alloc(VALUE, i % 251);
    let n = 0;
    const writeBatch = async (count: number): Promise<void> => {
      const end = n + count;
      await Promise.all(
        writers.map(async (c) => {
          while (n < end) {
            const i = n++;
            const r = await c.put({ key: k(`hot/${String(i).padStart(6, '0')}`), value: value(i) }, { timeoutMs: 30_000 });
            assert.ok(r.ok, `put ${i}: ${JSON.stringify(r)}`);
          }
        }),
      );
    };
    await writeBatch(100);
    const warm = Date.now() + 30_000;
    while (events.length < 100 && Date.now() < warm) await sleep(20);
    assert.equal(events.length, 100, 'the warm-up events arrived while reading');
    const baseKb = procStatusKb(server.pid, 'RssAnon') ?? 0;

    stream.pause();
    const sampler = new PeakSampler(server.pid, 'RssAnon');
    // A probe reads a key now and then: the server must keep answering other clients.
    let probing = true;
    let slowest = 0;
    let probes = 0;
    const prober = (async () => {
      while (probing) {
        const t = Date.now();
        const r = await probe.range({ key: k('hot/000000') }, { timeoutMs: 10_000 });
        assert.ok(r.ok, `range during the writes: ${JSON.stringify(r)}`);
        slowest = Math.max(slowest, Date.now() - t);
        probes += 1;
        await sleep(100);
      }
    })();
    const TOTAL = 1100; // 100 warm-up + 1,000 × 100 KiB = ~100 MiB while the client does not read
    await writeBatch(TOTAL - 100);
    probing = false;
    await prober;
    const peakKb = sampler.stop();
    const growthMb = (peakKb - baseKb) / 1024;
    const receivedWhilePaused = events.length;

    // A server that kept every undelivered event would hold ~100 MiB of values on top of its
    // baseline. Writes themselves churn through memory (each 100 KiB put is decoded, logged and
    // applied, and the GC frees it later), so the bound leaves room for that and for a bounded
    // per-stream send buffer, but stays well under what keeping the 100 MiB would cost.
    // (Anonymous memory only: LMDB's and bbolt's mmap'd files are page cache, not the server's heap.)
    console.log(`# ${kind}: RssAnon baseline ${Math.round(baseKb / 1024)} MiB, peak growth ${growthMb.toFixed(1)} MiB while 100 MiB were written to a stream that did not read; slowest range ${slowest} ms over ${probes} probes`);
    assert.ok(probes >= 5, `the probe ran ${probes} times`);
    assert.ok(slowest < 3_000, `a range took ${slowest} ms while the stalled stream's events piled up`);
    if (kind === 'cairn') {
      assert.ok(growthMb < 64, `Cairn's anonymous memory grew by ${growthMb.toFixed(1)} MiB while a stalled stream's watcher fell 100 MiB behind`);
    }
    assert.ok(receivedWhilePaused < TOTAL, 'the paused client did not get everything while paused');

    stream.resume();
    const deadline = Date.now() + 60_000;
    const compacted = (): boolean => replies.some((m) => m['compact_revision'] !== '0');
    while (events.length < TOTAL && !compacted() && Date.now() < deadline) await sleep(50);
    assert.equal(stream.ended, undefined, `the stream stayed open: ${stream.describeEnd()}`);
    if (!compacted()) {
      assert.equal(events.length, TOTAL, 'every event arrived once the client read again');
      const keys = new Set<string>();
      let lastRev = 0;
      for (const e of events) {
        const kv = e['kv'] as Msg;
        const rev = Number(kv['mod_revision']);
        assert.ok(rev > lastRev, `events in revision order: ${rev} after ${lastRev}`);
        lastRev = rev;
        keys.add((kv['key'] as Buffer).toString());
        assert.equal((kv['value'] as Buffer).length, VALUE);
      }
      assert.equal(keys.size, TOTAL, 'each key once');
    }
    stream.cancel();
  } finally {
    for (const c of writers) c.close();
    probe.close();
    ch.close();
    await server.stop();
  }
});

test('a client that sends thousands of watch creates and never reads: the server stops reading its requests and stays bounded', { timeout: 120_000 }, async () => {
  const server = await startTarget(kind);
  const probe = new EtcdClient(server.endpoint);
  try {
    await probe.waitReady();
    const raw = new RawGrpcStream(server.endpoint, '/etcdserverpb.Watch/Watch');
    raw.stream.pause(); // never read: the server's replies fill the HTTP/2 window
    const baseKb = procStatusKb(server.pid, 'RssAnon') ?? 0;
    const sampler = new PeakSampler(server.pid, 'RssAnon');
    const MAX = 400_000;
    let written = 0;
    let blocked = false;
    while (written < MAX) {
      const frame = grpcFrame(encodeRequest('Watch', 'Watch', { create_request: { key: k(`flood/${written}`) } }));
      written += 1;
      if (!raw.write(frame)) {
        // The transport pushes back: wait for it to drain, or conclude the server stopped reading.
        const drained = await new Promise<boolean>((res) => {
          const t = setTimeout(() => {
            raw.stream.off('drain', onDrain);
            res(false);
          }, 3_000);
          const onDrain = (): void => {
            clearTimeout(t);
            res(true);
          };
          raw.stream.once('drain', onDrain);
        });
        if (!drained) {
          blocked = true;
          break;
        }
      }
    }
    const peakKb = sampler.stop();
    const growthMb = (peakKb - baseKb) / 1024;
    console.log(`# ${kind}: ${written} creates written before the server stopped reading (${blocked ? 'blocked' : 'never blocked'}); RssAnon growth ${growthMb.toFixed(1)} MiB`);
    assert.ok(blocked, `the server read all ${MAX} create requests of a client that never read a reply`);
    // Each create that the server read costs a watcher and a queued reply; a server that kept
    // reading would hold hundreds of thousands of them. 64 MiB is far above what the few thousand
    // creates an HTTP/2 window admits cost, and far below what 400,000 would.
    assert.ok(growthMb < 64, `anonymous memory grew by ${growthMb.toFixed(1)} MiB`);
    const r = await probe.range({ key: k('x') }, { timeoutMs: 5_000 });
    assert.ok(r.ok, 'the server still answers other clients');

    // Reading again: every create written gets its created reply, in order.
    raw.stream.resume();
    await raw.until(() => raw.messages.length >= written || raw.closed, 60_000, `${written} created replies`);
    assert.equal(raw.closed, false, `the stream stayed open (status ${JSON.stringify(raw.status)})`);
    assert.equal(raw.messages.length, written);
    const last = decodeResponse('Watch', 'Watch', raw.messages[raw.messages.length - 1] ?? Buffer.alloc(0));
    assert.equal(last['created'], true);
    raw.close();
  } finally {
    probe.close();
    await server.stop();
  }
});
