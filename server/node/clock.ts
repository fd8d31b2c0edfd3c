// The member's clock (DESIGN style 2: node/ owns time). The pieces that wait take a Clock, so the
// simulation (test/raft/sim*.ts) can run them in virtual time.

/** Monotonic milliseconds (lease expiry must not follow wall-clock jumps). */
export function monotonicMs(): number {
  return performance.now();
}

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Calls fn once after `ms`; returns a handle for cancel(). */
  after(ms: number, fn: () => void): unknown;
  cancel(timer: unknown): void;
  /** Calls fn once the current I/O phase ends (setImmediate: gathers what arrives in one phase). */
  defer(fn: () => void): void;
  /** Calls fn every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

/** The process's own clock and timers. */
export const systemClock: Clock = {
  now: monotonicMs,
  after: (ms, fn) => setTimeout(fn, ms),
  cancel: (timer) => clearTimeout(timer as NodeJS.Timeout),
  defer: (fn) => {
    setImmediate(fn);
  },
  every: (ms, fn) => {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
};
