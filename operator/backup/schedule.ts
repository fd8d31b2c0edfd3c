// Backup schedules: cron expressions (5 fields, or 6 with seconds; croner's syntax, which is
// Vixie cron's plus L, W, # and nicknames such as @daily) in an IANA time zone (default UTC).
// validateSchedule() is the admission check: a schedule that does not parse is refused with the
// reason. nextRun() is what the controller requeues for.
import { Cron } from 'croner';
import { BackupError } from './errors.js';

export interface Schedule {
  readonly schedule: string;
  /** IANA zone, e.g. "Europe/Berlin"; default "UTC". */
  readonly timeZone?: string;
}

function cronOf(s: Schedule): Cron {
  return new Cron(s.schedule, { timezone: s.timeZone ?? 'UTC', paused: true });
}

/** The reason a schedule is refused, or undefined when it is valid. */
export function scheduleProblem(s: Schedule): string | undefined {
  if (s.schedule.trim() === '') return 'spec.backup.schedule is empty: give a cron expression such as "0 3 * * *" (03:00 every day)';
  if (s.timeZone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: s.timeZone });
    } catch {
      return `spec.backup.timeZone "${s.timeZone}" is not an IANA time zone (e.g. "UTC", "Europe/Berlin")`;
    }
  }
  try {
    const c = cronOf(s);
    if (c.nextRun(new Date(0)) === null) return `spec.backup.schedule "${s.schedule}" never fires`;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return `spec.backup.schedule "${s.schedule}" is not a cron expression (${why}); expected 5 fields "minute hour day-of-month month day-of-week", e.g. "0 3 * * *"`;
  }
  return undefined;
}

/** Throws BackupError('InvalidSchedule') with the reason when the schedule is refused. */
export function validateSchedule(s: Schedule): void {
  const p = scheduleProblem(s);
  if (p !== undefined) throw new BackupError('InvalidSchedule', p);
}

/** The first time strictly after `after` at which the schedule fires (null: never again). */
export function nextRun(s: Schedule, after: Date): Date | null {
  validateSchedule(s);
  return cronOf(s).nextRun(after);
}

/** Whether a run was due in (lastRun, now]: the controller starts a backup when this is true. */
export function isDue(s: Schedule, lastRun: Date, now: Date): boolean {
  const n = nextRun(s, lastRun);
  return n !== null && n.getTime() <= now.getTime();
}
