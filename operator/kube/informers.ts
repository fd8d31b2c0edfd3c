// Informers (list + watch, re-listed after a watch error) from @kubernetes/client-node, one per
// kind, optionally scoped to a namespace and a label selector; their caches are what observe/ reads.
import * as k8s from '@kubernetes/client-node';
import type { JsonObject } from '../api/index.js';
import { pathOf, type KubeRest } from './rest.js';

export const INFORMER_RESTART_MS = 2000;

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
  const inf = k8s.makeInformer(rest.kc, path, listFn, labelSelector);
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
