// Drives the real etcdctl (v3 API) through watches, leases, `lock` and `elect` against a fresh
// reference etcd and a fresh target server side by side. Long-running etcdctl commands (watch,
// lease keep-alive, lock, elect) run as child processes whose stdout is read as it comes.
// Every scenario records a transcript of normalised outputs (cluster/member ids, raft_term and
// lease ids replaced by placeholders); the two transcripts must be equal, and many steps also
// pin the exact output so the scenario is known to test something when both sides agree.
// Timings (lease expiry, lock and leader takeover) are checked on each side on its own.
//
// CAIRN_DIFF_TARGET=etcd runs it etcd-vs-etcd (validates the scenarios themselves);
// CAIRN_ETCDCTL_DUMP=1 prints the reference's transcript.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { etcdctlBin } from '../harness/bins.js';
import { runEtcdctl, startEtcd, startTarget, targetKind } from '../harness/procs.js';
import type { ServerProc } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';
import { normalizeStderr } from './normalize.js';
import { pollUntil, quietWindow } from '../harness/poll.js';

const TARGET = targetKind();
/** Every server gets periodic progress notifications every 200 ms (for watchers that ask for them). */
const SERVER_ARGS = ['--experimental-watch-progress-notify-interval=200ms'];
/** How long a waiting etcdctl process must stay silent to count as "still waiting". */
const SILENCE_MS = 700;
/** Slack on lease expiry: etcd checks for expired leases every 500 ms, then revokes through raft. */
const EXPIRY_TOLERANCE_MS = 1_500;

// ---------------------------------------------------------------------------------------------
// Normalisation

/** Maps lease ids (hex as etcdctl prints them, or decimal in JSON) to <L1>, <L2>, ... in order of appearance. */
class LeaseNames {
  private readonly byHex = new Map<string, string>();
  private readonly hexByName = new Map<string, string>();

  name(hex: string): string {
    const h = hex.toLowerCase().padStart(16, '0');
    let n = this.byHex.get(h);
    if (n === undefined) {
      n = `<L${this.byHex.size + 1}>`;
      this.byHex.set(h, n);
      this.hexByName.set(n, h);
    }
    return n;
  }

  /** etcdctl prints lease ids as %016x; lock and election keys are "<prefix>/%x" (no padding). */
  private hexText(s: string): string {
    return s
      .replace(/\b(mylock|myel)\/([0-9a-f]{1,16})\b/g, (_m, p: string, h: string) => `${p}/${this.name(h)}`)
      .replace(/\b[0-9a-f]{16}\b/g, (h) => this.name(h));
  }

  hexOf(name: string): string | undefined {
    return this.hexByName.get(name);
  }

  normalize(s: string): string {
    let t = s
      .replace(/"(cluster_id|member_id|raft_term)":(\d+)/g, (_m, k: string, v: string) => `"${k}":${v === '0' ? '0' : '<nonzero>'}`)
      .replace(/"(ID|id|lease)":(\d+)/g, (m, k: string, d: string) => (d === '0' ? m : `"${k}":"${this.name(BigInt(d).toString(16))}"`))
      .replace(/"key":"([A-Za-z0-9+/=]*)"/g, (_m, b: string) => `"key":${JSON.stringify(`b64:${this.hexText(Buffer.from(b, 'base64').toString('latin1'))}`)}`);
    t = this.hexText(t);
    return t;
  }
}


// ---------------------------------------------------------------------------------------------
// etcdctl processes

const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of liveChildren) c.kill('SIGKILL');
});

function globalArgs(endpoint: string): string[] {
  return [`--endpoints=${endpoint}`, '--dial-timeout=5s', '--command-timeout=10s'];
}

interface Outcome {
  exit: number | null;
  stdout: string;
  stderr: string;
}

function runCtl(endpoint: string, args: readonly string[], stdin?: string): Promise<Outcome> {
  return runEtcdctl([...globalArgs(endpoint), ...args], stdin === undefined ? {} : { stdin });
}

/** A long-running etcdctl whose output is read while it runs. */
class Bg {
  out = '';
  err = '';
  /** Set once the process has exited and its pipes are drained. */
  exit: { code: number | null; signal: string | null } | undefined;
  /** Date.now() of the first stdout byte. */
  firstOutputAt: number | undefined;
  private readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly label: string,
    endpoint: string,
    args: readonly string[],
    interactive = false,
  ) {
    const child = spawn(etcdctlBin(), [...globalArgs(endpoint), ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      stdio: [interactive ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    liveChildren.add(child);
    child.stdin?.on('error', () => undefined);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.firstOutputAt ??= Date.now();
      this.out += d;
      this.poke();
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.err += d;
      this.poke();
    });
    child.on('error', (e) => {
      this.err += `spawn error: ${e.message}\n`;
      this.exit ??= { code: null, signal: null };
      this.poke();
    });
    child.on('close', (code, signal) => {
      liveChildren.delete(child);
      this.exit = { code, signal };
      this.poke();
    });
  }

  private poke(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Resolves once pred() holds (checked on every output and at exit); rejects after timeoutMs. */
  waitFor(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((res, rej) => {
      const check = (): boolean => {
        if (pred()) {
          done();
          res();
          return true;
        }
        if (this.exit !== undefined) {
          done();
          rej(new Error(`${this.label}: exited (${JSON.stringify(this.exit)}) before ${what}; stdout ${JSON.stringify(this.out)} stderr ${JSON.stringify(this.err)}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        rej(new Error(`${this.label}: no ${what} within ${timeoutMs} ms; stdout ${JSON.stringify(this.out)} stderr ${JSON.stringify(this.err)}`));
      }, timeoutMs);
      const listener = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
      check();
    });
  }

  /** Waits until stdout is exactly `expected` (fails fast once it is no longer a prefix of it). */
  async waitOut(expected: string, timeoutMs = 10_000): Promise<void> {
    await this.waitFor(`stdout ${JSON.stringify(expected)}`, () => {
      if (this.out === expected) return true;
      if (!expected.startsWith(this.out)) throw new Error(`${this.label}: stdout ${JSON.stringify(this.out)} is not a prefix of ${JSON.stringify(expected)}`);
      return false;
    }, timeoutMs);
  }

  async waitExit(timeoutMs = 10_000): Promise<{ code: number | null; signal: string | null }> {
    await this.waitFor('exit', () => this.exit !== undefined, timeoutMs).catch((e: unknown) => {
      if (this.exit === undefined) throw e;
    });
    if (this.exit === undefined) throw new Error(`${this.label}: still running`);
    return this.exit;
  }

  send(text: string): void {
    this.child.stdin?.write(text);
  }

  kill(sig: NodeJS.Signals): void {
    if (this.exit === undefined) this.child.kill(sig);
  }
}



// ---------------------------------------------------------------------------------------------
// One side (server) of a scenario

interface Entry {
  label: string;
  text: string;
}

interface StepPins {
  stdin?: string;
  /** Exact normalised stdout. */
  stdout?: string;
  exit?: number;
  /** A line stderr must contain. */
  errorLine?: string;
}

class Side {
  readonly entries: Entry[] = [];
  readonly problems: string[] = [];
  readonly names = new LeaseNames();
  private readonly bgs: Bg[] = [];

  constructor(
    readonly who: string,
    readonly srv: ServerProc,
    readonly client: EtcdClient,
  ) {}

  norm(s: string): string {
    return this.names.normalize(s);
  }

  record(label: string, text: string): void {
    this.entries.push({ label, text });
  }

  /** Records a normalised text and requires it to equal `expected`. */
  expect(label: string, actual: string, expected: string): void {
    this.record(label, actual);
    if (actual !== expected) this.problems.push(`${label}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
  }

  check(ok: boolean, msg: string): void {
    if (!ok) this.problems.push(msg);
  }

  /** Runs one etcdctl command to completion; records and checks its normalised outcome. */
  async step(args: readonly string[], pins: StepPins = {}): Promise<Outcome> {
    const raw = await runCtl(this.srv.endpoint, args, pins.stdin);
    const o: Outcome = { exit: raw.exit, stdout: this.norm(raw.stdout), stderr: normalizeStderr(this.norm(raw.stderr)) };
    const label = this.norm(`etcdctl ${args.map((a) => JSON.stringify(a)).join(' ')}${pins.stdin === undefined ? '' : ` <<< ${JSON.stringify(pins.stdin)}`}`);
    this.record(label, `exit ${String(o.exit)}\nstdout ${JSON.stringify(o.stdout)}\nstderr ${JSON.stringify(o.stderr)}`);
    if (pins.stdout !== undefined && o.stdout !== pins.stdout) this.problems.push(`${label}: stdout ${JSON.stringify(o.stdout)}, expected ${JSON.stringify(pins.stdout)}`);
    if (pins.exit !== undefined && o.exit !== pins.exit) this.problems.push(`${label}: exit ${String(o.exit)}, expected ${pins.exit}`);
    if (pins.errorLine !== undefined && !o.stderr.split('\n').includes(pins.errorLine)) {
      this.problems.push(`${label}: stderr lacks ${JSON.stringify(pins.errorLine)}: ${JSON.stringify(o.stderr)}`);
    }
    return o;
  }

  bg(label: string, args: readonly string[], interactive = false): Bg {
    const b = new Bg(`${this.who} ${label}`, this.srv.endpoint, args, interactive);
    this.bgs.push(b);
    return b;
  }

  /** Records a background process's stdout (and stderr unless empty) under its label. */
  recordBg(label: string, b: Bg, expectedStdout?: string): void {
    const out = this.norm(b.out);
    if (expectedStdout === undefined) this.record(`${label} stdout`, out);
    else this.expect(`${label} stdout`, out, expectedStdout);
    const err = normalizeStderr(this.norm(b.err));
    if (err !== '') this.record(`${label} stderr`, err);
  }

  killAll(): void {
    for (const b of this.bgs) b.kill('SIGKILL');
  }

  /** Number of keys under a prefix, read directly over gRPC. */
  async countPrefix(prefix: string): Promise<number> {
    const key = Buffer.from(prefix);
    const end = Buffer.from(prefix);
    end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
    const r = await this.client.range({ key, range_end: end, count_only: true });
    if (!r.ok) throw new Error(`range ${prefix}: ${r.details}`);
    return Number(r.value['count']);
  }

  /** TimeToLive of a lease (hex id): remaining TTL in s, -1 when gone. */
  async leaseRemaining(hex: string): Promise<{ ttl: number; granted: number }> {
    const r = await this.client.unary('Lease', 'LeaseTimeToLive', { ID: BigInt(`0x${hex}`).toString() });
    if (!r.ok) throw new Error(`LeaseTimeToLive ${hex}: ${r.details}`);
    return { ttl: Number(r.value['TTL']), granted: Number(r.value['grantedTTL']) };
  }
}

type Scenario = (s: Side) => Promise<void>;

/** Runs a scenario on a fresh reference etcd and a fresh target side by side and compares. */
async function runBoth(title: string, scenario: Scenario): Promise<void> {
  const [ref, tgt] = await Promise.all([startEtcd({ extraArgs: SERVER_ARGS }), startTarget(TARGET, { extraArgs: SERVER_ARGS })]);
  const sides = [new Side('reference etcd', ref, new EtcdClient(ref.endpoint)), new Side(TARGET, tgt, new EtcdClient(tgt.endpoint))] as const;
  try {
    await Promise.all(
      sides.map(async (s) => {
        try {
          await scenario(s);
        } catch (e) {
          s.problems.push(`scenario aborted: ${e instanceof Error ? e.message : String(e)}`);
        } finally {
          s.killAll();
        }
      }),
    );
  } finally {
    for (const s of sides) s.client.close();
    await Promise.all([ref.stop(), tgt.stop()]);
  }
  const [r, t] = sides;
  if (process.env['CAIRN_ETCDCTL_DUMP'] === '1') {
    console.log(`---- ${title}: reference transcript`);
    for (const e of r.entries) console.log(`${e.label}\n${e.text}\n`);
  }
  const problems: string[] = [];
  for (const s of sides) for (const p of s.problems) problems.push(`${s.who}: ${p}`);
  const n = Math.max(r.entries.length, t.entries.length);
  for (let i = 0; i < n; i++) {
    const a = r.entries[i];
    const b = t.entries[i];
    if (a === undefined || b === undefined || a.label !== b.label || a.text !== b.text) {
      problems.push(
        `transcript entry #${i} differs:\n  reference: ${a === undefined ? '(none)' : `${a.label}\n    ${JSON.stringify(a.text)}`}\n` +
          `  ${TARGET.padEnd(9)}: ${b === undefined ? '(none)' : `${b.label}\n    ${JSON.stringify(b.text)}`}`,
      );
      if (a === undefined || b === undefined || a.label !== b.label) break; // the scenarios diverged
    }
  }
  if (problems.length > 0) {
    assert.fail(`${title}: ${problems.length} problem(s):\n${problems.join('\n\n')}\n${TARGET} stderr tail:\n${tgt.stderrLines().slice(-10).join('\n')}`);
  }
}

/** The lease id (hex) in the first line "<prefix>/<id>" that lock and elect print. */
function keyLeaseId(raw: string, prefix: string): string {
  const m = new RegExp(`^${prefix}/([0-9a-f]{1,16})\\n`).exec(raw);
  if (m?.[1] === undefined) throw new Error(`no "${prefix}/<lease>" line in ${JSON.stringify(raw)}`);
  return m[1];
}

// ---------------------------------------------------------------------------------------------
// Watch

async function watchScenario(s: Side): Promise<void> {
  // Revisions: fresh store at 1.
  await s.step(['put', 'foo', 'bar'], { stdout: 'OK\n' }); // 2
  await s.step(['put', 'foo1', 'bar1']); // 3
  await s.step(['put', 'zoo', 'z']); // 4
  await s.step(['put', 'foo', 'bar2']); // 5
  await s.step(['del', 'foo1'], { stdout: '1\n' }); // 6
  await s.step(['txn'], { stdin: '\nput foo2 x\nput foo3 y\n\n\n', stdout: 'SUCCESS\n\nOK\n\nOK\n' }); // 7: two events, one revision

  // History (--rev) watchers: all events from their start revision, then live ones.
  const hist = {
    h1: s.bg('watch foo --rev=2', ['watch', 'foo', '--rev=2']),
    h2: s.bg('watch foo --prefix --rev=3 --prev-kv -w json', ['watch', 'foo', '--prefix', '--rev=3', '--prev-kv', '-w', 'json']),
    h3: s.bg("watch --prefix '' --rev=1", ['watch', '--prefix', '', '--rev=1']),
    h4: s.bg('watch foo foo3 --rev=4', ['watch', 'foo', 'foo3', '--rev=4']),
    h5: s.bg('watch foo --prefix --rev=9 -w json', ['watch', 'foo', '--prefix', '--rev=9', '-w', 'json']),
    h6: s.bg('watch foo --rev=5 --prev-kv', ['watch', 'foo', '--rev=5', '--prev-kv']),
  };
  const histExpected = {
    h1: 'PUT\nfoo\nbar\nPUT\nfoo\nbar2\n',
    h3: 'PUT\nfoo\nbar\nPUT\nfoo1\nbar1\nPUT\nzoo\nz\nPUT\nfoo\nbar2\nDELETE\nfoo1\n\nPUT\nfoo2\nx\nPUT\nfoo3\ny\n',
    h4: 'PUT\nfoo\nbar2\nDELETE\nfoo1\n\nPUT\nfoo2\nx\n',
    h6: 'PUT\nfoo\nbar\nfoo\nbar2\n',
  };
  const lines = (b: Bg): number => b.out.split('\n').filter((l) => l !== '').length;
  await Promise.all([
    hist.h1.waitOut(histExpected.h1),
    hist.h2.waitFor('one JSON response', () => lines(hist.h2) >= 1),
    hist.h3.waitOut(histExpected.h3),
    hist.h4.waitOut(histExpected.h4),
    hist.h6.waitOut(histExpected.h6),
  ]);
  s.expect('history: h2 (one catch-up response, header = current revision 7)', s.norm(hist.h2.out),
    '{"Header":{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":7,"raft_term":<nonzero>},"Events":[' +
      '{"kv":{"key":"b64:foo1","create_revision":3,"mod_revision":3,"version":1,"value":"YmFyMQ=="}},' +
      '{"kv":{"key":"b64:foo","create_revision":2,"mod_revision":5,"version":2,"value":"YmFyMg=="},"prev_kv":{"key":"b64:foo","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}},' +
      '{"type":1,"kv":{"key":"b64:foo1","mod_revision":6},"prev_kv":{"key":"b64:foo1","create_revision":3,"mod_revision":3,"version":1,"value":"YmFyMQ=="}},' +
      '{"kv":{"key":"b64:foo2","create_revision":7,"mod_revision":7,"version":1,"value":"eA=="}},' +
      '{"kv":{"key":"b64:foo3","create_revision":7,"mod_revision":7,"version":1,"value":"eQ=="}}' +
      '],"CompactRevision":0,"Canceled":false,"Created":false}\n');
  s.check(hist.h5.out === '', `watch from the future revision 9 printed before revision 9 existed: ${JSON.stringify(hist.h5.out)}`);

  // Live writes.
  await s.step(['put', 'foo3', 'z']); // 8
  await s.step(['put', 'foo', 'live']); // 9
  await s.step(['del', 'foo', '--prefix'], { stdout: '3\n' }); // 10: foo, foo2, foo3 in one revision
  const final = {
    h1: `${histExpected.h1}PUT\nfoo\nlive\nDELETE\nfoo\n\n`,
    h3: `${histExpected.h3}PUT\nfoo3\nz\nPUT\nfoo\nlive\nDELETE\nfoo\n\nDELETE\nfoo2\n\nDELETE\nfoo3\n\n`,
    h4: `${histExpected.h4}PUT\nfoo\nlive\nDELETE\nfoo\n\nDELETE\nfoo2\n\n`,
    h6: `${histExpected.h6}PUT\nfoo\nbar2\nfoo\nlive\nDELETE\nfoo\nlive\nfoo\n\n`,
  };
  await Promise.all([
    hist.h1.waitOut(final.h1),
    hist.h2.waitFor('4 JSON responses', () => lines(hist.h2) >= 4),
    hist.h3.waitOut(final.h3),
    hist.h4.waitOut(final.h4),
    hist.h5.waitFor('2 JSON responses', () => lines(hist.h5) >= 2),
    hist.h6.waitOut(final.h6),
  ]);
  s.recordBg('h1', hist.h1, final.h1);
  s.recordBg('h2', hist.h2);
  s.recordBg('h3', hist.h3, final.h3);
  s.recordBg('h4', hist.h4, final.h4);
  s.recordBg('h5', hist.h5);
  s.recordBg('h6', hist.h6, final.h6);
  const h2Live = s.norm(hist.h2.out).split('\n').slice(1, 4);
  s.expect('h2: live responses carry their own revision', h2Live.map((l) => /"revision":(\d+)/.exec(l)?.[1] ?? '?').join(','), '8,9,10');
  s.expect('h2: the prefix delete is one response with 3 DELETE events', String((h2Live[2] ?? '').match(/"type":1/g)?.length ?? 0), '3');
  for (const b of Object.values(hist)) b.kill('SIGINT');

  // Compaction: a watch below the compacted revision is canceled; at it, it replays.
  await s.step(['compaction', '7'], { stdout: 'compacted revision 7\n' });
  await s.step(['watch', 'foo', '--rev=6'], {
    stdout: '',
    errorLine: 'watch was canceled (etcdserver: mvcc: required revision has been compacted)',
  });
  await s.step(['watch', 'foo', '--prefix', '--rev=6', '-w', 'json'], {
    stdout: '{"Header":{"cluster_id":<nonzero>,"member_id":<nonzero>,"raft_term":<nonzero>},"Events":[],"CompactRevision":7,"Canceled":true,"Created":false}\n',
  });
  const atCompacted = s.bg('watch foo --prefix --rev=7', ['watch', 'foo', '--prefix', '--rev=7']);
  const atCompactedOut = 'PUT\nfoo2\nx\nPUT\nfoo3\ny\nPUT\nfoo3\nz\nPUT\nfoo\nlive\nDELETE\nfoo\n\nDELETE\nfoo2\n\nDELETE\nfoo3\n\n';
  await atCompacted.waitOut(atCompactedOut);
  s.recordBg('watch at the compacted revision', atCompacted, atCompactedOut);
  atCompacted.kill('SIGINT');

  // Interactive mode: `progress` sends a RequestProgress; with every watcher synced the server
  // answers with the current revision, and the client prints it once per watcher.
  // A failure here is recorded and the scenario goes on (with the same revisions).
  const inter = s.bg('watch -i', ['watch', '-i'], true);
  const interOut = 'progress notify: 10\nPUT\nfoo/i\n1\nprogress notify: 11\nprogress notify: 11\nprogress notify: 11\n';
  let putDone = false;
  try {
    inter.send('watch foo --prefix\nprogress\n');
    await inter.waitOut('progress notify: 10\n', 3_000);
    await s.step(['put', 'foo/i', '1']); // 11
    putDone = true;
    await inter.waitOut('progress notify: 10\nPUT\nfoo/i\n1\n', 3_000);
    inter.send('progress\n');
    await inter.waitOut('progress notify: 10\nPUT\nfoo/i\n1\nprogress notify: 11\n', 3_000);
    inter.send('watch zoo\nprogress\n');
    await inter.waitOut(interOut, 3_000);
  } catch (e) {
    s.check(false, `watch -i: ${e instanceof Error ? e.message : String(e)}`);
    if (!putDone) await s.step(['put', 'foo/i', '1']); // 11
  }
  s.recordBg('watch -i', inter, interOut);
  inter.kill('SIGINT');

  // Live watchers without --rev. etcdctl prints nothing when a watch is created, so probe: put
  // foo until every watcher has printed the probe, then one settling put; output up to the
  // settling event is dropped (how many probes it took is timing).
  const live = {
    l1: s.bg('watch foo', ['watch', 'foo']),
    l2: s.bg('watch foo --prefix --prev-kv', ['watch', 'foo', '--prefix', '--prev-kv']),
    l3: s.bg('watch foo fop', ['watch', 'foo', 'fop']),
    l4: s.bg('watch foo -- sh -c ...', ['watch', 'foo', '--', 'sh', '-c', 'echo "[$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE]"']),
  };
  const all = Object.values(live);
  for (let i = 1; ; i++) {
    await s.step(['put', 'foo', `probe${i}`]); // (not compared: the count is timing)
    s.entries.pop();
    const seen = Promise.all(all.map((b) => b.waitFor(`probe${i}`, () => b.out.includes(`probe${i}\n`), 1_000)));
    if (await seen.then(() => true, () => false)) break;
    if (i >= 20) throw new Error(`live watchers never all saw a probe: ${all.map((b) => JSON.stringify(b.out)).join(', ')}`);
  }
  await s.step(['put', 'foo', 'settle']);
  s.entries.pop();
  const cut = new Map<Bg, number>();
  await Promise.all(
    all.map(async (b) => {
      const marker = b === live.l4 ? '"settle"]\n' : '\nsettle\n';
      await b.waitFor('the settling put', () => b.out.includes(marker));
      cut.set(b, b.out.indexOf(marker) + marker.length);
    }),
  );
  const after = (b: Bg): string => b.out.slice(cut.get(b) ?? 0);
  await s.step(['put', 'foo', 'a']);
  await s.step(['put', 'foo/x', 'b']);
  await s.step(['put', 'fooz', 'c']);
  await s.step(['put', 'fop', 'd']);
  await s.step(['del', 'foo'], { stdout: '1\n' });
  await s.step(['put', 'foo', 'e']);
  const liveExpected = {
    l1: 'PUT\nfoo\na\nDELETE\nfoo\n\nPUT\nfoo\ne\n',
    l2: 'PUT\nfoo\nsettle\nfoo\na\nPUT\nfoo/x\nb\nPUT\nfooz\nc\nDELETE\nfoo\na\nfoo\n\nPUT\nfoo\ne\n',
    l3: 'PUT\nfoo\na\nPUT\nfoo/x\nb\nPUT\nfooz\nc\nDELETE\nfoo\n\nPUT\nfoo\ne\n',
    l4: 'PUT\nfoo\na\n["PUT" "foo" "a"]\nDELETE\nfoo\n\n["DELETE" "foo" ""]\nPUT\nfoo\ne\n["PUT" "foo" "e"]\n',
  };
  await Promise.all(
    (Object.keys(live) as Array<keyof typeof live>).map((k) =>
      live[k].waitFor(`stdout ${JSON.stringify(liveExpected[k])} after the settling put`, () => after(live[k]).length >= liveExpected[k].length),
    ),
  );
  // Periodic progress (every 200 ms here) goes only to watchers that asked for it; etcdctl 3.4
  // never asks, so nothing more may be printed.
  const lengths = all.map((b) => b.out.length);
  await quietWindow(1_000);
  all.forEach((b, i) => s.check(b.out.length === lengths[i], `${b.label}: printed ${JSON.stringify(b.out.slice(lengths[i]))} while nothing was written`));
  for (const k of Object.keys(live) as Array<keyof typeof live>) {
    s.expect(`live ${k} stdout after the settling put`, s.norm(after(live[k])), liveExpected[k]);
    s.check(live[k].err === '', `${live[k].label}: stderr ${JSON.stringify(live[k].err)}`);
  }
  for (const b of all) b.kill('SIGINT');
}

// ---------------------------------------------------------------------------------------------
// Lease

async function leaseScenario(s: Side): Promise<void> {
  await s.step(['lease', 'grant', '60'], { stdout: 'lease <L1> granted with TTL(60s)\n', exit: 0 });
  const hex1 = leaseHex(s, '<L1>');
  await s.step(['put', 'k1', 'v1', `--lease=${hex1}`], { stdout: 'OK\n' }); // 2
  await s.step(['put', 'k2', 'v2', `--lease=${hex1}`], { stdout: 'OK\n' }); // 3
  // TimeToLive rounds the remaining time down: just after a 60 s grant it reads 59.
  const ttl1 = await s.step(['lease', 'timetolive', hex1]);
  s.check(/^lease <L1> granted with TTL\(60s\), remaining\((59|58)s\)\n$/.test(ttl1.stdout), `timetolive: ${JSON.stringify(ttl1.stdout)}`);
  s.entries.pop();
  // etcd lists the attached keys in random order (a Go map): sorted here.
  const keys1 = await s.step(['lease', 'timetolive', hex1, '--keys']);
  s.entries.pop();
  s.expect('timetolive --keys (remaining checked to be 58..59, keys sorted)',
    keys1.stdout.replace(/remaining\((59|58)s\)/, 'remaining(<59>s)').replace(/attached keys\(\[(.*)\]\)/, (_m, k: string) => `attached keys([${k.split(' ').sort().join(' ')}])`),
    'lease <L1> granted with TTL(60s), remaining(<59>s), attached keys([k1 k2])\n');
  const json1 = await s.step(['lease', 'timetolive', hex1, '--keys', '-w', 'json']);
  s.entries.pop();
  s.expect('timetolive --keys -w json (ttl checked to be 58..59, keys sorted)',
    json1.stdout.replace(/"ttl":(59|58),/, '"ttl":<59>,').replace(/"keys":\[(.*)\]/, (_m, k: string) => `"keys":[${k.split(',').sort().join(',')}]`),
    '{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":3,"raft_term":<nonzero>,"id":"<L1>","ttl":<59>,"granted-ttl":60,"keys":["azE=","azI="]}\n');

  // Minimum TTL: 1 s is raised to ceil(1.5 * election timeout) = 2 s.
  await s.step(['lease', 'grant', '1'], { stdout: 'lease <L2> granted with TTL(2s)\n' });
  await s.step(['lease', 'revoke', leaseHex(s, '<L2>')], { stdout: 'lease <L2> revoked\n', exit: 0 });
  await s.step(['lease', 'grant', '10', '-w', 'json'], {
    stdout: '{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":3,"raft_term":<nonzero>,"ID":"<L3>","TTL":10,"Error":""}\n',
  });
  const hex3 = leaseHex(s, '<L3>');
  await s.step(['put', 'k3', 'v3', `--lease=${hex3}`], { stdout: 'OK\n' }); // 4
  await s.step(['get', 'k3', '-w', 'json'], {
    stdout: '{"header":{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":4,"raft_term":<nonzero>},"kvs":[{"key":"b64:k3","create_revision":4,"mod_revision":4,"version":1,"value":"djM=","lease":"<L3>"}],"count":1}\n',
  });
  const list = await s.step(['lease', 'list']);
  s.entries.pop();
  // etcd lists leases in expiry order; compare the set.
  const [head, ...ids] = list.stdout.split('\n').filter((l) => l !== '');
  s.expect('lease list (ids sorted)', [head, ...ids.sort()].join('\n'), 'found 2 leases\n<L1>\n<L3>');
  await s.step(['lease', 'keep-alive', '--once', hex1], { stdout: 'lease <L1> keepalived with TTL(60)\n', exit: 0 });
  await s.step(['lease', 'keep-alive', '--once', hex1, '-w', 'json'], {
    stdout: '{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":4,"raft_term":<nonzero>,"ID":"<L1>","TTL":60}\n',
  });

  // Revoke deletes every attached key in one revision.
  await s.step(['lease', 'revoke', hex3], { stdout: 'lease <L3> revoked\n' }); // 5
  await s.step(['get', 'k', '--prefix', '--keys-only'], { stdout: 'k1\n\nk2\n\n' });
  await s.step(['lease', 'revoke', hex1], { stdout: 'lease <L1> revoked\n' }); // 6: k1 and k2
  await s.step(['get', 'k', '--prefix', '-w', 'json'], {
    stdout: '{"header":{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":6,"raft_term":<nonzero>}}\n',
  });
  await s.step(['lease', 'revoke', hex1], { exit: 1, errorLine: 'Error: failed to revoke lease (etcdserver: requested lease not found)' });
  await s.step(['lease', 'timetolive', hex1], { stdout: 'lease <L1> already expired\n', exit: 0 });
  await s.step(['lease', 'timetolive', hex1, '-w', 'json'], {
    stdout: '{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":6,"raft_term":<nonzero>,"id":"<L1>","ttl":-1,"granted-ttl":0,"keys":null}\n',
  });
  await s.step(['lease', 'timetolive', '1234'], { stdout: 'lease <L4> already expired\n' });
  await s.step(['lease', 'keep-alive', '--once', hex1], { exit: 2, errorLine: 'Error: etcdserver: requested lease not found' });
  await s.step(['lease', 'keep-alive', hex1], { stdout: 'lease <L1> expired or revoked.\n', exit: 0 });
  await s.step(['lease', 'revoke', '1234', '-w', 'json'], { exit: 1 });
  await s.step(['lease', 'grant', '9000000001'], { exit: 1, errorLine: 'Error: failed to grant lease (etcdserver: too large lease TTL)' });
  await s.step(['lease', 'list'], { stdout: 'found 0 leases\n' });

  // keep-alive as a process: one renewal line a second (TTL 3 → every TTL/3 s), and the lease
  // outlives its TTL while kept alive; once the process is gone the lease expires on time and
  // its key goes with it.
  const TTL = 3;
  await s.step(['lease', 'grant', String(TTL)], { stdout: 'lease <L5> granted with TTL(3s)\n' });
  const grantedAt = Date.now();
  const hex5 = leaseHex(s, '<L5>');
  await s.step(['put', 'ka', 'v', `--lease=${hex5}`], { stdout: 'OK\n' }); // 7
  const ka = s.bg('lease keep-alive', ['lease', 'keep-alive', hex5]);
  const kaLine = `lease ${hex5} keepalived with TTL(${TTL})`;
  await ka.waitFor('4 renewals, 1.5 x TTL after the grant', () => ka.out.split('\n').filter((l) => l !== '').length >= 4 && Date.now() - grantedAt > 1.5 * TTL * 1000, 15_000);
  const kaLines = ka.out.split('\n').filter((l) => l !== '');
  s.check(kaLines.every((l) => l === kaLine), `keep-alive printed ${JSON.stringify(ka.out)}, every line should be ${JSON.stringify(kaLine)}`);
  s.expect('keep-alive first line', s.norm(`${kaLines[0] ?? ''}\n`), 'lease <L5> keepalived with TTL(3)\n');
  s.check((await s.countPrefix('ka')) === 1, `key ka is gone ${Date.now() - grantedAt} ms after a ${TTL} s grant although the lease was kept alive`);
  const before = await s.leaseRemaining(hex5);
  const queriedAt = Date.now();
  s.check(before.ttl >= 1 && before.granted === TTL, `kept-alive lease: TimeToLive ${JSON.stringify(before)}`);
  ka.kill('SIGKILL');
  const killedAt = Date.now();
  await pollUntil('expiry of the lease after keep-alive was killed', async () => (await s.countPrefix('ka')) === 0, 15_000);
  const goneAt = Date.now();
  s.check(goneAt - queriedAt >= before.ttl * 1000 - 100, `key ka gone ${goneAt - queriedAt} ms after TimeToLive said ${before.ttl} s remained`);
  s.check(goneAt - killedAt <= TTL * 1000 + EXPIRY_TOLERANCE_MS, `key ka gone only ${goneAt - killedAt} ms after keep-alive was killed (TTL ${TTL} s)`);
  await s.step(['lease', 'timetolive', hex5], { stdout: 'lease <L5> already expired\n' });
  // The expiry is a revoke: one DELETE at revision 8.
  await s.step(['get', 'ka', '-w', 'json'], {
    stdout: '{"header":{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":8,"raft_term":<nonzero>}}\n',
  });
  // Every lease-driven deletion, as a watcher replaying history sees it.
  const w = s.bg('watch k --prefix --rev=1 -w json', ['watch', 'k', '--prefix', '--rev=1', '-w', 'json']);
  await w.waitFor('one catch-up response', () => w.out.endsWith('\n'));
  s.recordBg('watch k --prefix --rev=1 -w json', w,
    '{"Header":{"cluster_id":<nonzero>,"member_id":<nonzero>,"revision":8,"raft_term":<nonzero>},"Events":[' +
      '{"kv":{"key":"b64:k1","create_revision":2,"mod_revision":2,"version":1,"value":"djE=","lease":"<L1>"}},' +
      '{"kv":{"key":"b64:k2","create_revision":3,"mod_revision":3,"version":1,"value":"djI=","lease":"<L1>"}},' +
      '{"kv":{"key":"b64:k3","create_revision":4,"mod_revision":4,"version":1,"value":"djM=","lease":"<L3>"}},' +
      '{"type":1,"kv":{"key":"b64:k3","mod_revision":5}},' +
      '{"type":1,"kv":{"key":"b64:k1","mod_revision":6}},' +
      '{"type":1,"kv":{"key":"b64:k2","mod_revision":6}},' +
      '{"kv":{"key":"b64:ka","create_revision":7,"mod_revision":7,"version":1,"value":"dg==","lease":"<L5>"}},' +
      '{"type":1,"kv":{"key":"b64:ka","mod_revision":8}}' +
      '],"CompactRevision":0,"Canceled":false,"Created":false}\n');
  w.kill('SIGINT');
}

/** The hex id behind a placeholder. */
function leaseHex(s: Side, name: string): string {
  const h = s.names.hexOf(name);
  if (h === undefined) throw new Error(`no lease ${name} seen yet`);
  return h;
}

// ---------------------------------------------------------------------------------------------
// Lock

async function lockScenario(s: Side): Promise<void> {
  // A holds the lock (default session TTL 10 s); B queues behind it.
  const a = s.bg('lock A', ['lock', 'mylock']);
  await a.waitFor('the lock key', () => a.out.endsWith('\n\n'));
  const hexA = keyLeaseId(a.out, 'mylock');
  s.expect('lock A stdout (key and its empty value)', s.norm(a.out), 'mylock/<L1>\n\n');
  const b = s.bg('lock B', ['lock', '--ttl=3', 'mylock']);
  await pollUntil('B queued (2 keys under mylock/)', async () => (await s.countPrefix('mylock/')) === 2);
  await quietWindow(SILENCE_MS);
  s.check(b.out === '', `lock B printed ${JSON.stringify(b.out)} while A held the lock`);
  await s.step(['get', 'mylock', '--prefix', '--sort-by=CREATE', '-w', 'json']);
  // SIGINT: A unlocks and closes its session; B gets the lock at once (not after A's 10 s TTL).
  a.kill('SIGINT');
  const releasedAt = Date.now();
  await b.waitFor('the lock key', () => b.out.endsWith('\n\n'));
  const tookB = (b.firstOutputAt ?? Date.now()) - releasedAt;
  s.check(tookB < 2_000, `lock B acquired ${tookB} ms after A was interrupted (should be at once)`);
  s.expect('lock B stdout', s.norm(b.out), 'mylock/<L2>\n\n');
  const hexB = keyLeaseId(b.out, 'mylock');
  s.record('lock A exit', JSON.stringify(await a.waitExit()));
  // etcdctl 3.4 deletes its lock key on SIGINT but leaves its session lease to expire.
  const leaseA = await s.leaseRemaining(hexA);
  s.record('A\'s session lease after SIGINT', `granted ${leaseA.granted}, alive ${String(leaseA.ttl > 0)}`);

  // C waits with a command to run; B dies without releasing: C gets the lock when B's 3 s lease expires.
  const c = s.bg('lock C -- sh', ['lock', 'mylock', '--', 'sh', '-c', 'echo "C holds $ETCD_LOCK_KEY"']);
  await pollUntil('C queued (2 keys under mylock/)', async () => (await s.countPrefix('mylock/')) === 2);
  const before = await s.leaseRemaining(hexB);
  const queriedAt = Date.now();
  s.check(before.granted === 3, `lock --ttl=3: the session lease has granted TTL ${before.granted}`);
  b.kill('SIGKILL');
  const killedAt = Date.now();
  await c.waitFor('C to run its command', () => c.out.includes('\n'), 15_000);
  const takeover = c.firstOutputAt ?? Date.now();
  s.check(takeover - queriedAt >= before.ttl * 1000 - 100, `C got the lock ${takeover - queriedAt} ms after B's lease had ${before.ttl} s left`);
  s.check(takeover - killedAt <= 3_000 + EXPIRY_TOLERANCE_MS, `C got the lock only ${takeover - killedAt} ms after B was killed (TTL 3 s)`);
  s.expect('lock C stdout', s.norm(c.out), 'C holds mylock/<L3>\n');
  s.expect('lock C exit', JSON.stringify(await c.waitExit()), '{"code":0,"signal":null}');
  s.check(c.err === '', `lock C stderr ${JSON.stringify(c.err)}`);
  s.check((await s.leaseRemaining(hexB)).ttl === -1, 'B\'s lease still exists after it expired');
  // C released the lock (and closed its session) when its command finished.
  await s.step(['get', 'mylock', '--prefix'], { stdout: '' });
  // The command's exit status is reported.
  await s.step(['lock', 'mylock', '--', 'sh', '-c', 'exit 3'], { exit: 1, errorLine: 'Error: exit status 3' });
  await s.step(['lock', 'mylock', '--', 'sh', '-c', 'echo "$ETCD_LOCK_KEY $ETCD_LOCK_REV"'], { stdout: 'mylock/<L4> 10\n', exit: 0 });
  await s.step(['lock'], { exit: 128 });
}

// ---------------------------------------------------------------------------------------------
// Elect

async function electScenario(s: Side): Promise<void> {
  const obs = s.bg('elect -l', ['elect', '-l', 'myel']);
  const p1 = s.bg('elect p1', ['elect', 'myel', 'p1']);
  await p1.waitFor('leadership', () => p1.out.endsWith('p1\n'));
  const hex1 = keyLeaseId(p1.out, 'myel');
  s.expect('p1 stdout', s.norm(p1.out), 'myel/<L1>\np1\n');
  await obs.waitOut(`myel/${hex1}\np1\n`);
  const p2 = s.bg('elect p2', ['elect', 'myel', 'p2']);
  await pollUntil('p2 campaigning (2 keys under myel/)', async () => (await s.countPrefix('myel/')) === 2);
  await quietWindow(SILENCE_MS);
  s.check(p2.out === '', `p2 printed ${JSON.stringify(p2.out)} while p1 led`);
  await s.step(['get', 'myel', '--prefix', '--sort-by=CREATE', '-w', 'json']);

  // SIGINT: p1 resigns; p2 leads at once.
  p1.kill('SIGINT');
  const resignedAt = Date.now();
  await p2.waitFor('leadership', () => p2.out.endsWith('p2\n'));
  const took = (p2.firstOutputAt ?? Date.now()) - resignedAt;
  s.check(took < 2_000, `p2 led ${took} ms after p1 was interrupted (should be at once)`);
  const hex2 = keyLeaseId(p2.out, 'myel');
  s.expect('p2 stdout', s.norm(p2.out), 'myel/<L2>\np2\n');
  await obs.waitOut(`myel/${hex1}\np1\nmyel/${hex2}\np2\n`);
  s.record('p1 exit', JSON.stringify(await p1.waitExit()));

  // SIGKILL: p2's session lease (etcdctl elect has no --ttl: 60 s) keeps it leader until the
  // lease goes; revoking it stands in for the expiry.
  const p3 = s.bg('elect p3', ['elect', 'myel', 'p3']);
  await pollUntil('p3 campaigning (2 keys under myel/)', async () => (await s.countPrefix('myel/')) === 2);
  p2.kill('SIGKILL');
  await p2.waitExit();
  const lease2 = await s.leaseRemaining(hex2);
  s.check(lease2.granted === 60 && lease2.ttl > 50, `p2's session lease after p2 was killed: ${JSON.stringify(lease2)}`);
  await quietWindow(SILENCE_MS);
  s.check(p3.out === '', `p3 printed ${JSON.stringify(p3.out)} while the killed p2's lease was alive`);
  s.check(obs.out === `myel/${hex1}\np1\nmyel/${hex2}\np2\n`, `observer printed ${JSON.stringify(obs.out)} while p2's lease was alive`);
  await s.step(['lease', 'revoke', hex2.padStart(16, '0')], { stdout: 'lease <L2> revoked\n' });
  await p3.waitFor('leadership', () => p3.out.endsWith('p3\n'));
  const hex3 = keyLeaseId(p3.out, 'myel');
  s.expect('p3 stdout', s.norm(p3.out), 'myel/<L3>\np3\n');
  await obs.waitOut(`myel/${hex1}\np1\nmyel/${hex2}\np2\nmyel/${hex3}\np3\n`);
  s.recordBg('elect -l', obs, 'myel/<L1>\np1\nmyel/<L2>\np2\nmyel/<L3>\np3\n');

  // The last leader resigns on SIGINT: no candidate is left.
  p3.kill('SIGINT');
  await p3.waitExit();
  await pollUntil('p3 resigned (no key under myel/)', async () => (await s.countPrefix('myel/')) === 0, 5_000);
  await s.step(['elect', 'myel'], { exit: 128, errorLine: 'Error: no proposal argument but -l not set' });
  obs.kill('SIGINT');
}

test(`etcdctl watch: reference etcd vs ${TARGET}`, { timeout: 120_000 }, () => runBoth('watch', watchScenario));
test(`etcdctl lease: reference etcd vs ${TARGET}`, { timeout: 120_000 }, () => runBoth('lease', leaseScenario));
test(`etcdctl lock: reference etcd vs ${TARGET}`, { timeout: 120_000 }, () => runBoth('lock', lockScenario));
test(`etcdctl elect: reference etcd vs ${TARGET}`, { timeout: 120_000 }, () => runBoth('elect', electScenario));
