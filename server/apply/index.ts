export { applyEntry, applyRequest, MidTxnError, type ApplyOutcome, type ApplyResponse, type ApplyContext, type LeaseChanges } from './apply.js';
export { applyRange, applyTxn, isTxnReadOnly, NO_LEASES, type LeaseLookup } from './kv.js';
export { AlarmStore, type ActiveAlarm } from './alarm.js';
export type { AuthApplied } from './auth.js';
