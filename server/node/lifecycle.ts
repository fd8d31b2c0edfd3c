// How a member stops, and the `stopped` state every piece consults: removed from the cluster (after
// ten heartbeats, as etcd's stopWithDelay), a fault in the pipeline (fail-stop: failstop.ts says
// whether storage or a bug), or a shutdown (in order, within SHUTDOWN_TIMEOUT_MS). Everything waiting
// on the log is refused each way.
import type { Transport } from '../transport/index.js';
import { ServerRefusal } from '../base/errors.js';
import { SHUTDOWN_TIMEOUT_MS } from '../base/limits.js';
import type { NodeConfig } from './config.js';
import type { Driver } from './driver.js';
import { fatalCause } from './failstop.js';
import { RemovedMemberError } from './recovery.js';

export interface LifecycleHost {
  readonly cfg: NodeConfig;
  driver(): Driver;
  transport(): Transport;
  /** Refuses everything waiting on the log: proposals, membership changes, linearizable reads. */
  refuseWaiters(refusal: ServerRefusal): void;
  /** Stops the member's timers and background checks. */
  stopBackground(): void;
  /** Once the run loop is idle: background storage work settled, LMDB and the WAL closed durably. */
  closeStorage(): Promise<void>;
}

export class Lifecycle {
  /** Set once the member stops taking work (any of the three ways). */
  stopped = false;
  private removing = false;
  private failed = false;

  constructor(private readonly host: LifecycleHost) {}

  /**
   * Stops after 10 heartbeats, as etcd's stopWithDelay: a removed leader keeps leading that long so
   * the others learn that its removal committed (otherwise they may wait for its vote forever).
   */
  removed(why: string): void {
    if (this.removing) return;
    this.removing = true;
    const { cfg } = this.host;
    cfg.logger.warn('the member has been permanently removed from the cluster; stopping', { reason: why });
    setTimeout(() => {
      this.stopped = true;
      this.host.driver().stop();
      cfg.onRemoved(new RemovedMemberError(`etcdserver: the member has been permanently removed from the cluster (${why})`));
    }, 10 * cfg.heartbeatMs);
  }

  /** The driver stopped on a fault: everything waiting is refused and the process told to stop. */
  stopOnFault(err: unknown): void {
    const fatal = fatalCause(err);
    if (this.failed) return;
    this.failed = true;
    this.stopped = true;
    this.host.refuseWaiters(new ServerRefusal('stopped', 'etcdserver: server stopped', { cause: fatal }));
    this.host.cfg.onFatal(fatal);
  }

  /**
   * Stops taking proposals, lets the run loop finish its Ready, and closes storage durably; rejects
   * (the process then exits with a failure) if that takes longer than SHUTDOWN_TIMEOUT_MS. Everything
   * acknowledged is in the WAL either way.
   */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ServerRefusal('timeout', `node: shutdown did not finish within ${SHUTDOWN_TIMEOUT_MS} ms`)), SHUTDOWN_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.closeSteps(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async closeSteps(): Promise<void> {
    this.stopped = true;
    const driver = this.host.driver();
    driver.stop();
    this.host.stopBackground();
    await this.host.transport().close();
    await driver.idle();
    this.host.refuseWaiters(new ServerRefusal('stopped'));
    await this.host.closeStorage();
  }
}
