// An older copy of the database put back under a newer WAL (Cairn's form of etcd's
// TestBreakConsistentIndexNewerThanSnapshot, which copies etcd's own member/snap/db): once the WAL
// released the entries the old copy lacks, the member refuses to start with a storage error naming
// both indexes (exit status 1, not a bug's 70), and starts again when the newer file is back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdClient } from '../harness/client.js';
import { startCairn, tempDir } from '../harness/procs.js';

test('an older database under a WAL that released its missing entries: refused at start, storage error', async () => {
  const args = ['--snapshot-count=50', '--wal-segment-bytes=65536'];
  let s = await startCairn({ extraArgs: args });
  const { name, dataDir } = s;
  const db = join(dataDir, 'member', 'db.mdb');
  const saved = join(tempDir('cairn-stale-db-'), 'db.mdb');
  await s.stop();
  copyFileSync(db, saved);
  s = await startCairn({ name, dataDir, extraArgs: args });
  const c = new EtcdClient(s.endpoint);
  await c.waitReady();
  const value = Buffer.alloc(2048, 0x63);
  for (let i = 0; i < 300; i++) {
    const r = await c.put({ key: Buffer.from(`k${i % 10}`), value });
    assert.ok(r.ok, `put ${i}`);
  }
  c.close();
  await s.stop();
  const current = join(tempDir('cairn-new-db-'), 'db.mdb');
  copyFileSync(db, current);
  copyFileSync(saved, db);
  const refused = await startCairn({ name, dataDir, extraArgs: args, readyTimeoutMs: 15_000 }).then(
    async (p) => {
      await p.stop();
      return 'started';
    },
    (e: unknown) => (e instanceof Error ? e.message : String(e)),
  );
  assert.match(refused, /exited before ready \(exit code 1, signal null\)/, refused);
  assert.match(refused, /WAL in .* resumes at entry \d+ but the backend has applied only up to \d+/, refused);
  copyFileSync(current, db);
  s = await startCairn({ name, dataDir, extraArgs: args });
  await s.stop();
});
