// Shared pieces of the transport tests: fast-check arbitraries for raft messages, a recording logger,
// and a transport on 127.0.0.1 whose callbacks record what they receive.
import fc from 'fast-check';
import { Buffer } from 'node:buffer';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../server/base/index.js';
import type { Entry, Message, SnapshotMeta } from '../../server/raft/types.js';
import { type Frame, FrameDecoder, encodeHello, purposes } from '../../server/transport/frame.js';
import { type OutgoingSnapshot, PROTOCOL_VERSION, Transport, type TransportOptions } from '../../server/transport/index.js';

export const fcSeed = Number(process.env['TRANSPORT_FC_SEED'] ?? Date.now() % 0x7fffffff);

export function checkProperty<Ts extends [unknown, ...unknown[]]>(name: string, prop: fc.IProperty<Ts>, numRuns = 200): void {
  try {
    fc.assert(prop, { seed: fcSeed, numRuns });
  } catch (err) {
    console.error(`${name}: failed with fast-check seed ${fcSeed}; replay with TRANSPORT_FC_SEED=${fcSeed}`);
    throw err;
  }
}

const U64_MAX = (1n << 64n) - 1n;
const arbId = fc.oneof(fc.bigInt({ min: 0n, max: U64_MAX }), fc.constantFrom(0n, 1n, U64_MAX));
const arbNum = fc.oneof(fc.maxSafeNat(), fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER));
const arbBytes = fc.uint8Array({ maxLength: 48 });

export const wireTypes = [
  'prop',
  'app',
  'appResp',
  'vote',
  'voteResp',
  'preVote',
  'preVoteResp',
  'snap',
  'heartbeat',
  'heartbeatResp',
  'transferLeader',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
] as const;

const arbEntry: fc.Arbitrary<Entry> = fc.record({
  index: arbNum,
  term: arbNum,
  type: fc.constantFrom('normal' as const, 'confChange' as const),
  data: arbBytes,
}).map((e) => ({ ...e })); // fc.record builds null-prototype objects; the decoder builds plain ones

const arbSnapshot: fc.Arbitrary<SnapshotMeta> = fc.record({
  index: arbNum,
  term: arbNum,
  confState: fc.record({ voters: fc.array(arbId, { maxLength: 7 }), learners: fc.array(arbId, { maxLength: 3 }) }).map((c) => ({ ...c })),
}).map((s) => ({ ...s }));

export const arbMessage: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...wireTypes),
    from: arbId,
    to: arbId,
    term: arbNum,
    index: arbNum,
    logTerm: arbNum,
    commit: arbNum,
    entries: fc.array(arbEntry, { maxLength: 4 }),
    reject: fc.boolean(),
    rejectHint: arbNum,
    context: arbBytes,
    snapshot: fc.option(arbSnapshot, { nil: undefined }),
  })
  .map(({ snapshot, ...m }) => (snapshot === undefined ? m : { ...m, snapshot }));

/** A small app message numbered by `index` (the tests check order by it). */
export function appMsg(from: bigint, to: bigint, index: number, dataBytes = 16): Message {
  const data = new Uint8Array(dataBytes).fill(index % 251);
  return {
    type: 'app',
    from,
    to,
    term: 3,
    index,
    logTerm: 3,
    commit: index,
    entries: [{ index: index + 1, term: 3, type: 'normal', data }],
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
}

export interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

export function recordingLogger(lines: LogLine[], echo = process.env['TRANSPORT_TEST_LOG'] === '1'): Logger {
  const rec =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}): void => {
      lines.push({ level, msg, fields });
      if (echo) console.error(level, msg, JSON.stringify(fields, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v)));
    };
  const logger: Logger = { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error'), child: () => logger };
  return logger;
}

/** Everything a transport's callbacks saw. */
export interface Recorder {
  readonly received: Message[];
  /** Sizes of the batches handed to onMessages. */
  readonly batches: number[];
  readonly snapshots: { msg: Message; file: string }[];
  readonly snapshotsSent: { to: bigint; ok: boolean }[];
  readonly unreachable: bigint[];
  readonly logs: LogLine[];
  removedCalls: number;
}

export interface Member extends Recorder {
  readonly id: bigint;
  readonly t: Transport;
  readonly url: string;
  readonly dir: string;
}

export type MemberOverrides = Partial<Omit<TransportOptions, 'logger' | 'memberId' | 'snapshotDir'>> & { dir?: string };

export async function startMember(id: bigint, clusterId: bigint, over: MemberOverrides = {}): Promise<Member> {
  const dir = over.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'cairn-transport-')));
  const rec: Recorder = { received: [], batches: [], snapshots: [], snapshotsSent: [], unreachable: [], logs: [], removedCalls: 0 };
  const { dir: _dir, ...rest } = over;
  const opts: TransportOptions = {
    memberId: id,
    clusterId,
    listenUrls: ['http://127.0.0.1:0'],
    snapshotDir: dir,
    logger: recordingLogger(rec.logs),
    onMessages: (msgs) => {
      rec.received.push(...msgs);
      rec.batches.push(msgs.length);
    },
    onSnapshot: (msg, file) => rec.snapshots.push({ msg, file }),
    openSnapshot: () => Promise.reject(new Error('no snapshot in this test')),
    onSnapshotSent: (to, ok) => rec.snapshotsSent.push({ to, ok }),
    onUnreachable: (to) => rec.unreachable.push(to),
    handleRequest: (_from, kind, body) => Promise.resolve(new Uint8Array(Buffer.concat([Buffer.from(`${kind}:`), body]))),
    isRemoved: () => false,
    onRemoved: () => {
      rec.removedCalls++;
    },
    ...rest,
  };
  const t = await Transport.listen(opts);
  return Object.assign(rec, { id, t, url: t.boundUrls[0] ?? '', dir });
}

export async function stopMember(m: Member, removeDir = true): Promise<void> {
  await m.t.close();
  if (removeDir) await rm(m.dir, { recursive: true, force: true });
}

/** Connects every member to every other one. */
export function mesh(members: readonly Member[]): void {
  for (const a of members) for (const b of members) if (a !== b) a.t.addPeer(b.id, [b.url]);
}

export type { OutgoingSnapshot };

/** A hand-driven peer connection: raw bytes out, decoded frames in. */
export interface RawConn {
  readonly socket: net.Socket;
  readonly frames: Frame[];
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

export async function rawConnect(url: string, helloExpected = false): Promise<RawConn> {
  const { hostname, port } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(helloExpected);
  let closed = false;
  socket.on('data', (chunk: Buffer) => frames.push(...decoder.push(chunk)));
  socket.on('error', () => undefined);
  const done = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closed = true;
      resolve();
    }),
  );
  return { socket, frames, closed: done, isClosed: () => closed };
}

export function helloBytes(purpose: keyof typeof purposes, clusterId: bigint, from: bigint, to: bigint): Buffer {
  return encodeHello({ version: PROTOCOL_VERSION, purpose: purposes[purpose], clusterId, from, to });
}
