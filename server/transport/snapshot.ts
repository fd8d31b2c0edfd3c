// Snapshot transfer, one connection per snapshot. Sender: snapMsg (file size + the raft message), the
// file in snapChunk frames, snapEnd (SHA-256), then it waits for the receiver's snapAck. Receiver: writes
// the chunks to a temp file in snapshotDir, checks size and hash, fsyncs, renames it to its final name,
// fsyncs the directory, acknowledges, and only then hands the file to the host. Anything else (a cut
// connection, a bad hash, too many bytes) removes the temp file.
import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../base/index.js';
import type { Message } from '../raft/types.js';
import { decodeMessage, encodeMessage } from './codec.js';
import type { FramedConn } from './conn.js';
import { SNAPSHOT_ACK_TIMEOUT_MS, SNAPSHOT_CHUNK_BYTES, SNAPSHOT_STALL_TIMEOUT_MS } from './constants.js';
import { PeerProtocolError, PeerUnavailableError } from './errors.js';
import { FRAME_HEADER_BYTES, type Frame, type Hello, decodeSnapAck, encodeFrame, encodeSnapAck, frameTypes, writeFrameHeader } from './frame.js';

/** What the host hands over for one snapshot send: the message as the copy really is, and the copy. */
export interface OutgoingSnapshot {
  readonly msg: Message;
  readonly file: string;
  /** Called once the transfer is over, whatever its outcome. */
  release(): Promise<void>;
}

export interface SnapshotSendEnv {
  readonly logger: Logger;
  openSnapshot(msg: Message): Promise<OutgoingSnapshot>;
  hello(to: bigint): Hello | undefined;
  dial(urls: readonly string[], hello: Hello): Promise<FramedConn>;
  /** The connection of this transfer, so that removing the peer or closing the transport can cut it. */
  attach(to: bigint, conn: FramedConn): void;
}

/** Sends one snapshot; true when the receiver confirmed it stored and verified the file. Never rejects. */
export async function sendSnapshot(env: SnapshotSendEnv, urls: readonly string[], msg: Message): Promise<boolean> {
  const peer = msg.to.toString(16);
  let out: OutgoingSnapshot | undefined;
  try {
    out = await env.openSnapshot(msg);
    if (out.msg.type !== 'snap' || out.msg.to !== msg.to || out.msg.snapshot === undefined) throw new Error('openSnapshot returned a message that is not a snapshot for this peer');
    const bytes = await transfer(env, urls, out);
    env.logger.info('sent snapshot', { peer, index: out.msg.snapshot.index, term: out.msg.snapshot.term, bytes });
    return true;
  } catch (e) {
    env.logger.warn('snapshot send failed', { peer, index: msg.snapshot?.index, reason: e instanceof Error ? e.message : String(e) });
    return false;
  } finally {
    if (out !== undefined) {
      try {
        await out.release();
      } catch (e) {
        env.logger.warn('snapshot release failed', { peer, error: e });
      }
    }
  }
}

async function transfer(env: SnapshotSendEnv, urls: readonly string[], out: OutgoingSnapshot): Promise<number> {
  const fh = await open(out.file, 'r');
  let conn: FramedConn | undefined;
  try {
    const size = (await fh.stat()).size;
    const hello = env.hello(out.msg.to);
    if (hello === undefined) throw new Error('cluster ID not known yet');
    conn = await env.dial(urls, hello);
    env.attach(out.msg.to, conn);
    const ack = awaitAck(conn);
    let early: { ok: boolean; reason: string } | undefined;
    ack.then((v) => (early = v), () => undefined);
    const head = Buffer.allocUnsafe(8);
    head.writeBigUInt64BE(BigInt(size));
    conn.write(encodeFrame(frameTypes.snapMsg, head, encodeMessage(out.msg)));
    const hash = createHash('sha256');
    for (let pos = 0; pos < size; ) {
      const n = Math.min(SNAPSHOT_CHUNK_BYTES, size - pos);
      const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
      const { bytesRead } = await fh.read(buf, FRAME_HEADER_BYTES, n, pos);
      if (bytesRead === 0) throw new Error(`snapshot file ${out.file} shrank while being sent`);
      hash.update(buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + bytesRead));
      writeFrameHeader(buf, 0, frameTypes.snapChunk, bytesRead);
      conn.write(buf.subarray(0, FRAME_HEADER_BYTES + bytesRead));
      pos += bytesRead;
      if (conn.needDrain) await drained(conn);
      if (early !== undefined) throw new Error(`receiver rejected the snapshot: ${early.reason}`);
    }
    conn.write(encodeFrame(frameTypes.snapEnd, hash.digest()));
    const verdict = await ack;
    if (!verdict.ok) throw new Error(`receiver rejected the snapshot: ${verdict.reason}`);
    return size;
  } finally {
    conn?.close('snapshot transfer over');
    await fh.close();
  }
}

function awaitAck(conn: FramedConn): Promise<{ ok: boolean; reason: string }> {
  const p = new Promise<{ ok: boolean; reason: string }>((resolve, reject) => {
    conn.setHandler((frames) => {
      const [f] = frames;
      if (f === undefined || f.type !== frameTypes.snapAck) throw new PeerProtocolError('unexpected frame on a snapshot connection');
      resolve(decodeSnapAck(f.payload));
    });
    conn.onClose((reason) => reject(new PeerUnavailableError('closed', `snapshot connection closed: ${reason}`)));
  });
  p.catch(() => undefined); // observed by the caller later (or not, if the send fails first)
  return withTimeout(p, SNAPSHOT_ACK_TIMEOUT_MS, 'no snapshot acknowledgement');
}

function drained(conn: FramedConn): Promise<void> {
  const socket = conn.socket;
  const p = new Promise<void>((resolve, reject) => {
    if (conn.closed || socket.destroyed) {
      reject(new PeerUnavailableError('closed', 'snapshot connection closed'));
      return;
    }
    const onDrain = (): void => {
      socket.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.off('drain', onDrain);
      reject(new PeerUnavailableError('closed', `snapshot connection closed: ${conn.closeReason}`));
    };
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
  return withTimeout(p, SNAPSHOT_STALL_TIMEOUT_MS, 'snapshot connection stalled');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PeerUnavailableError('timeout', `${what} within ${ms} ms`)), ms);
  });
  const r = Promise.race([p, t]).finally(() => clearTimeout(timer));
  r.catch(() => undefined);
  return r;
}

export interface SnapshotReceiveEnv {
  readonly logger: Logger;
  readonly snapshotDir: string;
  readonly memberId: bigint;
  onSnapshot(msg: Message, file: string): void;
  /** A snapshot was stored: seconds from its first frame to the file being durable, and of its fsync (metrics). */
  onSnapshotStored?: ((saveSeconds: number, fsyncSeconds: number) => void) | undefined;
}

/** Suffix of incomplete snapshot files in snapshotDir (the host may delete leftovers at start). */
export const SNAPSHOT_TEMP_SUFFIX = '.snap.part';

/** The receiving end of one snapshot connection. */
export class SnapshotReceiver {
  private state: 'idle' | 'receiving' | 'done' | 'failed' = 'idle';
  private msg: Message | undefined;
  private size = 0;
  private received = 0;
  private readonly hash = createHash('sha256');
  private fh: FileHandle | undefined;
  private tmp = '';
  private work: Promise<void> = Promise.resolve();
  /** When the snapshot's first frame arrived (performance.now()). */
  private startedMs = 0;

  constructor(
    private readonly env: SnapshotReceiveEnv,
    private readonly from: bigint,
    private readonly conn: FramedConn,
  ) {}

  handle(frames: Frame[]): Promise<void> {
    const p = this.process(frames);
    this.work = p.catch(() => undefined);
    return p;
  }

  /** After the connection closed: removes the temp file unless the snapshot was completed. */
  async cleanup(): Promise<void> {
    await this.work;
    if (this.state === 'receiving') await this.discard(`connection closed after ${this.received} of ${this.size} bytes`);
  }

  private async process(frames: Frame[]): Promise<void> {
    for (const f of frames) {
      if (this.state === 'failed') return;
      if (f.type === frameTypes.snapMsg && this.state === 'idle') await this.begin(f.payload);
      else if (f.type === frameTypes.snapChunk && this.state === 'receiving') await this.chunk(f.payload);
      else if (f.type === frameTypes.snapEnd && this.state === 'receiving') await this.end(f.payload);
      else throw new PeerProtocolError(`unexpected frame type ${f.type} on a snapshot connection (${this.state})`);
    }
  }

  private async begin(p: Buffer): Promise<void> {
    if (p.length < 8) throw new PeerProtocolError('snapshot header truncated');
    const size = p.readBigUInt64BE(0);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new PeerProtocolError('snapshot size out of range');
    const msg = decodeMessage(p.subarray(8));
    if (msg.type !== 'snap' || msg.snapshot === undefined) throw new PeerProtocolError(`snapshot connection carries a ${msg.type} message`);
    if (msg.to !== this.env.memberId || msg.from !== this.from) throw new PeerProtocolError('snapshot message addressed inconsistently with the hello');
    this.startedMs = performance.now();
    this.msg = msg;
    this.size = Number(size);
    this.tmp = path.join(this.env.snapshotDir, `${randomBytes(8).toString('hex')}${SNAPSHOT_TEMP_SUFFIX}`);
    this.fh = await open(this.tmp, 'wx', 0o600);
    this.state = 'receiving';
  }

  private async chunk(p: Buffer): Promise<void> {
    this.received += p.length;
    if (this.received > this.size) {
      await this.reject(`more than the announced ${this.size} bytes`);
      return;
    }
    this.hash.update(p);
    await this.writeAll(p);
  }

  private async end(p: Buffer): Promise<void> {
    const fh = this.fh;
    const msg = this.msg;
    if (fh === undefined || msg?.snapshot === undefined) throw new Error('snapshot receiver: end without a file');
    if (this.received !== this.size) return this.reject(`received ${this.received} of ${this.size} bytes`);
    if (!this.hash.digest().equals(p)) return this.reject('SHA-256 mismatch');
    const s = msg.snapshot;
    const final = path.join(this.env.snapshotDir, `${hex16(s.index)}-${hex16(s.term)}-${randomBytes(4).toString('hex')}.snap.db`);
    try {
      const fsyncStarted = performance.now();
      await fh.sync();
      const fsyncSeconds = (performance.now() - fsyncStarted) / 1000;
      await fh.close();
      this.fh = undefined;
      await rename(this.tmp, final);
      this.tmp = final; // removed instead if the directory sync fails
      await syncDir(this.env.snapshotDir);
      this.env.onSnapshotStored?.((performance.now() - this.startedMs) / 1000, fsyncSeconds);
    } catch (e) {
      await this.reject(`storing the snapshot failed: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (this.conn.socket.destroyed) {
      // the connection was cut (transport closing, peer removed) while the file was stored: nobody will take it
      await this.discard('connection closed while storing the snapshot');
      return;
    }
    this.state = 'done';
    this.env.logger.info('received snapshot', { peer: this.from.toString(16), index: s.index, term: s.term, bytes: this.size, file: final });
    this.conn.write(encodeSnapAck(true, ''));
    this.env.onSnapshot(msg, final);
  }

  private async writeAll(p: Buffer): Promise<void> {
    const fh = this.fh;
    if (fh === undefined) throw new Error('snapshot receiver: chunk without a file');
    for (let off = 0; off < p.length; ) {
      const { bytesWritten } = await fh.write(p, off, p.length - off);
      off += bytesWritten;
    }
  }

  private async reject(reason: string): Promise<void> {
    this.env.logger.warn('rejected snapshot from peer', { peer: this.from.toString(16), remote: this.conn.remote, reason });
    await this.discard(reason);
    this.conn.endWith(encodeSnapAck(false, reason), `snapshot rejected: ${reason}`);
  }

  private async discard(reason: string): Promise<void> {
    this.state = 'failed';
    const fh = this.fh;
    this.fh = undefined;
    try {
      await fh?.close();
    } catch {
      // closing is best effort; the file is removed next
    }
    try {
      await unlink(this.tmp);
    } catch (e) {
      this.env.logger.warn('could not remove an incomplete snapshot file', { file: this.tmp, reason, error: e });
    }
  }
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
