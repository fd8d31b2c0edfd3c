// The etcd v3 admin client the operator and the member entrypoint use (Cluster, Maintenance, and
// Put/Range for checks). Imports the generated codecs of proto/ and @grpc/grpc-js only.
export { CALL_TIMEOUT_MS, DEFRAG_TIMEOUT_MS, EtcdAdmin, EtcdCallError, fromHex, hex, type AlarmName, type ListedMember, type MemberStatusReply, type RaisedAlarm } from './client.js';
