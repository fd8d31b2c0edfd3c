// crds/cairn.dev_etcdclusters.yaml is the rendering of operator/api (one source): the committed file
// must equal a fresh render, and the rules the CRD carries are the rules the operator's gate runs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { REPO_ROOT } from '../harness/procs.js';
import { renderCrdYaml, renderBackupCrdYaml, CRD_FILE, BACKUP_CRD_FILE } from '../../operator/tools/render-crds.js';
import {
  RULES,
  BACKUP_RULES,
  MESSAGES,
  backupCrd,
  backupProblemsOf,
  backupSpecWithDefaults,
  crd,
  withDefaults,
  problemsOf,
  parseQuantity,
  quotaFor,
  DEFAULTS,
} from '../../operator/api/index.js';
import { scheduleProblem } from '../../operator/backup/index.js';

describe('CRD rendering', () => {
  it('the committed YAML equals a fresh render (re-render: node dist/operator/tools/render-crds.js)', () => {
    assert.equal(readFileSync(join(REPO_ROOT, CRD_FILE), 'utf8'), renderCrdYaml());
  });

  it('parses back to the CRD object and carries every rule once', () => {
    const parsed = yaml.load(renderCrdYaml());
    assert.deepEqual(parsed, crd());
    const text = JSON.stringify(parsed);
    for (const r of RULES) assert.ok(text.includes(JSON.stringify(r.cel).slice(1, -1)), `rule missing: ${r.cel}`);
  });

  it('the EtcdBackup CRD file equals a fresh render and carries its rules', () => {
    assert.equal(readFileSync(join(REPO_ROOT, BACKUP_CRD_FILE), 'utf8'), renderBackupCrdYaml());
    const parsed = yaml.load(renderBackupCrdYaml());
    assert.deepEqual(parsed, backupCrd());
    const text = JSON.stringify(parsed);
    for (const r of BACKUP_RULES) assert.ok(text.includes(JSON.stringify(r.cel).slice(1, -1)), `rule missing: ${r.cel}`);
    assert.match(text, /"shortNames":\["eb"\]/);
  });
});

describe('schedules: the CRD pattern and croner agree', () => {
  const good = ['* * * * *', '*/5 * * * *', '0 3 * * *', '0 3 * * MON-FRI', '0 0 L * *', '0 0 * * 5#2', '30 2 1,15 jan,jul *', '@daily', '@hourly', '@weekly', '@monthly', '@yearly', '0 0 * * 7', '0  0 1-31/2 * *', '15 */6 * * sun'];
  const bad = ['', 'every minute', '* * * *', '* * * * * *', '61 * * * *', '* 24 * * *', '* * 0 * *', '* * * 13 *', '* * * * 8', '@reboot', '@every 5m', '*/ * * * *', '1-2-3 * * * *'];
  for (const sched of good) {
    it(`accepts "${sched}" (and croner parses it)`, () => {
      assert.deepEqual(problemsOf(withDefaults({ backup: { schedule: sched, destination: { s3: { bucket: 'bkp' } } } })), []);
      assert.equal(scheduleProblem({ schedule: sched }), undefined);
    });
  }
  for (const sched of bad) {
    it(`refuses "${sched}" with the schedule message`, () => {
      assert.ok(problemsOf(withDefaults({ backup: { schedule: sched, destination: { s3: { bucket: 'bkp' } } } })).includes(MESSAGES.schedule));
      assert.ok(problemsOf(withDefaults({ defrag: { schedule: sched } })).includes(MESSAGES.schedule));
    });
  }
  it('refuses a time zone that is no zone name, a bad bucket, endpoint or maxAge', () => {
    const p = problemsOf(withDefaults({ backup: { schedule: '@daily', timeZone: 'Mars Base', destination: { s3: { bucket: 'B!', endpoint: 'ftp://x' } }, retention: { maxAge: 'forever' } } }));
    for (const m of [MESSAGES.timeZone, MESSAGES.bucket, MESSAGES.endpoint, MESSAGES.maxAge]) assert.ok(p.includes(m), m);
  });
});

describe('new spec fields: defaults, quota, bootstrap, EtcdBackup', () => {
  it('backup, compaction and s3 defaults; retention default keepLast 7', () => {
    const s = withDefaults({ backup: { schedule: '@daily', destination: { s3: { bucket: 'b', credentialsSecretRef: { name: 'creds' } } } } });
    assert.deepEqual(s.compaction, { mode: 'periodic', retention: '5m' });
    assert.deepEqual(s.backup?.retention, { keepLast: 7 });
    assert.equal(s.backup?.suspend, false);
    assert.deepEqual(s.backup?.destination.s3, { bucket: 'b', region: 'us-east-1', forcePathStyle: false, credentialsSecretRef: { name: 'creds', accessKeyIdKey: 'AWS_ACCESS_KEY_ID', secretAccessKeyKey: 'AWS_SECRET_ACCESS_KEY' } });
    assert.deepEqual(withDefaults(s), s, 'idempotent');
    assert.deepEqual(withDefaults({ backup: { schedule: '@daily', destination: { s3: { bucket: 'b' } }, retention: { maxAge: '720h' } } }).backup?.retention, { maxAge: '720h' });
  });

  it('quotaFor: the set value, else 75% of the data volume capped at 8 GiB', () => {
    assert.equal(quotaFor(withDefaults({ quotaBackendBytes: 123 })), 123);
    assert.equal(quotaFor(withDefaults({ storage: { data: { size: '1Gi' } } })), 0.75 * 2 ** 30);
    assert.equal(quotaFor(withDefaults({ storage: { data: { size: '100Gi' } } })), 8 * 2 ** 30);
  });

  it('compaction retention must suit the mode', () => {
    assert.deepEqual(problemsOf(withDefaults({ compaction: { mode: 'revision', retention: '1000' } })), []);
    assert.ok(problemsOf(withDefaults({ compaction: { mode: 'revision', retention: '5m' } })).includes(MESSAGES.compactionRetention));
  });

  it('bootstrap: exactly one source, immutable once set (and not added later)', () => {
    const ref = { bootstrap: { fromBackup: { backupRef: { name: 'b1' } } } };
    assert.deepEqual(problemsOf(withDefaults(ref)), []);
    assert.ok(problemsOf(withDefaults({ bootstrap: { fromBackup: {} } })).includes(MESSAGES.fromBackupOne));
    const both = { bootstrap: { fromBackup: { backupRef: { name: 'b1' }, s3: { bucket: 'bkp', key: 'k' } } } };
    assert.ok(problemsOf(withDefaults(both)).includes(MESSAGES.fromBackupOne));
    assert.ok(problemsOf(withDefaults({ bootstrap: { fromBackup: { backupRef: { name: 'b2' } } } }), withDefaults(ref)).includes(MESSAGES.bootstrapImmutable));
    assert.ok(problemsOf(withDefaults({}), withDefaults(ref)).includes(MESSAGES.bootstrapImmutable));
    assert.ok(problemsOf(withDefaults(ref), withDefaults({})).includes(MESSAGES.bootstrapImmutable));
    assert.deepEqual(problemsOf(withDefaults(ref), withDefaults(ref)), []);
  });

  it('EtcdBackup: clusterName immutable, destination checked', () => {
    assert.deepEqual(backupProblemsOf(backupSpecWithDefaults({ clusterName: 'a' })), []);
    assert.ok(backupProblemsOf(backupSpecWithDefaults({ clusterName: 'b' }), backupSpecWithDefaults({ clusterName: 'a' })).includes(MESSAGES.clusterNameImmutable));
    assert.ok(backupProblemsOf(backupSpecWithDefaults({ clusterName: 'a', destination: { s3: { bucket: 'X' } } })).includes(MESSAGES.bucket));
  });
});

describe('defaults and the TypeScript gate', () => {
  it('an empty spec gets the documented defaults and is valid', () => {
    const s = withDefaults({});
    assert.equal(s.replicas, DEFAULTS.replicas);
    assert.equal(s.storage.reclaimPolicy, 'Retain');
    assert.equal(s.paused, false);
    assert.deepEqual(s.extraArgs, []);
    assert.deepEqual(problemsOf(s), []);
  });

  it('withDefaults is idempotent and keeps what is set', () => {
    const raw = { replicas: 5, image: 'x/y:z', storage: { data: { size: '3Gi', storageClassName: 'a' } }, server: { snapshotCount: 5 } };
    const once = withDefaults(raw);
    assert.deepEqual(withDefaults(once), once);
    assert.equal(once.storage.data.storageClassName, 'a');
    assert.equal(once.server.snapshotCount, 5);
    assert.equal(once.server.electionTimeoutMs, DEFAULTS.server.electionTimeoutMs);
  });

  it('quantities: binary and decimal suffixes, fractions', () => {
    assert.equal(parseQuantity('1Gi'), 2 ** 30);
    assert.equal(parseQuantity('1.5Gi'), 1.5 * 2 ** 30);
    assert.equal(parseQuantity('500M'), 5e8);
    assert.equal(parseQuantity('2048Mi'), parseQuantity('2Gi'));
    assert.throws(() => parseQuantity('1 Gi'));
    assert.throws(() => parseQuantity('-1Gi'));
  });
});
