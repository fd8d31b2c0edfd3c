// A unix socket listener's path, for the client (api/listen.ts) and the peer (transport/) listeners.
import { lstat, unlink } from 'node:fs/promises';

/**
 * etcd removes whatever is at the path before listening; we replace only a socket (a stale one, left
 * by a crash) and refuse anything else.
 */
export async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new Error('the path exists and is not a socket (only a stale socket is replaced)');
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
