// Kubernetes resource quantities ("8Gi", "500M", "1.5Gi") as byte counts: the subset a volume size
// uses (binary and decimal suffixes, an optional fraction). The CRD schema's pattern admits exactly
// the strings parseQuantity accepts.

export const QUANTITY_PATTERN = '^[0-9]+([.][0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$';
const QUANTITY_RE = new RegExp(QUANTITY_PATTERN);

const SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

export class QuantityError extends Error {
  override readonly name = 'QuantityError';
}

/** Bytes of a quantity (rounded up to a whole byte, as Kubernetes does for storage). */
export function parseQuantity(q: string): number {
  if (!QUANTITY_RE.test(q)) throw new QuantityError(`not a quantity: ${JSON.stringify(q)}`);
  const m = /^([0-9.]+)([A-Za-z]*)$/.exec(q);
  const factor = SUFFIX[m?.[2] ?? ''];
  if (m === null || m[1] === undefined || factor === undefined) throw new QuantityError(`not a quantity: ${JSON.stringify(q)}`);
  return Math.ceil(Number(m[1]) * factor);
}

export function isQuantity(q: string): boolean {
  return QUANTITY_RE.test(q);
}
