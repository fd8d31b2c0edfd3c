// kube-apiserver on Cairn (or on the reference etcd 3.6, for comparison), for trying things by hand:
//   npm run kube                          1-member Cairn
//   npm run kube -- --members 3           3-member Cairn
//   npm run kube -- --backend etcd        etcd 3.6.8 (built with kube-apiserver by hack/install-kube.sh)
//   npm run kube -- --apiserver-arg=--etcd-compaction-interval=30s   (repeatable)
// Prints the kubeconfig to use with kubectl (the one built into the same cache:
// ~/.cache/cairn/kube-<version>/bin/kubectl) and runs until Ctrl-C; everything lives in temp dirs
// that go away at exit (CAIRN_KEEP_DATA=1 keeps them).
import { kubeBins, startBackend, startKubeApiserver } from '../test/harness/kube.js';

interface Args {
  backend: 'cairn' | 'etcd';
  members: number;
  apiserverArgs: string[];
}

function parse(argv: readonly string[]): Args {
  const a: Args = { backend: 'cairn', members: 1, apiserverArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--backend') {
      const v = value();
      if (v !== 'cairn' && v !== 'etcd') throw new Error('--backend must be cairn or etcd');
      a.backend = v;
    } else if (flag === '--members') {
      a.members = Number(value());
      if (a.members !== 1 && a.members !== 3 && a.members !== 5) throw new Error('--members must be 1, 3 or 5');
    } else if (flag === '--apiserver-arg') a.apiserverArgs.push(value());
    else throw new Error(`unknown argument ${JSON.stringify(arg)}; usage: kube.js [--backend cairn|etcd] [--members 1|3|5] [--apiserver-arg=--flag=value ...]`);
  }
  return a;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const bins = kubeBins();
  const cluster = await startBackend(args.backend, args.members);
  const etcdServers = cluster.members.map((m) => m.clientUrl);
  process.stdout.write(`${args.backend} (${String(args.members)} member(s)): ${etcdServers.join(', ')}\n`);
  const api = await startKubeApiserver({ etcdServers, extraArgs: args.apiserverArgs });
  process.stdout.write(
    [
      `kube-apiserver ${api.url} (pid ${String(api.pid)}, log ${api.logFile})`,
      `  ${bins.kubectl} --kubeconfig ${api.kubeconfig} get --raw /readyz?verbose`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await api.stop();
  await cluster.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`kube: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
