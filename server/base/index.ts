export * from './limits.js';
export * from './log.js';
export * from './errors.js';
export * from './bytes.js';
export * from './failpoints.js';
