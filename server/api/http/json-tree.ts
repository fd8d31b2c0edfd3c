// A JSON text already checked by json-scan.ts, as a tree that keeps each scalar's raw text: Go's
// jsonpb decodes a quoted int64 from the raw bytes between the quotes (no unescaping), and its
// error messages name the kind of the value it found, so the gateway needs both.
import { JsonSyntaxError, checkJson } from './json-scan.js';

export type JsonNode =
  | { readonly kind: 'object'; readonly entries: readonly (readonly [string, JsonNode])[] }
  | { readonly kind: 'array'; readonly items: readonly JsonNode[] }
  | { readonly kind: 'string'; readonly raw: string; readonly value: string }
  | { readonly kind: 'number'; readonly raw: string }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'null' };

/** Go's name for a JSON value kind in UnmarshalTypeError ("cannot unmarshal <kind> into ..."). */
export function goKind(n: JsonNode): string {
  switch (n.kind) {
    case 'bool':
      return 'bool';
    case 'null':
      return 'null';
    default:
      return n.kind;
  }
}

class Cursor {
  at = 0;
  constructor(readonly text: string) {}
  skipSpace(): void {
    while (this.at < this.text.length && ' \t\r\n'.includes(this.text.charAt(this.at))) this.at += 1;
  }
  peek(): string {
    return this.text.charAt(this.at);
  }
}

function parseString(cur: Cursor): { raw: string; value: string } {
  const start = cur.at;
  cur.at += 1;
  while (cur.at < cur.text.length) {
    const ch = cur.text.charAt(cur.at);
    if (ch === '\\') cur.at += 2;
    else if (ch === '"') break;
    else cur.at += 1;
  }
  cur.at += 1;
  const quoted = cur.text.slice(start, cur.at);
  return { raw: quoted.slice(1, -1), value: JSON.parse(quoted) as string };
}

function parseValue(cur: Cursor): JsonNode {
  cur.skipSpace();
  const ch = cur.peek();
  if (ch === '{') {
    cur.at += 1;
    const entries: [string, JsonNode][] = [];
    cur.skipSpace();
    if (cur.peek() === '}') {
      cur.at += 1;
      return { kind: 'object', entries };
    }
    for (;;) {
      cur.skipSpace();
      const key = parseString(cur).value;
      cur.skipSpace();
      cur.at += 1; // ':'
      entries.push([key, parseValue(cur)]);
      cur.skipSpace();
      const sep = cur.peek();
      cur.at += 1;
      if (sep === '}') return { kind: 'object', entries };
    }
  }
  if (ch === '[') {
    cur.at += 1;
    const items: JsonNode[] = [];
    cur.skipSpace();
    if (cur.peek() === ']') {
      cur.at += 1;
      return { kind: 'array', items };
    }
    for (;;) {
      items.push(parseValue(cur));
      cur.skipSpace();
      const sep = cur.peek();
      cur.at += 1;
      if (sep === ']') return { kind: 'array', items };
    }
  }
  if (ch === '"') return { kind: 'string', ...parseString(cur) };
  for (const [word, node] of LITERAL_NODES) {
    if (cur.text.startsWith(word, cur.at)) {
      cur.at += word.length;
      return node;
    }
  }
  NUMBER.lastIndex = cur.at;
  const m = NUMBER.exec(cur.text);
  if (m === null) throw new JsonSyntaxError(`unparsable JSON at ${cur.at}`);
  cur.at += m[0].length;
  return { kind: 'number', raw: m[0] };
}

const NUMBER = /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

const LITERAL_NODES: readonly (readonly [string, JsonNode])[] = [
  ['true', { kind: 'bool', value: true }],
  ['false', { kind: 'bool', value: false }],
  ['null', { kind: 'null' }],
];

/** Parses a text; throws JsonSyntaxError with Go's wording when it is not valid JSON. */
export function parseJson(text: Buffer): JsonNode {
  checkJson(text);
  return parseValue(new Cursor(text.toString('utf8')));
}
