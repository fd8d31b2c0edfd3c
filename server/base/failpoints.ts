// Named failpoints for tests (DESIGN style 13), set with the environment variable
//   CAIRN_FAILPOINTS="name:after=N[,name2:after=M]"
// meaning: the first N times the point is passed nothing happens, then every later pass fails.
// Unset (production), `failpoint()` returns undefined and nothing is armed.
//
// Points:
// - `wal.write` (before the WAL writes a group commit): an injected I/O error (EIO); the WAL fails
//   stop exactly as on a real one (a storage fault, exit status 1).
// - `raft.ready` (before the run loop handles a raft Ready) and `raft.step` (before a peer's message
//   is stepped into raft): an injected raft invariant violation, the error raft's own checks throw; the
//   member must stop as on any bug (exit status 70, never relabelled a storage fault). These inject a
//   bug, so they are refused unless CAIRN_VERIFY=1 (set by hack/run-tests.sh for test runs only).

export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
  readonly code = 'EIO';
}

/** What a bug-injecting failpoint throws: shaped like raft's own invariant() failure. */
export class InjectedInvariantViolation extends Error {
  override readonly name = 'InjectedInvariantViolation';
}

export const FAILPOINT_NAMES = ['wal.write', 'raft.ready', 'raft.step'] as const;
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

/** Points that inject a bug rather than an I/O error: test runs only (CAIRN_VERIFY=1). */
const BUG_POINTS: ReadonlySet<FailpointName> = new Set(['raft.ready', 'raft.step']);

function parse(spec: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of spec.split(',')) {
    const m = /^\s*([a-z.]+):after=(\d+)\s*$/.exec(part);
    if (m === null || !(FAILPOINT_NAMES as readonly string[]).includes(m[1] ?? '')) {
      throw new Error(`CAIRN_FAILPOINTS: cannot parse "${part}" (want name:after=N with name one of ${FAILPOINT_NAMES.join(', ')})`);
    }
    out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

/** The hook for one named point, per CAIRN_FAILPOINTS; undefined when the point is off. */
export function failpoint(name: FailpointName, env: NodeJS.ProcessEnv = process.env): (() => void) | undefined {
  const spec = env['CAIRN_FAILPOINTS'];
  if (spec === undefined || spec === '') return undefined;
  const after = parse(spec).get(name);
  if (after === undefined) return undefined;
  const bug = BUG_POINTS.has(name);
  if (bug && env['CAIRN_VERIFY'] !== '1') {
    throw new Error(`CAIRN_FAILPOINTS: ${name} injects a bug and is refused outside test runs (it needs CAIRN_VERIFY=1)`);
  }
  let passes = 0;
  return () => {
    passes++;
    if (passes <= after) return;
    if (bug) throw new InjectedInvariantViolation(`raft: invariant violated: injected by failpoint ${name} (pass ${passes}, after=${after})`);
    throw new InjectedFault(`failpoint ${name}: injected I/O error (pass ${passes}, after=${after})`);
  };
}
