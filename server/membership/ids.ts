// Member and cluster ids exactly as etcd computes them (E server/etcdserver/api/membership/member.go
// computeMemberId, cluster.go genID), so a Cairn cluster started with etcd's flags gets etcd's ids.
import { createHash } from 'node:crypto';

/** sha1(sorted peer URLs joined + cluster token [+ unix seconds for members added later]), first 8 bytes BE. */
export function computeMemberId(peerURLs: readonly string[], token: string, nowUnixSeconds?: number): bigint {
  const joined = [...peerURLs].sort().join('');
  const suffix = nowUnixSeconds === undefined ? '' : String(nowUnixSeconds);
  const hash = createHash('sha1').update(joined + token + suffix).digest();
  return hash.readBigUInt64BE(0);
}

/** sha1 of the sorted member ids (8 bytes BE each), first 8 bytes BE. */
export function computeClusterId(memberIds: readonly bigint[]): bigint {
  const ids = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const b = Buffer.alloc(8 * ids.length);
  ids.forEach((id, i) => b.writeBigUInt64BE(id, 8 * i));
  return createHash('sha1').update(b).digest().readBigUInt64BE(0);
}

/** `--initial-cluster` ("a=http://h:1,a=http://h:2,b=http://h:3") as name -> peer URLs, in order of appearance. */
export function parseInitialCluster(s: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of s.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq <= 0 || eq === p.length - 1) throw new Error(`invalid --initial-cluster entry ${JSON.stringify(p)} (want name=url)`);
    const name = p.slice(0, eq);
    const url = p.slice(eq + 1);
    if (!isPeerUrl(url)) throw new Error(`invalid URL ${JSON.stringify(url)} in --initial-cluster`);
    const urls = out.get(name) ?? [];
    urls.push(url);
    out.set(name, urls);
  }
  if (out.size === 0) throw new Error('--initial-cluster is empty');
  return out;
}

/** A peer URL etcd accepts: http(s)://host:port with nothing else. */
export function isPeerUrl(s: string): boolean {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return false;
  }
  return (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'unix:') && u.hostname !== '' && u.port !== '' && (u.pathname === '/' || u.pathname === '') && u.search === '';
}
