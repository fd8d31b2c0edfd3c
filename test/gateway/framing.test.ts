// The gateway's decoders fed one byte at a time and in random splits (DESIGN style 14): the
// protocol sniffer of the client port and the JSON stream splitter; plus the JSON texts of errors
// (Go's encoding/json and base64 words, as the etcd 3.4.23 gateway answered them) and the codec's
// grpc-gateway conventions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HTTP2_PREFACE, ProtocolSniffer, type Protocol } from '../../server/api/listen.js';
import { JsonValueSplitter, type SplitItem } from '../../server/api/http/json-scan.js';
import { GatewayCodec, JsonDecodeError, goBase64Decode } from '../../server/api/http/codec.js';

function sniffSplits(bytes: Buffer, cuts: number[]): Protocol | undefined {
  const s = new ProtocolSniffer();
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    const p = s.push(bytes.subarray(at, cut));
    at = cut;
    if (p !== undefined) return p;
  }
  return undefined;
}

test('sniffer: the HTTP/2 preface one byte at a time is h2 exactly at its last byte', () => {
  const s = new ProtocolSniffer();
  for (let i = 0; i < HTTP2_PREFACE.length - 1; i++) assert.equal(s.push(HTTP2_PREFACE.subarray(i, i + 1)), undefined, `byte ${i}`);
  assert.equal(s.push(HTTP2_PREFACE.subarray(HTTP2_PREFACE.length - 1)), 'h2');
});

test('sniffer: HTTP/1.1 requests (even ones starting like the preface) decide http1 at the first differing byte', () => {
  for (const req of ['POST /v3/kv/range HTTP/1.1\r\n', 'PUT / HTTP/1.1\r\n', 'PRI * HTTP/1.1\r\n', 'GET /health HTTP/1.1\r\n']) {
    const s = new ProtocolSniffer();
    const bytes = Buffer.from(req, 'latin1');
    let decided: Protocol | undefined;
    let at = 0;
    while (decided === undefined && at < bytes.length) decided = s.push(bytes.subarray(at, ++at));
    assert.equal(decided, 'http1', req);
    let common = 0;
    while (bytes[common] === HTTP2_PREFACE[common]) common++;
    assert.equal(at, common + 1, `${req}: decided at the first byte that differs from the preface`);
  }
});

test('sniffer: any split of preface + frames, or of an HTTP/1 request, gives the same answer', () => {
  const h2 = Buffer.concat([HTTP2_PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
  const h1 = Buffer.from('POST /v3/watch HTTP/1.1\r\nHost: x\r\n\r\n{}', 'latin1');
  fc.assert(
    fc.property(fc.array(fc.nat(60), { maxLength: 12 }), (cuts) => {
      assert.equal(sniffSplits(h2, cuts), 'h2');
      assert.equal(sniffSplits(h1, cuts), 'http1');
      assert.equal(sniffSplits(HTTP2_PREFACE.subarray(0, 10), cuts), undefined); // half a preface: undecided
    }),
  );
});

function splitAll(text: string, cuts: number[]): SplitItem[] {
  const bytes = Buffer.from(text, 'utf8');
  const sp = new JsonValueSplitter();
  const out: SplitItem[] = [];
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    out.push(...sp.push(bytes.subarray(at, cut)));
    at = cut;
  }
  out.push(...sp.end());
  return out;
}

function show(items: SplitItem[]): string[] {
  return items.map((i) => ('value' in i ? `value ${i.value.toString('utf8')}` : `error ${i.error.message}`));
}

test('JSON splitter: concatenated requests, one byte at a time and in random splits, give the values of the whole', () => {
  const bodies = [
    '{"create_request": {"key":"Zm9v"} }',
    '{"create_request":{"key":"Zm9v","start_revision":"1"}}{"create_request":{"key":"YQ=="}} \n {"cancel_request":{"watch_id":"0"}}',
    '{"a":"}{\\"\\\\"}[1,2]{"b":[{"c":null}]}',
    '{"ID":"77"}{"ID":"78"} junk',
    '{"key":"é✓"}{"key":',
    '12 {"x":1}',
    '  ',
    '',
  ];
  for (const body of bodies) {
    const whole = show(splitAll(body, []));
    const n = Buffer.byteLength(body);
    const bytewise = show(splitAll(body, Array.from({ length: n }, (_, i) => i)));
    assert.deepEqual(bytewise, whole, body);
    fc.assert(fc.property(fc.array(fc.nat(n), { maxLength: 8 }), (cuts) => assert.deepEqual(show(splitAll(body, cuts)), whole)), { numRuns: 50 });
  }
  assert.deepEqual(show(splitAll(bodies[1] ?? '', [])), [
    'value {"create_request":{"key":"Zm9v","start_revision":"1"}}',
    'value {"create_request":{"key":"YQ=="}}',
    'value {"cancel_request":{"watch_id":"0"}}',
  ]);
  assert.deepEqual(show(splitAll(bodies[3] ?? '', [])), ['value {"ID":"77"}', 'value {"ID":"78"}', "error invalid character 'j' looking for beginning of value"]);
  assert.deepEqual(show(splitAll(bodies[4] ?? '', [])), ['value {"key":"é✓"}', 'error unexpected EOF']);
  assert.deepEqual(show(splitAll(bodies[5] ?? '', [])), ['value 12', 'value {"x":1}']);
  assert.deepEqual(show(splitAll('', [])), []);
});

// What etcd 3.4.23's gateway answered (POST /v3/kv/range with this body → {"error": <text>, "code": 3}).
const GO_JSON_ERRORS: readonly (readonly [string, string])[] = [
  ['{bad', "invalid character 'b' looking for beginning of object key string"],
  ['{"key":', 'unexpected EOF'],
  ['{"key":5}', 'json: cannot unmarshal number into Go value of type []uint8'],
  ['{"key":"Zm9"}', 'illegal base64 data at input byte 0'],
  ['{"limit":"abc"}', "invalid character 'a' looking for beginning of value"],
  ['{"limit":true}', 'json: cannot unmarshal bool into Go value of type int64'],
  ['{"limit":1.5}', 'json: cannot unmarshal number 1.5 into Go value of type int64'],
  ['{"limit":"1e3"}', 'json: cannot unmarshal number 1e3 into Go value of type int64'],
  ['{"limit":99999999999999999999}', 'json: cannot unmarshal number 99999999999999999999 into Go value of type int64'],
  ['{"limit":"0x10"}', "invalid character 'x' after top-level value"],
  ['{"sort_order":"FOO"}', 'unknown value "FOO" for enum etcdserverpb.RangeRequest_SortOrder'],
  ['{"keys_only":"true"}', 'json: cannot unmarshal string into Go value of type bool'],
  ['"str"', 'json: cannot unmarshal string into Go value of type map[string]json.RawMessage'],
  ['[]', 'json: cannot unmarshal array into Go value of type map[string]json.RawMessage'],
  ["{'a':1}", "invalid character '\\'' looking for beginning of object key string"],
  ['{"a" 1}', "invalid character '1' after object key"],
  ['{"a":1 "b"}', 'invalid character \'"\' after object key:value pair'],
  ['{"a":tru}', "invalid character '}' in literal true (expecting 'e')"],
  ['{"a":-x}', "invalid character 'x' in numeric literal"],
  ['{"a":"\\q"}', "invalid character 'q' in string escape code"],
  ['{"key":"Zm9v_-=="}', 'illegal base64 data at input byte 4'],
  ['{"key":"Zm9v\\u003d"}', 'illegal base64 data at input byte 4'],
];

const codec = GatewayCodec.load();
const rangeTypes = codec.methodTypes('/etcdserverpb.KV/Range');

function decodeRange(body: string): Uint8Array {
  assert.ok(rangeTypes !== undefined);
  const sp = new JsonValueSplitter();
  const items = [...sp.push(Buffer.from(body, 'utf8')), ...sp.end()];
  const first = items[0];
  if (first === undefined) return codec.encodeRequest(rangeTypes.request, Buffer.alloc(0));
  if ('error' in first) throw first.error;
  return codec.encodeRequest(rangeTypes.request, first.value);
}

test("codec: bad request bodies are refused with Go's words (as etcd 3.4.23's gateway answered)", () => {
  for (const [body, want] of GO_JSON_ERRORS) {
    assert.throws(() => decodeRange(body), (err: Error) => err.message === want, `${body}: want ${want}`);
  }
});

test('codec: accepts proto and lowerCamel names, int64 as numbers or strings, enums by name or number; ignores unknown fields', () => {
  assert.ok(rangeTypes !== undefined);
  const a = decodeRange('{"key":"Zm9v","range_end":"Zm9w","limit":"5","sort_order":"DESCEND","keys_only":true,"unknown":[1,{"x":2}]}');
  const b = decodeRange('{"key":"Zm9v","rangeEnd":"Zm9w","limit":5,"sortOrder":2,"keysOnly":true}');
  assert.deepEqual(Buffer.from(a), Buffer.from(b));
  assert.equal(decodeRange('null').length, 0);
  assert.equal(decodeRange('').length, 0);
  assert.equal(decodeRange('{"key":null}').length, 0);
  const out = JSON.parse(codec.responseJson(rangeTypes.request, a)) as Record<string, unknown>;
  assert.deepEqual(out, { key: 'Zm9v', range_end: 'Zm9w', limit: '5', sort_order: 'DESCEND', keys_only: true });
});

test('codec: responses in jsonpb OrigName form: 64-bit as strings, zero values omitted, oneofs by field name', () => {
  const txn = codec.methodTypes('/etcdserverpb.KV/Txn');
  assert.ok(txn !== undefined);
  const bytes = txn.response.encode(
    txn.response.fromObject({
      header: { cluster_id: '18446744073709551615', member_id: '1', revision: '7', raft_term: '0' },
      succeeded: false,
      responses: [{ response_range: { header: { revision: '7' }, kvs: [], count: '0' } }, { response_put: {} }],
    }),
  ).finish();
  assert.equal(
    codec.responseJson(txn.response, bytes),
    '{"header":{"cluster_id":"18446744073709551615","member_id":"1","revision":"7"},"responses":[{"response_range":{"header":{"revision":"7"}}},{"response_put":{}}]}',
  );
});

test("codec: Go's base64 (padding, CR/LF skipped, error offsets)", () => {
  assert.equal(Buffer.from(goBase64Decode('Zm9vYmFy')).toString(), 'foobar');
  assert.equal(Buffer.from(goBase64Decode('Zm9vYg==')).toString(), 'foob');
  assert.equal(Buffer.from(goBase64Decode('Zm9v\nYmE=')).toString(), 'fooba');
  assert.equal(goBase64Decode('').length, 0);
  for (const [text, at] of [['Zm9', 0], ['Zm9vY', 4], ['Zm9v=', 4], ['Zg=', 3], ['Zg==Zg==', 4], ['Z!9v', 1]] as const) {
    assert.throws(() => goBase64Decode(text), (e: Error) => e instanceof JsonDecodeError && e.message === `illegal base64 data at input byte ${at}`, text);
  }
});
