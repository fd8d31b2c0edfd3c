export { Lessor, type LeaseView } from './lessor.js';
export { LeaseStore } from './store.js';
