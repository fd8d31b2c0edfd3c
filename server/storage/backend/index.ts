export { Backend, type Table, type DupTable, type Entry, type TableName, type DupTableName } from './backend.js';
