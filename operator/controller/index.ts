// The operator's loop and its machinery: reconcile queue, leader election, metrics, JSON logs.
export { AFTER_ACTION_MS, Controller, MANAGED_SELECTOR, RESYNC_MS, type ControllerOptions } from './controller.js';
export { LeaderElector, LEASE_DURATION_S, RENEW_MS } from './leader.js';
export { jsonLogger, type Level, type Logger } from './log.js';
export { OperatorMetrics } from './metrics.js';
export { BackupRunner, BACKUP_TICK_MS, parseBackup, setCondition, type BackupRunnerOptions } from './backups.js';
export { candidatesOf, MISSED_RUNS_WALK_MAX, recordsToDelete, retentionPolicy, scheduleDecision, scheduledBackupName, type ScheduleDecision } from './backup-plan.js';
