// The Cairn operator: node dist/operator/main.js [flags]. Flags (each also an environment variable):
//   --namespace NS          CAIRN_WATCH_NAMESPACE  watch only NS (default: all namespaces)
//   --health-port N         CAIRN_HEALTH_PORT      /healthz, /readyz, /metrics (default 8080)
//   --default-image IMG     CAIRN_DEFAULT_IMAGE    server image when a spec names none (localhost/cairn:dev)
//   --leader-elect BOOL     CAIRN_LEADER_ELECT     Lease-based leader election (default true)
//   --lease-namespace NS    POD_NAMESPACE          where the Lease lives (default cairn-system)
//   --replace-after-s N     CAIRN_REPLACE_AFTER_S  replace a member unhealthy this long (default 60)
//   --upgrade-timeout-s N   CAIRN_UPGRADE_TIMEOUT_S stop a rollout whose pod is not healthy after N s (180)
//   --quorum-loss-after-s N CAIRN_QUORUM_LOSS_AFTER_S report QuorumLost when a majority stays lost N s (300)
// Kubernetes credentials: in-cluster, or $KUBECONFIG / ~/.kube/config.
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { BackupRunner, Controller, jsonLogger, LeaderElector, OperatorMetrics } from './controller/index.js';
import { KubeRest } from './kube/index.js';
import { DEFAULT_SETTINGS } from './plan/index.js';

const LEASE_NAME = 'cairn-operator';

function options(): {
  namespace: string | undefined;
  healthPort: number;
  defaultImage: string;
  leaderElect: boolean;
  leaseNamespace: string;
  replaceAfterS: number;
  upgradeTimeoutS: number;
  quorumLossAfterS: number;
} {
  const { values } = parseArgs({
    options: {
      namespace: { type: 'string' },
      'health-port': { type: 'string' },
      'default-image': { type: 'string' },
      'leader-elect': { type: 'string' },
      'lease-namespace': { type: 'string' },
      'replace-after-s': { type: 'string' },
      'upgrade-timeout-s': { type: 'string' },
      'quorum-loss-after-s': { type: 'string' },
    },
  });
  const env = (k: string): string | undefined => (process.env[k] === '' ? undefined : process.env[k]);
  const ns = values.namespace ?? env('CAIRN_WATCH_NAMESPACE');
  const int = (v: string | undefined, d: number, what: string): number => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer, got ${v}`);
    return n;
  };
  return {
    namespace: ns,
    healthPort: int(values['health-port'] ?? env('CAIRN_HEALTH_PORT'), 8080, '--health-port'),
    defaultImage: values['default-image'] ?? env('CAIRN_DEFAULT_IMAGE') ?? 'localhost/cairn:dev',
    leaderElect: (values['leader-elect'] ?? env('CAIRN_LEADER_ELECT') ?? 'true') !== 'false',
    leaseNamespace: values['lease-namespace'] ?? env('POD_NAMESPACE') ?? 'cairn-system',
    replaceAfterS: int(values['replace-after-s'] ?? env('CAIRN_REPLACE_AFTER_S'), DEFAULT_SETTINGS.replaceAfterMs / 1000, '--replace-after-s'),
    upgradeTimeoutS: int(values['upgrade-timeout-s'] ?? env('CAIRN_UPGRADE_TIMEOUT_S'), DEFAULT_SETTINGS.upgradeHealthyTimeoutMs / 1000, '--upgrade-timeout-s'),
    quorumLossAfterS: int(values['quorum-loss-after-s'] ?? env('CAIRN_QUORUM_LOSS_AFTER_S'), DEFAULT_SETTINGS.quorumLossAfterMs / 1000, '--quorum-loss-after-s'),
  };
}

async function main(): Promise<void> {
  const opts = options();
  const log = jsonLogger();
  const metrics = new OperatorMetrics();
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const rest = new KubeRest(kc);
  const identity = process.env['POD_NAME'] ?? `${hostname()}-${String(process.pid)}`;
  // Backups run beside the reconcile loop, on the leader only (started after the election below).
  const late: { backups?: BackupRunner } = {};
  const controller = new Controller({
    onClusterChange: () => late.backups?.wake(),
    onBackupChange: () => late.backups?.wake(),
    rest,
    namespace: opts.namespace,
    defaultImage: opts.defaultImage,
    settings: {
      ...DEFAULT_SETTINGS,
      replaceAfterMs: opts.replaceAfterS * 1000,
      upgradeHealthyTimeoutMs: opts.upgradeTimeoutS * 1000,
      quorumLossAfterMs: opts.quorumLossAfterS * 1000,
    },
    instance: identity,
    log,
    metrics,
  });
  let phase: 'electing' | 'starting' | 'running' = 'electing';
  const health = createServer((req, res) => {
    if (req.url === '/healthz') res.writeHead(200).end('ok\n');
    else if (req.url === '/readyz') {
      const ok = phase === 'running' ? controller.ready : phase === 'electing';
      res.writeHead(ok ? 200 : 503).end(`${phase}\n`);
    } else if (req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    } else res.writeHead(404).end();
  });
  health.listen(opts.healthPort);
  log.log('info', 'cairn operator starting', { identity, namespace: opts.namespace ?? '(all)', defaultImage: opts.defaultImage, leaderElect: opts.leaderElect, healthPort: opts.healthPort });
  const stop = (sig: string): void => {
    log.log('info', `${sig}: stopping`);
    void Promise.allSettled([controller.stop(), late.backups?.stop()]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.leaderElect) {
    const elector = new LeaderElector(rest, opts.leaseNamespace, LEASE_NAME, identity, () => {
      log.log('error', 'lost the leader lease; exiting so that one leader acts at a time');
      process.exit(1);
    });
    await elector.run();
    log.log('info', 'leading', { lease: `${opts.leaseNamespace}/${LEASE_NAME}` });
  }
  phase = 'starting';
  await controller.start();
  const runner = new BackupRunner({ rest, namespace: opts.namespace, instance: identity, log, metrics, clusters: () => controller.caches.clusters.list(), observe: (raw) => controller.observeCluster(raw), ...(controller.caches.backups !== undefined ? { backups: controller.caches.backups } : {}) });
  await runner.start();
  late.backups = runner;
  phase = 'running';
  log.log('info', 'informers synced; reconciling');
}

main().catch((e: unknown) => {
  process.stdout.write(`${JSON.stringify({ level: 'error', ts: new Date().toISOString(), msg: 'operator failed', error: e instanceof Error ? e.message : String(e) })}\n`);
  process.exit(1);
});
