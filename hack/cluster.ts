// A local cluster to try Cairn with: `npm run cluster` (3 members) or `npm run cluster -- --members 5`.
// Members are named infra1..N on loopback with etcd's Procfile ports (client 2379, 22379, 32379, ...;
// peer 2380, 22380, 32380, ...), data in ./cluster.cairn/<name>, logs in ./cluster.cairn/<name>.log.
// Ctrl-C stops them all. A second run reuses the data dirs (the members restart as a cluster).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAIN = resolve(HERE, '..', 'server', 'main.js');
const MEMBERS_DEFAULT = 3;
const MEMBERS_MAX = 7;

function parseMembers(argv: readonly string[]): { members: number; dir: string } {
  let members = MEMBERS_DEFAULT;
  let dir = 'cluster.cairn';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const [flag, inline] = a.split('=', 2);
    const value = inline ?? argv[++i];
    if (flag === '--members') members = Number(value);
    else if (flag === '--dir' && value !== undefined) dir = value;
    else throw new Error(`unknown argument ${JSON.stringify(a)}; usage: cluster.js [--members N] [--dir DIR]`);
  }
  if (!Number.isInteger(members) || members < 1 || members > MEMBERS_MAX) throw new Error(`--members must be 1..${MEMBERS_MAX}`);
  return { members, dir };
}

function port(i: number, base: number): number {
  return i === 0 ? base : (i + 1) * 10000 + base;
}

function main(): void {
  const { members, dir } = parseMembers(process.argv.slice(2));
  const names = Array.from({ length: members }, (_, i) => `infra${i + 1}`);
  const peer = (i: number): string => `http://127.0.0.1:${port(i, 2380)}`;
  const client = (i: number): string => `http://127.0.0.1:${port(i, 2379)}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  mkdirSync(dir, { recursive: true });
  const children: ChildProcess[] = names.map((name, i) => {
    const dataDir = join(dir, name);
    const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
    const args = [
      MAIN,
      '--name', name,
      '--data-dir', dataDir,
      '--listen-client-urls', client(i),
      '--advertise-client-urls', client(i),
      '--listen-peer-urls', peer(i),
      '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initialCluster,
      '--initial-cluster-token', 'cairn-local-cluster',
      '--initial-cluster-state', 'new',
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.pipe(log);
    child.on('exit', (code, signal) => process.stdout.write(`${name} exited (${signal ?? code})\n`));
    return child;
  });
  const endpoints = names.map((_, i) => client(i).replace('http://', '')).join(',');
  process.stdout.write(`started ${members} members (logs in ${dir}/<name>.log)\ntry: etcdctl --endpoints=${endpoints} member list -w table\n     etcdctl --endpoints=${endpoints} endpoint status -w table\nCtrl-C stops the cluster.\n`);
  const stop = (): void => {
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main();
