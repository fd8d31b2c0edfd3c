// The etcd v3 admin client the operator and the member entrypoint use (Cluster, Maintenance, Auth,
// and Put/Range for checks), and the access (TLS, credentials, tokens) it reaches a cluster with.
// Imports the generated codecs of proto/ and @grpc/grpc-js only.
export { CALL_TIMEOUT_MS, DEFRAG_TIMEOUT_MS, EtcdAdmin, EtcdCallError, fromHex, hex, type AlarmName, type ListedMember, type MemberStatusReply, type RaisedAlarm } from './client.js';
export { accessFor, accessFromTlsDir, EtcdAccess, isNotEnabled, isTokenRefusal, NOT_ENABLED_RECHECK_MS, registerAccess, type Authenticator, type ClientTls, type EtcdCredentials } from './access.js';
