// A contender process for test/clients/etcd3-recipes.test.ts: one npm `etcd3` client doing one
// recipe (Lock or Election) against the server given on the command line. It reports on stdout,
// one line per fact, and takes commands on stdin ("release", "resign").
//
//   node contender.js lock-count <hosts> <lock> <counterKey> <iterations> <logFile> <ttl>
//     <iterations> times: take the lock (retrying while it is held), append "enter <pid>" to
//     <logFile>, read <counterKey>, wait a little, write it back plus one, append "exit <pid>",
//     release. Without the lock the read-check-write loses updates. Prints "done <pid>".
//   node contender.js lock-hold <hosts> <lock> <ttl>
//     Takes the lock (prints "waiting <pid>" after the first failed try, "acquired <pid>" once
//     held) and holds it until "release" arrives on stdin; then prints "released <pid>" and exits.
//   node contender.js campaign <hosts> <election> <ttl> <value>
//     Campaigns with <value>; prints "elected <value>" on winning; "resign" on stdin resigns,
//     prints "resigned <value>" and exits.
import { appendFileSync } from 'node:fs';
import { Etcd3, EtcdLockFailedError } from 'etcd3';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Resolves with each stdin line as it comes (commands from the test). */
function onCommand(handler: (cmd: string) => void): void {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buf += d;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      handler(buf.slice(0, nl).trim());
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
    }
  });
}

function arg(i: number): string {
  const v = process.argv[i];
  if (v === undefined) throw new Error(`missing argument #${i - 2}; usage in test/clients/contender.ts`);
  return v;
}

/** Takes the lock, retrying every 10-40 ms while someone else holds it. */
async function acquire(client: Etcd3, name: string, ttl: number, onFirstFailure?: () => void): Promise<ReturnType<Etcd3['lock']>> {
  for (let tries = 0; ; tries++) {
    const lock = client.lock(name).ttl(ttl);
    try {
      await lock.acquire();
      return lock;
    } catch (e) {
      if (!(e instanceof EtcdLockFailedError)) throw e;
      if (tries === 0) onFirstFailure?.();
      await sleep(10 + Math.random() * 30);
    }
  }
}

async function lockCount(client: Etcd3): Promise<void> {
  const [name, counterKey, iterations, logFile, ttl] = [arg(4), arg(5), Number(arg(6)), arg(7), Number(arg(8))];
  for (let i = 0; i < iterations; i++) {
    const lock = await acquire(client, name, ttl);
    appendFileSync(logFile, `enter ${process.pid}\n`);
    const cur = Number((await client.get(counterKey).string()) ?? '0');
    await sleep(5 + Math.random() * 10); // widen the window a lost update needs
    await client.put(counterKey).value(String(cur + 1));
    appendFileSync(logFile, `exit ${process.pid}\n`);
    await lock.release();
  }
  say(`done ${process.pid}`);
}

async function lockHold(client: Etcd3): Promise<void> {
  const [name, ttl] = [arg(4), Number(arg(5))];
  const lock = await acquire(client, name, ttl, () => say(`waiting ${process.pid}`));
  say(`acquired ${process.pid}`);
  await new Promise<void>((res) => onCommand((cmd) => cmd === 'release' && res()));
  await lock.release();
  say(`released ${process.pid}`);
}

async function campaign(client: Etcd3): Promise<void> {
  const [name, ttl, value] = [arg(4), Number(arg(5)), arg(6)];
  const c = client.election(name, ttl).campaign(value);
  const failed = new Promise<never>((_res, rej) => c.on('error', rej));
  c.on('elected', () => say(`elected ${value}`));
  const resign = new Promise<void>((res) => onCommand((cmd) => cmd === 'resign' && res()));
  await Promise.race([resign, failed]);
  await c.resign();
  say(`resigned ${value}`);
}

async function main(): Promise<void> {
  const mode = arg(2);
  const client = new Etcd3({ hosts: arg(3), dialTimeout: 5_000 });
  try {
    if (mode === 'lock-count') await lockCount(client);
    else if (mode === 'lock-hold') await lockHold(client);
    else if (mode === 'campaign') await campaign(client);
    else throw new Error(`unknown mode ${mode}`);
  } finally {
    client.close();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`contender ${process.pid}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
