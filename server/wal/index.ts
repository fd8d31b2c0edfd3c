export { Wal, segmentBytesDefault } from './wal.js';
export { WalClosedError, WalCorruptError, WalFatalError, WalUsageError } from './errors.js';
export { entryDataBytesMax } from './record.js';
export type { WalEntry, WalLogger, WalOptions, WalStats } from './types.js';
