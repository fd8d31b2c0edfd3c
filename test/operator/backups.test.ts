// The backup runner's pure decisions (operator/controller/backup-plan.ts): when the schedule creates
// an EtcdBackup (one per due time; missed runs are one backup, not a burst; suspend; time zones), the
// names it gives, which EtcdBackup records retention deletes, and which members a snapshot may come
// from. The runner's I/O is proven on localkube (test/operator/e2e/backup.test.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { candidatesOf, recordsToDelete, retentionPolicy, scheduleDecision, scheduledBackupName, setCondition } from '../../operator/controller/index.js';
import { API_VERSION, type BackupPhase, type Condition, type EtcdBackup } from '../../operator/api/index.js';
import { plan, type Observed } from '../../operator/plan/index.js';
import { World } from './world.js';

const at = (iso: string): Date => new Date(iso);

describe('scheduleDecision', () => {
  const everyMinute = { schedule: '* * * * *', suspend: false };

  it('nothing is due before the first minute after the last run; the next time is reported', () => {
    const d = scheduleDecision(everyMinute, at('2026-12-06T10:00:30Z'), at('2026-12-06T10:00:59Z'));
    assert.equal(d.due, undefined);
    assert.equal(d.next?.toISOString(), '2026-12-06T10:01:00.000Z');
  });

  it('a due minute gives one backup for that minute', () => {
    const d = scheduleDecision(everyMinute, at('2026-12-06T10:00:30Z'), at('2026-12-06T10:01:00.500Z'));
    assert.equal(d.due?.toISOString(), '2026-12-06T10:01:00.000Z');
    assert.equal(d.next?.toISOString(), '2026-12-06T10:02:00.000Z');
  });

  it('runs missed while the operator was down are ONE backup (the latest due time), and then nothing until the next', () => {
    const last = at('2026-12-06T10:00:00Z');
    const now = at('2026-12-06T10:17:20Z');
    const d = scheduleDecision(everyMinute, last, now);
    assert.equal(d.due?.toISOString(), '2026-12-06T10:17:00.000Z');
    const again = scheduleDecision(everyMinute, d.due ?? last, now);
    assert.equal(again.due, undefined, 'recording the due time as the last run ends the burst');
  });

  it('property: after recording each due time, at most one backup per schedule slot, and none twice', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 600_000 }), { minLength: 1, maxLength: 40 }), (steps) => {
        let now = Date.parse('2026-12-06T10:00:05Z');
        let last = new Date(now);
        const dues: number[] = [];
        for (const s of steps) {
          now += s;
          const d = scheduleDecision({ schedule: '*/2 * * * *', suspend: false }, last, new Date(now));
          if (d.due !== undefined) {
            assert.ok(d.due.getTime() <= now && d.due.getTime() > last.getTime());
            dues.push(d.due.getTime());
            last = d.due;
          }
        }
        assert.equal(new Set(dues).size, dues.length);
        for (let i = 1; i < dues.length; i++) assert.ok((dues[i] ?? 0) > (dues[i - 1] ?? 0));
      }),
    );
  });

  it('suspended: nothing due, the next time still reported', () => {
    const d = scheduleDecision({ ...everyMinute, suspend: true }, at('2026-12-06T10:00:00Z'), at('2026-12-06T10:05:00Z'));
    assert.equal(d.due, undefined);
    assert.ok(d.next !== undefined);
  });

  it('time zone: 03:00 Europe/Berlin is 02:00 UTC in winter', () => {
    const d = scheduleDecision({ schedule: '0 3 * * *', timeZone: 'Europe/Berlin', suspend: false }, at('2026-12-06T00:00:00Z'), at('2026-12-06T02:00:01Z'));
    assert.equal(d.due?.toISOString(), '2026-12-06T02:00:00.000Z');
  });

  it('a zone croner does not know, or a date that never comes, is a problem with the reason', () => {
    const tz = scheduleDecision({ schedule: '@daily', timeZone: 'Mars/Olympus', suspend: false }, at('2026-12-06T00:00:00Z'), at('2026-12-07T00:00:00Z'));
    assert.match(tz.problem ?? '', /not an IANA time zone/);
    assert.equal(tz.due, undefined);
  });
});

describe('scheduledBackupName', () => {
  it('one DNS-safe name per cluster and due time', () => {
    const n = scheduledBackupName('main', at('2026-12-06T19:30:00.000Z'));
    assert.equal(n, 'main-20261206t193000z');
    assert.match(n, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    assert.equal(scheduledBackupName('main', at('2026-12-06T19:30:00.000Z')), n);
    assert.notEqual(scheduledBackupName('main', at('2026-12-06T19:31:00.000Z')), n);
  });
});

function record(name: string, startIso: string, phase: BackupPhase | undefined): EtcdBackup {
  return {
    apiVersion: API_VERSION,
    kind: 'EtcdBackup',
    metadata: { name, namespace: 'ns', uid: name, generation: 1, creationTimestamp: startIso },
    spec: { clusterName: 'main' },
    ...(phase !== undefined ? { status: { phase, startTime: startIso } } : {}),
  };
}

describe('recordsToDelete', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  const recs = [
    record('f0', '2026-12-06T09:00:00Z', 'Failed'),
    record('s1', '2026-12-06T10:00:00Z', 'Succeeded'),
    record('s2', '2026-12-06T10:30:00Z', 'Succeeded'),
    record('s3', '2026-12-06T11:00:00Z', 'Succeeded'),
    record('f4', '2026-12-06T11:10:00Z', 'Failed'),
    record('s5', '2026-12-06T11:30:00Z', 'Succeeded'),
    record('r6', '2026-12-06T11:50:00Z', 'Running'),
    record('p7', '2026-12-06T11:55:00Z', undefined),
  ];

  it('keepLast 2: the older good ones and the failed ones older than the newest good, oldest first', () => {
    assert.deepEqual(
      recordsToDelete(recs, retentionPolicy({ keepLast: 2 }), now).map((b) => b.metadata.name),
      ['f0', 's1', 's2', 'f4'],
    );
  });

  it('Running and Pending records are never deleted', () => {
    const gone = recordsToDelete(recs, retentionPolicy({ keepLast: 1 }), now).map((b) => b.metadata.name);
    assert.ok(!gone.includes('r6') && !gone.includes('p7'));
  });

  it('maxAge older than every backup still keeps the newest good one', () => {
    const gone = recordsToDelete(recs, retentionPolicy({ maxAge: '1m' }), now).map((b) => b.metadata.name);
    assert.ok(!gone.includes('s5'));
    assert.ok(gone.includes('s3'));
  });

  it('the default policy (keepLast 7) keeps the five good ones and deletes only the failed ones older than the newest good', () => {
    assert.deepEqual(recordsToDelete(recs, retentionPolicy({ keepLast: 7 }), now), recs.filter((r) => r.metadata.name.startsWith('f')));
  });
});

describe('candidatesOf', () => {
  it('maps members to their pod IPs with role and health; a member without a pod IP is left out', () => {
    const obs = {
      pods: [
        { name: 'main-0', ordinal: 0, ip: '10.0.0.10', deleting: false },
        { name: 'main-1', ordinal: 1, ip: '10.0.0.11', deleting: false },
        { name: 'main-2', ordinal: 2, deleting: false },
      ],
      members: [
        { id: 'a', name: 'main-0', peerURL: 'http://main-0.main:2380', learner: false, status: { leader: 'a', raftIndex: 9, raftAppliedIndex: 9, dbSize: 1, revision: 7, errors: [] } },
        { id: 'b', name: 'main-1', peerURL: 'http://main-1.main:2380', learner: true, status: { leader: 'a', raftIndex: 9, raftAppliedIndex: 9, dbSize: 1, revision: 6, errors: [] } },
        { id: 'c', name: 'main-2', peerURL: 'http://main-2.main:2380', learner: false },
      ],
    } as unknown as Pick<Observed, 'pods' | 'members'>;
    assert.deepEqual(candidatesOf(obs), [
      { endpoint: '10.0.0.10:2379', memberId: 'a', leaderId: 'a', isLearner: false, healthy: true, revision: 7 },
      { endpoint: '10.0.0.11:2379', memberId: 'b', leaderId: 'a', isLearner: true, healthy: true, revision: 6 },
    ]);
  });
});

describe('setCondition', () => {
  it('keeps the transition time while the status stays; replaces it on a change', () => {
    const a = setCondition<Condition>([], { type: 'BackupHealthy', status: 'True', reason: 'BackupSucceeded', message: 'x', observedGeneration: 1, lastTransitionTime: 't1' });
    const b = setCondition(a, { type: 'BackupHealthy', status: 'True', reason: 'BackupSucceeded', message: 'y', observedGeneration: 1, lastTransitionTime: 't2' });
    assert.equal(b[0]?.lastTransitionTime, 't1');
    assert.equal(b[0]?.message, 'y');
    const c = setCondition(b, { type: 'BackupHealthy', status: 'False', reason: 'AccessDenied', message: 'z', observedGeneration: 1, lastTransitionTime: 't3' });
    assert.equal(c[0]?.lastTransitionTime, 't3');
    assert.equal(c.length, 1);
  });
});

describe('the cluster planner carries what the backup runner writes', () => {
  it('BackupHealthy and status.backup survive a planner status (one writer each)', () => {
    const w = new World({ replicas: 3 });
    const healthy: Condition = { type: 'BackupHealthy', status: 'False', reason: 'AccessDenied', message: 'denied', observedGeneration: 1, lastTransitionTime: '2026-12-06T10:00:00.000Z' };
    const backup = { lastSuccessfulBackup: { name: 'c-1', uri: 's3://b/k', time: '2026-12-06T09:00:00.000Z', revision: 5, size: 4096 }, lastScheduleTime: '2026-12-06T10:00:00.000Z' };
    w.writeStatus({ ...w.status, conditions: [healthy], backup });
    for (let i = 0; i < 3; i++) {
      const p = plan(w.observe());
      assert.deepEqual(p.status.conditions?.find((c) => c.type === 'BackupHealthy'), healthy);
      assert.deepEqual(p.status.backup, backup);
      assert.ok(p.status.conditions?.some((c) => c.type === 'Available'), 'the planner still writes its own');
      w.writeStatus(p.status);
    }
  });
});
