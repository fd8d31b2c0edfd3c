// Public surface of server/api/http: the grpc-gateway (HTTP/JSON), health, version and metrics endpoints.
export { createHttpHandlers, type HttpHandlers, type HttpHandlersOptions } from './handler.js';
export type { HealthAlarm, HealthSource, MetricsSource, Versions } from './health.js';
export type { HttpListener, HttpRequest, HttpResponse } from './exchange.js';
export { GatewayCodec } from './codec.js';
export type { DebugRaftStatus } from './debugvars.js';
