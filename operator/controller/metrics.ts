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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cairn_operator_' });
  }

  forget(namespace: string, name: string): void {
    for (const g of [this.members, this.healthy, this.voters, this.available]) g.remove({ namespace, name });
  }
}
