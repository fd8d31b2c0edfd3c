/**
 * Errors, split by blame (DESIGN.md §3.7):
 * - WalCorruptError: the bytes on disk are damaged or inconsistent (never repaired silently).
 * - WalFatalError: a local storage fault (write, fsync, unlink, ...). The process must exit and
 *   recover from its WAL and its peers; never retry (a retried fsync can report success for lost pages).
 * - WalUsageError: the caller broke the contract (index not lastIndex()+1, entry too large, bad option).
 * - WalClosedError: the WAL was closed.
 */

export class WalCorruptError extends Error {
  override readonly name = 'WalCorruptError';
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, reason: string, options?: ErrorOptions) {
    super(`wal: corrupt record in ${file} at offset ${offset}: ${reason}`, options);
    this.file = file;
    this.offset = offset;
  }
}

export class WalFatalError extends Error {
  override readonly name = 'WalFatalError';
}

export class WalUsageError extends Error {
  override readonly name = 'WalUsageError';
}

export class WalClosedError extends Error {
  override readonly name = 'WalClosedError';

  constructor() {
    super('wal: closed');
  }
}
