// A token bucket as plain data, so it can live in a WebSocket attachment and
// survive hibernation: `tokens` as of time `at` (ms).

export interface Bucket {
  tokens: number;
  at: number;
}

/** Refills for the time since `at`, then takes one token if there is one. */
export function take(bucket: Bucket, now: number, burst: number, perSec: number): { allowed: boolean; bucket: Bucket } {
  const elapsed = Math.max(0, now - bucket.at);
  const tokens = Math.min(burst, bucket.tokens + (elapsed * perSec) / 1000);
  if (tokens < 1) return { allowed: false, bucket: { tokens, at: now } };
  return { allowed: true, bucket: { tokens: tokens - 1, at: now } };
}
