// The gateway's URL table: `POST /v3/<path>` → gRPC method, as etcd's generated gateway
// (api/etcdserverpb/gw/rpc.pb.gw.go) binds them. Differences between etcd releases:
// - 3.4 also bound LeaseRevoke/TimeToLive/Leases under /v3/kv/lease/... (kept: 3.5 still serves them);
// - 3.4 bound HashKV to /v3/maintenance/hash by mistake (so /v3/maintenance/hash reached Hash and
//   HashKV was unreachable); 3.5 fixed it to /v3/maintenance/hashkv, which we follow;
// - AuthStatus (/v3/auth/status) and Downgrade (/v3/maintenance/downgrade) are 3.5 methods.
// `/v3beta/...` is served as `/v3/...` (etcd 3.4 and 3.5 keep that prefix for old clients); etcd 3.4
// no longer serves `/v3alpha/`, nor do we.

const KV = '/etcdserverpb.KV/';
const WATCH = '/etcdserverpb.Watch/';
const LEASE = '/etcdserverpb.Lease/';
const CLUSTER = '/etcdserverpb.Cluster/';
const MAINTENANCE = '/etcdserverpb.Maintenance/';
const AUTH = '/etcdserverpb.Auth/';
const LOCK = '/v3lockpb.Lock/';
const ELECTION = '/v3electionpb.Election/';

/** Path below the version prefix → gRPC method path. */
export const GATEWAY_ROUTES: ReadonlyMap<string, string> = new Map([
  ['kv/range', `${KV}Range`],
  ['kv/put', `${KV}Put`],
  ['kv/deleterange', `${KV}DeleteRange`],
  ['kv/txn', `${KV}Txn`],
  ['kv/compaction', `${KV}Compact`],
  ['watch', `${WATCH}Watch`],
  ['lease/grant', `${LEASE}LeaseGrant`],
  ['lease/revoke', `${LEASE}LeaseRevoke`],
  ['kv/lease/revoke', `${LEASE}LeaseRevoke`],
  ['lease/keepalive', `${LEASE}LeaseKeepAlive`],
  ['lease/timetolive', `${LEASE}LeaseTimeToLive`],
  ['kv/lease/timetolive', `${LEASE}LeaseTimeToLive`],
  ['lease/leases', `${LEASE}LeaseLeases`],
  ['kv/lease/leases', `${LEASE}LeaseLeases`],
  ['cluster/member/add', `${CLUSTER}MemberAdd`],
  ['cluster/member/remove', `${CLUSTER}MemberRemove`],
  ['cluster/member/update', `${CLUSTER}MemberUpdate`],
  ['cluster/member/list', `${CLUSTER}MemberList`],
  ['cluster/member/promote', `${CLUSTER}MemberPromote`],
  ['maintenance/alarm', `${MAINTENANCE}Alarm`],
  ['maintenance/status', `${MAINTENANCE}Status`],
  ['maintenance/defragment', `${MAINTENANCE}Defragment`],
  ['maintenance/hash', `${MAINTENANCE}Hash`],
  ['maintenance/hashkv', `${MAINTENANCE}HashKV`],
  ['maintenance/snapshot', `${MAINTENANCE}Snapshot`],
  ['maintenance/transfer-leadership', `${MAINTENANCE}MoveLeader`],
  ['maintenance/downgrade', `${MAINTENANCE}Downgrade`],
  ['auth/enable', `${AUTH}AuthEnable`],
  ['auth/disable', `${AUTH}AuthDisable`],
  ['auth/status', `${AUTH}AuthStatus`],
  ['auth/authenticate', `${AUTH}Authenticate`],
  ['auth/user/add', `${AUTH}UserAdd`],
  ['auth/user/get', `${AUTH}UserGet`],
  ['auth/user/list', `${AUTH}UserList`],
  ['auth/user/delete', `${AUTH}UserDelete`],
  ['auth/user/changepw', `${AUTH}UserChangePassword`],
  ['auth/user/grant', `${AUTH}UserGrantRole`],
  ['auth/user/revoke', `${AUTH}UserRevokeRole`],
  ['auth/role/add', `${AUTH}RoleAdd`],
  ['auth/role/get', `${AUTH}RoleGet`],
  ['auth/role/list', `${AUTH}RoleList`],
  ['auth/role/delete', `${AUTH}RoleDelete`],
  ['auth/role/grant', `${AUTH}RoleGrantPermission`],
  ['auth/role/revoke', `${AUTH}RoleRevokePermission`],
  // etcd's v3lock and v3election gateways (registered beside etcdserverpb's in embed/serve.go).
  ['lock/lock', `${LOCK}Lock`],
  ['lock/unlock', `${LOCK}Unlock`],
  ['election/campaign', `${ELECTION}Campaign`],
  ['election/proclaim', `${ELECTION}Proclaim`],
  ['election/leader', `${ELECTION}Leader`],
  ['election/observe', `${ELECTION}Observe`],
  ['election/resign', `${ELECTION}Resign`],
]);

/** The URL prefixes the gateway answers under (each followed by a route path). */
export const GATEWAY_PREFIXES: readonly string[] = ['/v3/', '/v3beta/'];

/** The gRPC method for a URL path, or undefined when no route has that path. */
export function gatewayMethod(urlPath: string): string | undefined {
  for (const prefix of GATEWAY_PREFIXES) {
    if (urlPath.startsWith(prefix)) return GATEWAY_ROUTES.get(urlPath.slice(prefix.length));
  }
  return undefined;
}

/** Whether a URL path belongs to the gateway (its 404 and 405 answers differ from the HTTP mux's). */
export function isGatewayPath(urlPath: string): boolean {
  return GATEWAY_PREFIXES.some((p) => urlPath.startsWith(p));
}
