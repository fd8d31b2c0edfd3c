// Drives the real etcdctl (v3 API) through one script against a fresh reference etcd and a
// fresh target server, and requires the same stdout, exit code and error lines for every
// step (after normalising cluster/member ids, raft_term and timings). Some steps also pin the
// exact output, so the script is known to test something even when both sides agree.
//
// CAIRN_DIFF_TARGET=etcd runs it etcd-vs-etcd (validates the script itself);
// CAIRN_ETCDCTL_DUMP=1 prints the reference's output of every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runEtcdctl, startEtcd, startTarget, targetKind } from '../harness/procs.js';
import type { ServerProc } from '../harness/procs.js';
import { normalizeStderr } from './normalize.js';

interface Step {
  args: string[];
  stdin?: string;
  /** Exact normalised stdout required from both servers. */
  stdout?: string;
  /** Required exit code (from both). */
  exit?: number;
  /** A line that stderr must contain (from both). */
  errorLine?: string;
}

interface Outcome {
  exit: number | null;
  stdout: string;
  /** Non-JSON stderr lines plus msg/error of etcdctl's JSON log lines. */
  stderr: string;
}

const TARGET = targetKind();

const COMPACTED = 'Error: etcdserver: mvcc: required revision has been compacted';
const FUTURE = 'Error: etcdserver: mvcc: required revision is a future revision';

/** Revisions: a fresh store is at 1; each put/del/txn below that writes bumps it by one. */
const SCRIPT: readonly Step[] = [
  { args: ['put', 'foo', 'bar'], stdout: 'OK\n', exit: 0 }, // rev 2
  { args: ['put', 'foo1', 'bar1'], stdout: 'OK\n' }, // 3
  { args: ['put', 'foo2', 'bar2'], stdout: 'OK\n' }, // 4
  { args: ['put', 'fop', 'x'], stdout: 'OK\n' }, // 5
  { args: ['put', 'zoo', 'z'], stdout: 'OK\n' }, // 6
  { args: ['put', 'foo1', 'bar11', '--prev-kv'], stdout: 'OK\nfoo1\nbar1\n' }, // 7
  { args: ['put', 'a b', 'c d'] }, // 8
  { args: ['put', 'foo', 'bar'] }, // 9: foo version 2
  { args: ['get', 'foo'], stdout: 'foo\nbar\n', exit: 0 },
  {
    args: ['get', 'foo', '-w', 'json'],
    stdout:
      '{"header":{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":9,"raft_term":<nonzero>},' +
      '"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":9,"version":2,"value":"YmFy"}],"count":1}\n',
  },
  { args: ['get', 'foo', '--prefix'], stdout: 'foo\nbar\nfoo1\nbar11\nfoo2\nbar2\n' },
  { args: ['get', 'foo', '--prefix', '-w', 'json'] },
  { args: ['get', 'foo', '--prefix', '--limit=2', '-w', 'json'] },
  { args: ['get', 'foo', '--prefix', '--limit', '1', '-w', 'fields'] },
  { args: ['get', 'f', '--prefix', '--sort-by=KEY', '--order=DESCEND'], stdout: 'fop\nx\nfoo2\nbar2\nfoo1\nbar11\nfoo\nbar\n' },
  { args: ['get', 'f', '--prefix', '--sort-by=VERSION', '--order=DESCEND'] },
  { args: ['get', 'f', '--prefix', '--sort-by=CREATE', '--order=ASCEND'] },
  { args: ['get', 'f', '--prefix', '--sort-by=MODIFY', '--order=DESCEND', '-w', 'json'] },
  { args: ['get', 'f', '--prefix', '--sort-by=VALUE', '--order=ASCEND'] },
  { args: ['get', 'f', '--prefix', '--sort-by=VALUE', '--order=DESCEND', '--limit=2'] },
  { args: ['get', '', '--prefix', '--keys-only'], stdout: 'a b\n\nfoo\n\nfoo1\n\nfoo2\n\nfop\n\nzoo\n\n' },
  // etcdctl 3.4 has no --count-only (3.5+); count is checked through -w json everywhere.
  { args: ['get', 'foo', '--prefix', '--keys-only', '-w', 'json'] },
  { args: ['get', 'foo', '--from-key'] },
  { args: ['get', 'foo1', '--from-key', '--limit', '2', '-w', 'json'] },
  { args: ['get', 'foo', 'foo2'], stdout: 'foo\nbar\nfoo1\nbar11\n' },
  { args: ['get', 'foo', '--rev=2', '-w', 'json'] },
  { args: ['get', 'foo1', '--rev=3'], stdout: 'foo1\nbar1\n' },
  { args: ['get', 'foo', '--prefix', '--print-value-only'], stdout: 'bar\nbar11\nbar2\n' },
  { args: ['get', 'foo', '--prefix', '--consistency=s', '-w', 'json'] },
  { args: ['get', 'a b', '--hex'] },
  { args: ['get', 'nothing', '-w', 'json'] },
  { args: ['get', 'nothing'], stdout: '', exit: 0 },
  { args: ['get', 'foo', '--rev=99'], exit: 1, errorLine: FUTURE },
  { args: ['put', 'x', 'y', '--lease=1234'], exit: 1, errorLine: 'Error: etcdserver: requested lease not found' },
  { args: ['put', 'foo', '--ignore-value'], stdout: 'OK\n' }, // 10
  { args: ['put', 'absent', '--ignore-value'], exit: 1, errorLine: 'Error: etcdserver: key not found' },
  { args: ['put', 'foo', 'v', '--ignore-lease'], stdout: 'OK\n' }, // 11
  { args: ['get', 'foo', '-w', 'json'] },
  // txn -i: the prompts go to stdout; one compare fails → failure branch... here all hold.
  {
    args: ['txn', '-i'],
    stdin: 'mod("foo") > "0"\nvalue("foo1") = "bar11"\nver("foo2") = "1"\n\nput foo3 "x y"\nget foo --prefix\ndel fop\n\nput foo4 z\n\n',
    stdout:
      'compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n\n' +
      'foo\nv\nfoo1\nbar11\nfoo2\nbar2\nfoo3\nx y\n\n1\n',
  }, // 12
  {
    args: ['txn', '-i'],
    stdin: 'create("foo") = "0"\n\nput foo5 never\n\nget foo3\nput foo4 z\n\n',
    stdout: 'compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nFAILURE\n\nfoo3\nx y\n\nOK\n',
  }, // 13
  // (etcdctl 3.4 panics client-side on lease("k") = "0" compares, so none here.)
  { args: ['txn', '-w', 'json'], stdin: 'mod("foo4") = "13"\n\ndel foo3 --prev-kv\nput foo6 w\n\n\n' }, // 14
  { args: ['txn', '-w', 'json'], stdin: 'value("nope") = "x"\n\n\nget foo --prefix --limit=1\nget zoo\n\n' },
  { args: ['txn'], stdin: 'ver("foo") < "1000"\nmod("zoo") != "6"\n\nput foo7 q\n\nput foo8 q\n\n' },
  { args: ['txn', '-w', 'json'], stdin: '\nput foo9 a\nput foo9 b\n\n\n', exit: 1, errorLine: 'Error: etcdserver: duplicate key given in txn request' },
  { args: ['txn', '-w', 'json'], stdin: '\nput foo10 a --lease=55\n\n\n', exit: 1 },
  { args: ['del', 'foo2', '--prev-kv'], stdout: '1\nfoo2\nbar2\n' },
  { args: ['del', 'nonexistent'], stdout: '0\n', exit: 0 },
  { args: ['del', 'foo', '--prefix', '-w', 'json'] },
  { args: ['put', 'b1', '1'] },
  { args: ['put', 'b2', '2'] },
  { args: ['del', 'b', '--from-key', '--prev-kv', '-w', 'json'] },
  { args: ['get', '', '--prefix', '-w', 'json'] },
  { args: ['compaction', '5'], stdout: 'compacted revision 5\n', exit: 0 },
  { args: ['get', 'foo', '--rev=4'], exit: 1, errorLine: COMPACTED },
  { args: ['get', 'foo', '--rev=5'], stdout: 'foo\nbar\n', exit: 0 },
  { args: ['get', 'foo', '--prefix', '--rev=7', '-w', 'json'] },
  { args: ['compaction', '5'], exit: 1, errorLine: COMPACTED },
  { args: ['compaction', '4'], exit: 1, errorLine: COMPACTED },
  { args: ['compaction', '9999'], exit: 1, errorLine: FUTURE },
  { args: ['compaction', '--physical', '12'], stdout: 'compacted revision 12\n' },
  { args: ['get', 'foo', '--rev=11'], exit: 1, errorLine: COMPACTED },
  { args: ['get', '', '--prefix', '--rev=12', '-w', 'json'] },
  { args: ['endpoint', 'health'] },
  { args: ['get', '', '--from-key', '-w', 'json'] },
];

function normalizeStdout(s: string): string {
  return s
    .replace(/"(cluster_id|member_id|raft_term)":(\d+)/g, (_m, k: string, v: string) => `"${k}":${v === '0' ? '0' : '<nonzero>'}`)
    .replace(/"(ClusterID|MemberID|RaftTerm)" : (\d+)/g, (_m, k: string, v: string) => `"${k}" : ${v === '0' ? '0' : '<nonzero>'}`);
}


async function runCtl(server: ServerProc, step: Step): Promise<Outcome> {
  const r = await runEtcdctl([`--endpoints=${server.endpoint}`, '--dial-timeout=5s', '--command-timeout=10s', ...step.args], step.stdin === undefined ? {} : { stdin: step.stdin });
  return { exit: r.exit, stdout: normalizeStdout(r.stdout), stderr: normalizeStderr(r.stderr) };
}

async function runScript(server: ServerProc): Promise<Outcome[]> {
  const outs: Outcome[] = [];
  for (const step of SCRIPT) outs.push(await runCtl(server, step));
  return outs;
}

function describeStep(i: number, step: Step): string {
  const stdin = step.stdin === undefined ? '' : ` <<< ${JSON.stringify(step.stdin)}`;
  return `step #${i}: etcdctl ${step.args.map((a) => JSON.stringify(a)).join(' ')}${stdin}`;
}

/** Problems with one outcome against the step's pinned expectations. */
function pinnedProblems(o: Outcome, step: Step): string[] {
  const p: string[] = [];
  if (step.stdout !== undefined && o.stdout !== step.stdout) p.push(`stdout ${JSON.stringify(o.stdout)} != expected ${JSON.stringify(step.stdout)}`);
  if (step.exit !== undefined && o.exit !== step.exit) p.push(`exit ${String(o.exit)} != expected ${step.exit}`);
  if (step.errorLine !== undefined && !o.stderr.split('\n').includes(step.errorLine)) {
    p.push(`stderr lacks ${JSON.stringify(step.errorLine)}: ${JSON.stringify(o.stderr)}`);
  }
  return p;
}

test(`etcdctl script: reference etcd vs ${TARGET}`, { timeout: 300_000 }, async () => {
  const [ref, tgt] = await Promise.all([startEtcd(), startTarget(TARGET)]);
  let refOut: Outcome[];
  let tgtOut: Outcome[];
  try {
    [refOut, tgtOut] = await Promise.all([runScript(ref), runScript(tgt)]);
  } finally {
    await Promise.all([ref.stop(), tgt.stop()]);
  }
  if (process.env['CAIRN_ETCDCTL_DUMP'] === '1') {
    SCRIPT.forEach((step, i) => {
      const r = refOut[i];
      if (r !== undefined) console.log(`${describeStep(i, step)}\n  exit ${String(r.exit)}\n${r.stdout}${r.stderr === '' ? '' : `stderr: ${r.stderr}\n`}`);
    });
  }
  const problems: string[] = [];
  SCRIPT.forEach((step, i) => {
    const r = refOut[i];
    const t = tgtOut[i];
    if (r === undefined || t === undefined) return;
    const head = describeStep(i, step);
    for (const p of pinnedProblems(r, step)) problems.push(`${head}\n  reference etcd: ${p}`);
    for (const p of pinnedProblems(t, step)) problems.push(`${head}\n  ${TARGET}: ${p}`);
    if (r.exit !== t.exit || r.stdout !== t.stdout || r.stderr !== t.stderr) {
      problems.push(
        `${head}\n  reference: exit ${String(r.exit)} stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}\n` +
          `  ${TARGET.padEnd(9)}: exit ${String(t.exit)} stdout ${JSON.stringify(t.stdout)} stderr ${JSON.stringify(t.stderr)}`,
      );
    }
  });
  if (problems.length > 0) {
    assert.fail(`${problems.length} etcdctl difference(s):\n${problems.join('\n\n')}\n${TARGET} stderr tail:\n${tgt.stderrLines().slice(-10).join('\n')}`);
  }
});
