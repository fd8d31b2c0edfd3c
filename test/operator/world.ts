// A small simulated world for the planner: a StatefulSet controller (Parallel pods, claims from
// templates, OnDelete), claims with data, pods running the member entrypoint's decisions (bootstrap
// only with the grant and no data; join only when listed and unstarted; wipe a removed member's
// data), and a Raft cluster reduced to what the planner sees (members, learners, leader, indexes,
// quorum). Steps are applied as the real executor would (the member API refuses what the server
// refuses); time advances in ticks. Deterministic for a given seed. A quorum-loss recovery: the
// template's CAIRN_CLUSTER_TOKEN/CAIRN_RECOVER reach the pods made from it, the survivor's agent
// takes its snapshot (recoverySnapshot), pods under the order move the old token's data aside, and
// the granted survivor restores its snapshot as a new one-member cluster.
import {
  BOOTSTRAP_ANNOTATION as _BA,
  clusterToken,
  DEFAULT_SETTINGS,
  HASH_ANNOTATION,
  names,
  objectKey,
  ordinalOfPeerUrl,
  text,
  peerUrl,
  quorum,
  type Observed,
  type ObservedMember,
  type PlanSettings,
  type Step,
} from '../../operator/plan/index.js';
import { parseQuantity, RECOVERY_APPROVAL_ANNOTATION, withDefaults, type EtcdCluster, type EtcdClusterStatus, type JsonObject } from '../../operator/api/index.js';

void _BA;

export const DEFAULT_IMAGE = 'localhost/cairn:dev';

interface Pod {
  ordinal: number;
  image: string;
  revision: string;
  createdAt: number;
  deleting: boolean;
  grant?: string;
  /** 'waiting': the entrypoint waits to be added; 'dataLost': its started member's data is gone. */
  state: 'waiting' | 'running' | 'dataLost';
  /** CAIRN_CLUSTER_TOKEN and CAIRN_RECOVER of the template it was made from. */
  token: string;
  recover?: { survivor: string; token: string };
}

interface Pvc {
  name: string;
  ordinal: number;
  volume: 'data' | 'wal';
  requestBytes: number;
  createdAt: number;
  deleting: boolean;
  /** The id of the member whose data it holds (data volume only). */
  dataOf?: string;
  /** The cluster token of the member marker on it. */
  token?: string;
  /** A recovery snapshot file on it (the survivor's data volume). */
  snapshot?: string;
}

interface Member {
  id: string;
  name: string;
  peerURL: string;
  learner: boolean;
  applied: number;
}

export class StepRefused extends Error {
  override readonly name = 'StepRefused';
}

export class World {
  nowMs = Date.parse('2026-01-01T00:00:00Z');
  cluster: EtcdCluster;
  objects: Record<string, string> = {};
  sts: { replicas: number; hash: string; image: string; claimSizes: { data: string; wal: string }; token: string; recover?: { survivor: string; token: string } } | undefined;
  pods = new Map<number, Pod>();
  pvcs = new Map<string, Pvc>();
  members: Member[] = [];
  leaderId: string | undefined;
  clusterId: string | undefined;
  raftIndex = 1;
  brokenImages = new Set<string>();
  nextId = 1;
  /** recoverySnapshot steps performed. */
  snapshotsTaken = 0;
  /** Claims deleted by a step (names). */
  readonly deletedClaims: string[] = [];
  settings: PlanSettings;
  /** Quorum losses caused by a step (a property violation), with the step. */
  readonly quorumLosses: string[] = [];

  constructor(spec: Record<string, unknown>, settings: Partial<PlanSettings> = {}) {
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    this.cluster = {
      apiVersion: 'cairn.dev/v1alpha1',
      kind: 'EtcdCluster',
      metadata: { name: 'c', namespace: 'ns', uid: 'uid-1', generation: 1 },
      spec: withDefaults(spec),
    };
  }

  setSpec(patch: Record<string, unknown>): void {
    this.cluster = { ...this.cluster, metadata: { ...this.cluster.metadata, generation: this.cluster.metadata.generation + 1 }, spec: withDefaults({ ...this.cluster.spec, ...patch }) };
  }

  get status(): EtcdClusterStatus {
    return this.cluster.status ?? {};
  }

  writeStatus(s: EtcdClusterStatus): void {
    this.cluster = { ...this.cluster, status: s };
  }

  private iso(ms: number): string {
    return new Date(ms).toISOString();
  }

  // ---------- what the world looks like ----------

  private podServing(p: Pod | undefined): boolean {
    return p !== undefined && !p.deleting && p.state === 'running' && !this.brokenImages.has(p.image);
  }

  private memberPod(m: Member): Pod | undefined {
    const i = ordinalOfPeerUrl('c', 'ns', m.peerURL);
    return i === undefined ? undefined : this.pods.get(i);
  }

  /** Members whose server runs (they answer Status). */
  serving(): Member[] {
    return this.members.filter((m) => m.name !== '' && this.podServing(this.memberPod(m)));
  }

  voters(): Member[] {
    return this.members.filter((m) => !m.learner);
  }

  hasQuorum(): boolean {
    const v = this.voters();
    const up = new Set(this.serving().map((m) => m.id));
    return v.length > 0 && v.filter((m) => up.has(m.id)).length >= quorum(v.length);
  }

  observe(): Observed {
    const q = this.hasQuorum();
    const up = new Set(this.serving().map((m) => m.id));
    const members: ObservedMember[] | undefined =
      up.size === 0
        ? undefined
        : this.members.map((m) => {
            const base: ObservedMember = { id: m.id, name: m.name, peerURL: m.peerURL, learner: m.learner };
            if (!up.has(m.id)) return base;
            return { ...base, status: { leader: q ? (this.leaderId ?? '0') : '0', raftIndex: this.raftIndex, raftAppliedIndex: m.applied, dbSize: 4096, dbSizeInUse: 4096, revision: this.raftIndex, errors: [] } };
          });
    const o: Observed = {
      now: this.iso(this.nowMs),
      cluster: this.cluster,
      objects: { ...this.objects },
      pods: [...this.pods.values()].map((p) => ({
        name: names.pod('c', p.ordinal),
        ordinal: p.ordinal,
        phase: 'Running',
        ready: this.podServing(p),
        image: p.image,
        revision: p.revision,
        restarts: 0,
        deleting: p.deleting,
        createdAt: this.iso(p.createdAt),
        memberState: p.state,
        ...(p.grant !== undefined ? { bootstrapGrant: p.grant } : {}),
      })),
      pvcs: [...this.pvcs.values()].map((p) => ({ name: p.name, ordinal: p.ordinal, volume: p.volume, requestBytes: p.requestBytes, deleting: p.deleting, createdAt: this.iso(p.createdAt) })),
      defaultImage: DEFAULT_IMAGE,
      settings: this.settings,
    };
    if (this.sts !== undefined) o.statefulSet = { replicas: this.sts.replicas, hash: this.sts.hash, updateRevision: this.sts.hash, claimSizes: this.sts.claimSizes };
    if (members !== undefined) o.members = members;
    if (members !== undefined && this.clusterId !== undefined) o.clusterId = this.clusterId;
    return o;
  }

  // ---------- steps ----------

  private member(id: string): Member {
    const m = this.members.find((x) => x.id === id);
    if (m === undefined) throw new StepRefused(`etcdserver: member not found (${id})`);
    return m;
  }

  private requireQuorum(what: string): void {
    if (!this.hasQuorum()) throw new StepRefused(`${what}: no quorum`);
  }

  apply(step: Step): void {
    const before = this.hasQuorum();
    this.applyStep(step);
    if (before && !this.hasQuorum() && !(this.voters().length === 1 && step.kind === 'deletePod')) this.quorumLosses.push(JSON.stringify(step));
  }

  private applyStep(step: Step): void {
    switch (step.kind) {
      case 'none':
      case 'wait':
      case 'journal':
      case 'endOperation':
      case 'warn':
      case 'note':
        return;
      case 'recoverySnapshot': {
        // The survivor's agent: its own snapshot (no quorum needed) onto its data volume.
        const m = this.member(step.memberId);
        if (!this.serving().includes(m) || this.hasQuorum()) throw new StepRefused(`the agent of ${step.pod} refuses the snapshot`);
        const ordinal = ordinalOfPeerUrl('c', 'ns', m.peerURL) ?? -1;
        const data = this.pvcs.get(names.pvc('c', 'data', ordinal));
        if (data === undefined) throw new StepRefused('no data volume');
        this.snapshotsTaken++;
        data.snapshot = `recovery/${step.token}.snapshot`;
        const rec = this.status.recovery;
        if (rec !== undefined) this.writeStatus({ ...this.status, recovery: { ...rec, snapshot: { file: data.snapshot, pvc: data.name, sizeBytes: 4128, sha256: 'ab'.repeat(32), revision: m.applied, takenAt: this.iso(this.nowMs) } } });
        return;
      }
      case 'consumeApproval': {
        const a = { ...(this.cluster.metadata.annotations ?? {}) };
        if (a[RECOVERY_APPROVAL_ANNOTATION] === step.value) delete a[RECOVERY_APPROVAL_ANNOTATION];
        this.cluster = { ...this.cluster, metadata: { ...this.cluster.metadata, annotations: a } };
        return;
      }
      case 'apply': {
        const o = step.object;
        const md = o['metadata'] as JsonObject;
        const hash = text((md['annotations'] as JsonObject)[HASH_ANNOTATION]);
        this.objects[objectKey(o)] = hash;
        if (o['kind'] === 'StatefulSet') {
          const spec = o['spec'] as JsonObject;
          const tpl = (spec['template'] as JsonObject)['spec'] as JsonObject;
          const container = (tpl['containers'] as JsonObject[])[0] ?? {};
          const image = text(container['image']);
          const env = (container['env'] as JsonObject[]).map((e) => [text(e['name']), e['value']] as const);
          const token = text(env.find(([n]) => n === 'CAIRN_CLUSTER_TOKEN')?.[1]);
          const rec = env.find(([n]) => n === 'CAIRN_RECOVER')?.[1];
          const claims = spec['volumeClaimTemplates'] as JsonObject[];
          const size = (i: number): string => text((((claims[i]?.['spec'] as JsonObject)['resources'] as JsonObject)['requests'] as JsonObject)['storage']);
          this.sts = { replicas: Number(spec['replicas']), hash, image, claimSizes: { data: size(0), wal: size(1) }, token };
          if (typeof rec === 'string') this.sts.recover = JSON.parse(rec) as { survivor: string; token: string };
        }
        return;
      }
      case 'grantBootstrap':
        this.podByName(step.pod).grant = step.token;
        return;
      case 'revokeBootstrap':
        delete this.podByName(step.pod).grant;
        return;
      case 'memberAddLearner': {
        this.requireQuorum('member add');
        if (this.members.some((m) => m.peerURL === step.peerURL)) throw new StepRefused('etcdserver: Peer URLs already exists');
        this.members.push({ id: (this.nextId++).toString(16), name: '', peerURL: step.peerURL, learner: true, applied: 0 });
        return;
      }
      case 'memberPromote': {
        this.requireQuorum('member promote');
        const m = this.member(step.id);
        if (!m.learner) throw new StepRefused('etcdserver: can only promote a learner member');
        if (m.applied + this.settings.catchUpEntriesMax < this.raftIndex || !this.serving().includes(m)) throw new StepRefused('etcdserver: can only promote a learner member which is in sync with leader');
        m.learner = false;
        return;
      }
      case 'moveLeader': {
        this.requireQuorum('move leader');
        if (this.leaderId !== step.from) throw new StepRefused('etcdserver: not leader');
        const to = this.member(step.to);
        if (to.learner || !this.serving().includes(to)) throw new StepRefused('etcdserver: bad leader transferee');
        this.leaderId = to.id;
        return;
      }
      case 'memberRemove': {
        this.requireQuorum('member remove');
        const m = this.member(step.id);
        const voters = this.voters();
        const up = new Set(this.serving().map((x) => x.id));
        if (!m.learner && voters.filter((x) => x.id !== m.id && up.has(x.id)).length < quorum(voters.length - 1)) throw new StepRefused('etcdserver: re-configuration failed due to not enough started members');
        this.members = this.members.filter((x) => x.id !== m.id);
        if (this.leaderId === m.id) this.leaderId = undefined;
        return;
      }
      case 'scaleStatefulSet':
        if (this.sts === undefined) throw new StepRefused('no StatefulSet');
        this.sts.replicas = step.replicas;
        return;
      case 'deletePod':
        this.podByName(step.pod).deleting = true;
        return;
      case 'deletePvc': {
        const p = this.pvcs.get(step.pvc);
        if (p === undefined) throw new StepRefused(`pvc ${step.pvc} not found`);
        p.deleting = true;
        this.deletedClaims.push(step.pvc);
        return;
      }
      case 'resizePvc': {
        const p = this.pvcs.get(step.pvc);
        if (p === undefined) throw new StepRefused(`pvc ${step.pvc} not found`);
        p.requestBytes = parseQuantity(step.size);
        return;
      }
    }
  }

  private podByName(name: string): Pod {
    for (const p of this.pods.values()) if (names.pod('c', p.ordinal) === name) return p;
    throw new StepRefused(`pod ${name} not found`);
  }

  // ---------- faults ----------

  killPod(ordinal: number): void {
    const p = this.pods.get(ordinal);
    if (p !== undefined) p.deleting = true;
  }

  /** The pod and its claims are gone (a lost node and its local volumes). */
  losePodAndVolumes(ordinal: number): void {
    this.killPod(ordinal);
    for (const p of this.pvcs.values()) if (p.ordinal === ordinal) p.deleting = true;
  }

  // ---------- time ----------

  tick(ms = 1000): void {
    this.nowMs += ms;
    this.raftIndex += 5;
    // Deleted pods go; claims go once no pod uses them.
    for (const [i, p] of this.pods) if (p.deleting) this.pods.delete(i);
    for (const [n, c] of this.pvcs) if (c.deleting && !this.pods.has(c.ordinal)) this.pvcs.delete(n);
    this.statefulSetController();
    for (const p of this.pods.values()) this.entrypoint(p);
    // Learners and followers catch up while the cluster has quorum.
    if (this.hasQuorum()) {
      const up = this.serving();
      if (this.leaderId === undefined || !up.some((m) => m.id === this.leaderId && !m.learner)) this.leaderId = up.find((m) => !m.learner)?.id;
      for (const m of up) m.applied = this.raftIndex;
    }
  }

  private statefulSetController(): void {
    if (this.sts === undefined) return;
    for (let i = 0; i < this.sts.replicas; i++) {
      if (this.pods.has(i)) continue;
      const blocked = [...this.pvcs.values()].some((c) => c.ordinal === i && c.deleting);
      if (blocked) continue;
      for (const volume of ['data', 'wal'] as const) {
        const name = names.pvc('c', volume, i);
        if (!this.pvcs.has(name)) this.pvcs.set(name, { name, ordinal: i, volume, requestBytes: parseQuantity(this.sts.claimSizes[volume]), createdAt: this.nowMs, deleting: false });
      }
      const pod: Pod = { ordinal: i, image: this.sts.image, revision: this.sts.hash, createdAt: this.nowMs, deleting: false, state: 'waiting', token: this.sts.token };
      if (this.sts.recover !== undefined) pod.recover = this.sts.recover;
      this.pods.set(i, pod);
    }
    for (const [i, p] of this.pods) if (i >= this.sts.replicas) p.deleting = true;
  }

  /** Pod `p` starts a new one-member cluster on its data volume (a bootstrap, or a recovery's survivor). */
  private bootstrapOne(p: Pod, data: { dataOf?: string; token?: string }, url: string, applied: number): void {
    const id = (this.nextId++).toString(16);
    this.members.push({ id, name: names.pod('c', p.ordinal), peerURL: url, learner: false, applied });
    this.clusterId = `c1d${id}`;
    this.leaderId = id;
    data.dataOf = id;
    data.token = p.token;
    p.state = 'running';
  }

  /** The member entrypoint's decisions (operator/member/). */
  private entrypoint(p: Pod): void {
    if (p.deleting) return;
    const data = this.pvcs.get(names.pvc('c', 'data', p.ordinal));
    if (data === undefined || data.deleting) return;
    const url = peerUrl('c', 'ns', p.ordinal);
    // Under a recovery order, the old token's data (and marker) is moved aside, never started.
    if (p.recover !== undefined && data.token !== undefined && data.token !== p.token) {
      delete data.dataOf;
      delete data.token;
    }
    // The survivor, granted with the new token: its snapshot becomes a new one-member cluster.
    if (p.recover !== undefined && p.recover.survivor === names.pod('c', p.ordinal) && p.grant === p.token && data.dataOf === undefined && data.snapshot !== undefined && !this.hasQuorum()) {
      const old = this.members.find((m) => m.peerURL === url);
      this.members = [];
      this.bootstrapOne(p, data, url, old?.applied ?? this.raftIndex);
      return;
    }
    const listed = this.members.find((m) => m.peerURL === url);
    if (data.dataOf !== undefined) {
      if (listed !== undefined && listed.id === data.dataOf) {
        p.state = 'running';
        return;
      }
      // A removed member's data: moved aside, then the join path.
      delete data.dataOf;
      p.state = 'waiting';
    }
    if (p.recover === undefined && p.grant === p.token && p.grant === clusterToken(this.cluster) && this.members.length === 0 && p.ordinal === 0) {
      this.bootstrapOne(p, data, url, this.raftIndex);
      return;
    }
    if (listed !== undefined && listed.name === '' && this.hasQuorum()) {
      listed.name = names.pod('c', p.ordinal);
      data.dataOf = listed.id;
      data.token = p.token;
      p.state = 'running';
      return;
    }
    p.state = listed !== undefined && listed.name !== '' ? 'dataLost' : 'waiting';
  }
}
