// Prometheus metrics of the operator (prom-client, own registry): reconciles and their durations,
// errors by kind, steps by kind, and per cluster the members, healthy members and voters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({ name: 'cairn_operator_reconciles_total', help: 'Reconciles by result.', labelNames: ['result'], registers: [this.registry] });
  readonly duration = new Histogram({
    name: 'cairn_operator_reconcile_duration_seconds',
    help: 'Duration of one reconcile (observe, plan, status, act).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly errors = new Counter({ name: 'cairn_operator_errors_total', help: 'Errors by kind.', labelNames: ['kind'], registers: [this.registry] });
  readonly steps = new Counter({ name: 'cairn_operator_steps_total', help: 'Steps performed by kind.', labelNames: ['kind'], registers: [this.registry] });
  readonly members = new Gauge({ name: 'cairn_operator_cluster_members', help: 'Members in the member list.', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly healthy = new Gauge({ name: 'cairn_operator_cluster_healthy_members', help: 'Members answering with a leader.', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly voters = new Gauge({ name: 'cairn_operator_cluster_voters', help: 'Voting members.', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly available = new Gauge({ name: 'cairn_operator_cluster_available', help: '1 when the Available condition is True.', labelNames: ['namespace', 'name'], registers: [this.registry] });

  // Backups (controller/backups.ts): an alert on backup age is one rule,
  //   time() - cairn_operator_backup_last_success_timestamp_seconds > 2 * 3600
  readonly backupLastSuccess = new Gauge({
    name: 'cairn_operator_backup_last_success_timestamp_seconds',
    help: 'Unix time the last backup of the cluster completed and verified.',
    labelNames: ['namespace', 'name'],
    registers: [this.registry],
  });
  readonly backupDuration = new Gauge({ name: 'cairn_operator_backup_last_duration_seconds', help: 'Duration of the last successful backup.', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly backupSize = new Gauge({ name: 'cairn_operator_backup_last_size_bytes', help: 'Size of the last successful backup object.', labelNames: ['namespace', 'name'], registers: [this.registry] });
  readonly backupFailures = new Counter({ name: 'cairn_operator_backup_failures_total', help: 'Failed backups by reason.', labelNames: ['namespace', 'name', 'reason'], registers: [this.registry] });
  readonly backups = new Counter({ name: 'cairn_operator_backups_total', help: 'Successful backups.', labelNames: ['namespace', 'name'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cairn_operator_' });
  }

  forget(namespace: string, name: string): void {
    for (const g of [this.members, this.healthy, this.voters, this.available, this.backupLastSuccess, this.backupDuration, this.backupSize]) g.remove({ namespace, name });
  }
}
