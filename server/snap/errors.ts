// The offline tool's one failure class: a snapshot or a request the tool refuses, with a message meant
// for the operator (the CLI prints it as etcdutl does: "Error: <message>", exit 1).

/** A snapshot file, restore target or flag combination refused; nothing was left on disk. */
export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
}
