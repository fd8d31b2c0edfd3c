// A WAL write that fails (injected EIO through the `wal.write` failpoint) under a concurrent write
// load: the server fails stop (never retries, never acknowledges what was not written), says why,
// and after a restart every write it had acknowledged is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCairn, tempDir } from '../harness/procs.js';
import { EtcdClient } from '../harness/client.js';

const WRITERS = 16;
const FAIL_AFTER = 40;

test('a failed WAL write stops the server; every acknowledged write survives the restart', { timeout: 120_000 }, async () => {
  const dataDir = tempDir('cairn-failpoint');
  const proc = await startCairn({ dataDir, env: { CAIRN_FAILPOINTS: `wal.write:after=${FAIL_AFTER}` } });
  const client = new EtcdClient(proc.endpoint);
  const acked: { key: string; rev: number }[] = [];
  const refused: string[] = [];
  try {
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, w) => {
        for (let i = 0; ; i++) {
          const key = `fp/${w}/${i}`;
          const r = await client.put({ key: Buffer.from(key), value: Buffer.from(`v${i}`) }, { timeoutMs: 5000 });
          if (!r.ok) {
            refused.push(r.details);
            return;
          }
          acked.push({ key, rev: Number((r.value['header'] as { revision: string }).revision) });
        }
      }),
    );
    await proc.exited(10_000);
  } finally {
    client.close();
    await proc.kill9().catch(() => undefined);
  }
  const lines = proc.stderrLines();
  assert.ok(acked.length > 0, 'some writes were acknowledged before the fault');
  assert.equal(refused.length, WRITERS, 'every writer saw its next write fail once the WAL failed');
  assert.ok(lines.some((l) => l.includes('failpoint armed')));
  assert.ok(lines.some((l) => l.includes('wal: storage fault') && l.includes('injected I/O error')), 'the WAL reports the failed write');
  assert.ok(lines.some((l) => l.includes('fatal storage error; stopping')), 'the server stops instead of retrying');

  const again = await startCairn({ dataDir });
  const c = new EtcdClient(again.endpoint);
  try {
    for (const a of acked) {
      const r = await c.range({ key: Buffer.from(a.key) });
      assert.ok(r.ok);
      const kv = (r.value['kvs'] as { mod_revision: string }[])[0];
      assert.ok(kv !== undefined, `acknowledged ${a.key} survived`);
      assert.equal(Number(kv.mod_revision), a.rev);
    }
    const put = await c.put({ key: Buffer.from('fp/after'), value: Buffer.from('x') });
    assert.ok(put.ok, 'the restarted server takes writes again');
  } finally {
    c.close();
    await again.stop();
  }
});
