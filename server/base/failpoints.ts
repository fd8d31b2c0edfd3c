// Named failpoints for tests (DESIGN style 13), set with the environment variable
//   CAIRN_FAILPOINTS="name:after=N[,name2:after=M]"
// meaning: the first N times the point is passed nothing happens, then every later pass fails with
// an injected I/O error. Unset (production), `failpoint()` returns a hook that does nothing.
//
// Points: `wal.write` (before the WAL writes a group commit; the WAL fails stop as on EIO).

export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
  readonly code = 'EIO';
}

export const FAILPOINT_NAMES = ['wal.write'] as const;
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

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
  let passes = 0;
  return () => {
    passes++;
    if (passes > after) throw new InjectedFault(`failpoint ${name}: injected I/O error (pass ${passes}, after=${after})`);
  };
}
