// Kubernetes access for the operator: a REST client on a client-node KubeConfig (server-side apply,
// merge patches, typed errors) and client-node informers over it.
export { CONTENT, KubeError, KubeRest, pathOf, resourcePath, RESOURCES, REQUEST_TIMEOUT_MS } from './rest.js';
export { boundedWatch, INFORMER_RESTART_MS, makeKindInformer, WATCH_GRACE_S, WATCH_TIMEOUT_MIN_S, type KindInformer } from './informers.js';
