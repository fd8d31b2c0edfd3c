export { Backend, type Table, type Entry, type TableName } from './backend.js';
