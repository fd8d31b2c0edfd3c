// Network partitions for multi-member tests.
//
// Mode "netns" (the normal one; needs root and iproute2): one network namespace per member, each
// connected by a veth pair to a bridge in the root namespace; member i has address 10.77.<S>.<i+1>
// and the bridge 10.77.<S>.254, so the test process (root namespace) reaches every member, always.
// <S> is leased per Net through a lock directory, so parallel runs never share a subnet. Members
// listen on fixed ports (2379 client, 2380 peer): every namespace has its own port space.
//
// A partition drops traffic between members of different groups, in both directions and silently
// (like a real partition: no RST, no ICMP; TCP retransmits until it heals). Neither iptables nor nft
// nor tc actions are needed (this machine has none of them): inside the namespace of member a, the
// neighbour (ARP) entry of every cut-off peer b is replaced by a permanent one with a dead MAC
// address, so a's frames to b are flooded by the bridge to ports whose MAC never matches and are
// dropped; heal() deletes those entries and ARP resolves the real addresses again. The kernel
// updates the cached hardware headers of established connections, so they stall at once too.
//
// Mode "proxy" (fallback when namespaces cannot be created, or CAIRN_NET_MODE=proxy; never under
// CI=true, where a missing namespace is a failure naming the reason): members run
// on loopback; each member's advertised peer URL is a TCP proxy in the test process forwarding to
// its real peer listener. The proxy identifies the connecting member by looking up the owner of the
// connection's source port (/proc/net/tcp inode → /proc/<pid>/fd), and while the two members are
// partitioned it stops forwarding (the connection stalls; new ones are held) until heal().
//
// Stale namespaces, links and subnet leases of earlier runs whose process is gone are removed when
// a Net is created; cleanup() runs at the end of a test and, as a last resort, at process exit.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ciMode, MissingPrerequisite } from './prereq.js';
import { freePort } from './procs.js';

export type NetMode = 'netns' | 'proxy';

/** Where member i listens and what it advertises. */
export interface MemberAddr {
  readonly host: string;
  readonly clientPort: number;
  /** "host:port" for gRPC clients. */
  readonly endpoint: string;
  readonly clientUrl: string;
  /** --listen-peer-urls */
  readonly listenPeerUrl: string;
  /** --initial-advertise-peer-urls and this member's entry in --initial-cluster */
  readonly advertisePeerUrl: string;
}

export interface Net {
  readonly mode: NetMode;
  readonly size: number;
  /** One line saying how members are separated (printed by tests; says FALLBACK in proxy mode). */
  readonly description: string;
  addr(i: number): MemberAddr;
  /** Prefix for a command that must run inside member i's namespace ([] in proxy mode). */
  commandPrefix(i: number): string[];
  /** Spawns cmd inside member i's namespace; the child's pid is the command's own pid. */
  run(i: number, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Drops all traffic between members of different groups (groups must cover every member once). */
  partition(groups: readonly (readonly number[])[]): Promise<void>;
  /** Cuts member i off from every other member. */
  isolate(i: number): Promise<void>;
  /** Restores full connectivity. */
  heal(): Promise<void>;
  /** Whether traffic between a and b is currently dropped. */
  isCut(a: number, b: number): boolean;
  /** Kills what run() started, removes namespaces/links/proxies. Idempotent. */
  cleanup(): Promise<void>;
}

export interface NetOptions {
  size: number;
  /** Default: CAIRN_NET_MODE if set, else "netns" with the proxy as fallback outside CI. "netns" given here: no fallback. */
  mode?: NetMode;
}

const SUBNET_MIN = 20;
const SUBNET_MAX = 249;
const DEAD_MAC = '02:00:00:00:00:01';
const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const LOCK_DIR = join(tmpdir(), 'cairn-netns-leases');

function ip(args: readonly string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', args, { timeout: 20_000 }, (err, _stdout, stderr) => {
      if (err !== null) reject(new Error(`ip ${args.join(' ')} failed: ${err.message.trim()} ${stderr.trim()}`));
      else resolve();
    });
    // ip exits at once when it cannot run (e.g. its namespace is gone): the write then fails with
    // EPIPE, which must not become an uncaught error; the callback above reports ip's own failure.
    child.stdin?.on('error', () => undefined);
    if (input !== undefined) child.stdin?.end(input);
  });
}

function ipSync(args: readonly string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 });
  } catch {
    return '';
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** Processes inside a namespace (ip netns pids). */
function netnsPids(ns: string): number[] {
  return ipSync(['netns', 'pids', ns])
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

const NS_RE = /^cairnlin-(\d+)-\d+-\d+$/;
const LINK_RE = /^c[bv]([0-9a-z]+)x/;

/**
 * Removes namespaces, links and subnet leases left by runs whose process is gone (a crashed or
 * SIGKILLed test process cannot clean up after itself). Processes still inside such a namespace
 * were started by that run's harness: they are killed by pid.
 */
export function removeStale(): void {
  for (const line of ipSync(['netns', 'list']).split('\n')) {
    const ns = line.trim().split(/\s+/)[0] ?? '';
    const m = NS_RE.exec(ns);
    if (m === null || pidAlive(Number(m[1]))) continue;
    for (const pid of netnsPids(ns)) killPid(pid);
    ipSync(['netns', 'del', ns]);
  }
  for (const line of ipSync(['-o', 'link', 'show']).split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '';
    const m = LINK_RE.exec(name);
    if (m === null || pidAlive(parseInt(m[1] ?? '', 36))) continue;
    ipSync(['link', 'del', name]);
  }
  let leases: string[] = [];
  try {
    leases = readdirSync(LOCK_DIR);
  } catch {
    return;
  }
  for (const l of leases) {
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(LOCK_DIR, l, 'pid'), 'utf8'));
    } catch {
      // a lease being written right now, or broken: leave it unless its owner is known dead
      continue;
    }
    if (!pidAlive(owner)) rmSync(join(LOCK_DIR, l), { recursive: true, force: true });
  }
}

/** Leases a third octet for 10.77.<S>.0/24 (mkdir is atomic across processes). */
function leaseSubnet(): number {
  mkdirSync(LOCK_DIR, { recursive: true });
  const span = SUBNET_MAX - SUBNET_MIN + 1;
  const start = process.pid % span;
  for (let k = 0; k < span; k++) {
    const s = SUBNET_MIN + ((start + k) % span);
    const dir = join(LOCK_DIR, String(s));
    try {
      mkdirSync(dir);
    } catch {
      continue;
    }
    writeFileSync(join(dir, 'pid'), String(process.pid));
    return s;
  }
  throw new Error(`netns: no free subnet lease in ${LOCK_DIR}`);
}

function checkGroups(size: number, groups: readonly (readonly number[])[]): number[] {
  const groupOf: number[] = new Array<number>(size).fill(-1);
  groups.forEach((g, gi) => {
    for (const m of g) {
      if (!Number.isInteger(m) || m < 0 || m >= size) throw new Error(`partition: no member ${m} (size ${size})`);
      if (groupOf[m] !== -1) throw new Error(`partition: member ${m} is in two groups`);
      groupOf[m] = gi;
    }
  });
  const missing = groupOf.map((g, i) => (g === -1 ? i : -1)).filter((i) => i >= 0);
  if (missing.length > 0) throw new Error(`partition: members ${missing.join(',')} are in no group`);
  return groupOf;
}

let netSeq = 0;
const liveNets = new Set<{ cleanupSync(): void }>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const n of [...liveNets]) n.cleanupSync();
  });
}

abstract class BaseNet implements Net {
  abstract readonly mode: NetMode;
  abstract readonly description: string;
  readonly size: number;
  /** cut[a][b]: traffic a↔b dropped. */
  protected cut: boolean[][];
  /** Children started by run(), per member. */
  protected readonly children = new Set<ChildProcess>();

  constructor(size: number) {
    this.size = size;
    this.cut = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
  }

  abstract addr(i: number): MemberAddr;
  abstract commandPrefix(i: number): string[];
  protected abstract applyCut(next: boolean[][]): Promise<void>;
  abstract cleanup(): Promise<void>;
  /** What can be undone synchronously (at process exit): kill children, remove namespaces. */
  abstract cleanupSync(): void;

  protected checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new Error(`net: no member ${i} (size ${this.size})`);
  }

  run(i: number, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    this.checkIndex(i);
    const prefix = this.commandPrefix(i);
    const [c, ...rest] = prefix.length > 0 ? [...prefix, cmd, ...args] : [cmd, ...args];
    const child = spawn(c ?? cmd, rest, opts);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    this.onSpawn(i, child);
    return child;
  }

  protected onSpawn(_i: number, _child: ChildProcess): void {
    // proxy mode tracks which pid is which member
  }

  isCut(a: number, b: number): boolean {
    return this.cut[a]?.[b] === true;
  }

  async partition(groups: readonly (readonly number[])[]): Promise<void> {
    const groupOf = checkGroups(this.size, groups);
    const next = Array.from({ length: this.size }, (_, a) => Array.from({ length: this.size }, (_, b) => groupOf[a] !== groupOf[b]));
    await this.applyCut(next);
    this.cut = next;
  }

  isolate(i: number): Promise<void> {
    this.checkIndex(i);
    const rest = Array.from({ length: this.size }, (_, k) => k).filter((k) => k !== i);
    return this.partition(rest.length > 0 ? [[i], rest] : [[i]]);
  }

  async heal(): Promise<void> {
    const next = Array.from({ length: this.size }, () => new Array<boolean>(this.size).fill(false));
    await this.applyCut(next);
    this.cut = next;
  }

  protected killChildren(): void {
    for (const c of this.children) if (c.pid !== undefined && c.exitCode === null) killPid(c.pid);
  }
}

class NetnsNet extends BaseNet {
  readonly mode = 'netns' as const;
  readonly description: string;
  private readonly subnet: number;
  private readonly bridge: string;
  private readonly namespaces: string[];
  private readonly veths: string[];
  private closed = false;

  constructor(size: number, subnet: number, seq: number) {
    super(size);
    this.subnet = subnet;
    const tag = `${process.pid.toString(36)}x${seq.toString(36)}`;
    this.bridge = `cb${tag}`;
    this.namespaces = Array.from({ length: size }, (_, i) => `cairnlin-${process.pid}-${seq}-${i}`);
    this.veths = Array.from({ length: size }, (_, i) => `cv${tag}y${i}`);
    this.description = `network namespaces ${this.namespaces[0] ?? ''}..${String(size - 1)} on bridge ${this.bridge}, 10.77.${subnet}.0/24 (partitions: dead-MAC neighbour entries)`;
  }

  host(i: number): string {
    return `10.77.${this.subnet}.${i + 1}`;
  }

  addr(i: number): MemberAddr {
    this.checkIndex(i);
    const host = this.host(i);
    return {
      host,
      clientPort: CLIENT_PORT,
      endpoint: `${host}:${CLIENT_PORT}`,
      clientUrl: `http://${host}:${CLIENT_PORT}`,
      listenPeerUrl: `http://${host}:${PEER_PORT}`,
      advertisePeerUrl: `http://${host}:${PEER_PORT}`,
    };
  }

  commandPrefix(i: number): string[] {
    this.checkIndex(i);
    return ['ip', 'netns', 'exec', this.namespaces[i] ?? ''];
  }

  async setup(): Promise<void> {
    const br = this.bridge;
    await ip(['link', 'add', br, 'type', 'bridge']);
    await ip(['-batch', '-'], `link set ${br} up\naddr add 10.77.${this.subnet}.254/24 dev ${br}\n`);
    for (let i = 0; i < this.size; i++) {
      const ns = this.namespaces[i] ?? '';
      const veth = this.veths[i] ?? '';
      await ip(['netns', 'add', ns]);
      await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['link', 'set', veth, 'master', br, 'up']);
      await ip(['-n', ns, '-batch', '-'], `link set lo up\naddr add ${this.host(i)}/24 dev eth0\nlink set eth0 up\n`);
    }
  }

  protected async applyCut(next: boolean[][]): Promise<void> {
    await Promise.all(
      this.namespaces.map((ns, a) => {
        const lines: string[] = [];
        for (let b = 0; b < this.size; b++) {
          if (a === b) continue;
          const was = this.isCut(a, b);
          const will = next[a]?.[b] === true;
          if (will && !was) lines.push(`neigh replace ${this.host(b)} lladdr ${DEAD_MAC} dev eth0 nud permanent`);
          if (!will && was) lines.push(`neigh del ${this.host(b)} dev eth0`);
        }
        return lines.length === 0 ? Promise.resolve() : ip(['-n', ns, '-batch', '-'], `${lines.join('\n')}\n`);
      }),
    );
  }

  cleanupSync(): void {
    if (this.closed) return;
    this.closed = true;
    liveNets.delete(this);
    this.killChildren();
    for (const ns of this.namespaces) {
      for (const pid of netnsPids(ns)) killPid(pid);
      ipSync(['netns', 'del', ns]);
    }
    for (const v of this.veths) ipSync(['link', 'del', v]);
    ipSync(['link', 'del', this.bridge]);
    rmSync(join(LOCK_DIR, String(this.subnet)), { recursive: true, force: true });
  }

  cleanup(): Promise<void> {
    this.cleanupSync();
    return Promise.resolve();
  }
}

// ---- the loopback proxy fallback ----

/** Inode of the TCP socket bound to 127.0.0.1:localPort connected to 127.0.0.1:remotePort. */
function socketInode(localPort: number, remotePort: number): string | undefined {
  const hex = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  const local = `0100007F:${hex(localPort)}`;
  const remote = `0100007F:${hex(remotePort)}`;
  let text = '';
  try {
    text = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) return f[9];
  }
  return undefined;
}

function pidOwnsInode(pid: number, inode: string): boolean {
  const want = `socket:[${inode}]`;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === want) return true;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // process gone
  }
  return false;
}

interface ProxiedConn {
  readonly src: number | undefined;
  readonly dst: number;
  readonly down: Socket;
  up: Socket | undefined;
  /** Resume forwarding (after heal). */
  kick: () => void;
}

class ProxyNet extends BaseNet {
  readonly mode = 'proxy' as const;
  readonly description: string;
  private readonly addrs: MemberAddr[];
  private readonly realPeerPorts: number[];
  private readonly servers: Server[] = [];
  private readonly conns = new Set<ProxiedConn>();
  /** The pids that ran as member i. */
  private readonly pids: Set<number>[];

  constructor(size: number, addrs: MemberAddr[], realPeerPorts: number[], why: string) {
    super(size);
    this.addrs = addrs;
    this.realPeerPorts = realPeerPorts;
    this.pids = Array.from({ length: size }, () => new Set<number>());
    this.description = `FALLBACK: loopback TCP proxy between members (${why}); partitions stall proxied peer connections`;
  }

  addr(i: number): MemberAddr {
    this.checkIndex(i);
    const a = this.addrs[i];
    if (a === undefined) throw new Error(`net: no member ${i}`);
    return a;
  }

  commandPrefix(i: number): string[] {
    this.checkIndex(i);
    return [];
  }

  protected override onSpawn(i: number, child: ChildProcess): void {
    if (child.pid !== undefined) this.pids[i]?.add(child.pid);
  }

  /** Which member opened the connection whose source port is srcPort (to proxy port dstPort). */
  private sourceOf(srcPort: number, dstPort: number): number | undefined {
    const inode = socketInode(srcPort, dstPort);
    if (inode === undefined) return undefined;
    for (let i = 0; i < this.size; i++) for (const pid of this.pids[i] ?? []) if (pidAlive(pid) && pidOwnsInode(pid, inode)) return i;
    return undefined;
  }

  private blocked(c: ProxiedConn): boolean {
    return c.src !== undefined && this.isCut(c.src, c.dst);
  }

  async listen(): Promise<void> {
    for (let j = 0; j < this.size; j++) {
      const a = this.addr(j);
      const port = Number(new URL(a.advertisePeerUrl).port);
      const srv = createServer((down) => this.accept(j, port, down));
      await new Promise<void>((res, rej) => {
        srv.once('error', rej);
        srv.listen(port, '127.0.0.1', () => res());
      });
      this.servers.push(srv);
    }
  }

  private accept(dst: number, proxyPort: number, down: Socket): void {
    const src = down.remotePort === undefined ? undefined : this.sourceOf(down.remotePort, proxyPort);
    const conn: ProxiedConn = { src, dst, down, up: undefined, kick: () => undefined };
    this.conns.add(conn);
    const close = (): void => {
      this.conns.delete(conn);
      down.destroy();
      conn.up?.destroy();
    };
    down.on('error', close);
    down.on('close', close);
    down.pause();
    const pump = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => {
        if (!to.write(chunk)) from.pause();
        if (this.blocked(conn)) from.pause();
      });
      to.on('drain', () => {
        if (!this.blocked(conn)) from.resume();
      });
    };
    const open = (): void => {
      const up = connect(this.realPeerPorts[dst] ?? 0, '127.0.0.1');
      conn.up = up;
      up.on('error', close);
      up.on('close', close);
      pump(down, up);
      pump(up, down);
      down.resume();
    };
    conn.kick = () => {
      if (this.blocked(conn)) {
        down.pause();
        conn.up?.pause();
        return;
      }
      if (conn.up === undefined) open();
      else {
        down.resume();
        conn.up.resume();
      }
    };
    conn.kick();
  }

  protected applyCut(next: boolean[][]): Promise<void> {
    this.cut = next;
    for (const c of this.conns) c.kick();
    return Promise.resolve();
  }

  cleanupSync(): void {
    liveNets.delete(this);
    this.killChildren();
    for (const c of this.conns) {
      c.down.destroy();
      c.up?.destroy();
    }
    this.conns.clear();
  }

  async cleanup(): Promise<void> {
    this.cleanupSync();
    await Promise.all(this.servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
    this.servers.length = 0;
  }
}

async function createProxyNet(size: number, why: string): Promise<ProxyNet> {
  const addrs: MemberAddr[] = [];
  const realPeer: number[] = [];
  const used = new Set<number>();
  const port = async (): Promise<number> => {
    for (;;) {
      const p = await freePort();
      if (!used.has(p)) {
        used.add(p);
        return p;
      }
    }
  };
  for (let i = 0; i < size; i++) {
    const clientPort = await port();
    const peer = await port();
    const proxy = await port();
    realPeer.push(peer);
    addrs.push({
      host: '127.0.0.1',
      clientPort,
      endpoint: `127.0.0.1:${clientPort}`,
      clientUrl: `http://127.0.0.1:${clientPort}`,
      listenPeerUrl: `http://127.0.0.1:${peer}`,
      advertisePeerUrl: `http://127.0.0.1:${proxy}`,
    });
  }
  const net = new ProxyNet(size, addrs, realPeer, why);
  await net.listen();
  return net;
}

const NETNS_NEEDS = 'network namespaces for the partition tests: root (CAP_NET_ADMIN) and iproute2\'s `ip`';
const NETNS_INSTALL = 'run the tests as root; apt-get install iproute2 (or bash hack/install-test-peers.sh)';

/**
 * Creates the network for `size` members: namespaces, else (outside CI only, with a message naming
 * what is missing) the loopback proxy. Under CI=true a net that cannot have namespaces is an error,
 * and so is CAIRN_NET_MODE=proxy: the proxy cuts only peer traffic, a weaker test.
 */
export async function createNet(opts: NetOptions): Promise<Net> {
  hookExit();
  const envMode = process.env['CAIRN_NET_MODE'];
  if (envMode !== undefined && envMode !== '' && envMode !== 'netns' && envMode !== 'proxy') {
    throw new Error(`CAIRN_NET_MODE must be "netns" or "proxy", got ${JSON.stringify(envMode)}`);
  }
  if (opts.mode === undefined && envMode === 'proxy' && ciMode()) {
    throw new Error('CAIRN_NET_MODE=proxy is refused under CI=true: CI tests partitions with network namespaces');
  }
  const mode = opts.mode ?? (envMode === 'proxy' ? 'proxy' : 'netns');
  if (mode === 'proxy') {
    const n = await createProxyNet(opts.size, 'CAIRN_NET_MODE=proxy or requested');
    liveNets.add(n);
    return n;
  }
  removeStale();
  netSeq += 1;
  const subnet = leaseSubnet();
  const n = new NetnsNet(opts.size, subnet, netSeq);
  liveNets.add(n);
  try {
    await n.setup();
    return n;
  } catch (e) {
    n.cleanupSync();
    const what = `${NETNS_NEEDS}: ${e instanceof Error ? e.message.trim() : String(e)}`;
    const missing = new MissingPrerequisite(what, NETNS_INSTALL, { cause: e });
    if (ciMode()) throw new MissingPrerequisite(`${what} (CI=true: no loopback-proxy fallback)`, NETNS_INSTALL, { cause: e });
    if (opts.mode === 'netns') throw missing;
    const why = `network namespaces unavailable: ${missing.message}`;
    process.stderr.write(`netns: FALLBACK to the loopback proxy (partitions cut peer traffic only): missing ${missing.message}\n`);
    const p = await createProxyNet(opts.size, why);
    liveNets.add(p);
    return p;
  }
}
