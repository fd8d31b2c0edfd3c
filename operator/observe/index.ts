// Observation: the informer caches of an EtcdCluster's Kubernetes objects and the members' view
// through the etcd API, parsed at this gate into the planner's types.
export { kubeView, memberView, MEMBER_CALL_TIMEOUT_MS, metaOf, observe, parseCluster, type Caches, type KubeView } from './observe.js';
