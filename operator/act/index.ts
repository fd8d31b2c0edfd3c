// The executor: one planned step (Kubernetes write or etcd admin call) plus its Kubernetes Event.
export { act, ADMIN_CALL_TIMEOUT_MS, isAction, recordEvent, StepFailed, type ActContext } from './act.js';
