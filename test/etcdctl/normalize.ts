// etcdctl's stderr made comparable between two servers: its JSON log lines reduced to message and
// error, durations and endpoints replaced by placeholders.
export function normalizeStderr(s: string): string {
  const out: string[] = [];
  for (const line of s.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('{')) {
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        out.push(`[log] ${String(j['msg'])}: ${String(j['error'])}`);
        continue;
      } catch {
        // not JSON after all
      }
    }
    out.push(line.replace(/took = \S+/g, 'took = <t>').replace(/127\.0\.0\.1:\d+/g, '<endpoint>'));
  }
  return out.join('\n');
}
