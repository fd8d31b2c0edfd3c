// The process exit statuses of cairn-server, for supervisors (a pod entrypoint, systemd): one place,
// printed by --help.

/** A clean start or stop that etcd also ends with 0 (--help, --version). */
export const EXIT_OK = 0;
/** A storage fault (fail-stop), a failed start or a failed shutdown: restarting may help. */
export const EXIT_FAILURE = 1;
/** Bad flags or configuration (as etcd). */
export const EXIT_BAD_FLAGS = 2;
/**
 * An internal error (a bug): a raft invariant violation, an assertion, or an unexpected exception in
 * the Ready -> WAL -> transport -> apply pipeline or anywhere else in the process. The member stops
 * at once (fail-stop) with the cause logged ("internal error (a bug); stopping"); what it acknowledged
 * is in its WAL, so a restart recovers, but the log line belongs in a bug report. (sysexits'
 * EX_SOFTWARE; a storage fault is 1, never this.)
 */
export const EXIT_BUG = 70;
/**
 * This member was removed from the cluster, found while running or at start on its old data dir.
 * Restarting on that data dir can never work: remove the data dir and add the member again
 * (MemberAdd, then start with --initial-cluster-state existing). etcd exits 0 in both cases.
 */
export const EXIT_MEMBER_REMOVED = 78;

/** The "Exit status" section of --help. */
export function exitStatusHelp(): string {
  return [
    'Exit status:',
    `  ${EXIT_OK}   --help, --version`,
    `  ${EXIT_FAILURE}   a storage fault (fail-stop), a failed start or a failed shutdown; a restart may recover`,
    `  ${EXIT_BAD_FLAGS}   bad flags or configuration`,
    `  ${EXIT_BUG}  an internal error (a bug: a raft invariant violation, an unexpected exception); the cause is`,
    '      logged as "internal error (a bug); stopping"; a restart recovers from the WAL; please report it',
    `  ${EXIT_MEMBER_REMOVED}  this member was removed from the cluster (while running, or its data dir belongs to a`,
    '      removed member): never restart on that data dir; remove it and add the member again',
    '  SIGTERM/SIGINT: after a graceful shutdown (leadership handed to a caught-up voter first) the',
    '      process ends by the same signal, as etcd does (shells report 143 or 130)',
    '',
  ].join('\n');
}
