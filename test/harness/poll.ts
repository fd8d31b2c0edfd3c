// Waiting for a condition in tests: poll with a deadline (never a bare sleep standing in for
// synchronisation), and quiet windows in which something must NOT happen; and `pool`, a bounded
// number of calls in flight.

/** Resolves once cond() is true; rejects with "no <what> within <ms> ms" after timeoutMs. */
export async function pollUntil(what: string, cond: () => Promise<boolean>, timeoutMs = 10_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Resolves after ms: a window in which something must NOT happen (never for synchronisation). */
export function quietWindow(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs fn over items with at most `inFlight` calls outstanding. */
export async function pool<T>(items: readonly T[], inFlight: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      const it = items[i];
      if (it !== undefined) await fn(it);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
}
