// /debug/vars on the client port, as etcd serves Go's expvar page there (not on --listen-metrics-urls):
// a JSON object with its variables in name order — `cmdline`, `file_descriptor_limit`, `memstats`,
// `raft.status` — one per line, as expvar.Handler writes it, for any method.
// - cmdline: the process's arguments (the script and its flags; Go's os.Args).
// - file_descriptor_limit: the soft RLIMIT_NOFILE (etcd: runtime.FDLimit), from /proc/self/limits.
// - memstats: Go's runtime.MemStats has no Node equivalent field for field; we give the fields whose
//   meaning carries over, from process.memoryUsage(): Alloc and HeapAlloc (V8 heap in use), HeapSys
//   (V8 heap reserved), HeapInuse (in use), Sys (resident set). The other Go fields are left out
//   rather than filled with made-up numbers.
// - raft.status: raft's Status as etcd's raft marshals it (ids in hex, progress for a leader only).
import { readFileSync } from 'node:fs';
import { sendBody, type HttpResponse } from './exchange.js';

export type RaftRole = 'follower' | 'candidate' | 'preCandidate' | 'leader';

/** What /debug/vars reads of raft (main.ts maps the node's raft status to it). */
export interface DebugRaftStatus {
  readonly id: bigint;
  readonly term: number;
  readonly vote: bigint;
  readonly commit: number;
  readonly lead: bigint;
  readonly role: RaftRole;
  readonly applied: number;
  /** Leader only: every voter and learner. */
  readonly progress: ReadonlyMap<bigint, { readonly match: number; readonly next: number; readonly state: 'probe' | 'replicate' | 'snapshot' }>;
  readonly leadTransferee: bigint;
}

const ROLE: Record<RaftRole, string> = { follower: 'StateFollower', candidate: 'StateCandidate', preCandidate: 'StatePreCandidate', leader: 'StateLeader' };
const PROGRESS: Record<'probe' | 'replicate' | 'snapshot', string> = { probe: 'StateProbe', replicate: 'StateReplicate', snapshot: 'StateSnapshot' };

/** etcd's raft Status.MarshalJSON: this field order, ids as %x. */
export function raftStatusJson(s: DebugRaftStatus): string {
  const progress = [...s.progress].map(([id, p]) => `"${id.toString(16)}":{"match":${p.match},"next":${p.next},"state":"${PROGRESS[p.state]}"}`).join(',');
  return (
    `{"id":"${s.id.toString(16)}","term":${s.term},"vote":"${s.vote.toString(16)}","commit":${s.commit},"lead":"${s.lead.toString(16)}",` +
    `"raftState":"${ROLE[s.role]}","applied":${s.applied},"progress":{${progress}},"leadtransferee":"${s.leadTransferee.toString(16)}"}`
  );
}

/** The soft limit on open files, from limits text in /proc/<pid>/limits form; undefined when absent or unlimited. */
export function softFileLimit(limits: string): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits);
  return m?.[1] === undefined || m[1] === 'unlimited' ? undefined : Number(m[1]);
}

function fileLimit(): number | undefined {
  try {
    return softFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined; // not Linux: the variable is left out
  }
}

/** The page's body (expvar's layout: `{\n"name": value,\n...\n}\n`). */
export function debugVarsBody(raft: DebugRaftStatus, argv: readonly string[] = process.argv.slice(1)): string {
  const mem = process.memoryUsage();
  const vars: [string, string][] = [['cmdline', JSON.stringify(argv)]];
  const fds = fileLimit();
  if (fds !== undefined) vars.push(['file_descriptor_limit', String(fds)]);
  vars.push(['memstats', JSON.stringify({ Alloc: mem.heapUsed, Sys: mem.rss, HeapAlloc: mem.heapUsed, HeapSys: mem.heapTotal, HeapInuse: mem.heapUsed })]);
  vars.push(['raft.status', raftStatusJson(raft)]);
  return `{\n${vars.map(([k, v]) => `"${k}": ${v}`).join(',\n')}\n}\n`;
}

export function serveDebugVars(res: HttpResponse, raft: DebugRaftStatus): void {
  sendBody(res, 200, 'application/json; charset=utf-8', debugVarsBody(raft));
}
