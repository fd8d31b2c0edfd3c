// The lessor's expiry bookkeeping, against a naive model: random grants, renewals, revokes and clock
// advances; `expired` must hand out exactly the leases whose expiry passed (each once per retry
// interval), and never one that was renewed in time or revoked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Lessor } from '../../server/lease/index.js';

type Cmd =
  | { t: 'grant'; id: number; ttl: number }
  | { t: 'renew'; id: number }
  | { t: 'revoke'; id: number }
  | { t: 'advance'; ms: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ t: fc.constant('grant' as const), id: fc.integer({ min: 1, max: 30 }), ttl: fc.integer({ min: 1, max: 10 }) }),
  fc.record({ t: fc.constant('renew' as const), id: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ t: fc.constant('revoke' as const), id: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 4000 }) }),
);

test('expired() returns exactly the leases past their expiry, soonest first within a check, and retries after 3 s', () => {
  fc.assert(
    fc.property(fc.array(cmd, { maxLength: 200 }), (cmds) => {
      const l = new Lessor();
      const model = new Map<bigint, { ttl: number; expiry: number; retryAt: number }>();
      let now = 1000;
      for (const c of cmds) {
        const id = BigInt('id' in c ? c.id : 0);
        if (c.t === 'grant') {
          if (model.has(id)) continue;
          l.granted(id, c.ttl, now);
          model.set(id, { ttl: c.ttl, expiry: now + c.ttl * 1000, retryAt: 0 });
        } else if (c.t === 'renew') {
          const m = model.get(id);
          const got = l.renew(id, now);
          if (m === undefined || m.expiry <= now) assert.equal(got, undefined);
          else {
            assert.equal(got, m.ttl);
            m.expiry = now + m.ttl * 1000;
          }
        } else if (c.t === 'revoke') {
          l.revoked(id);
          model.delete(id);
        } else {
          now += c.ms;
          const want = [...model.entries()].filter(([, m]) => m.expiry <= now && m.retryAt <= now).map(([k]) => k);
          const got = l.expired(now, 1000);
          assert.deepEqual([...got].sort(), want.sort(), `at ${now}`);
          for (const k of got) (model.get(k) as { retryAt: number }).retryAt = now + 3000;
        }
        const next = l.nextCheckMs();
        const soonest = Math.min(...[...model.values()].map((m) => Math.max(m.expiry, m.retryAt)));
        if (model.size > 0) assert.ok(next !== undefined && next <= soonest, `next check ${String(next)} <= ${soonest}`);
      }
    }),
    { numRuns: 300 },
  );
});

test('a renewed lease is not expired at its old time; all() lists soonest expiry first', () => {
  const l = new Lessor();
  l.granted(1n, 5, 0);
  l.granted(2n, 2, 0);
  assert.equal(l.renew(1n, 4000), 5);
  assert.deepEqual(l.expired(5000, 10), [2n]);
  l.revoked(2n);
  assert.deepEqual(l.expired(8999, 10), []);
  assert.deepEqual(l.expired(9000, 10), [1n]);
  l.granted(3n, 100, 0);
  l.granted(4n, 1, 7500);
  assert.deepEqual(l.all(9000).map((x) => x.id), [4n, 1n, 3n]);
  assert.equal(l.get(3n, 1500)?.remainingMs, 98500);
});
