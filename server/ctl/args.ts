// Command-line flags as Go's pflag reads them (etcdutl): "--flag value", "--flag=value", a bool as
// "--flag" or "--flag=true|false", single-dash short names ("-w json"), flags and arguments in any
// order, "--" ends the flags. Anything else is a usage error.

export type FlagKind = 'string' | 'bool' | 'uint';

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly def: string;
  readonly help: string;
  /** One-letter alias ("w" for -w). */
  readonly short?: string;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** A command line the tool refuses (exit 2, with usage). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface Parsed {
  readonly args: string[];
  readonly flags: ReadonlyMap<string, string>;
  /** Flags given explicitly on the command line. */
  readonly given: ReadonlySet<string>;
}

function lookup(specs: FlagSpecs, token: string): [string, FlagSpec] | undefined {
  const direct = specs[token];
  if (direct !== undefined) return [token, direct];
  for (const [name, spec] of Object.entries(specs)) if (spec.short === token) return [name, spec];
  return undefined;
}

function checkValue(name: string, spec: FlagSpec, value: string): string {
  if (spec.kind === 'bool') {
    if (!['true', 'false', '1', '0', 't', 'f', 'TRUE', 'FALSE', 'True', 'False'].includes(value)) throw new UsageError(`invalid argument "${value}" for "--${name}" flag: want true or false`);
    return ['true', '1', 't', 'TRUE', 'True'].includes(value) ? 'true' : 'false';
  }
  if (spec.kind === 'uint' && !/^\d+$/.test(value)) throw new UsageError(`invalid argument "${value}" for "--${name}" flag: want a non-negative integer`);
  return value;
}

export function parseArgs(argv: readonly string[], specs: FlagSpecs): Parsed {
  const flags = new Map<string, string>(Object.entries(specs).map(([n, s]) => [n, s.def]));
  const given = new Set<string>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      args.push(a);
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const token = eq < 0 ? body : body.slice(0, eq);
    const hit = lookup(specs, token);
    if (hit === undefined || (a.startsWith('--') && token.length === 1 && specs[token] === undefined)) {
      throw new UsageError(a.startsWith('--') ? `unknown flag: --${token}` : `unknown shorthand flag: '${token}' in ${a}`);
    }
    const [name, spec] = hit;
    let value: string;
    if (eq >= 0) value = body.slice(eq + 1);
    else if (spec.kind === 'bool') value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag needs an argument: ${a}`);
      value = next;
      i++;
    }
    flags.set(name, checkValue(name, spec, value));
    given.add(name);
  }
  return { args, flags, given };
}

export function flagUsage(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const head = `${s.short !== undefined ? `-${s.short}, ` : '    '}--${name}${s.kind === 'bool' ? '' : ` ${s.kind}`}`;
    const def = s.def !== '' && s.def !== 'false' ? ` (default ${JSON.stringify(s.def)})` : '';
    return { head, text: `${s.help}${def}` };
  });
  const w = Math.max(...rows.map((r) => r.head.length));
  return rows.map((r) => `  ${r.head.padEnd(w)}   ${r.text}`).join('\n');
}
