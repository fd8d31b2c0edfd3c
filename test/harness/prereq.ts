// What a test needs from the machine (a binary, root, network namespaces) and what happens when it is
// missing. Under CI=true a missing prerequisite FAILS the test with the reason: CI cannot pass by
// accident. Outside CI a test may skip instead, with a message naming what is missing and how to
// install it. hack/check-skips.ts accepts an environment-guarded skip or early return only when it
// goes through skipOrFail() here (or is listed with its reason in hack/skips-allowed.txt).
import type { TestContext } from 'node:test';

/** CI mode: the CI environment variable is "true" or "1" (.ci/run sets CI=true). */
export function ciMode(): boolean {
  const v = process.env['CI'];
  return v === 'true' || v === '1';
}

/** A prerequisite a test found missing: what, and how a person installs it. */
export class MissingPrerequisite extends Error {
  readonly what: string;
  readonly install: string;
  constructor(what: string, install: string, options?: { cause?: unknown }) {
    super(`${what} (to install: ${install})`, options);
    this.name = 'MissingPrerequisite';
    this.what = what;
    this.install = install;
  }
}

/**
 * Under CI=true: throws (the test fails with the reason). Otherwise: marks the test skipped with the
 * reason and returns; the caller returns right after.
 */
export function skipOrFail(t: TestContext, missing: MissingPrerequisite): void {
  if (ciMode()) throw new Error(`CI=true, so a missing prerequisite fails instead of skipping: ${missing.message}`, { cause: missing });
  t.skip(`SKIPPED, missing: ${missing.message}`);
}

/** Runs `probe`; returns the MissingPrerequisite it threw (any other error is rethrown: a failure). */
export function missingPrerequisite(probe: () => unknown): MissingPrerequisite | undefined {
  try {
    probe();
    return undefined;
  } catch (e) {
    if (e instanceof MissingPrerequisite) return e;
    throw e;
  }
}
