// Checks every call passes before its handler runs, in one place (E v3rpc/interceptor.go):
// - a learner serves only Status and serializable Range (unary) and Snapshot (streams); anything
//   else fails with `etcdserver: rpc not supported for learner`;
// - a call with metadata `hasleader: true` fails with `etcdserver: no leader` when the member knows
//   no leader; such a stream is also cancelled with that error once the member has had no leader
//   for NO_LEADER_STREAM_ELECTIONS election timeouts.
import { ClientError, ServerRefusal } from '../base/errors.js';
import type { LeaderView } from '../node/index.js';
import type { BidiHandler, CallContext, GrpcErrorLike, ServerStream } from './grpc/index.js';
import { toGrpcError } from './errors.js';

/** etcd's maxNoLeaderCnt: election timeouts without a leader before hasleader streams are cancelled. */
export const NO_LEADER_STREAM_ELECTIONS = 3;

type Metadata = CallContext['metadata'];

/** etcd's rpctypes.MetadataRequireLeaderKey / MetadataHasLeader: the first value must be exactly "true". */
export function requiresLeader(metadata: Metadata): boolean {
  const v = metadata['hasleader'];
  // node joins a repeated header with ", "; grpc-go looks at the first value only.
  const first = Array.isArray(v) ? v[0] : v?.split(', ')[0];
  return first === 'true';
}

/** The error a call fails with before its handler runs, if any. */
export function callRefusal(view: LeaderView, metadata: Metadata, learnerAllowed: boolean): Error | undefined {
  if (!learnerAllowed && view.isLearner()) return new ClientError('learnerNotSupported');
  if (requiresLeader(metadata) && !view.hasLeader()) return new ServerRefusal('noLeader');
  return undefined;
}

export interface StreamGate {
  readonly view: LeaderView;
  /** How long without a leader before a hasleader stream is cancelled (NO_LEADER_STREAM_ELECTIONS x --election-timeout). */
  readonly leaderlessMs: number;
}

/**
 * Wraps a stream handler with the learner and hasleader checks. A hasleader stream's handler sees a
 * signal of its own, aborted (after the call ends with `no leader`) when the leader stays away, so
 * it releases what it holds as on a client cancel.
 */
export function gateStream(handler: BidiHandler, gate: StreamGate, learnerAllowed = false): BidiHandler {
  return (incoming, out, ctx) => {
    const refusal = callRefusal(gate.view, ctx.metadata, learnerAllowed);
    if (refusal !== undefined) return out.end(toGrpcError(refusal));
    if (!requiresLeader(ctx.metadata)) return handler(incoming, out, ctx);
    const watched = watchLeader(out, ctx, gate);
    handler(incoming, watched.out, watched.ctx);
  };
}

function watchLeader(out: ServerStream, ctx: CallContext, gate: StreamGate): { out: ServerStream; ctx: CallContext } {
  const controller = new AbortController();
  let unsubscribe: (() => void) | undefined = undefined;
  const release = (): void => {
    unsubscribe?.();
    unsubscribe = undefined;
  };
  const cancel = (reason: unknown): void => {
    release();
    controller.abort(reason);
  };
  const parent = ctx.signal;
  if (parent.aborted) cancel(parent.reason);
  else {
    parent.addEventListener('abort', () => cancel(parent.reason), { once: true });
    unsubscribe = gate.view.onLeaderless(gate.leaderlessMs, () => {
      const e = toGrpcError(new ServerRefusal('noLeader'));
      out.end(e);
      cancel(e);
    });
  }
  const afterSend = (ok: boolean): boolean => {
    if (out.closed) release();
    return ok;
  };
  const gated: ServerStream = {
    send: (m) => afterSend(out.send(m)),
    sendMany: (ms) => afterSend(out.sendMany(ms)),
    onDrain: (cb) => out.onDrain(cb),
    end: (status?: GrpcErrorLike) => {
      release();
      out.end(status);
    },
    get closed() {
      return out.closed;
    },
    get bufferedBytes() {
      return out.bufferedBytes;
    },
  };
  return { out: gated, ctx: { path: ctx.path, metadata: ctx.metadata, deadline: ctx.deadline, signal: controller.signal, tlsCommonName: ctx.tlsCommonName } };
}
