// The Transport: listeners on the member's peer URLs, and per peer an outgoing raft stream, a request
// channel and at most one snapshot transfer at a time. See README.md for the wire format.
import type { Server, Socket } from 'node:net';
import { type Logger, assert } from '../base/index.js';
import type { Message } from '../raft/types.js';
import { isWireMessageType } from './codec.js';
import { FramedConn } from './conn.js';
import { PEER_PING_INTERVAL_MS, PEER_READ_TIMEOUT_MS, PEER_UNREACHABLE_REPORT_MS, PROTOCOL_VERSION } from './constants.js';
import { dial } from './dial.js';
import { type PeerRefusedError, PeerUnavailableError } from './errors.js';
import { type Hello, type Purpose, purposes } from './frame.js';
import { helloHandler } from './inbound.js';
import { RequestChannel } from './request.js';
import { type OutgoingSnapshot, sendSnapshot } from './snapshot.js';
import type { TlsConfig } from '../base/tls.js';
import { type SocketFactory, formatPeerUrl, parsePeerUrl, plainTcp, tlsSockets } from './sockets.js';
import { removeStaleSocket } from '../base/unixsocket.js';
import { StreamSender } from './stream.js';

export interface TransportOptions {
  readonly memberId: bigint;
  /** 0n while unknown (a joining member): then nothing is dialled and every inbound hello but an anonymous 'members' request is refused. */
  readonly clusterId: bigint;
  /** --listen-peer-urls (http://host:port; port 0 picks a free port, see boundUrls). */
  readonly listenUrls: readonly string[];
  /** Where received snapshot files are written (temp files end in SNAPSHOT_TEMP_SUFFIX). */
  readonly snapshotDir: string;
  readonly logger: Logger;
  /** Raft messages received on a stream, in order per peer (one call per socket read). */
  onMessages(msgs: Message[]): void;
  /** A snapshot file arrived complete and verified; the host owns the file from now on. */
  onSnapshot(msg: Message, file: string): void;
  /** A snapshot file was stored: seconds from its first frame to being durable, and of its fsync; for metrics. */
  onSnapshotStored?: ((saveSeconds: number, fsyncSeconds: number) => void) | undefined;
  /** A consistent copy of the snapshot to send for `msg` (the host may rewrite msg.snapshot to match it). */
  openSnapshot(msg: Message): Promise<OutgoingSnapshot>;
  /** A snapshot send finished: ok = the receiver stored and verified it. */
  onSnapshotSent(to: bigint, ok: boolean): void;
  /** Messages to `to` were dropped (peer down or queue full); at most once per second per peer. */
  onUnreachable(to: bigint): void;
  /** Serves a forwarded request; a rejection becomes the caller's error (its message is carried). */
  handleRequest(from: bigint, kind: string, body: Uint8Array): Promise<Uint8Array>;
  isRemoved(id: bigint): boolean;
  /** A peer refused us because we were removed from the cluster (called once). */
  onRemoved(): void;
  /** A ping's round trip on the stream to peer `to` was measured (ms); for metrics. */
  onRoundTrip?: ((to: bigint, ms: number) => void) | undefined;
  /** Socket creation (default: plain TCP, or TLS for https URLs when `tls` is given). */
  readonly sockets?: SocketFactory | undefined;
  /** Peer certificates (--peer-cert-file etc.): https listen URLs serve TLS, https peer URLs are dialled with TLS. */
  readonly tls?: TlsConfig | undefined;
}

export interface PeerStats {
  readonly messagesSent: number;
  readonly writes: number;
  readonly bytesSent: number;
  readonly dropped: number;
  readonly bytesReceived: number;
  /** The stream to the peer is up (etcd_network_active_peers). */
  readonly active: boolean;
}

interface Peer {
  readonly id: bigint;
  urls: readonly string[];
  readonly stream: StreamSender;
  readonly requests: RequestChannel;
  /** The connection of the snapshot transfer in flight, if any (undefined also while it is being opened). */
  snapshotConn: FramedConn | undefined;
  snapshotInFlight: boolean;
  lastUnreachableMs: number;
}

interface Inbound {
  from: bigint | undefined;
  purpose: Purpose | undefined;
}

const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

export class Transport {
  private clusterIdValue: bigint;
  private readonly peers = new Map<bigint, Peer>();
  private readonly conns = new Set<FramedConn>();
  private readonly inbound = new Map<FramedConn, Inbound>();
  private readonly cleanups = new Set<Promise<void>>();
  private readonly bytesReceived = new Map<bigint, number>();
  private readonly ticker: NodeJS.Timeout;
  private readonly sockets: SocketFactory;
  private readonly logger: Logger;
  private closing = false;
  private removedReported = false;

  private readonly servers: Server[] = [];
  private readonly bound: string[] = [];

  private constructor(private readonly opts: TransportOptions) {
    this.clusterIdValue = opts.clusterId;
    this.logger = opts.logger;
    this.sockets = opts.sockets ?? (opts.tls === undefined ? plainTcp : tlsSockets(opts.tls, opts.logger));
    this.ticker = setInterval(() => this.tick(), PEER_PING_INTERVAL_MS);
    this.ticker.unref();
  }

  /** Binds every listen URL (all or none), then serves peers. */
  static async listen(opts: TransportOptions): Promise<Transport> {
    const t = new Transport(opts);
    try {
      for (const url of opts.listenUrls) await t.bind(url);
    } catch (e) {
      await t.close();
      throw e;
    }
    return t;
  }

  /** The listen URLs as bound (port 0 replaced by the port the system chose). */
  get boundUrls(): readonly string[] {
    return this.bound;
  }

  private async bind(url: string): Promise<void> {
    const { host, port, secure, path } = parsePeerUrl(url);
    const server = this.sockets.createServer((socket) => this.accept(socket), secure);
    this.servers.push(server);
    if (path !== undefined) {
      await removeStaleSocket(path).catch((err: unknown) => {
        throw new Error(`cannot listen on unix socket ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const listening = (): void => {
        server.off('error', reject);
        resolve();
      };
      if (path !== undefined) server.listen(path, listening);
      else server.listen(port, host, listening);
    });
    server.on('error', (err) => this.logger.error('peer listener failed', { url, error: err }));
    const addr = server.address();
    this.bound.push(path === undefined && typeof addr === 'object' && addr !== null ? formatPeerUrl(host, addr.port, secure) : url);
  }

  get clusterId(): bigint {
    return this.clusterIdValue;
  }

  setClusterId(id: bigint): void {
    this.clusterIdValue = id;
  }

  /** Queues messages for their peers; never blocks. 'snap' messages start a snapshot transfer. */
  send(msgs: readonly Message[]): void {
    if (this.closing) return;
    for (const m of msgs) {
      assert(isWireMessageType(m.type), `send: ${m.type} messages are local-only`);
      const peer = this.peers.get(m.to);
      if (peer === undefined) {
        this.logger.debug('dropping a message for an unknown peer', { to: m.to.toString(16), type: m.type });
        if (m.type === 'snap') this.opts.onSnapshotSent(m.to, false);
        continue;
      }
      if (m.type === 'snap') this.startSnapshot(peer, m);
      else peer.stream.enqueue(m);
    }
  }

  /**
   * Writes every peer's queued messages now rather than in the immediate send() schedules (which
   * batches all messages of a turn into one write per peer). For a caller about to block the
   * thread: a leader whose WAL write runs on it next, a follower about to apply.
   */
  flush(): void {
    for (const peer of this.peers.values()) peer.stream.flushNow();
  }

  /** A forwarded request to a member; rejects with PeerRequestError (its handler failed), PeerRefusedError or PeerUnavailableError. */
  request(to: bigint, kind: string, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const peer = this.peers.get(to);
    if (peer === undefined) return Promise.reject(new PeerUnavailableError('unknownPeer', `unknown member ${to.toString(16)}`));
    return peer.requests.request(kind, body, timeoutMs);
  }

  /**
   * One request to a peer known only by URL (a joining member fetching the member list): the hello
   * carries `clusterId` (0 = unknown), from = 0 and to = 0; receivers serve only kind 'members' this way.
   */
  static async requestUrl(
    url: string,
    kind: string,
    body: Uint8Array,
    timeoutMs: number,
    clusterId = 0n,
    sockets: SocketFactory | TlsConfig | undefined = plainTcp,
  ): Promise<Uint8Array> {
    const conns = new Set<FramedConn>();
    const made = sockets !== undefined && 'files' in sockets ? tlsSockets(sockets, silentLogger) : undefined;
    const env = { sockets: made ?? (sockets !== undefined && 'connect' in sockets ? sockets : plainTcp), logger: silentLogger, track: (c: FramedConn) => conns.add(c) };
    const hello: Hello = { version: PROTOCOL_VERSION, purpose: purposes.request, clusterId, from: 0n, to: 0n };
    const ch = new RequestChannel(url, [url], {
      logger: silentLogger,
      hello: () => hello,
      dial: (urls, h) => dial(env, urls, h, Math.min(timeoutMs, 5000)),
      refused: () => undefined,
    });
    try {
      return await ch.request(kind, body, timeoutMs);
    } finally {
      ch.stop('request done');
      await Promise.all([...conns].map((c) => c.done));
      made?.close?.();
    }
  }

  addPeer(id: bigint, urls: readonly string[]): void {
    if (this.closing) return;
    if (id === this.opts.memberId) return;
    const existing = this.peers.get(id);
    if (existing !== undefined) {
      this.updatePeer(id, urls);
      return;
    }
    const peer: Peer = {
      id,
      urls: [...urls],
      stream: new StreamSender(id, urls, {
        logger: this.logger,
        hello: (to) => this.hello('stream', to),
        dial: (u, h) => this.dial(u, h),
        unreachable: (to) => this.reportUnreachable(to),
        refused: (to, err) => this.refused(to, err),
        roundTrip: (to, ms) => this.opts.onRoundTrip?.(to, ms),
      }),
      requests: new RequestChannel(`member ${id.toString(16)}`, urls, {
        logger: this.logger,
        hello: () => this.hello('request', id),
        dial: (u, h) => this.dial(u, h),
        refused: (err) => this.refused(id, err),
      }),
      snapshotConn: undefined,
      snapshotInFlight: false,
      lastUnreachableMs: -Infinity,
    };
    this.peers.set(id, peer);
  }

  /** New URLs are used by the next connection; a working connection is kept. */
  updatePeer(id: bigint, urls: readonly string[]): void {
    const peer = this.peers.get(id);
    if (peer === undefined) {
      this.addPeer(id, urls);
      return;
    }
    peer.urls = [...urls];
    peer.stream.urls = peer.urls;
    peer.requests.urls = peer.urls;
  }

  /** Closes every connection to and from the peer, drops its queue and rejects its pending requests. */
  removePeer(id: bigint): void {
    const peer = this.peers.get(id);
    if (peer !== undefined) {
      this.peers.delete(id);
      peer.stream.stop();
      peer.requests.stop(`member ${id.toString(16)} removed`);
      peer.snapshotConn?.close('peer removed');
    }
    for (const [conn, info] of this.inbound) if (info.from === id) conn.close('peer removed');
  }

  hasPeer(id: bigint): boolean {
    return this.peers.has(id);
  }

  /** When the current outgoing stream to `id` was established (ms since the epoch); undefined while down. */
  activeSince(id: bigint): number | undefined {
    return this.peers.get(id)?.stream.activeSinceMs;
  }

  /** The last ping round trip on the stream to `id`, in ms. */
  peerRoundTripMs(id: bigint): number | undefined {
    return this.peers.get(id)?.stream.roundTripMs;
  }

  peerStats(id: bigint): PeerStats | undefined {
    const peer = this.peers.get(id);
    if (peer === undefined) return undefined;
    return { ...peer.stream.stats, bytesReceived: this.bytesReceived.get(id) ?? 0, active: peer.stream.activeSinceMs !== undefined };
  }

  /** Stops listening, closes every connection, rejects pending requests; resolves once all sockets are closed. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.ticker);
    const serversClosed = this.servers.map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r())));
    for (const peer of this.peers.values()) {
      peer.stream.stop();
      peer.requests.stop('transport closed');
    }
    this.peers.clear();
    for (const c of this.conns) c.close('transport closed');
    await Promise.all([...serversClosed, ...[...this.conns].map((c) => c.done)]);
    await Promise.all([...this.cleanups]);
    if (this.opts.sockets === undefined) this.sockets.close?.();
  }

  private hello(purpose: Purpose, to: bigint): Hello | undefined {
    if (this.clusterIdValue === 0n) return undefined;
    return { version: PROTOCOL_VERSION, purpose: purposes[purpose], clusterId: this.clusterIdValue, from: this.opts.memberId, to };
  }

  private dial(urls: readonly string[], hello: Hello): Promise<FramedConn> {
    if (this.closing) return Promise.reject(new PeerUnavailableError('stopped', 'transport closed'));
    return dial({ sockets: this.sockets, logger: this.logger, track: (c) => this.track(c), countBytes: (n) => this.countBytes(hello.to, n) }, urls, hello);
  }

  private track(conn: FramedConn): void {
    this.conns.add(conn);
    conn.onClose(() => {
      this.conns.delete(conn);
      this.inbound.delete(conn);
    });
    if (this.closing) conn.close('transport closed');
  }

  private countBytes(from: bigint, n: number): void {
    this.bytesReceived.set(from, (this.bytesReceived.get(from) ?? 0) + n);
  }

  private accept(socket: Socket): void {
    const info: Inbound = { from: undefined, purpose: undefined };
    const conn: FramedConn = new FramedConn(
      socket,
      true,
      this.logger,
      () => undefined,
      (n) => {
        if (info.from !== undefined) this.countBytes(info.from, n);
      },
    );
    this.track(conn);
    if (this.closing) return;
    this.inbound.set(conn, info);
    conn.setHandler(
      helloHandler(
        {
          logger: this.logger,
          snapshotDir: this.opts.snapshotDir,
          memberId: this.opts.memberId,
          clusterId: () => this.clusterIdValue,
          isRemoved: (id) => this.opts.isRemoved(id),
          onMessages: (msgs) => this.opts.onMessages(msgs),
          onSnapshot: (msg, file) => this.opts.onSnapshot(msg, file),
          onSnapshotStored: (save, fsync) => this.opts.onSnapshotStored?.(save, fsync),
          handleRequest: (from, kind, body) => this.opts.handleRequest(from, kind, body),
          accepted: (c, from, purpose) => this.accepted(c, info, from, purpose),
          cleanup: (p) => this.addCleanup(p),
        },
        conn,
      ),
    );
  }

  private accepted(conn: FramedConn, info: Inbound, from: bigint, purpose: Purpose): void {
    if (purpose === 'stream') {
      // A peer has one stream to us: a new one means the old one is dead (the peer reconnected).
      for (const [c, i] of this.inbound) if (c !== conn && i.from === from && i.purpose === 'stream') c.close('superseded by a new stream from the peer');
    }
    info.from = from;
    info.purpose = purpose;
  }

  private addCleanup(p: Promise<void>): void {
    const q = p.catch((e: unknown) => this.logger.warn('snapshot cleanup failed', { error: e }));
    this.cleanups.add(q);
    void q.finally(() => this.cleanups.delete(q));
  }

  private startSnapshot(peer: Peer, msg: Message): void {
    if (peer.snapshotInFlight) {
      // Raft sends one snapshot per peer and waits for onSnapshotSent; a second one meanwhile is ignored.
      this.logger.debug('ignoring a snapshot message while a transfer to the peer is in flight', { peer: peer.id.toString(16) });
      return;
    }
    peer.snapshotInFlight = true;
    void sendSnapshot(
      {
        logger: this.logger,
        openSnapshot: (m) => this.opts.openSnapshot(m),
        hello: (to) => this.hello('snapshot', to),
        dial: (u, h) => this.dial(u, h),
        attach: (_to, conn) => {
          if (this.peers.get(peer.id) === peer) peer.snapshotConn = conn;
          else conn.close('peer removed');
        },
      },
      peer.urls,
      msg,
    ).then((ok) => {
      peer.snapshotInFlight = false;
      peer.snapshotConn = undefined;
      if (!this.closing) this.opts.onSnapshotSent(peer.id, ok);
    });
  }

  private reportUnreachable(to: bigint): void {
    const peer = this.peers.get(to);
    if (peer === undefined || this.closing) return;
    const now = performance.now();
    if (now - peer.lastUnreachableMs < PEER_UNREACHABLE_REPORT_MS) return;
    peer.lastUnreachableMs = now;
    this.opts.onUnreachable(to);
  }

  private refused(to: bigint, err: PeerRefusedError): void {
    if (this.closing) return;
    this.logger.error('peer refused our connection', { peer: to.toString(16), code: err.code, reason: err.message });
    if (err.code === 'removed' && !this.removedReported) {
      this.removedReported = true;
      this.opts.onRemoved();
    }
  }

  private tick(): void {
    const now = performance.now();
    for (const peer of this.peers.values()) peer.stream.tick(now);
    for (const [conn, info] of this.inbound) {
      if (info.purpose !== 'request' && conn.idleMs(now) > PEER_READ_TIMEOUT_MS) {
        this.logger.warn('closing a silent peer connection', { remote: conn.remote, purpose: info.purpose ?? 'hello' });
        conn.close(`nothing received for ${PEER_READ_TIMEOUT_MS} ms`);
      }
    }
  }
}
