// The peer transport over TLS in process (https listen URLs + TransportOptions.tls): raft streams in
// order, forwarded requests, a snapshot of a few MiB (back-pressure through TLS sockets), the
// anonymous 'members' request of a joining member (Transport.requestUrl with a TLS config); an
// https peer dialled without peer certificates fails cleanly; a member with another CA's
// certificate is refused and logged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TlsConfig } from '../../server/base/tls.js';
import type { Message } from '../../server/raft/types.js';
import { Transport, type OutgoingSnapshot } from '../../server/transport/index.js';
import { makeCa } from '../harness/certs.js';
import { pollUntil } from '../harness/poll.js';
import { tempDir } from '../harness/procs.js';
import { type Member, appMsg, mesh, startMember, stopMember } from '../transport/fixtures.js';

const CLUSTER = 0x7157n;

function tlsFor(caFile: string, cert: { certFile: string; keyFile: string }): TlsConfig {
  return {
    files: { certFile: cert.certFile, keyFile: cert.keyFile, trustedCaFile: caFile, clientCertAuth: true },
    settings: { cipherSuites: [], minVersion: 'TLSv1.2', maxVersion: undefined },
  };
}

function snapMsg(from: bigint, to: bigint): Message {
  return { ...appMsg(from, to, 0), type: 'snap', entries: [], snapshot: { index: 50, term: 3, confState: { voters: [from, to], learners: [] } } };
}

test('peer transport over TLS: streams, requests, a snapshot, the joining member\'s anonymous request; refusals', { timeout: 60_000 }, async () => {
  const ca = makeCa('transport-ca');
  const content = randomBytes(3 * 1024 * 1024 + 777);
  const outDir = tempDir('cairn-tls-snap-');
  const members: Member[] = [];
  try {
    const b = await startMember(2n, CLUSTER, { listenUrls: ['https://127.0.0.1:0'], tls: tlsFor(ca.caFile, ca.issue('b')) });
    members.push(b);
    const a: Member = await startMember(1n, CLUSTER, {
      listenUrls: ['https://127.0.0.1:0'],
      tls: tlsFor(ca.caFile, ca.issue('a')),
      openSnapshot: async (msg): Promise<OutgoingSnapshot> => {
        const file = path.join(outDir, 'outgoing.db');
        await writeFile(file, content);
        return { msg, file, release: () => Promise.resolve() };
      },
    });
    members.push(a);
    assert.match(a.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    mesh([a, b]);

    a.t.send(Array.from({ length: 200 }, (_, i) => appMsg(1n, 2n, i)));
    await pollUntil('200 messages at b', () => Promise.resolve(b.received.length === 200), 15_000);
    assert.deepEqual(b.received.map((m) => m.index), Array.from({ length: 200 }, (_, i) => i));

    const reply = await a.t.request(2n, 'echo', new Uint8Array(Buffer.from('over tls')), 5000);
    assert.equal(Buffer.from(reply).toString(), 'echo:over tls');

    a.t.send([snapMsg(1n, 2n)]);
    await pollUntil('the snapshot sent', () => Promise.resolve(a.snapshotsSent.length === 1), 20_000);
    assert.deepEqual(a.snapshotsSent, [{ to: 2n, ok: true }]);
    const got = b.snapshots[0];
    assert.ok(got !== undefined);
    assert.ok((await readFile(got.file)).equals(content));

    // A joining member's anonymous request, with the peer certificates (bootstrap's path).
    const joinTls = tlsFor(ca.caFile, ca.issue('joiner'));
    const members0 = await Transport.requestUrl(b.url, 'members', new Uint8Array(0), 5000, 0n, joinTls);
    assert.equal(Buffer.from(members0).toString(), 'members:');

    // Without peer certificates an https URL cannot be dialled; with another CA's certificate the member refuses.
    await assert.rejects(Transport.requestUrl(b.url, 'members', new Uint8Array(0), 3000), /https peer URL but no --peer-cert-file/);
    const rogue = makeCa('rogue-ca');
    await assert.rejects(Transport.requestUrl(b.url, 'members', new Uint8Array(0), 3000, 0n, { ...tlsFor(ca.caFile, rogue.issue('rogue')) }));
    await pollUntil('b logged the rejected connection', () => Promise.resolve(b.logs.some((l) => l.msg === 'rejected connection on peer endpoint')), 5000);
  } finally {
    for (const m of members) await stopMember(m);
  }
});
