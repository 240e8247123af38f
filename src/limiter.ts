import { DurableObject } from "cloudflare:workers";
import { take, type Bucket } from "./ratelimit.ts";

/** What a per-address allowance is for; each has its own bucket. */
export type Purpose = "connect" | "api";

/**
 * Counts what one client address does across all rooms: one instance per
 * address key (`idFromName(addressKey(request))`, see address.ts), and in it
 * one token bucket per purpose (new WebSocket connections, HTTP API
 * requests), each of `perMinute` that refills at `perMinute / 60` a second.
 *
 * Why a Durable Object and not the Rate Limiting binding: the binding's limit
 * is fixed in wrangler.toml and only per location, while these limits are
 * vars and the rule is global. The buckets are kept in memory only: an
 * instance is evicted after minutes without traffic, and by then its buckets
 * would have refilled anyway, so nothing is worth a storage write.
 */
export class ConnectLimiter extends DurableObject<Env> {
  readonly #buckets = new Map<Purpose, Bucket>();

  /** Takes one from this address's allowance for `purpose`; false when it is used up. */
  allow(perMinute: number, purpose: Purpose = "connect"): boolean {
    const now = Date.now();
    const { allowed, bucket } = take(this.#buckets.get(purpose) ?? { tokens: perMinute, at: now }, now, perMinute, perMinute / 60);
    this.#buckets.set(purpose, bucket);
    return allowed;
  }
}
