// Re-checks a history written by test/lin/lin.test.ts (CAIRN_LIN_DUMP, or the temp file named on a
// failure): node dist/test/lin/check-file.js <history.json> [timeout-seconds] [--raw]
// With the store's events in the file, unknown writes are resolved from them first (as the test
// does) unless --raw is given.
import { readFileSync } from 'node:fs';
import { checkKvHistory, resolveWithHistory, summarize } from './checker.js';
import { parseHistoryJson } from './workload.js';

const args = process.argv.slice(2);
const raw = args.includes('--raw');
const [file, timeout] = args.filter((a) => a !== '--raw');
if (file === undefined) {
  console.error('usage: node dist/test/lin/check-file.js <history.json> [timeout-seconds] [--raw]');
  process.exit(2);
}
const h = parseHistoryJson(readFileSync(file, 'utf8'));
let ops = h.ops;
if (!raw && h.events.length > 0) {
  const r = resolveWithHistory(ops, h.events);
  console.log(`resolved from ${h.events.length} events: ${r.applied} unknown writes took effect, ${r.dropped} did not, ${r.unresolved} unresolved`);
  for (const p of r.problems) console.log(`PROBLEM: ${p}`);
  ops = r.ops;
}
const t0 = performance.now();
const report = checkKvHistory(ops, { timeoutMs: Number(timeout ?? 600) * 1000 });
console.log(`${summarize(report)}\nchecked ${ops.length} ops in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
if (report.failure !== undefined) console.log(report.failure);
process.exit(report.result === 'ok' ? 0 : 1);
