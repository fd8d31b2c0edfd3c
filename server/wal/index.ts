export { Wal, segmentBytesDefault } from './wal.js';
export type { WalOpened } from './wal.js';
export { WalClosedError, WalCorruptError, WalFatalError, WalFormatError, WalUsageError } from './errors.js';
export { entryDataBytesMax } from './payload.js';
export type { WalEntry, WalEntryType, WalHardState, WalLogger, WalOptions, WalSnapshot, WalStats } from './types.js';
