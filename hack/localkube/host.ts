// What localkube does to the machine outside its processes, and how down undoes it: daemons with a
// recorded identity, sysctls, the node's interface and routes, the nftables guard, iptables chains
// left by kube-proxy/kubelet/CNI, mounts under the state dir, cgroups, host paths.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CGROUP_ROOT, CLUSTER_CIDR, HOST_IF, NFT_TABLE, NODE_IP, POD_IF, SERVICE_CIDR, SYSCTLS, type ProcRecord } from './layout.js';

/** Runs a command; throws with its stderr on failure. */
export function run(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, [...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: input ?? '', maxBuffer: 64 << 20 });
}

/** Runs a command; returns whether it succeeded (for cleanup steps that may find nothing to do). */
export function tryRun(cmd: string, args: readonly string[], input?: string): boolean {
  const r = spawnSync(cmd, [...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: input ?? '' });
  return r.status === 0;
}

// ---------- daemons ----------

/** A process's start time (field 22 of /proc/<pid>/stat), undefined when it is gone. */
export function startOf(pid: number): string | undefined {
  return procStart(pid);
}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    // Field 22 (starttime); the command name (field 2) may hold spaces, so count after its ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Starts a daemon in its own session, output appended to logFile; returns its identity. */
export function startDaemon(cmd: string, args: readonly string[], logFile: string, env: Record<string, string> = {}): ProcRecord {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, [...args], { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`cannot start ${cmd}`);
    return { pid, start: procStart(pid) ?? '' };
  } finally {
    closeSync(fd);
  }
}

/** True while the recorded process runs (same pid and start time) and is not a zombie. */
export function alive(p: ProcRecord): boolean {
  const start = procStart(p.pid);
  if (start === undefined || start !== p.start) return false;
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${String(p.pid)}/status`, 'utf8'));
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone (or 5 s after SIGKILL). */
export async function stopDaemon(p: ProcRecord, graceMs: number): Promise<void> {
  if (!alive(p)) return;
  signal(p.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(p) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!alive(p)) return;
  signal(p.pid, 'SIGKILL');
  const hard = Date.now() + 5_000;
  while (alive(p) && Date.now() < hard) await new Promise((r) => setTimeout(r, 50));
}

/** Pids whose command line contains every one of `parts` (e.g. containerd shims of our socket). */
export function pidsWithCmdline(parts: readonly string[]): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
      if (parts.every((p) => cmd.includes(p))) out.push(Number(e));
    } catch {
      // gone
    }
  }
  const mine = ancestors();
  return out.filter((p) => !mine.has(p));
}

/** This process and its ancestors (whose command lines may name the same paths: npm run ... --dir D). */
function ancestors(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    try {
      const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return out;
}

// ---------- sysctls ----------

export function readSysctls(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of SYSCTLS) {
    try {
      out[k] = readFileSync(`/proc/sys/${k}`, 'utf8').trim();
    } catch {
      // not on this kernel
    }
  }
  return out;
}

export function writeSysctl(key: string, value: string): void {
  writeFileSync(`/proc/sys/${key}`, value);
}

/** Puts back the recorded values; returns the keys that could not be written. */
export function restoreSysctls(saved: Record<string, string>): string[] {
  const failed: string[] = [];
  for (const [k, v] of Object.entries(saved)) {
    try {
      if (readFileSync(`/proc/sys/${k}`, 'utf8').trim() !== v) writeSysctl(k, v);
    } catch {
      failed.push(k);
    }
  }
  return failed;
}

// ---------- network ----------

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** The node interface (a port-less bridge holding NODE_IP), routes that keep the service and pod
 * ranges on this machine even before kube-proxy and the pod bridge exist, and the nftables guard. */
export function setupNetwork(nftRules: string): void {
  run('ip', ['link', 'add', HOST_IF, 'type', 'bridge']);
  run('ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', HOST_IF]);
  run('ip', ['link', 'set', HOST_IF, 'up']);
  run('ip', ['route', 'add', SERVICE_CIDR, 'dev', HOST_IF, 'src', NODE_IP]);
  run('ip', ['route', 'add', CLUSTER_CIDR, 'dev', HOST_IF, 'src', NODE_IP]);
  run('nft', ['-f', '-'], nftRules);
}

/** Removes the pod bridge (and veths still on it), the node interface and the nftables guard. */
export function teardownNetwork(): void {
  if (linkExists(POD_IF)) {
    for (const l of readdirSync(`/sys/class/net/${POD_IF}/brif`, { withFileTypes: false })) tryRun('ip', ['link', 'del', String(l)]);
    tryRun('ip', ['link', 'del', POD_IF]);
  }
  if (linkExists(HOST_IF)) tryRun('ip', ['link', 'del', HOST_IF]);
  tryRun('nft', ['delete', 'table', 'inet', NFT_TABLE]);
  for (const fam of ['ip', 'ip6']) tryRun('nft', ['delete', 'table', fam, 'kube-proxy']);
  // Conntrack entries of the pod and service ranges (NAT mappings of kube-proxy).
  for (const r of [CLUSTER_CIDR, SERVICE_CIDR]) {
    tryRun('conntrack', ['-D', '-s', r]);
    tryRun('conntrack', ['-D', '-d', r]);
  }
}

/** nftables tables as "family name". */
export function nftTables(): string[] {
  try {
    return run('nft', ['list', 'tables'])
      .split('\n')
      .map((l) => l.replace(/^table /, '').trim())
      .filter((l) => l !== '');
  } catch {
    return [];
  }
}

/** Deletes the tables not in `before` that hold no rule (iptables-nft leaves its emptied tables). */
export function removeEmptyNewNftTables(before: readonly string[]): void {
  for (const t of nftTables()) {
    if (before.includes(t)) continue;
    const [family, name] = t.split(' ');
    if (family === undefined || name === undefined) continue;
    let text = '';
    try {
      text = run('nft', ['list', 'table', family, name]);
    } catch {
      continue;
    }
    // Only base chain declarations (type/hook/policy lines), braces and blank lines: no rules.
    const rules = text.split('\n').filter((l) => {
      const x = l.trim();
      return x !== '' && x !== '}' && !x.startsWith('table ') && !x.startsWith('chain ') && !x.startsWith('type ');
    });
    if (rules.length === 0) tryRun('nft', ['delete', 'table', family, name]);
  }
}

const CHAIN_PREFIXES = /^(KUBE-|CNI-)/;

/** The iptables-save text of one table with every KUBE-* and CNI-* chain and every rule jumping to
 * one removed; undefined when the table holds none. */
export function stripKubeChains(saved: string): string | undefined {
  let touched = false;
  const kept: string[] = [];
  for (const line of saved.split('\n')) {
    const decl = /^:(\S+)/.exec(line);
    const rule = /^-A (\S+)(.*)$/.exec(line);
    if (decl !== null && CHAIN_PREFIXES.test(decl[1] ?? '')) {
      touched = true;
      continue;
    }
    if (rule !== null) {
      const target = / -[jg] (\S+)/.exec(rule[2] ?? '');
      if (CHAIN_PREFIXES.test(rule[1] ?? '') || (target !== null && CHAIN_PREFIXES.test(target[1] ?? ''))) {
        touched = true;
        continue;
      }
    }
    kept.push(line);
  }
  return touched ? kept.join('\n') : undefined;
}

/** `<tool>-save -t <table>` of every iptables/ip6tables table this machine can save (others are passed over). */
function* savedTables(): Generator<{ tool: string; table: string; saved: string }> {
  for (const tool of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle', 'raw']) {
      let saved = '';
      try {
        saved = run(`${tool}-save`, ['-t', table]);
      } catch {
        continue;
      }
      yield { tool, table, saved };
    }
  }
}

/** Chains named KUBE-* or CNI-* in iptables and ip6tables (what down must leave at zero). */
export function kubeChains(): string[] {
  const found: string[] = [];
  for (const { tool, table, saved } of savedTables()) {
    for (const m of saved.matchAll(/^:((?:KUBE-|CNI-)\S*)/gm)) found.push(`${tool}/${table}/${m[1] ?? ''}`);
  }
  return found;
}

export function removeKubeChains(): void {
  for (const { tool, saved } of savedTables()) {
    const stripped = stripKubeChains(saved);
    if (stripped !== undefined) run(`${tool}-restore`, ['-w', '5'], stripped);
  }
}

// ---------- mounts ----------

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Every mount point of this machine. */
export function mountPoints(): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp !== undefined) out.push(unescapeMount(mp));
  }
  return out;
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return mountPoints()
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything under dir (lazily when busy); returns what is still mounted. */
export function unmountUnder(dir: string): string[] {
  for (let round = 0; round < 5; round++) {
    const ms = mountsUnder(dir);
    if (ms.length === 0) return [];
    for (const m of ms) if (!tryRun('umount', [m])) tryRun('umount', ['-l', m]);
  }
  return mountsUnder(dir);
}

// ---------- cgroups (v1 hierarchies, and the unified one of a hybrid setup) ----------

function cgroupMounts(): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    const fstype = post?.split(' ')[0];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const mp = pre?.split(' ')[4];
    if (mp !== undefined) out.push(unescapeMount(mp));
  }
  return out;
}

/** Creates CGROUP_ROOT in every hierarchy (cpuset gets its parent's cpus and mems). */
export function createCgroupRoot(): void {
  for (const m of cgroupMounts()) {
    const d = join(m, CGROUP_ROOT);
    if (!existsSync(d)) execFileSync('mkdir', ['-p', d]);
    const cpus = join(d, 'cpuset.cpus');
    if (existsSync(cpus) && readFileSync(cpus, 'utf8').trim() === '') {
      writeFileSync(cpus, readFileSync(join(m, 'cpuset.cpus'), 'utf8').trim());
      writeFileSync(join(d, 'cpuset.mems'), readFileSync(join(m, 'cpuset.mems'), 'utf8').trim());
    }
  }
}

function cgroupDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) walk(join(d, e));
    out.push(d);
  };
  if (existsSync(root)) walk(root);
  return out; // children before parents
}

/** Pids in any cgroup under CGROUP_ROOT (every container process of the node). */
export function podPids(): number[] {
  const pids = new Set<number>();
  for (const m of cgroupMounts()) {
    for (const d of cgroupDirs(join(m, CGROUP_ROOT))) {
      try {
        for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p.trim() !== '') pids.add(Number(p));
      } catch {
        // gone
      }
    }
  }
  return [...pids];
}

/** Removes CGROUP_ROOT from every hierarchy; returns the directories still there. */
export function removeCgroups(): string[] {
  const left: string[] = [];
  for (const m of cgroupMounts()) {
    for (const d of cgroupDirs(join(m, CGROUP_ROOT))) {
      try {
        rmdirSync(d);
      } catch {
        left.push(d);
      }
    }
  }
  return left;
}

export function cgroupsLeft(): string[] {
  return cgroupMounts()
    .map((m) => join(m, CGROUP_ROOT))
    .filter((d) => existsSync(d));
}

// ---------- host paths ----------

/** Symlinks in /var/log/containers that point into `podLogs` (the kubelet's, hard-coded path). */
export function removeContainerLogLinks(podLogs: string): void {
  const d = '/var/log/containers';
  if (!existsSync(d)) return;
  for (const e of readdirSync(d)) {
    try {
      if (readlinkSync(join(d, e)).startsWith(podLogs)) rmSync(join(d, e));
    } catch {
      // not a link
    }
  }
}

/** Removes `p` if it exists and is a directory localkube created (called for createdPaths). */
export function removeCreatedPath(p: string): void {
  try {
    if (statSync(p).isDirectory()) {
      // netns bind mounts under /run/netns from a crashed containerd would make rm fail: unmount first.
      unmountUnder(p);
      rmSync(p, { recursive: true, force: true });
    }
  } catch {
    // already gone
  }
}
