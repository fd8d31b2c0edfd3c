// Auto compaction, as etcd's compactor package (--auto-compaction-mode/--auto-compaction-retention).
// Runs on every member but acts only while the member leads (etcd pauses it on followers).
//
// periodic (retention P): every P/10 (at most 6 min) the current revision is sampled into a window
//   of P/(P/10)+1 samples, so the oldest sample is the revision of about P ago; once P has passed
//   since the start (then every min(P, 1 h)) the store is compacted to that oldest sample.
// revision (retention R): every check interval (etcd: 5 min) compact to current - R, when that is
//   positive and differs from the last compaction.
// A compaction refused as already compacted counts as done (etcd's ErrCompacted rule).
import type { InternalRequestInit } from '../../proto/gen/cairnpb.js';
import type { ApplyOutcome } from '../apply/index.js';
import type { Logger } from '../base/log.js';

export type AutoCompactionMode =
  | { readonly mode: 'periodic'; readonly periodMs: number }
  | { readonly mode: 'revision'; readonly retentionRevs: number; readonly checkIntervalMs: number };

export interface CompactorHost {
  currentRevision(): number;
  isLeader(): boolean;
  /** Proposes a compaction; resolves true when done or already compacted, false on another refusal. */
  compact(revision: number): Promise<boolean>;
  readonly logger: Logger;
}

/** The auto compactor of a member (undefined when auto compaction is off): Compact proposed through the log. */
export function memberCompactor(
  mode: AutoCompactionMode | undefined,
  member: { currentRevision(): number; isLeader(): boolean; propose(req: InternalRequestInit): Promise<ApplyOutcome>; readonly logger: Logger },
): AutoCompactor | undefined {
  if (mode === undefined) return undefined;
  return new AutoCompactor(mode, {
    currentRevision: () => member.currentRevision(),
    isLeader: () => member.isLeader(),
    compact: (revision) =>
      member.propose({ compaction: { revision } }).then(
        (o) => o.ok || o.error.kind === 'compacted',
        () => false,
      ),
    logger: member.logger,
  });
}

const HOUR_MS = 3_600_000;
const RETRY_DIVISOR = 10;

export class AutoCompactor {
  private timer: NodeJS.Timeout | undefined = undefined;
  private stopped = false;
  private readonly revs: number[] = [];
  private lastSuccessMs: number;
  private baseIntervalMs: number;
  private prevRev = 0;

  constructor(
    private readonly mode: AutoCompactionMode,
    private readonly host: CompactorHost,
  ) {
    this.lastSuccessMs = Date.now();
    this.baseIntervalMs = mode.mode === 'periodic' ? mode.periodMs : 0;
  }

  start(): void {
    const m = this.mode;
    if (m.mode === 'periodic') {
      this.host.logger.info('auto periodic compaction enabled', { 'compact-period': `${m.periodMs}ms`, 'retry-interval': `${this.retryMs()}ms` });
      this.revs.push(this.host.currentRevision());
    } else {
      this.host.logger.info('auto revision compaction enabled', { 'revision-retention': m.retentionRevs, 'check-interval': `${m.checkIntervalMs}ms` });
    }
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  private retryMs(): number {
    const m = this.mode;
    return m.mode === 'periodic' ? Math.max(1, Math.min(m.periodMs, HOUR_MS) / RETRY_DIVISOR) : m.checkIntervalMs;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.step().then(
        () => this.arm(),
        (err: unknown) => {
          this.host.logger.warn('auto compaction step failed', { error: err });
          this.arm();
        },
      );
    }, this.retryMs());
    this.timer.unref();
  }

  private async step(): Promise<void> {
    if (this.mode.mode === 'periodic') await this.periodicStep(this.mode.periodMs);
    else await this.revisionStep(this.mode.retentionRevs);
  }

  private async periodicStep(periodMs: number): Promise<void> {
    const keep = Math.floor(periodMs / this.retryMs()) + 1;
    if (!this.host.isLeader()) {
      this.sample(keep);
      return;
    }
    if (Date.now() - this.lastSuccessMs < this.baseIntervalMs) {
      this.sample(keep);
      return;
    }
    if (this.baseIntervalMs === periodMs) this.baseIntervalMs = Math.min(periodMs, HOUR_MS);
    const rev = this.revs[0] ?? 0;
    this.sample(keep);
    if (rev <= 0) return;
    const log = this.host.logger;
    log.info('starting auto periodic compaction', { revision: rev, 'compact-period': `${periodMs}ms` });
    const started = Date.now();
    if (await this.host.compact(rev)) {
      this.lastSuccessMs = Date.now();
      log.info('completed auto periodic compaction', { revision: rev, 'compact-period': `${periodMs}ms`, took: `${this.lastSuccessMs - started}ms` });
    } else {
      log.warn('failed auto periodic compaction', { revision: rev, 'retry-interval': `${this.retryMs()}ms` });
    }
  }

  private sample(keep: number): void {
    this.revs.push(this.host.currentRevision());
    while (this.revs.length > keep) this.revs.shift();
  }

  private async revisionStep(retention: number): Promise<void> {
    if (!this.host.isLeader()) return;
    const rev = this.host.currentRevision() - retention;
    if (rev <= 0 || rev === this.prevRev) return;
    const log = this.host.logger;
    log.info('starting auto revision compaction', { revision: rev, 'revision-compaction-retention': retention });
    const started = Date.now();
    if (await this.host.compact(rev)) {
      this.prevRev = rev;
      log.info('completed auto revision compaction', { revision: rev, 'revision-compaction-retention': retention, took: `${Date.now() - started}ms` });
    } else {
      log.warn('failed auto revision compaction', { revision: rev, 'retry-interval': `${this.retryMs()}ms` });
    }
  }
}
