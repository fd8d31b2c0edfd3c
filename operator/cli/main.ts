// kubectl-cairn: the kubectl plugin of Cairn clusters (`kubectl cairn ...` once kubectl-cairn is on
// PATH; package.json's bin). Everything goes through the Kubernetes API: the EtcdCluster object for
// what the operator reports, and a port-forward (pods/portforward) to each member's client port for
// the etcd admin calls; no network path to the pods is needed.
//   kubectl cairn status   CLUSTER              members, leader, versions, db size, alarms, last backup
//   kubectl cairn members  CLUSTER              the member list (ids, peer and client URLs, learners)
//   kubectl cairn defrag   CLUSTER [--member M] defragment (followers first, leader last), with progress
//   kubectl cairn compact  CLUSTER [--revision N]  compact the history (default: the current revision)
//   kubectl cairn snapshot CLUSTER FILE [--member M]  a verified snapshot into a local file, with progress
//   kubectl cairn move-leader CLUSTER MEMBER    move the leadership to MEMBER (a pod name)
//   kubectl cairn alarm list|disarm CLUSTER     the raised alarms; disarm them
// Flags: -n/--namespace (default: the kubeconfig context's, else "default"), --kubeconfig, --context,
// -o/--output text|json. Exit codes: 0 done, 1 failed (the reason on stderr), 2 usage.
import process from 'node:process';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { CliError, ClusterHandle } from './cluster.js';
import * as cmd from './commands.js';
import { formatBytes, type AlarmRow, type DefragRow, type ListedRow, type StatusResult } from './commands.js';

const USAGE = `usage: kubectl cairn <command> CLUSTER [args] [-n NAMESPACE] [-o text|json] [--kubeconfig F] [--context C]
commands:
  status CLUSTER                    members, leader, versions, db size, alarms, last backup
  members CLUSTER                   the member list
  defrag CLUSTER [--member M]       defragment every member (or M), followers first, leader last
  compact CLUSTER [--revision N]    compact the key history (default: the current revision)
  snapshot CLUSTER FILE [--member M]  save a verified snapshot to FILE (default member: the leader)
  move-leader CLUSTER MEMBER        move the leadership to MEMBER
  alarm list|disarm CLUSTER         list or disarm the raised alarms`;

class UsageError extends Error {}

function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function statusText(s: StatusResult): string {
  const head = `EtcdCluster ${s.namespace}/${s.name}: ${s.phase ?? 'Unknown'}, ${s.readyMembers ?? '?'} ready, version ${s.version ?? '?'}${s.operation !== undefined ? `, operation ${s.operation}` : ''}`;
  const conds = s.conditions.map((c) => `  ${c.type}=${c.status} ${c.reason}${c.message !== '' ? `: ${c.message}` : ''}`);
  const rows = s.members.map((m) => [
    m.name,
    m.id ?? '-',
    m.leader ? 'leader' : m.learner ? 'learner' : 'follower',
    m.healthy ? 'yes' : 'no',
    m.version ?? '-',
    m.apiVersion ?? '-',
    m.dbSize !== undefined ? formatBytes(m.dbSize) : '-',
    m.dbSizeInUse !== undefined ? formatBytes(m.dbSizeInUse) : '-',
    m.revision !== undefined ? String(m.revision) : '-',
    m.errors.join('; '),
  ]);
  const alarms = s.alarms.length === 0 ? 'Alarms: none' : `Alarms: ${s.alarms.map((a) => `${a.alarm} on ${a.member} (${a.memberId})`).join(', ')}`;
  const b = s.lastBackup;
  const backup = b === null ? 'Last backup: none' : `Last backup: ${b.name} at ${b.time} (revision ${String(b.revision)}, ${formatBytes(b.size)}, ${b.uri})`;
  return [
    head,
    'Conditions:',
    ...conds,
    table(['MEMBER', 'ID', 'ROLE', 'HEALTHY', 'VERSION', 'API', 'DB SIZE', 'IN USE', 'REVISION', 'ERRORS'], rows),
    alarms,
    backup + (s.nextBackup !== null ? `; next ${s.nextBackup}` : ''),
  ].join('\n');
}

const membersText = (rows: readonly ListedRow[]): string =>
  table(
    ['NAME', 'ID', 'LEARNER', 'PEER URLS', 'CLIENT URLS'],
    rows.map((m) => [m.name, m.id, m.learner ? 'yes' : 'no', m.peerURLs.join(','), m.clientURLs.join(',')]),
  );

const defragText = (rows: readonly DefragRow[]): string =>
  table(
    ['MEMBER', 'BEFORE', 'AFTER', 'TIME'],
    rows.map((r) => [r.member, formatBytes(r.dbSizeBefore), formatBytes(r.dbSizeAfter), `${String(r.ms)} ms`]),
  );

const alarmText = (rows: readonly AlarmRow[], verb: string): string => (rows.length === 0 ? `no alarms${verb === '' ? '' : ` to ${verb}`}` : rows.map((a) => `${verb === '' ? '' : `${verb}ed `}${a.alarm} on ${a.member} (${a.memberId})`).join('\n'));

interface Parsed {
  command: string;
  positionals: string[];
  namespace: string | undefined;
  kubeconfig: string | undefined;
  context: string | undefined;
  json: boolean;
  member: string | undefined;
  revision: number | undefined;
}

function parse(argv: readonly string[]): Parsed {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      output: { type: 'string', short: 'o' },
      member: { type: 'string' },
      revision: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help === true || command === undefined) throw new UsageError('');
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`-o must be text or json, not ${output}`);
  let revision: number | undefined;
  if (values.revision !== undefined) {
    revision = Number(values.revision);
    if (!Number.isInteger(revision) || revision <= 0) throw new UsageError(`--revision must be a positive integer, not ${values.revision}`);
  }
  return { command, positionals: rest, namespace: values.namespace, kubeconfig: values.kubeconfig, context: values.context, json: output === 'json', member: values.member, revision };
}

function kubeConfig(p: Parsed): KubeConfig {
  const kc = new KubeConfig();
  if (p.kubeconfig !== undefined) kc.loadFromFile(p.kubeconfig);
  else kc.loadFromDefault();
  if (p.context !== undefined) kc.setCurrentContext(p.context);
  return kc;
}

function need(p: Parsed, n: number, what: string): string[] {
  if (p.positionals.length !== n) throw new UsageError(`${p.command} takes ${what}`);
  return p.positionals;
}

async function run(p: Parsed, progress: cmd.Progress): Promise<{ text: string; json: unknown }> {
  const kc = kubeConfig(p);
  const namespace = p.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  let sub = '';
  let args = p.positionals;
  if (p.command === 'alarm') {
    sub = args[0] ?? '';
    if (sub !== 'list' && sub !== 'disarm') throw new UsageError('alarm takes list or disarm, then CLUSTER');
    args = args.slice(1);
  }
  const cluster = args[0];
  if (cluster === undefined) throw new UsageError(`${p.command} needs CLUSTER`);
  const h = new ClusterHandle(kc, namespace, cluster);
  try {
    switch (p.command) {
      case 'status': {
        need(p, 1, 'CLUSTER');
        const s = await cmd.status(h);
        return { text: statusText(s), json: s };
      }
      case 'members': {
        need(p, 1, 'CLUSTER');
        const m = await cmd.members(h);
        return { text: membersText(m), json: m };
      }
      case 'defrag': {
        need(p, 1, 'CLUSTER');
        const d = await cmd.defrag(h, progress, p.member);
        return { text: defragText(d), json: d };
      }
      case 'compact': {
        need(p, 1, 'CLUSTER');
        const c = await cmd.compact(h, p.revision);
        return { text: `compacted at revision ${String(c.revision)}`, json: c };
      }
      case 'snapshot': {
        const [, file] = need(p, 2, 'CLUSTER FILE');
        const s = await cmd.snapshot(h, file ?? '', progress, p.member);
        return { text: `snapshot of ${s.member} at revision ${String(s.revision)}: ${s.file}, ${String(s.bytes)} bytes, sha256 ${s.sha256}`, json: s };
      }
      case 'move-leader': {
        const [, target] = need(p, 2, 'CLUSTER MEMBER');
        const m = await cmd.moveLeader(h, target ?? '');
        return { text: m.from === m.to ? `${m.to} already leads` : `leadership moved from ${m.from} to ${m.to}`, json: m };
      }
      case 'alarm': {
        if (args.length !== 1) throw new UsageError(`alarm ${sub} takes CLUSTER`);
        const a = sub === 'list' ? await cmd.alarmList(h) : await cmd.alarmDisarm(h);
        return { text: alarmText(a, sub === 'list' ? '' : 'disarm'), json: a };
      }
      default:
        throw new UsageError(`unknown command ${p.command}`);
    }
  } finally {
    await h.close();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let p: Parsed;
  try {
    p = parse(argv);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`${msg === '' ? '' : `kubectl-cairn: ${msg}\n`}${USAGE}\n`);
    return 2;
  }
  const progress = (line: string): void => {
    process.stderr.write(p.json ? `${JSON.stringify({ ts: new Date().toISOString(), progress: line })}\n` : `${line}\n`);
  };
  try {
    const r = await run(p, progress);
    process.stdout.write(`${p.json ? JSON.stringify(r.json, null, 2) : r.text}\n`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kubectl-cairn: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`kubectl-cairn ${p.command}: ${e instanceof CliError || e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`kubectl-cairn: ${String(e)}\n`);
    process.exit(1);
  },
);
