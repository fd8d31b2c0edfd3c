// Waiting for a condition in tests: poll with a deadline (never a bare sleep standing in for
// synchronisation), and quiet windows in which something must NOT happen.

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
