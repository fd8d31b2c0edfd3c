/**
 * Errors, split by blame (DESIGN.md §3.7):
 * - WalCorruptError: the bytes on disk are damaged or inconsistent (never repaired silently).
 * - WalFatalError: a local storage fault (write, fsync, unlink, ...). The process must exit and
 *   recover from its WAL and its peers; never retry (a retried fsync can report success for lost pages).
 * - WalFormatError (a WalCorruptError): a segment in another on-disk format version (no migration).
 * - WalUsageError: the caller broke the contract (index out of range, entry too large, bad option).
 * - WalClosedError: the WAL was closed.
 */

export class WalCorruptError extends Error {
  override readonly name: string = 'WalCorruptError';
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, reason: string, options?: ErrorOptions) {
    super(`wal: corrupt record in ${file} at offset ${offset}: ${reason}`, options);
    this.file = file;
    this.offset = offset;
  }
}

/**
 * A segment written in another on-disk format version: readable bytes, but not ours to read. A
 * WalCorruptError (the data dir cannot be used as it is) with a message that says what to do.
 */
export class WalFormatError extends WalCorruptError {
  override readonly name = 'WalFormatError';
  readonly version: number;

  constructor(file: string, version: number, supported: number) {
    super(file, 0, `segment format version ${version}`);
    const writer = version < supported ? 'an older' : 'a newer';
    this.message =
      `wal: ${file} is in WAL segment format version ${version}, written by ${writer} Cairn; this Cairn reads only ` +
      `version ${supported} and does not migrate: this data dir must be recreated (remove it, then re-add the member or restore a snapshot)`;
    this.version = version;
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
