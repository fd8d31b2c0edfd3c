// etcd's lock (v3lockpb.Lock) and election (v3electionpb.Election) services on Cairn and on etcd
// 3.6.8: the same scripted sequence of calls over gRPC (answers, revisions, keys, error codes and
// texts, the Observe stream) and over the HTTP gateway (curl-style JSON) must give the same transcript.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { onEtcd36AndCairn } from '../harness/differential.js';
import { authRootAndUser, methodDefinition, statusName, type EtcdClient, type CallResult, type Msg } from '../harness/client.js';
import { pollUntil } from '../harness/poll.js';

const LOCK = 'v3lockpb.Lock';
const ELECTION = 'v3electionpb.Election';
const b = (s: string): Buffer => Buffer.from(s);
const LEASE_A = 0x1000;
const LEASE_B = 0x2000;
const LEASE_C = 0x3000;

/** A message with headers reduced to their revision (member and cluster ids differ between servers). */
function norm(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString();
  if (Array.isArray(v)) return v.map(norm);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'header' && typeof x === 'object' && x !== null) out[k] = { revision: (x as Msg)['revision'] };
    else out[k] = norm(x);
  }
  return out;
}

function show(r: CallResult<Msg>): string {
  return r.ok ? JSON.stringify(norm(r.value)) : `${statusName(r.code)} ${r.details}`;
}

/** An Observe stream: its messages, normalised, as they come. */
class Observe {
  readonly seen: string[] = [];
  ended: string | undefined;
  private readonly call: grpc.ClientReadableStream<Msg>;

  constructor(c: EtcdClient, name: string, md: Record<string, string> = {}) {
    const def = methodDefinition(ELECTION, 'Observe');
    const meta = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) meta.set(k, v);
    this.call = c.channel.makeServerStreamRequest(def.path, def.requestSerialize, (x: Buffer) => def.responseDeserialize(x) as Msg, { name: b(name) }, meta, {});
    this.call.on('data', (m: Msg) => this.seen.push(JSON.stringify(norm(observed(m)))));
    this.call.on('error', (e: grpc.ServiceError) => (this.ended = `${statusName(e.code)} ${e.details}`));
    this.call.on('end', () => (this.ended ??= 'OK'));
  }

  cancel(): void {
    this.call.cancel();
  }
}

/**
 * An Observe message with its header revision checked (at least the event's) and dropped: etcd opens
 * its watch on the leader's key only after sending the leader, so when the key changed meanwhile the
 * change comes from history with the then current revision in the header; Cairn's watch is open
 * before, so it carries the change's own revision.
 */
function observed(m: Msg): Msg {
  const hdr = m['header'] as Msg;
  const kv = m['kv'] as Msg;
  const ok = Number(hdr['revision']) >= Number(kv['mod_revision']);
  return { header_revision_at_least_mod_revision: ok, kv };
}

async function keysUnder(c: EtcdClient, prefix: string): Promise<number> {
  const r = await c.range({ key: b(prefix), range_end: b(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)), count_only: true });
  return r.ok ? Number(r.value['count']) : -1;
}

/** The scripted sequence; returns its transcript. */
async function script(c: EtcdClient): Promise<string[]> {
  const out: string[] = [];
  const say = (what: string, r: CallResult<Msg>): void => {
    out.push(`${what}: ${show(r)}`);
  };
  const call = (svc: string, m: string, req: object, timeoutMs?: number): Promise<CallResult<Msg>> => c.unary(svc, m, req, timeoutMs === undefined ? {} : { timeoutMs });
  for (const id of [LEASE_A, LEASE_B, LEASE_C]) say('grant', await call('Lease', 'LeaseGrant', { ID: id, TTL: 60 }));

  // Lock: uncontended, then a waiter that gets the lock when the holder unlocks.
  say('lock A', await call(LOCK, 'Lock', { name: b('L'), lease: LEASE_A }));
  say('lock A again (same lease: reentrant)', await call(LOCK, 'Lock', { name: b('L'), lease: LEASE_A }));
  const waiting = call(LOCK, 'Lock', { name: b('L'), lease: LEASE_B });
  await pollUntil('the second locker queued', async () => (await keysUnder(c, 'L/')) === 2);
  say('unlock A', await call(LOCK, 'Unlock', { key: b('L/1000') }));
  say('lock B (was waiting)', await waiting);
  say('unlock B', await call(LOCK, 'Unlock', { key: b('L/2000') }));
  say('unlock unknown key', await call(LOCK, 'Unlock', { key: b('L/none') }));
  say('lock, unknown lease', await call(LOCK, 'Lock', { name: b('L'), lease: 0x9999 }));
  // Revoking the holder's lease releases the lock to the next waiter.
  say('lock A', await call(LOCK, 'Lock', { name: b('R'), lease: LEASE_A }));
  const afterRevoke = call(LOCK, 'Lock', { name: b('R'), lease: LEASE_B });
  await pollUntil('the second locker queued', async () => (await keysUnder(c, 'R/')) === 2);
  say('revoke A', await call('Lease', 'LeaseRevoke', { ID: LEASE_A }));
  say('lock B (was waiting)', await afterRevoke);
  const timedOut = await call(LOCK, 'Lock', { name: b('R'), lease: LEASE_C }, 300);
  out.push(`lock that times out: ${timedOut.ok ? 'ok' : statusName(timedOut.code)}`);
  await pollUntil('the timed-out locker gave up (its lease revoked)', async () => (await keysUnder(c, 'R/')) === 1);
  say('time to live of the timed-out locker\'s lease', await call('Lease', 'LeaseTimeToLive', { ID: LEASE_C }));
  // Lease 0: a new lease of the session TTL (60 s); the key is named after it.
  const own = await call(LOCK, 'Lock', { name: b('Z'), lease: 0 });
  const ownKey = own.ok ? (own.value['key'] as Buffer).toString() : '';
  const ttl = await call('Lease', 'LeaseTimeToLive', { ID: BigInt(`0x${ownKey.slice(2)}`).toString() });
  out.push(`lock with lease 0: ${own.ok} key ${ownKey.slice(0, 2)} granted TTL ${ttl.ok ? String(ttl.value['grantedTTL']) : show(ttl)}`);
  say('revoke A-less lease', await call('Lease', 'LeaseRevoke', { ID: LEASE_B }));

  // Election.
  for (const id of [LEASE_A, LEASE_B]) say('grant', await call('Lease', 'LeaseGrant', { ID: id, TTL: 60 }));
  say('leader (none)', await call(ELECTION, 'Leader', { name: b('E') }));
  const obs = new Observe(c, 'E');
  const a = await call(ELECTION, 'Campaign', { name: b('E'), lease: LEASE_A, value: b('a') });
  say('campaign A', a);
  const leaderA = a.ok ? (a.value['leader'] as Msg) : {};
  const bCampaign = call(ELECTION, 'Campaign', { name: b('E'), lease: LEASE_B, value: b('b') });
  await pollUntil('candidate B queued', async () => (await keysUnder(c, 'E/')) === 2);
  say('leader', await call(ELECTION, 'Leader', { name: b('E') }));
  say('proclaim A', await call(ELECTION, 'Proclaim', { leader: leaderA, value: b('a2') }));
  say('proclaim, wrong rev', await call(ELECTION, 'Proclaim', { leader: { ...leaderA, rev: 1 }, value: b('x') }));
  say('proclaim, no leader field', await call(ELECTION, 'Proclaim', { value: b('x') }));
  say('resign, no leader field', await call(ELECTION, 'Resign', {}));
  say('campaign A again, new value', await call(ELECTION, 'Campaign', { name: b('E'), lease: LEASE_A, value: b('a3') }));
  say('leader', await call(ELECTION, 'Leader', { name: b('E') }));
  await pollUntil('observer saw a3', () => Promise.resolve(obs.seen.some((s) => s.includes('"value":"a3"'))));
  say('resign A', await call(ELECTION, 'Resign', { leader: leaderA }));
  say('campaign B (was waiting)', await bCampaign);
  say('resign A again (not leader: no-op)', await call(ELECTION, 'Resign', { leader: leaderA }));
  await pollUntil('observer saw b', () => Promise.resolve(obs.seen.some((s) => s.includes('"value":"b"'))));
  say('revoke B', await call('Lease', 'LeaseRevoke', { ID: LEASE_B }));
  say('leader (none)', await call(ELECTION, 'Leader', { name: b('E') }));
  say('campaign A', await call(ELECTION, 'Campaign', { name: b('E'), lease: LEASE_A, value: b('c') }));
  await pollUntil('observer saw c', () => Promise.resolve(obs.seen.some((s) => s.includes('"value":"c"'))));
  out.push(...obs.seen.map((s) => `observe: ${s}`));
  obs.cancel();
  out.push(`observe ended: ${obs.ended ?? 'no'}`);
  return out;
}

test('Lock and Election over gRPC: the same transcript on Cairn and etcd 3.6.8', async (t) => {
  const seen = await onEtcd36AndCairn(t, script);
  if (seen === undefined) return;
  assert.deepEqual(seen.cairn, seen.etcd);
});

/** Under auth: the caller's token and permissions decide, as for its own KV calls. */
async function authScript(c: EtcdClient): Promise<string[]> {
  const { uMd } = await authRootAndUser(c, b('ok/'), b('ok0'));
  const out: string[] = [];
  const say = async (what: string, svc: string, m: string, req: object, md: Record<string, string> = uMd): Promise<void> => {
    out.push(`${what}: ${show(await c.unary(svc, m, req, { metadata: md }))}`);
  };
  await say('grant', 'Lease', 'LeaseGrant', { ID: LEASE_A, TTL: 60 });
  await say('lock, permitted', LOCK, 'Lock', { name: b('ok'), lease: LEASE_A });
  await say('lock, not permitted', LOCK, 'Lock', { name: b('no'), lease: LEASE_A });
  await say('lock, no token', LOCK, 'Lock', { name: b('ok'), lease: LEASE_A }, {});
  await say('lock, bad token', LOCK, 'Lock', { name: b('ok'), lease: 0 }, { token: 'bad.1' });
  await say('unlock, not permitted', LOCK, 'Unlock', { key: b('no/1000') });
  await say('unlock, permitted', LOCK, 'Unlock', { key: b('ok/1000') });
  await say('campaign, not permitted', ELECTION, 'Campaign', { name: b('no'), lease: LEASE_A, value: b('v') });
  await say('leader, not permitted', ELECTION, 'Leader', { name: b('no') });
  await say('campaign, permitted', ELECTION, 'Campaign', { name: b('ok'), lease: LEASE_A, value: b('v') });
  await say('leader, permitted', ELECTION, 'Leader', { name: b('ok') });
  const denied = new Observe(c, 'no', uMd);
  await pollUntil('observe (not permitted) ended', () => Promise.resolve(denied.ended !== undefined));
  out.push(`observe, not permitted: ${denied.seen.length} messages, ended ${denied.ended ?? ''}`);
  return out;
}

test('Lock and Election under auth: the same answers on Cairn and etcd 3.6.8', async (t) => {
  const seen = await onEtcd36AndCairn(t, authScript);
  if (seen === undefined) return;
  t.diagnostic(`etcd 3.6.8: ${seen.etcd.join(' / ')}`);
  assert.deepEqual(seen.cairn, seen.etcd);
});

/** POST over HTTP/1.1 to the gateway: status and the JSON body with the header reduced to its revision. */
function post(base: string, path: string, body: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: 'POST', agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        const lines = text.trim().split('\n').filter((l) => l !== '');
        resolve(`${res.statusCode ?? 0} ${lines.map((l) => JSON.stringify(gatewayNorm(JSON.parse(l)))).join(' | ')}`);
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${path}: no answer`)));
    req.end(JSON.stringify(body));
  });
}

/**
 * Errors compared by code and message: etcd 3.6's gateway (grpc-gateway v2) answers {code, message};
 * Cairn's keeps etcd 3.4/3.5's body (grpc-gateway v1), which adds "error" (the message again).
 */
function gatewayNorm(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(gatewayNorm);
  if (typeof v !== 'object' || v === null) return v;
  if ('code' in v && 'message' in v) return { code: v.code, message: v.message };
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'header' && typeof x === 'object' && x !== null) out[k] = { revision: (x as Msg)['revision'] };
    else out[k] = gatewayNorm(x);
  }
  return out;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** A streaming gateway call's status and first message (the stream is then closed by the client). */
function firstStreamed(base: string, path: string, body: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: 'POST', agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
        const nl = text.indexOf('\n');
        if (nl < 0) return;
        resolve(`${res.statusCode ?? 0} ${JSON.stringify(gatewayNorm(JSON.parse(text.slice(0, nl))))}`);
        req.destroy();
      });
    });
    req.on('error', (e) => reject(e));
    req.on('timeout', () => req.destroy(new Error(`${path}: nothing streamed`)));
    req.end(JSON.stringify(body));
  });
}

test('Lock and Election over the HTTP gateway: the same JSON on Cairn and etcd 3.6.8', async (t) => {
  const seen = await onEtcd36AndCairn(t, async (_c, s) => {
    const u = s.clientUrl;
    const out: string[] = [];
    out.push(await post(u, '/v3/lease/grant', { ID: LEASE_A, TTL: 60 }));
    out.push(await post(u, '/v3/lock/lock', { name: b64('L'), lease: LEASE_A }));
    out.push(await post(u, '/v3/lock/unlock', { key: b64('L/1000') }));
    out.push(await post(u, '/v3/election/leader', { name: b64('E') }));
    out.push(await post(u, '/v3/election/campaign', { name: b64('E'), lease: LEASE_A, value: b64('v1') }));
    const leader = { name: b64('E'), key: b64('E/1000'), rev: 4, lease: LEASE_A };
    out.push(await post(u, '/v3/election/proclaim', { leader, value: b64('v2') }));
    out.push(await post(u, '/v3/election/leader', { name: b64('E') }));
    out.push(await post(u, '/v3/election/proclaim', { value: b64('v2') }));
    out.push(await post(u, '/v3/election/resign', { leader }));
    out.push(await post(u, '/v3/lock/lock', { name: b64('L'), lease: 0x777 }));
    out.push(await post(u, '/v3/election/campaign', { name: b64('E'), lease: LEASE_A, value: b64('v3') }));
    out.push(`observe: ${await firstStreamed(u, '/v3/election/observe', { name: b64('E') })}`);
    return out;
  });
  if (seen === undefined) return;
  assert.deepEqual(seen.cairn, seen.etcd);
});
