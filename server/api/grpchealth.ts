// grpc.health.v1.Health, as etcd serves it (grpc-go's health.Server, registered by etcd's v3rpc):
// Check and Watch for the service name "" (all of etcd's services), SERVING once the member serves
// clients. With --feature-gates=StopGRPCServiceOnDefrag=true (3.5: --experimental-stop-grpc-service-
// on-defrag) it says NOT_SERVING while this member defragments, so a client with gRPC health checking
// (`"healthCheckConfig": {"serviceName": ""}`) sends its requests to the other members meanwhile.
// Logged as etcd's healthNotifier logs it: "grpc service status changed" (service "", status SERVING)
// when created and after every Defragment (gate or not), and at warn level with status NOT_SERVING and
// reason "defrag is active" when a Defragment starts with the gate on.
//   Check("")      -> {status}; any other name: NOT_FOUND "unknown service" (grpc-go's text)
//   Watch(name)    -> the current status at once, then each change; SERVICE_UNKNOWN for another name
//                     (the stream stays open, as grpc-go's); ends when the client cancels or we stop.
// Wire (grpc/health/v1/health.proto): HealthCheckRequest { string service = 1; }
// HealthCheckResponse { ServingStatus status = 1; } with UNKNOWN 0, SERVING 1, NOT_SERVING 2,
// SERVICE_UNKNOWN 3.
import { Reader, Writer } from '../../proto/wire.js';
import type { Logger } from '../base/log.js';
import { GrpcError, Status, type ServerStream, type ServerStreamHandler, type UnaryHandler } from './grpc/index.js';

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
export const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';

export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

/** The one service name etcd registers: "" stands for all of its services. */
const ALL_SERVICES = '';

export function decodeHealthCheckRequest(buf: Uint8Array): { service: string } {
  const r = new Reader(buf);
  let service = '';
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) service = r.string();
    else r.skip(tag & 7);
  }
  return { service };
}

export function encodeHealthCheckResponse(status: ServingStatus): Buffer {
  const w = new Writer(8);
  if (status !== 0) {
    w.tag(1, 0);
    w.uint32(status);
  }
  return w.finish();
}

export interface GrpcHealthOptions {
  /** --feature-gates=StopGRPCServiceOnDefrag: NOT_SERVING while this member defragments. */
  readonly stopServiceOnDefrag: boolean;
  readonly log: Logger;
}

/** The health server: its status, its watchers, and the defragmentation hooks etcd's healthNotifier has. */
export class GrpcHealth {
  private status: ServingStatus = ServingStatus.SERVING;
  private readonly watchers = new Set<ServerStream>();

  constructor(private readonly opts: GrpcHealthOptions) {
    this.serve();
  }

  get servingStatus(): ServingStatus {
    return this.status;
  }

  readonly check: UnaryHandler = (request) => {
    const { service } = decodeHealthCheckRequest(request);
    if (service !== ALL_SERVICES) throw new GrpcError(Status.NOT_FOUND, 'unknown service');
    return encodeHealthCheckResponse(this.status);
  };

  readonly watch: ServerStreamHandler = (request, out, ctx) => {
    const { service } = decodeHealthCheckRequest(request);
    if (service !== ALL_SERVICES) {
      // grpc-go sends SERVICE_UNKNOWN and keeps the stream open (the service may be registered later).
      out.send(encodeHealthCheckResponse(ServingStatus.SERVICE_UNKNOWN));
      ctx.signal.addEventListener('abort', () => out.end(), { once: true });
      return;
    }
    out.send(encodeHealthCheckResponse(this.status));
    this.watchers.add(out);
    ctx.signal.addEventListener(
      'abort',
      () => {
        this.watchers.delete(out);
        out.end();
      },
      { once: true },
    );
  };

  /** A defragmentation of this member's backend begins (a no-op unless the gate is on). */
  defragStarted(): void {
    if (!this.opts.stopServiceOnDefrag) return;
    this.opts.log.warn('grpc service status changed', { service: ALL_SERVICES, status: 'NOT_SERVING', reason: 'defrag is active' });
    this.set(ServingStatus.NOT_SERVING);
  }

  /** The defragmentation ended, whatever its outcome: SERVING (logged even without the gate, as etcd). */
  defragFinished(): void {
    this.serve();
  }

  private serve(): void {
    this.opts.log.info('grpc service status changed', { service: ALL_SERVICES, status: 'SERVING' });
    this.set(ServingStatus.SERVING);
  }

  /** Stopping: every watch ends (the member goes away; the client sees its connection close). */
  close(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }

  private set(status: ServingStatus): void {
    if (status === this.status) return;
    this.status = status;
    if (this.watchers.size === 0) return;
    const msg = encodeHealthCheckResponse(status);
    for (const w of this.watchers) {
      if (w.closed) this.watchers.delete(w);
      else w.send(msg);
    }
  }
}
