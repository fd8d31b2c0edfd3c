// Long runs and replays of the Raft simulation (see README.md beside this file):
//   node dist/test/raft/sim-cli.js --seeds 100000 --from 1 [--members 3|5|7|grow] [--intensity calm|normal|harsh] [--steps N]
//   node dist/test/raft/sim-cli.js --seed S [--steps N] [--members M] --trace     (replay one seed, printing every event)
// Exit status 1 when any seed broke an invariant (each failure prints its replay command).
import { HOST_FAULTS, emptyStats, replayCommand, runSeed, type HostFault, type Intensity, type SeedResult, type Shape, type SimOptions, type SimStats } from './sim.js';

interface Args {
  seeds: number;
  from: number;
  seed: number | undefined;
  steps: number;
  shape: Shape | undefined;
  intensity: Intensity | undefined;
  fault: HostFault;
  checkVotes: boolean;
  trace: boolean;
  maxFailures: number;
  removal: 'durableVoter' | 'etcd';
}

const USAGE = `usage: sim-cli [--seeds N] [--from S] [--seed S] [--steps N] [--members 3|5|7|grow]
               [--intensity calm|normal|harsh] [--fault ${HOST_FAULTS.join('|')}] [--no-vote-check] [--removal durableVoter|etcd]
               [--trace] [--max-failures N]`;

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { seeds: 1000, from: 1, seed: undefined, steps: 3000, shape: undefined, intensity: undefined, fault: 'none', checkVotes: true, trace: false, maxFailures: 20, removal: 'durableVoter' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    const int = (): number => {
      const v = Number(value());
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${flag} needs a non-negative integer\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--seeds': a.seeds = int(); break;
      case '--from': a.from = int(); break;
      case '--seed': a.seed = int(); break;
      case '--steps': a.steps = int(); break;
      case '--max-failures': a.maxFailures = int(); break;
      case '--members': {
        const v = value();
        if (v !== '3' && v !== '5' && v !== '7' && v !== 'grow') throw new Error(`--members must be 3, 5, 7 or grow\n${USAGE}`);
        a.shape = v;
        break;
      }
      case '--intensity': {
        const v = value();
        if (v !== 'calm' && v !== 'normal' && v !== 'harsh') throw new Error(`--intensity must be calm, normal or harsh\n${USAGE}`);
        a.intensity = v;
        break;
      }
      case '--fault': {
        const v = value();
        const f = HOST_FAULTS.find((k) => k === v);
        if (f === undefined) throw new Error(`unknown --fault ${v}\n${USAGE}`);
        a.fault = f;
        break;
      }
      case '--no-vote-check': a.checkVotes = false; break;
      case '--removal': {
        const v = value();
        if (v !== 'durableVoter' && v !== 'etcd') throw new Error(`--removal must be durableVoter or etcd\n${USAGE}`);
        a.removal = v;
        break;
      }
      case '--trace': a.trace = true; break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${String(flag)}\n${USAGE}`);
    }
  }
  return a;
}

function optionsFor(a: Args, seed: number, trace: ((line: string) => void) | undefined): SimOptions {
  return { seed, steps: a.steps, shape: a.shape, intensity: a.intensity, fault: a.fault, checkVotes: a.checkVotes, removal: a.removal, trace };
}

function printFailure(a: Args, r: SeedResult, withTrace: boolean): void {
  const v = r.violation;
  if (v === undefined) return;
  console.log(`\nFAIL seed ${r.seed} (${r.profile})`);
  console.log(`  ${v.invariant}: ${v.detail}`);
  console.log(`  at step ${v.step}, virtual time ${v.timeMs} ms`);
  if (withTrace) {
    console.log(`  last ${v.trace.length} events:`);
    for (const line of v.trace) console.log(`    ${line}`);
  }
  console.log(`  replay: ${replayCommand(optionsFor(a, r.seed, undefined))}`);
}

function addStats(total: SimStats, s: SimStats): void {
  for (const k of Object.keys(total) as (keyof SimStats)[]) total[k] += s[k];
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  if (a.seed !== undefined) {
    const r = await runSeed(optionsFor(a, a.seed, a.trace ? (line) => console.log(line) : undefined));
    console.log(`seed ${r.seed} (${r.profile}): ${JSON.stringify(r.stats)}`);
    printFailure(a, r, !a.trace);
    process.exitCode = r.violation === undefined ? 0 : 1;
    return;
  }
  const started = Date.now();
  let lastReport = started;
  let failures = 0;
  let done = 0;
  const total: SimStats = emptyStats();
  for (let seed = a.from; seed < a.from + a.seeds; seed++) {
    const r = await runSeed(optionsFor(a, seed, undefined));
    done++;
    addStats(total, r.stats);
    if (r.violation !== undefined) {
      failures++;
      printFailure(a, r, true);
      if (failures >= a.maxFailures) {
        console.log(`\nstopping after ${failures} failures`);
        break;
      }
    }
    const now = Date.now();
    if (now - lastReport >= 10_000) {
      lastReport = now;
      console.log(`progress: ${done}/${a.seeds} seeds (up to ${seed}), ${failures} failing, ${((now - started) / 1000).toFixed(0)} s`);
    }
  }
  const secs = (Date.now() - started) / 1000;
  console.log(`\nsummary: ${done} seeds from ${a.from} in ${secs.toFixed(1)} s (${(done / secs).toFixed(1)} seeds/s)`);
  console.log(`  steps ${total.steps}, virtual time ${(total.virtualMs / 1000).toFixed(0)} s`);
  console.log(`  elections ${total.elections}, commits ${total.commits}, snapshots ${total.snapshots}, conf changes ${total.confChanges}`);
  console.log(`  crashes ${total.crashes}, partitions ${total.partitions}, messages ${total.messages} (${total.messagesLost} lost)`);
  console.log(`  fsync failures ${total.fsyncFailures}, proposals ${total.proposals} (${total.acknowledged} acknowledged, ${total.proposalsDropped} refused), reads ${total.reads} (${total.readsServed} served), transfers ${total.transfers}, compactions ${total.compactions}`);
  console.log(`  violations: ${failures}`);
  process.exitCode = failures === 0 ? 0 : 1;
}

await main();
