// Linearizability under faults: concurrent clients do linearizable reads, puts, compare-and-set
// txns and deletes on a few keys of a real cluster (Cairn, or the reference etcd with
// CAIRN_DIFF_TARGET=etcd) whose members run in network namespaces, while a nemesis kills (-9 and
// restart), pauses (SIGSTOP/SIGCONT) and partitions them. At the end everything is healed, the
// members must converge (HashKV), final reads go through every member, and the whole history is
// checked by test/lin/checker.ts: zero violations, and enough ops completed that a broken cluster
// cannot pass vacuously.
//
//   CAIRN_LIN_SECONDS=N   workload duration (default 180: "several minutes" in npm test with setup and the check)
//   CAIRN_LIN_MEMBERS=N   cluster size (default 5)
//   CAIRN_LIN_CLIENTS=N   concurrent clients (default 8)
//   CAIRN_LIN_KEYS=N      keys (default 4)
//   CAIRN_LIN_SEED=N      seed of the clients' and the nemesis' choices (printed; timing still varies)
//   CAIRN_LIN_DUMP=path   write the history as JSON there (always written to a temp file on failure)
//   CAIRN_LIN_SERIALIZABLE_READS=1  serializable reads instead of linearizable ones: the test must then
//                         FAIL (stale reads from cut-off members); a check of the test itself
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createNet } from '../harness/netns.js';
import { targetKind } from '../harness/procs.js';
import { envInt } from '../diff/normalize.js';
import { checkKvHistory, resolveWithHistory, summarize } from './checker.js';
import { NetCluster } from './members.js';
import { finalReads, historyJson, readHistory, runWorkload } from './workload.js';

const kind = targetKind();
const SECONDS = envInt('CAIRN_LIN_SECONDS', 180);
const MEMBERS = envInt('CAIRN_LIN_MEMBERS', 5);
const CLIENTS = envInt('CAIRN_LIN_CLIENTS', 8);
const KEYS = envInt('CAIRN_LIN_KEYS', 4);
const SEED = envInt('CAIRN_LIN_SEED', Date.now() % 0x7fffffff);
const SERIALIZABLE_READS = process.env['CAIRN_LIN_SERIALIZABLE_READS'] === '1';
const OP_TIMEOUT_MS = 3_000;
const CHECK_TIMEOUT_MS = 120_000;
/** Each member, after everything is healed and revived: ready, and all converged, within this. */
const RECOVER_MS = 90_000;

test(
  `linearizable under kill -9, SIGSTOP and partitions (${kind}, ${MEMBERS} members, ${CLIENTS} clients, ${KEYS} keys, ${SECONDS} s)`,
  { timeout: (SECONDS + 420) * 1000 },
  async (t) => {
    const net = await createNet({ size: MEMBERS });
    t.diagnostic(`target ${kind}; seed ${SEED} (replay the choices with CAIRN_LIN_SEED=${SEED}); ${net.description}`);
    if (net.mode === 'proxy') console.log(`NOTE: ${net.description}`);
    const cluster = new NetCluster(kind, net, { size: MEMBERS, heartbeatMs: 100, electionMs: 1000 });
    let dump = process.env['CAIRN_LIN_DUMP'];
    let history = '';
    try {
      await cluster.boot();
      const prefix = 'lin/';
      const w = await runWorkload(cluster, net, { seed: SEED, seconds: SECONDS, clients: CLIENTS, keys: KEYS, opTimeoutMs: OP_TIMEOUT_MS, prefix, nemesis: true, serializableReads: SERIALIZABLE_READS });
      const s = w.stats;
      history = historyJson(w.ops);
      t.diagnostic(`nemesis (${w.nemesisLog.length} events): ${w.nemesisLog.join('; ')}`);
      t.diagnostic(
        `ops: ${s.okReads} reads, ${s.okWrites} writes ok (CAS ${s.casSucceeded} succeeded, ${s.casFailed} failed); ` +
          `${s.unknownWrites} writes with unknown outcome, ${s.definiteFailures} not sent, ${s.failedReads} failed reads; ` +
          `ok per 10 s: ${s.okPerWindow.map((x) => String(x ?? 0)).join(' ')}`,
      );
      t.diagnostic(`errors: ${[...s.errors].sort((a, b) => b[1] - a[1]).map(([e, c]) => `${c}× ${e}`).join('; ')}`);

      // Members must not have died by themselves (only the nemesis kills, with SIGKILL).
      const crashes = cluster.members.flatMap((m) => m.logs.filter((l) => l.includes('[exited:') && !l.includes('signal SIGKILL')).map((l) => `${m.name} ${l}`));
      assert.deepEqual(crashes, [], `members exited by themselves:\n${crashes.join('\n')}`);

      // Heal, revive, converge; then read every key through every member.
      await net.heal();
      await cluster.reviveAll(RECOVER_MS);
      const rev = await cluster.waitConverged(RECOVER_MS);
      const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}k${i}`);
      const fin = await finalReads(cluster, keys, 1000, 10_000);
      assert.deepEqual(fin.failures, [], 'final linearizable reads after healing');
      const ops = [...w.ops, ...fin.ops];
      // The store's own history (a Watch from revision 1) resolves the writes of unknown outcome.
      const events = await readHistory(cluster, 0, prefix);
      history = historyJson(ops, events);
      if (dump !== undefined && dump !== '') writeFileSync(dump, history);
      const res = resolveWithHistory(ops, events);
      t.diagnostic(
        `converged at revision ${rev}; ${ops.length} ops recorded; history: ${events.length} events; ` +
          `unknown writes: ${res.applied} took effect, ${res.dropped} did not, ${res.unresolved} unresolved`,
      );
      if (res.problems.length > 0) {
        const rawReport = checkKvHistory(ops, { timeoutMs: CHECK_TIMEOUT_MS });
        assert.fail(
          `the store history (Watch from revision 1) disagrees with the acknowledged ops:\n  ${res.problems.slice(0, 30).join('\n  ')}\n` +
            `linearizability without resolving unknown writes: ${summarize(rawReport)}\n${rawReport.failure ?? ''}`,
        );
      }

      // Enough happened: reads and writes succeeded throughout, CAS both ways.
      const minOps = Math.max(100, SECONDS);
      assert.ok(s.okReads >= minOps, `only ${s.okReads} reads succeeded (want >= ${minOps})`);
      assert.ok(s.okWrites >= minOps, `only ${s.okWrites} writes succeeded (want >= ${minOps})`);
      assert.ok(s.casSucceeded >= 10 && s.casFailed >= 10, `CAS outcomes: ${s.casSucceeded} succeeded, ${s.casFailed} failed (want >= 10 each)`);
      const windows = Math.floor(SECONDS / 10);
      const idle = Array.from({ length: windows }, (_, i) => i).filter((i) => (s.okPerWindow[i] ?? 0) === 0);
      assert.ok(idle.length <= windows / 4, `no op succeeded in ${idle.length} of ${windows} 10 s windows (${idle.map((i) => `${i * 10}s`).join(', ')})`);
      assert.ok(w.nemesisLog.length >= Math.min(10, SECONDS / 10), `the nemesis did only ${w.nemesisLog.length} things`);

      const t0 = performance.now();
      const report = checkKvHistory(res.ops, { timeoutMs: CHECK_TIMEOUT_MS });
      for (const line of summarize(report).split('\n')) t.diagnostic(line);
      t.diagnostic(`checked in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      if (report.result !== 'ok') {
        // Without the resolution (every unknown write open-ended): a violation here does not depend on the store's history.
        const rawReport = checkKvHistory(ops, { timeoutMs: CHECK_TIMEOUT_MS });
        assert.fail(
          `with unknown writes resolved from the store history: ${summarize(report)}\n${report.failure ?? ''}\n` +
            `without the resolution: ${summarize(rawReport)}\n${rawReport.failure ?? ''}`,
        );
      }
    } catch (e) {
      if (history !== '') {
        dump = dump !== undefined && dump !== '' ? dump : join(tmpdir(), `cairn-lin-history-${process.pid}.json`);
        writeFileSync(dump, history);
        console.error(`history written to ${dump} (re-check: node dist/test/lin/check-file.js ${dump})`);
      }
      console.error(`linearizability test failed (seed ${SEED}); member logs:\n${cluster.logTails(40)}`);
      throw e;
    } finally {
      await cluster.close();
      await net.cleanup();
    }
  },
);
