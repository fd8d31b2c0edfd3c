// The previous Cairn release, built from git history, for rolling-upgrade tests (a mixed cluster of
// the release before and this one). Needs the repository's git history (not a tarball).
import { execFileSync } from 'node:child_process';
import { chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from './procs.js';

/** The last commit before the HashKV change (ee6b166) and the typed peer requests: CRC-32 hashes
 * (hash version 1) and one transport kind per member-to-member request with JSON answers. */
export const PREVIOUS_RELEASE = '9c42d4866956a86cc536258a39526b4923f3469c';

let built: string[] | undefined;

/** Builds PREVIOUS_RELEASE (once per process); returns a startCairn commandPrefix that runs its main instead of ours. */
export function previousRelease(): string[] {
  if (built !== undefined) return built;
  const dir = tempDir('cairn-previous-release-');
  execFileSync('bash', ['-c', `git -C "${REPO_ROOT}" archive ${PREVIOUS_RELEASE} | tar -x -C "${dir}"`], { stdio: ['ignore', 'ignore', 'inherit'] });
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { stdio: ['ignore', 'inherit', 'inherit'] });
  // startCairn runs `<prefix> node <our main> args`: swap our main for the previous release's.
  const script = join(dir, 'previous-main.sh');
  writeFileSync(script, `#!/bin/bash\nnode="$1"; shift 2\nexec "$node" "${join(dir, 'dist', 'server', 'main.js')}" "$@"\n`);
  chmodSync(script, 0o755);
  built = [script];
  return built;
}
