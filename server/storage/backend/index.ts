export { Backend, type Table, type DupTable, type TableName, type DupTableName } from './backend.js';
