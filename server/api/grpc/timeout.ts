// The grpc-timeout request header: TimeoutValue (1 to 8 ASCII digits) then a unit,
// H (hours) M (minutes) S (seconds) m (milliseconds) u (microseconds) n (nanoseconds).
import { goQuote } from './status.js';

const TIMEOUT_DIGITS_MAX = 8;

function unitMs(unit: string): number | undefined {
  switch (unit) {
    case 'H':
      return 3_600_000;
    case 'M':
      return 60_000;
    case 'S':
      return 1000;
    case 'm':
      return 1;
    case 'u':
      return 1e-3;
    case 'n':
      return 1e-6;
    default:
      return undefined;
  }
}

function allDigits(s: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** The timeout in milliseconds (fractions kept), or undefined when the value is malformed. */
export function parseGrpcTimeoutMs(value: string): number | undefined {
  const n = value.length;
  if (n < 2 || n > TIMEOUT_DIGITS_MAX + 1) return undefined;
  const ms = unitMs(value.charAt(n - 1));
  if (ms === undefined || !allDigits(value, n - 1)) return undefined;
  return Number(value.slice(0, n - 1)) * ms;
}

/** Why a value is malformed, in grpc-go's words (`decodeTimeout`, then `strconv.ParseInt`). */
export function describeBadTimeout(value: string): string {
  const q = goQuote(value);
  const n = value.length;
  if (n < 2) return `transport: timeout string is too short: ${q}`;
  if (n > TIMEOUT_DIGITS_MAX + 1) return `transport: timeout string is too long: ${q}`;
  if (unitMs(value.charAt(n - 1)) === undefined) return `transport: timeout unit is not recognized: ${q}`;
  return `strconv.ParseInt: parsing ${goQuote(value.slice(0, n - 1))}: invalid syntax`;
}
