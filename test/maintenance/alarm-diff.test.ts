// Differential: the same quota breach, alarm and maintenance steps against a single-member etcd 3.4
// and a single-member Cairn (both with --quota-backend-bytes 3 MB), compared after replacing member
// and cluster ids, sizes and revisions by placeholders. Some steps also pin the exact output so the
// script is known to test something even when both sides agree.
//
// CAIRN_MAINT_DUMP=1 prints both servers' outcomes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdClient } from '../harness/client.js';
import type { CallResult, Msg } from '../harness/client.js';
import { startCairn, startEtcd } from '../harness/procs.js';
import type { ServerProc } from '../harness/procs.js';
import { canonMsg, canonResult, ctl, diffSteps, headerRev, ok, outcome, statusOf } from './helpers.js';

const QUOTA = 3_000_000;
const VALUE = Buffer.alloc(6 * 1024, 0x76);
const NOSPACE_TEXT = 'etcdserver: mvcc: database space exceeded';
const NOSPACE_ERR = `RESOURCE_EXHAUSTED: ${NOSPACE_TEXT}`;

type Steps = Array<readonly [string, unknown]>;

interface Run {
  readonly steps: Steps;
  /** Puts acknowledged before the refusal. */
  readonly filled: number;
  readonly sizeAtBreach: number;
  /** Per Alarm call: whether the response had a header. */
  readonly alarmHeaders: boolean[];
  readonly deletedAll: number;
  /** ACTIVATE NONE and the GET after it. */
  readonly none: unknown[];
}

const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(5, '0')}`);

async function scenario(server: ServerProc): Promise<Run> {
  const c = new EtcdClient(server.endpoint);
  const steps: Steps = [];
  const alarmHeaders: boolean[] = [];
  let deletedAll = 0;
  const add = (label: string, v: unknown): void => {
    steps.push([label, v]);
  };
  try {
    await c.waitReady();
    const st0 = await statusOf(c);
    const self = st0.memberId;
    const ids = new Map([[self, '<self>']]);
    const rawAlarm = (action: string, alarmType: string, memberID = self): Promise<CallResult<Msg>> =>
      c.unary('Maintenance', 'Alarm', { action, memberID, alarm: alarmType });
    // etcd 3.4 answers Alarm without a header; 3.5 fills one (v3rpc/maintenance.go): presence is
    // checked apart (alarmHeaders), the alarms are compared.
    const alarm = async (action: string, alarmType: string, memberID = self): Promise<CallResult<Msg>> => {
      const r = await rawAlarm(action, alarmType, memberID);
      if (r.ok) {
        alarmHeaders.push(r.value['header'] !== null && r.value['header'] !== undefined);
        delete r.value['header'];
      }
      return r;
    };

    add('alarm list (fresh)', await ctl(server.endpoint, ['alarm', 'list'], ids));
    add('Alarm GET NONE (fresh)', canonResult(await alarm('GET', 'NONE', '0'), self));
    add('Status.errors (fresh)', st0.errors);

    // Fill until the quota refuses a put.
    let filled = 0;
    let refusal: CallResult<Msg> | undefined;
    for (let i = 0; i < 5000; i++) {
      const r = await c.put({ key: key(i), value: VALUE });
      if (!r.ok) {
        refusal = r;
        break;
      }
      filled++;
    }
    assert.ok(refusal !== undefined, `${server.name}: no refusal after 5000 puts of 6 KiB`);
    add('first refused Put', outcome(refusal));
    const st1 = await statusOf(c);
    add('etcdctl put (over quota)', await ctl(server.endpoint, ['put', 'x', 'y'], ids));
    add('alarm list (breached)', await ctl(server.endpoint, ['alarm', 'list'], ids));
    const es = await ctl(server.endpoint, ['endpoint', 'status', '-w', 'json']);
    const parsed = JSON.parse(es.stdout) as Array<{ Status: { errors?: string[] } }>;
    add('endpoint status -w json: errors', { exit: es.exit, errors: parsed[0]?.Status.errors?.map((x) => x.split(self).join('<self>')) });
    add('Alarm GET NONE (breached)', canonResult(await alarm('GET', 'NONE', '0'), self));
    add('Alarm GET NOSPACE (breached)', canonResult(await alarm('GET', 'NOSPACE', '0'), self));
    add('Alarm GET CORRUPT (breached)', canonResult(await alarm('GET', 'CORRUPT', '0'), self));

    // Reads work.
    const got = ok(await c.range({ key: key(0) }), 'Range');
    const kvs = got['kvs'] as Msg[];
    add('Range k0', { count: got['count'], valueBytes: (kvs[0]?.['value'] as Buffer | undefined)?.length });
    add('etcdctl get k00000 --print-value-only', (await ctl(server.endpoint, ['get', 'k00000', '--print-value-only'])).stdout.length);
    add('serializable Range', outcome(await c.range({ key: key(1), serializable: true })));
    // Writes that may grow the store are refused.
    add('Put (small)', outcome(await c.put({ key: Buffer.from('small'), value: Buffer.from('v') })));
    add('Put (overwrite, empty value)', outcome(await c.put({ key: key(0), value: Buffer.alloc(0) })));
    add('Txn with a put', outcome(await c.txn({ success: [{ request_put: { key: Buffer.from('t'), value: Buffer.from('v') } }] })));
    add('Txn with a put in the failure branch', outcome(await c.txn({ compare: [], success: [], failure: [{ request_put: { key: Buffer.from('t'), value: Buffer.from('v') } }] })));
    add('Txn with a range only', outcome(await c.txn({ success: [{ request_range: { key: key(1) } }] })));
    add('LeaseGrant', outcome(await c.unary('Lease', 'LeaseGrant', { TTL: '100', ID: '0' })));
    add('etcdctl lease grant', await ctl(server.endpoint, ['lease', 'grant', '100'], ids));
    // Deletes are allowed, in a txn too.
    const tdel = await c.txn({ success: [{ request_delete_range: { key: key(1) } }] });
    add('Txn with only a delete', tdel.ok ? { succeeded: tdel.value['succeeded'], responses: canonMsg(tdel.value['responses'], self) } : outcome(tdel));
    add('DeleteRange k00002', canonResult(await c.deleteRange({ key: key(2) }), self));
    const all = await c.deleteRange({ key: Buffer.from('k'), range_end: Buffer.from('l') });
    // Every acknowledged put is there to delete (bar the two deleted above), and at most the one
    // refused at the breach: etcd's quota applier applies a put and then answers NOSPACE when the
    // apply took the store over the quota (apply.go quotaApplierV3.Put), so that put may be there.
    deletedAll = all.ok ? Number(all.value['deleted']) : -1;
    const allAcked = deletedAll === filled - 2 || deletedAll === filled - 1;
    add('DeleteRange k.. (all)', all.ok ? (allAcked ? { deletedAllAcked: true } : { deletedAllAcked: false, deleted: deletedAll, ackedLeft: filled - 2 }) : outcome(all));
    add('Put after deleting (no defrag yet)', outcome(await c.put({ key: Buffer.from('small'), value: Buffer.from('v') })));
    // Disarming without freeing space: the alarm is cleared, and the next put is over quota again.
    add('alarm disarm (file not shrunk)', await ctl(server.endpoint, ['alarm', 'disarm'], ids));
    add('etcdctl put after early disarm', await ctl(server.endpoint, ['put', 'x', 'y'], ids));
    add('alarm list after early disarm + put', await ctl(server.endpoint, ['alarm', 'list'], ids));
    // Compaction and defragmentation work under the alarm; then disarm lets writes in.
    const rev = (await statusOf(c)).revision;
    add('etcdctl compact', await ctl(server.endpoint, ['compact', String(rev), '--physical'], new Map([[String(rev), '<rev>']])));
    add('etcdctl defrag', await ctl(server.endpoint, ['defrag'], new Map([[server.endpoint, '<endpoint>']])));
    const st2 = await statusOf(c);
    add('Status.errors after defrag', st2.errors.map((e) => e.split(self).join('<self>')));
    add('db shrank below the quota', st2.dbSize < QUOTA);
    add('alarm disarm', await ctl(server.endpoint, ['alarm', 'disarm'], ids));
    add('alarm list (disarmed)', await ctl(server.endpoint, ['alarm', 'list'], ids));
    add('etcdctl put (disarmed)', await ctl(server.endpoint, ['put', 'x', 'y'], ids));
    add('LeaseGrant (disarmed)', outcome(await c.unary('Lease', 'LeaseGrant', { TTL: '100', ID: '0' })));
    add('alarm disarm (nothing raised)', await ctl(server.endpoint, ['alarm', 'disarm'], ids));

    // Raw Alarm requests.
    add('Alarm ACTIVATE NOSPACE self', canonResult(await alarm('ACTIVATE', 'NOSPACE'), self));
    add('Alarm ACTIVATE NOSPACE self again', canonResult(await alarm('ACTIVATE', 'NOSPACE'), self));
    add('Put under a manual NOSPACE', outcome(await c.put({ key: Buffer.from('m'), value: Buffer.from('v') })));
    add('Alarm ACTIVATE NOSPACE for member 12345', canonResult(await alarm('ACTIVATE', 'NOSPACE', '12345'), self));
    add('Alarm GET NONE (two raised)', canonResult(await alarm('GET', 'NONE', '0'), self));
    add('Alarm GET NOSPACE with a member id', canonResult(await alarm('GET', 'NOSPACE', '777'), self));
    add('alarm list (two raised)', await ctl(server.endpoint, ['alarm', 'list'], ids));
    add('Alarm DEACTIVATE NOSPACE 12345', canonResult(await alarm('DEACTIVATE', 'NOSPACE', '12345'), self));
    add('Alarm DEACTIVATE NOSPACE 12345 again (not raised)', canonResult(await alarm('DEACTIVATE', 'NOSPACE', '12345'), self));
    add('Alarm DEACTIVATE CORRUPT self (not raised)', canonResult(await alarm('DEACTIVATE', 'CORRUPT'), self));
    add('Alarm DEACTIVATE NOSPACE self', canonResult(await alarm('DEACTIVATE', 'NOSPACE'), self));
    add('Alarm GET NONE (none raised)', canonResult(await alarm('GET', 'NONE', '0'), self));
    add('Put after DEACTIVATE', outcome(await c.put({ key: Buffer.from('m'), value: Buffer.from('v') })));
    // ACTIVATE of NONE: etcd 3.4 stores it (then lists "memberID:<id> "), 3.5 ignores it: kept apart.
    const none = canonResult(await alarm('ACTIVATE', 'NONE'), self);
    const noneAfter = canonResult(await alarm('GET', 'NONE', '0'), self);
    await rawAlarm('DEACTIVATE', 'NONE');

    // Response shapes of Defragment, Hash, HashKV, Status (header presence and ids; the decoder
    // fills absent scalar fields with defaults, so only messages show presence).
    add('Defragment response', canonResult(await c.unary('Maintenance', 'Defragment', {}), self));
    const hash = await c.unary('Maintenance', 'Hash', {});
    add('Hash response', canonResult(hash, self, ['hash']));
    const cur = headerRev(ok(await c.range({ key: Buffer.from('x') }), 'Range'));
    add('Hash header revision = current revision', hash.ok && headerRev(hash.value) === cur);
    const hkv = await c.unary('Maintenance', 'HashKV', { revision: '0' });
    // hash_revision is 3.5's (3.4 has no such field): compared apart.
    if (hkv.ok) delete hkv.value['hash_revision'];
    add('HashKV response', canonResult(hkv, self, ['hash', 'compact_revision']));
    const st3 = ok(await c.unary('Maintenance', 'Status', {}), 'Status');
    add('Status header', canonMsg(st3['header'], self, 'header'));
    return { steps, filled, sizeAtBreach: st1.dbSize, alarmHeaders, none: [none, noneAfter], deletedAll };
  } finally {
    c.close();
  }
}

test('quota breach, alarms, defrag and maintenance responses: etcd 3.4 and Cairn agree', async () => {
  const args = ['--quota-backend-bytes', String(QUOTA)];
  const etcd = await startEtcd({ extraArgs: args });
  let cairn: ServerProc | undefined;
  try {
    cairn = await startCairn({ extraArgs: args });
    const e = await scenario(etcd);
    const c = await scenario(cairn);
    if (process.env['CAIRN_MAINT_DUMP'] === '1') {
      for (let i = 0; i < e.steps.length; i++) {
        console.log(`${e.steps[i]?.[0]}\n  etcd:  ${JSON.stringify(e.steps[i]?.[1])}\n  cairn: ${JSON.stringify(c.steps[i]?.[1])}`);
      }
      console.log(`filled: etcd ${e.filled} (db ${e.sizeAtBreach}, deleted ${e.deletedAll}), cairn ${c.filled} (db ${c.sizeAtBreach}, deleted ${c.deletedAll})`);
    }
    // Pinned: the script really breached the quota on both and saw etcd's answers.
    const pick = (label: string): unknown => e.steps.find((s) => s[0] === label)?.[1];
    assert.equal(pick('first refused Put'), NOSPACE_ERR);
    assert.deepEqual(pick('etcdctl put (over quota)'), { exit: 1, stdout: '', errors: `Error: ${NOSPACE_TEXT}` });
    assert.deepEqual(pick('alarm list (breached)'), { exit: 0, stdout: 'memberID:<self> alarm:NOSPACE \n', errors: '' });
    assert.deepEqual(pick('endpoint status -w json: errors'), { exit: 0, errors: ['memberID:<self> alarm:NOSPACE '] });
    assert.equal(pick('Txn with a put'), NOSPACE_ERR);
    assert.equal(pick('LeaseGrant'), NOSPACE_ERR);
    assert.deepEqual(pick('etcdctl put (disarmed)'), { exit: 0, stdout: 'OK\n', errors: '' });
    assert.deepEqual(pick('alarm list (disarmed)'), { exit: 0, stdout: '', errors: '' });
    // Alarm headers: none from etcd 3.4, always from Cairn (as etcd 3.5 fills them).
    assert.ok(e.alarmHeaders.length > 10 && e.alarmHeaders.every((h) => !h), `etcd 3.4 Alarm headers: ${JSON.stringify(e.alarmHeaders)}`);
    assert.ok(c.alarmHeaders.length === e.alarmHeaders.length && c.alarmHeaders.every((h) => h), `Cairn Alarm headers: ${JSON.stringify(c.alarmHeaders)}`);
    // ACTIVATE NONE: 3.4 stores a NONE alarm; Cairn ignores it as 3.5 does (apply.go: "if ar.Alarm == NONE break").
    assert.deepEqual(e.none, [{ ok: { alarms: [{ alarm: 'NONE', memberID: '<self>' }] } }, { ok: { alarms: [{ alarm: 'NONE', memberID: '<self>' }] } }]);
    assert.deepEqual(c.none, [{ ok: { alarms: [] } }, { ok: { alarms: [] } }]);
    // Both filled a comparable amount (the quota counts the file on etcd, the pages holding data on Cairn).
    assert.ok(c.filled > 0.5 * e.filled && c.filled < 1.5 * e.filled, `filled: etcd ${e.filled}, cairn ${c.filled}`);
    const diffs = diffSteps(e.steps, c.steps);
    assert.deepEqual(diffs, [], `Cairn differs from etcd 3.4 in ${diffs.length} step(s):\n${diffs.join('\n')}`);
  } finally {
    await etcd.stop();
    await cairn?.stop();
  }
});

test("Downgrade: Cairn has no downgrade (its storage is no older etcd's): it refuses every target with etcd's refusals (etcd 3.4 has no Downgrade)", async () => {
  const cairn = await startCairn();
  const c = new EtcdClient(cairn.endpoint);
  try {
    await c.waitReady();
    const dg = async (action: string, version: string): Promise<string> => outcome(await c.unary('Maintenance', 'Downgrade', { action, version }));
    const FORMAT = 'INVALID_ARGUMENT: etcdserver: wrong downgrade target version format';
    const INVALID = 'INVALID_ARGUMENT: etcdserver: invalid downgrade target version';
    const NO_JOB = 'FAILED_PRECONDITION: etcdserver: no inflight downgrade job';
    // etcd 3.5's convertToClusterVersion: go-semver's NewVersion(v), else NewVersion(v + ".0") (so
    // "major.minor" is well-formed), else the format error. go-semver takes no "v" prefix and
    // parses each part with ParseInt (leading zeros allowed).
    const wrong: string[] = [];
    for (const action of ['VALIDATE', 'ENABLE']) {
      for (const v of ['', 'abc', '3', 'v3.x.0', '3.4.0.1', 'v3.4.0', 'v3.4', '3.4.x', '3.4.']) {
        const got = await dg(action, v);
        if (got !== FORMAT) wrong.push(`${action} ${JSON.stringify(v)}: got ${got}, want ${FORMAT}`);
      }
      for (const v of ['3.4', '3.5', '3.4.0', '3.5.0', '3.5.17', '3.6.0', '2.3.8', '3.4.0-rc.1', '3.4.0+meta', '03.4.0']) {
        const got = await dg(action, v);
        if (got !== INVALID) wrong.push(`${action} ${JSON.stringify(v)}: got ${got}, want ${INVALID}`);
      }
    }
    assert.deepEqual(wrong, [], `Downgrade answers differ from etcd 3.5's:\n${wrong.join('\n')}`);
    assert.equal(await dg('CANCEL', ''), NO_JOB);
    assert.equal(await dg('CANCEL', '3.4.0'), NO_JOB);
    // The refusals change nothing: the member serves and reports no downgrade.
    const st = ok(await c.unary('Maintenance', 'Status', {}), 'Status');
    assert.equal(st['version'], '3.6.8');
    assert.equal(outcome(await c.put({ key: Buffer.from('after-downgrade'), value: Buffer.from('v') })), 'OK');
  } finally {
    c.close();
    await cairn.stop();
  }
});
