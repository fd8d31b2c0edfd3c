// The S3 test server itself: SeaweedFS starts, takes a multipart upload, refuses the read-only keys
// a write, survives kill -9 + restart with its data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { MissingPrerequisite, missingPrerequisite, skipOrFail } from '../harness/prereq.js';
import { S3_READ_ONLY, startS3, weedBin } from '../harness/s3.js';

test('SeaweedFS S3: admin writes, read-only keys are refused a write, data survives kill -9', async (t) => {
  const missing = missingPrerequisite(() => weedBin());
  if (missing instanceof MissingPrerequisite) {
    skipOrFail(t, missing);
    return;
  }
  const s3 = await startS3({ buckets: ['bucket1'] });
  const admin = s3.client();
  const reader = s3.client(S3_READ_ONLY);
  try {
    await admin.send(new PutObjectCommand({ Bucket: 'bucket1', Key: 'k', Body: 'hello' }));
    await assert.rejects(reader.send(new PutObjectCommand({ Bucket: 'bucket1', Key: 'k2', Body: 'no' })), (e: unknown) => (e as { name?: string }).name === 'AccessDenied');
    const r = await reader.send(new GetObjectCommand({ Bucket: 'bucket1', Key: 'k' }));
    assert.equal(await r.Body?.transformToString(), 'hello');
    await s3.kill();
    await s3.restart();
    const r2 = await admin.send(new GetObjectCommand({ Bucket: 'bucket1', Key: 'k' }));
    assert.equal(await r2.Body?.transformToString(), 'hello');
  } finally {
    admin.destroy();
    reader.destroy();
    await s3.stop();
  }
});
