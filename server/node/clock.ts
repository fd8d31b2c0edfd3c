// The member's clock (DESIGN style 2: node/ owns time).

/** Monotonic milliseconds (lease expiry must not follow wall-clock jumps). */
export function monotonicMs(): number {
  return performance.now();
}
