// CAIRN_FAILPOINTS parsing and counting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InjectedFault, failpoint } from '../../server/base/failpoints.js';

test('a failpoint is off unless named, passes N times, then fails every time', () => {
  assert.equal(failpoint('wal.write', {}), undefined);
  assert.equal(failpoint('wal.write', { CAIRN_FAILPOINTS: '' }), undefined);
  const hook = failpoint('wal.write', { CAIRN_FAILPOINTS: 'wal.write:after=2' });
  assert.ok(hook !== undefined);
  hook();
  hook();
  assert.throws(hook, InjectedFault);
  assert.throws(hook, /failpoint wal\.write: injected I\/O error \(pass 4, after=2\)/);
});

test('a spec that does not parse, or names an unknown point, is refused', () => {
  assert.throws(() => failpoint('wal.write', { CAIRN_FAILPOINTS: 'wal.write' }), /cannot parse "wal.write"/);
  assert.throws(() => failpoint('wal.write', { CAIRN_FAILPOINTS: 'disk.melt:after=1' }), /cannot parse "disk.melt:after=1"/);
});
