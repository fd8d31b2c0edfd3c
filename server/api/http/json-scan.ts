// JSON framing and syntax checking with Go's encoding/json error texts (etcd's gateway decodes
// request bodies with Go's json.Decoder, so a malformed body must be refused with the same words).
// `JsonScanner` steps one byte at a time (framing never depends on chunking: DESIGN style 14);
// `JsonValueSplitter` cuts a byte stream into complete top-level values, as json.Decoder.Decode does
// for the concatenated requests of a streaming call; `checkJson` validates one whole text, as
// json.Unmarshal does before decoding.

/** A syntax error, worded as Go's encoding/json SyntaxError. */
export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
}

const S = {
  BEGIN_VALUE: 0,
  BEGIN_VALUE_OR_EMPTY: 1,
  BEGIN_STRING_OR_EMPTY: 2,
  BEGIN_STRING: 3,
  END_VALUE: 4,
  IN_STRING: 5,
  IN_STRING_ESC: 6,
  IN_STRING_ESC_U: 7,
  NEG: 8,
  ONE: 9,
  ZERO: 10,
  DOT: 11,
  DOT0: 12,
  E: 13,
  E_SIGN: 14,
  E0: 15,
  LITERAL: 16,
  DONE: 17,
} as const;
type State = (typeof S)[keyof typeof S];

const PARSE_OBJECT_KEY = 0;
const PARSE_OBJECT_VALUE = 1;
const PARSE_ARRAY_VALUE = 2;

/** Nesting bound (Go's decoder allows 10000 levels). */
export const JSON_DEPTH_MAX = 10_000;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

const QUOTE_ESCAPES: Readonly<Record<number, string>> = { 0x07: '\\a', 0x08: '\\b', 0x0c: '\\f', 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t', 0x0b: '\\v', 0x5c: '\\\\' };

/** Go's quoteChar: how a byte appears in a SyntaxError ('x', '\n', '\'', '"', '\x00', 'é'). */
export function quoteChar(c: number): string {
  if (c === 0x27) return `'\\''`;
  if (c === 0x22) return `'"'`;
  const esc = QUOTE_ESCAPES[c];
  if (esc !== undefined) return `'${esc}'`;
  if (c < 0x20 || c === 0x7f) return `'\\x${c.toString(16).padStart(2, '0')}'`;
  // Go quotes string(rune(c)): Latin-1 controls and the soft hyphen are not printable.
  if ((c >= 0x80 && c <= 0xa0) || c === 0xad) return `'\\u${c.toString(16).padStart(4, '0')}'`;
  return `'${String.fromCharCode(c)}'`;
}

function syntax(c: number, context: string): JsonSyntaxError {
  return new JsonSyntaxError(`invalid character ${quoteChar(c)} ${context}`);
}

const LITERALS: readonly (readonly [string, string])[] = [
  ['t', 'true'],
  ['f', 'false'],
  ['n', 'null'],
];

/**
 * Go's scanner: `step(c)` consumes one byte; it returns true when that byte completed a top-level
 * value, throws JsonSyntaxError on bad input. A top-level number is complete only when the next
 * byte (which is then not consumed: `step` returns true and `pushedBack` is set) or the end arrives.
 */
export class JsonScanner {
  private state: State = S.BEGIN_VALUE;
  private readonly stack: number[] = [];
  private literal = '';
  private literalAt = 0;
  private hexLeft = 0;
  /** The last step ended a top-level number without consuming its byte. */
  pushedBack = false;
  /** True once the first non-space byte of a value was consumed. */
  started = false;

  reset(): void {
    this.state = S.BEGIN_VALUE;
    this.stack.length = 0;
    this.pushedBack = false;
    this.started = false;
  }

  /** Whether the end of input now would leave a complete value (a top-level number). */
  completeAtEof(): boolean {
    if (this.state === S.DONE) return true;
    if (this.stack.length !== 0) return false;
    return this.state === S.ONE || this.state === S.ZERO || this.state === S.DOT0 || this.state === S.E0;
  }

  step(c: number): boolean {
    this.pushedBack = false;
    switch (this.state) {
      case S.BEGIN_VALUE:
        return this.beginValue(c);
      case S.BEGIN_VALUE_OR_EMPTY:
        if (isSpace(c)) return false;
        if (c === 0x5d /* ] */) return this.endValue(c);
        return this.beginValue(c);
      case S.BEGIN_STRING_OR_EMPTY:
        if (isSpace(c)) return false;
        if (c === 0x7d /* } */) {
          this.stack[this.stack.length - 1] = PARSE_OBJECT_VALUE;
          return this.endValue(c);
        }
        return this.beginString(c);
      case S.BEGIN_STRING:
        return this.beginString(c);
      case S.END_VALUE:
        return this.endValue(c);
      case S.IN_STRING:
        if (c === 0x22) {
          this.state = S.END_VALUE;
          return this.stack.length === 0;
        }
        if (c === 0x5c) this.state = S.IN_STRING_ESC;
        else if (c < 0x20) throw syntax(c, 'in string literal');
        return false;
      case S.IN_STRING_ESC:
        if ('bfnrt\\/"'.includes(String.fromCharCode(c))) this.state = S.IN_STRING;
        else if (c === 0x75 /* u */) {
          this.state = S.IN_STRING_ESC_U;
          this.hexLeft = 4;
        } else throw syntax(c, 'in string escape code');
        return false;
      case S.IN_STRING_ESC_U:
        if (!isHex(c)) throw syntax(c, 'in \\u hexadecimal character escape');
        this.hexLeft -= 1;
        if (this.hexLeft === 0) this.state = S.IN_STRING;
        return false;
      case S.NEG:
        if (c === 0x30) this.state = S.ZERO;
        else if (isDigit(c)) this.state = S.ONE;
        else throw syntax(c, 'in numeric literal');
        return false;
      case S.ONE:
        if (isDigit(c)) return false;
        return this.zero(c);
      case S.ZERO:
        return this.zero(c);
      case S.DOT:
        if (!isDigit(c)) throw syntax(c, 'after decimal point in numeric literal');
        this.state = S.DOT0;
        return false;
      case S.DOT0:
        if (isDigit(c)) return false;
        if (c === 0x65 || c === 0x45) {
          this.state = S.E;
          return false;
        }
        return this.endNumber(c);
      case S.E:
        if (c === 0x2b || c === 0x2d) {
          this.state = S.E_SIGN;
          return false;
        }
        return this.eSign(c);
      case S.E_SIGN:
        return this.eSign(c);
      case S.E0:
        if (isDigit(c)) return false;
        return this.endNumber(c);
      case S.LITERAL: {
        const want = this.literal.charCodeAt(this.literalAt);
        if (c !== want) throw syntax(c, `in literal ${this.literal} (expecting ${quoteChar(want)})`);
        this.literalAt += 1;
        if (this.literalAt < this.literal.length) return false;
        this.state = S.END_VALUE;
        return this.stack.length === 0;
      }
      case S.DONE:
        if (isSpace(c)) return false;
        throw syntax(c, 'after top-level value');
    }
  }

  private beginValue(c: number): boolean {
    if (isSpace(c)) return false;
    this.started = true;
    switch (c) {
      case 0x7b /* { */:
        this.push(PARSE_OBJECT_KEY);
        this.state = S.BEGIN_STRING_OR_EMPTY;
        return false;
      case 0x5b /* [ */:
        this.push(PARSE_ARRAY_VALUE);
        this.state = S.BEGIN_VALUE_OR_EMPTY;
        return false;
      case 0x22:
        this.state = S.IN_STRING;
        return false;
      case 0x2d:
        this.state = S.NEG;
        return false;
      case 0x30:
        this.state = S.ZERO;
        return false;
    }
    if (isDigit(c)) {
      this.state = S.ONE;
      return false;
    }
    const ch = String.fromCharCode(c);
    for (const [first, word] of LITERALS) {
      if (ch === first) {
        this.state = S.LITERAL;
        this.literal = word;
        this.literalAt = 1;
        return false;
      }
    }
    throw syntax(c, 'looking for beginning of value');
  }

  private beginString(c: number): boolean {
    if (isSpace(c)) return false;
    if (c !== 0x22) throw syntax(c, 'looking for beginning of object key string');
    this.state = S.IN_STRING;
    return false;
  }

  private zero(c: number): boolean {
    if (c === 0x2e /* . */) {
      this.state = S.DOT;
      return false;
    }
    if (c === 0x65 || c === 0x45) {
      this.state = S.E;
      return false;
    }
    return this.endNumber(c);
  }

  private eSign(c: number): boolean {
    if (!isDigit(c)) throw syntax(c, 'in exponent of numeric literal');
    this.state = S.E0;
    return false;
  }

  /** A number ended at byte c, which belongs to what follows. */
  private endNumber(c: number): boolean {
    if (this.stack.length === 0) {
      this.state = S.DONE;
      this.pushedBack = true;
      return true;
    }
    return this.endValue(c);
  }

  private push(kind: number): void {
    if (this.stack.length >= JSON_DEPTH_MAX) throw new JsonSyntaxError('exceeded max depth');
    this.stack.push(kind);
  }

  private endValue(c: number): boolean {
    const n = this.stack.length;
    if (n === 0) {
      this.state = S.DONE;
      return this.step(c);
    }
    if (isSpace(c)) {
      this.state = S.END_VALUE;
      return false;
    }
    const top = this.stack[n - 1];
    if (top === PARSE_OBJECT_KEY) {
      if (c !== 0x3a /* : */) throw syntax(c, 'after object key');
      this.stack[n - 1] = PARSE_OBJECT_VALUE;
      this.state = S.BEGIN_VALUE;
      return false;
    }
    if (top === PARSE_OBJECT_VALUE) {
      if (c === 0x2c /* , */) {
        this.stack[n - 1] = PARSE_OBJECT_KEY;
        this.state = S.BEGIN_STRING;
        return false;
      }
      if (c !== 0x7d /* } */) throw syntax(c, 'after object key:value pair');
      return this.pop();
    }
    if (c === 0x2c) {
      this.state = S.BEGIN_VALUE;
      return false;
    }
    if (c !== 0x5d /* ] */) throw syntax(c, 'after array element');
    return this.pop();
  }

  private pop(): boolean {
    this.stack.pop();
    this.state = S.END_VALUE;
    if (this.stack.length === 0) {
      this.state = S.DONE;
      return true;
    }
    return false;
  }
}

/** json.Unmarshal's validity check of one whole text (before any decoding). */
export function checkJson(text: Buffer): void {
  const sc = new JsonScanner();
  let done = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? 0;
    if (done) {
      if (!isSpace(c)) throw syntax(c, 'after top-level value');
      continue;
    }
    done = sc.step(c);
    if (done && sc.pushedBack && !isSpace(c)) throw syntax(c, 'after top-level value');
  }
  if (!done && !sc.completeAtEof()) throw new JsonSyntaxError('unexpected end of JSON input');
}

/** One outcome of feeding a splitter: a complete value's text, or the error that stops the stream. */
export type SplitItem = { readonly value: Buffer } | { readonly error: JsonSyntaxError };

/** Requests in one streaming body are bounded like a unary body: one value may not exceed this. */
export const JSON_VALUE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/**
 * Cuts a byte stream into top-level JSON values as Go's json.Decoder does (whitespace between
 * values; any split of the input gives the same values). After an error nothing more is produced.
 */
export class JsonValueSplitter {
  private readonly scanner = new JsonScanner();
  private parts: Buffer[] = [];
  private partBytes = 0;
  private failed = false;

  constructor(private readonly valueBytesMax: number = JSON_VALUE_BYTES_MAX_DEFAULT) {}

  push(chunk: Buffer): SplitItem[] {
    const out: SplitItem[] = [];
    if (this.failed) return out;
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] ?? 0;
      let done: boolean;
      try {
        if (!this.scanner.started && isSpace(c)) {
          from = i + 1;
          continue;
        }
        done = this.scanner.step(c);
      } catch (err) {
        return this.fail(out, err);
      }
      if (!done) continue;
      const back = this.scanner.pushedBack;
      const end = back ? i : i + 1;
      out.push({ value: this.take(chunk.subarray(from, end)) });
      this.scanner.reset();
      from = end;
      if (back) i -= 1; // the byte that ended a number starts what follows: read it again
    }
    if (from < chunk.length) {
      this.parts.push(chunk.subarray(from));
      this.partBytes += chunk.length - from;
      if (this.partBytes > this.valueBytesMax) return this.fail(out, new JsonSyntaxError('request body too large'));
    }
    return out;
  }

  /** The input ended: a final top-level number completes; a value cut short is "unexpected EOF". */
  end(): SplitItem[] {
    if (this.failed) return [];
    if (this.partBytes === 0 && !this.scanner.started) return [];
    this.failed = true;
    if (this.scanner.completeAtEof()) return [{ value: this.take(Buffer.alloc(0)) }];
    return [{ error: new JsonSyntaxError('unexpected EOF') }];
  }

  private take(last: Buffer): Buffer {
    const value = this.parts.length === 0 ? Buffer.from(last) : Buffer.concat([...this.parts, last]);
    this.parts = [];
    this.partBytes = 0;
    return value;
  }

  private fail(out: SplitItem[], err: unknown): SplitItem[] {
    this.failed = true;
    this.parts = [];
    this.partBytes = 0;
    out.push({ error: err instanceof JsonSyntaxError ? err : new JsonSyntaxError(String(err)) });
    return out;
  }
}
