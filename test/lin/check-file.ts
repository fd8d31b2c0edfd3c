// Re-checks a history written by test/lin/lin.test.ts (CAIRN_LIN_DUMP or the temp file named on a
// failure): node dist/test/lin/check-file.js <history.json> [timeout-seconds]
import { readFileSync } from 'node:fs';
import { checkKvHistory, summarize } from './checker.js';
import { parseHistoryJson } from './workload.js';

const [file, timeout] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: node dist/test/lin/check-file.js <history.json> [timeout-seconds]');
  process.exit(2);
}
const ops = parseHistoryJson(readFileSync(file, 'utf8'));
const t0 = performance.now();
const report = checkKvHistory(ops, { timeoutMs: Number(timeout ?? 600) * 1000 });
console.log(`${summarize(report)}\nchecked ${ops.length} ops in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
if (report.failure !== undefined) console.log(report.failure);
process.exit(report.result === 'ok' ? 0 : 1);
