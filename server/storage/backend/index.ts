export { Backend, LMDB_PAGE_BYTES, parseLmdbMeta, type LmdbMeta, type Table, type DupTable, type TableName, type DupTableName } from './backend.js';
