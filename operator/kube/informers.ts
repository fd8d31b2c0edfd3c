// Informers (list + watch, re-listed after a watch error) from @kubernetes/client-node, one per
// kind, optionally scoped to a namespace and a label selector; their caches are what observe/ reads.
import * as k8s from '@kubernetes/client-node';
import type { JsonObject } from '../api/index.js';
import { pathOf, type KubeRest } from './rest.js';

export const INFORMER_RESTART_MS = 2000;
/**
 * Each watch asks the API server to end it after a random 5–10 min (`timeoutSeconds`, as client-go's
 * reflector does) and is resumed from its last resourceVersion (no re-list); a watch that has not
 * ended WATCH_GRACE_S after that is aborted here, so a connection that died without a FIN or RST (no
 * events, no error) stalls a cache for at most ~10 min instead of until TCP keepalive gives up.
 */
export const WATCH_TIMEOUT_MIN_S = 300;
export const WATCH_GRACE_S = 30;

type WatchFn = k8s.Watch['watch'];

/** A Watch whose every request carries timeoutSeconds, with a client-side deadline behind it. */
export function boundedWatch(kc: k8s.KubeConfig, opts: { minTimeoutS?: number; graceS?: number; random?: () => number } = {}): Pick<k8s.Watch, 'watch'> {
  const inner = new k8s.Watch(kc);
  const minS = opts.minTimeoutS ?? WATCH_TIMEOUT_MIN_S;
  const graceS = opts.graceS ?? WATCH_GRACE_S;
  const random = opts.random ?? Math.random;
  const watch: WatchFn = async (path, queryParams, callback, done) => {
    const timeoutSeconds = minS + Math.floor(random() * minS);
    const state: { timer?: NodeJS.Timeout; expired: boolean; ended: boolean } = { expired: false, ended: false };
    const ctl = await inner.watch(path, { ...(queryParams as Record<string, unknown>), timeoutSeconds, allowWatchBookmarks: true }, callback, (err: unknown) => {
      state.ended = true;
      clearTimeout(state.timer);
      // Our own abort of a watch past its deadline: resume from the last resourceVersion.
      done(state.expired ? null : err);
    });
    if (!state.ended) {
      state.timer = setTimeout(() => {
        state.expired = true;
        ctl.abort();
      }, (timeoutSeconds + graceS) * 1000);
      state.timer.unref();
    }
    return ctl;
  };
  return { watch };
}

export interface KindInformer {
  readonly kind: string;
  list(): JsonObject[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function makeKindInformer(
  rest: KubeRest,
  kind: string,
  namespace: string | undefined,
  labelSelector: string | undefined,
  onChange: (o: JsonObject) => void,
  onError: (kind: string, err: unknown) => void,
): KindInformer {
  const path = pathOf(kind, namespace);
  const listFn = async (): Promise<k8s.KubernetesListObject<k8s.KubernetesObject>> => {
    const q = labelSelector === undefined ? '' : `?labelSelector=${encodeURIComponent(labelSelector)}`;
    return (await rest.get(`${path}${q}`)) as unknown as k8s.KubernetesListObject<k8s.KubernetesObject>;
  };
  const inf = new k8s.ListWatch(path, boundedWatch(rest.kc) as k8s.Watch, listFn, false, labelSelector);
  const fire = (o: k8s.KubernetesObject): void => onChange(o as unknown as JsonObject);
  inf.on('add', fire);
  inf.on('update', fire);
  inf.on('delete', fire);
  let stopped = false;
  inf.on('error', (err: unknown) => {
    onError(kind, err);
    if (!stopped) setTimeout(() => void inf.start().catch((e: unknown) => onError(kind, e)), INFORMER_RESTART_MS);
  });
  return {
    kind,
    list: () => inf.list() as unknown as JsonObject[],
    start: () => inf.start(),
    stop: async () => {
      stopped = true;
      await inf.stop();
    },
  };
}
