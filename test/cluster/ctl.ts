// etcdctl (3.4) against a cluster, and its output made comparable: member ids, the cluster id,
// URLs and endpoints replaced by placeholders that name the member (<id:m1>, <peer:m1>,
// <client:m1>, <ep:m1>), so outputs of different runs and servers can be compared exactly.
import { runEtcdctl } from '../harness/procs.js';
import type { Cluster } from '../harness/cluster.js';
import { normalizeStderr } from '../etcdctl/normalize.js';

export interface CtlOutcome {
  /** The command line (for failure messages). */
  readonly cmd: string;
  readonly exit: number | null;
  readonly stdout: string;
  /** normalizeStderr of etcdctl's stderr, minus its "retrying of unary invoker failed" log lines. */
  readonly stderr: string;
  readonly ms: number;
}

/** Runs etcdctl with the given endpoints (default: every running member). */
export async function ctl(endpoints: readonly string[], args: readonly string[], opts: { stdin?: string; commandTimeout?: string } = {}): Promise<CtlOutcome> {
  const full = [`--endpoints=${endpoints.join(',')}`, '--dial-timeout=3s', `--command-timeout=${opts.commandTimeout ?? '10s'}`, ...args];
  const t0 = Date.now();
  const r = await runEtcdctl(full, opts.stdin === undefined ? {} : { stdin: opts.stdin });
  const err = normalizeStderr(r.stderr)
    .split('\n')
    .filter((l) => !l.startsWith('[log] retrying of unary invoker failed'))
    .join('\n');
  return { cmd: `etcdctl ${full.join(' ')}`, exit: r.exit, stdout: r.stdout, stderr: err, ms: Date.now() - t0 };
}

/** "Member id as etcdctl prints it": lowercase hex without padding. */
export function hexId(decimal: string): string {
  return BigInt(decimal).toString(16);
}

/**
 * Placeholders for a cluster's ids and addresses. Built from MemberList (call refresh() after
 * membership changes; ids of members no longer listed are remembered).
 */
export class Normalizer {
  private readonly byId = new Map<string, string>();
  private clusterId = '';

  constructor(private readonly cluster: Cluster) {}

  /** Learns member ids (MemberList + Status of running members) and the cluster id. */
  async refresh(): Promise<void> {
    for (const m of await this.cluster.memberList()) if (m.name !== '') this.learn(m.name, m.id);
    for (const s of await this.cluster.statuses()) this.learn(s.name, s.id);
    const any = this.cluster.running()[0];
    if (any !== undefined) {
      const r = await this.cluster.client(any.name).unary('Maintenance', 'Status', {}, { timeoutMs: 3_000 });
      if (r.ok) {
        const h = r.value['header'];
        if (typeof h === 'object' && h !== null) this.clusterId = String((h as Record<string, unknown>)['cluster_id']);
      }
    }
  }

  learn(name: string, decimalId: string): void {
    if (decimalId !== '' && decimalId !== '0') this.byId.set(decimalId, name);
  }

  /** The decimal id of a known member name. */
  idOf(name: string): string {
    for (const [id, n] of this.byId) if (n === name) return id;
    throw new Error(`normalizer: no id known for ${name}`);
  }

  get cluster_id(): string {
    return this.clusterId;
  }

  apply(text: string): string {
    let s = text;
    const subst: Array<[string, string]> = [];
    if (this.clusterId !== '') {
      subst.push([this.clusterId, '<cluster>'], [hexId(this.clusterId), '<cluster>']);
    }
    for (const [id, name] of this.byId) subst.push([id, `<id:${name}>`], [hexId(id), `<id:${name}>`]);
    for (const m of this.cluster.members) {
      const peerPort = new URL(m.peerUrl).port;
      subst.push([m.peerUrl, `<peer:${m.name}>`], [`http://localhost:${peerPort}`, `<peer-localhost:${m.name}>`]);
      subst.push([m.clientUrl, `<client:${m.name}>`], [m.endpoint, `<ep:${m.name}>`]);
    }
    // Longest first, so an id is never replaced inside a longer one; whole tokens only.
    subst.sort((a, b) => b[0].length - a[0].length);
    for (const [from, to] of subst) {
      const re = new RegExp(`(?<![0-9a-zA-Z])${from.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(?![0-9a-zA-Z])`, 'g');
      s = s.replace(re, to);
    }
    // etcdctl prints "Member %16x added/removed/...": the padding depends on the id's value.
    return s.replace(/ +(?=<id:|<cluster>)/g, ' ');
  }
}

/** Parses an `etcdctl endpoint status` table (default -w simple) into rows. */
export interface StatusRow {
  endpoint: string;
  id: string;
  version: string;
  dbSize: string;
  isLeader: boolean;
  isLearner: boolean;
  raftTerm: number;
  raftIndex: number;
  raftAppliedIndex: number;
  errors: string;
}

export function parseStatusTable(stdout: string): StatusRow[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const f = l.split(', ');
      if (f.length < 10) throw new Error(`endpoint status line with ${f.length} fields: ${JSON.stringify(l)}`);
      return {
        endpoint: f[0] ?? '',
        id: f[1] ?? '',
        version: f[2] ?? '',
        dbSize: f[3] ?? '',
        isLeader: f[4] === 'true',
        isLearner: f[5] === 'true',
        raftTerm: Number(f[6]),
        raftIndex: Number(f[7]),
        raftAppliedIndex: Number(f[8]),
        errors: f.slice(9).join(', ').trim(),
      };
    });
}
