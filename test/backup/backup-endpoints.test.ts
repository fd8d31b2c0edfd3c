// Destinations as users bring them, against a real S3 server (SeaweedFS): an https endpoint whose
// certificate is signed by a private CA (trusted through the destination's CA bundle; refused
// without it, with the reason), and virtual-hosted addressing (<bucket>.localhost, resolved to
// loopback by the test's own DNS lookup since this machine's resolver does not do *.localhost).
// test-file-timeout: 4 min
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S3Client } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import type { LookupFunction } from 'node:net';
import { BackupError, runBackup, s3Client } from '../../operator/backup/index.js';
import { makeCa } from '../harness/certs.js';
import { startCluster } from '../harness/cluster.js';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { S3_ADMIN, S3_REGION, startS3, weedBin } from '../harness/s3.js';
import { clientFor, exists, load, logSink, sourceFor } from './lib.js';

const BUCKET = 'endpoints';

/** *.localhost → 127.0.0.1 (what systemd-resolved does; glibc's files+dns here does not). */
const localhostLookup: LookupFunction = (hostname, options, cb) => {
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
    if (options.all === true) cb(null, [{ address: '127.0.0.1', family: 4 }]);
    else cb(null, '127.0.0.1', 4);
    return;
  }
  cb(Object.assign(new Error(`test lookup: ${hostname} unknown`), { code: 'ENOTFOUND' }), '', 4);
};

test('https with a private CA bundle, and virtual-hosted addressing', async (t) => {
  const missing = missingPrerequisite(() => weedBin());
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const ca = makeCa('s3ca');
  const cert = ca.issue('s3', { sans: ['IP:127.0.0.1', 'DNS:localhost', 'DNS:*.localhost'] });
  const [s3server, cluster] = await Promise.all([startS3({ buckets: [BUCKET], tls: cert, domainName: 'localhost' }), startCluster('cairn', { size: 1 })]);
  const admin = clientFor(s3server);
  const source = sourceFor(cluster.member('m1').endpoint);
  try {
    await load(cluster.client('m1'), 'k/', 50, 1000);
    const https = s3server.httpsEndpoint;
    assert.ok(https !== undefined);

    await t.test('https: trusted through the CA bundle; refused without it, naming the certificate', async () => {
      const trusted = s3Client({ bucket: BUCKET, endpoint: https, forcePathStyle: true, caBundlePem: readFileSync(ca.caFile, 'utf8') }, S3_ADMIN);
      const rec = await runBackup({ s3: trusted, bucket: BUCKET, prefix: 'tls/', cluster: 'c1', source, now: () => new Date(), log: logSink().log });
      assert.ok(await exists(admin, BUCKET, rec.key));
      trusted.destroy();
      const untrusted = s3Client({ bucket: BUCKET, endpoint: https, forcePathStyle: true }, S3_ADMIN);
      await assert.rejects(runBackup({ s3: untrusted, bucket: BUCKET, prefix: 'tls/', cluster: 'c1', source, now: () => new Date(), log: logSink().log }), (e: unknown) => {
        assert.ok(e instanceof BackupError);
        assert.equal(e.reason, 'EndpointUnreachable', e.message);
        assert.match(e.message, /TLS certificate was refused .*CA bundle/);
        return true;
      });
      untrusted.destroy();
    });

    await t.test('virtual-hosted style: <bucket>.localhost', async () => {
      const vhost = new S3Client({
        endpoint: `http://localhost:${String(s3server.port)}`,
        region: S3_REGION,
        forcePathStyle: false,
        credentials: S3_ADMIN,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler: { httpAgent: new HttpAgent({ lookup: localhostLookup }) },
      });
      const seen: string[] = [];
      vhost.middlewareStack.add(
        (next) => async (args) => {
          const req = args.request as { hostname?: string };
          if (typeof req.hostname === 'string') seen.push(req.hostname);
          return next(args);
        },
        { step: 'finalizeRequest', name: 'recordHost' },
      );
      const rec = await runBackup({ s3: vhost, bucket: BUCKET, prefix: 'vh/', cluster: 'c1', source, now: () => new Date(), log: logSink().log });
      vhost.destroy();
      assert.ok(seen.length > 0 && seen.every((h) => h === `${BUCKET}.localhost`), `every request went to ${BUCKET}.localhost: ${[...new Set(seen)].join(', ')}`);
      assert.ok(await exists(admin, BUCKET, rec.key), 'the object is there, seen path-style');
    });
  } finally {
    source.close();
    admin.destroy();
    await cluster.close();
    await s3server.stop();
  }
});
