// A one-node Kubernetes of real processes on this machine (needs root; no Docker engine):
//   npm run localkube -- up [--store cairn|etcd] [--dir D] [--no-image]
//       starts it (kube-apiserver on a 1-member Cairn, or on etcd 3.6 with --store etcd), builds and
//       imports the Cairn image (localhost/cairn:dev), applies crds/ and operator/manifests/, waits
//       for the node and the operator, starts SeaweedFS (S3 on http://10.200.0.1:8333, bucket
//       cairn-backups, Secret default/cairn-backup-s3; `up` on a running one adds it if missing);
//       the kubeconfig path is the last line of stdout
//   npm run localkube -- down [--dir D] [--keep-logs]
//       stops everything and removes every trace (processes, mounts, cni0, iptables chains,
//       cgroups, sysctls put back, the state dir)
//   npm run localkube -- status [--dir D]   (also prints the S3 endpoint, bucket and keys)
// State (configs, certificates, logs of each component in logs/) in ./.localkube unless --dir or
// CAIRN_LOCALKUBE_DIR. Progress as JSON lines on stderr.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { kubeBins } from '../test/harness/kube.js';
import { down, isUp, progress, readState, up } from './localkube/stack.js';
import { s3Summary } from './localkube/s3.js';
import type { Store } from './localkube/layout.js';

interface Args {
  cmd: 'up' | 'down' | 'status';
  dir: string;
  store: Store;
  image: boolean;
  keepLogs: boolean;
}

const USAGE = 'usage: localkube up [--store cairn|etcd] [--dir D] [--no-image] | down [--dir D] [--keep-logs] | status [--dir D]';

function parse(argv: readonly string[]): Args {
  const cmd = argv[0];
  if (cmd !== 'up' && cmd !== 'down' && cmd !== 'status') throw new Error(USAGE);
  const env = process.env['CAIRN_LOCALKUBE_DIR'];
  const a: Args = { cmd, dir: resolve(env !== undefined && env !== '' ? env : '.localkube'), store: 'cairn', image: true, keepLogs: false };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--dir') a.dir = resolve(value());
    else if (flag === '--store') {
      const v = value();
      if (v !== 'cairn' && v !== 'etcd') throw new Error('--store must be cairn or etcd');
      a.store = v;
    } else if (flag === '--no-image') a.image = false;
    else if (flag === '--keep-logs') a.keepLogs = true;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}; ${USAGE}`);
  }
  return a;
}

/** One up or down at a time on this machine (the stack's interfaces, ports and chains are
 * machine-wide): an exclusive lock file holding the owner's pid; a dead owner's lock is taken over. */
const LOCK = '/run/cairn-localkube.lock';
const LOCK_WAIT_MS = 30 * 60_000;

async function lock(): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let said = false;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      process.once('exit', () => rmSync(LOCK, { force: true }));
      return;
    } catch {
      let owner = NaN;
      try {
        owner = Number(readFileSync(LOCK, 'utf8'));
      } catch {
        continue; // released meanwhile
      }
      let alive = false;
      try {
        process.kill(owner, 0);
        alive = true;
      } catch {
        alive = false;
      }
      if (!alive) {
        rmSync(LOCK, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${LOCK}: held by pid ${String(owner)} for ${String(LOCK_WAIT_MS)} ms`);
      if (!said) progress('waiting for another localkube up/down to finish', { pid: owner });
      said = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  if (a.cmd !== 'status') await lock();
  if (a.cmd === 'up') {
    const kubeconfig = await up({ dir: a.dir, store: a.store, image: a.image });
    process.stdout.write(`kubectl: ${kubeBins().kubectl}\n${kubeconfig}\n`);
  } else if (a.cmd === 'down') {
    const r = await down({ dir: a.dir, keepLogs: a.keepLogs });
    if (r.leftovers.length > 0) {
      process.stderr.write(`localkube down: left behind:\n  ${r.leftovers.join('\n  ')}\n`);
      process.exit(1);
    }
    process.stdout.write('localkube is down\n');
  } else {
    const s = readState(a.dir);
    if (s === undefined) process.stdout.write(`not up (no state in ${a.dir})\n`);
    else process.stdout.write(`${isUp(a.dir) ? 'up' : 'not fully up'} (store ${s.store}); processes: ${JSON.stringify(s.procs)}\n${s3Summary()}\n${s.kubeconfig}\n`);
  }
}

main().catch((e: unknown) => {
  progress('failed', { error: e instanceof Error ? e.message : String(e) });
  process.stderr.write(`localkube: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
