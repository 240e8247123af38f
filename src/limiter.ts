import { DurableObject } from "cloudflare:workers";
import { take, type Bucket } from "./ratelimit.ts";

/**
 * Counts new WebSocket connections per client IP across all rooms: one
 * instance per IP (`idFromName(ip)`), a token bucket of `perMinute` that
 * refills at `perMinute / 60` a second.
 *
 * Why a Durable Object and not the Rate Limiting binding: the binding's limit
 * is fixed in wrangler.toml and only per location, while IP_CONNECT_PER_MIN is
 * a var and the rule is global. The bucket is kept in memory only: an
 * instance is evicted after minutes without traffic, and by then its bucket
 * would have refilled anyway, so nothing is worth a storage write.
 */
export class ConnectLimiter extends DurableObject<Env> {
  #bucket: Bucket | null = null;

  /** Takes one connection from this IP's allowance; false when it is used up. */
  allow(perMinute: number): boolean {
    const now = Date.now();
    const { allowed, bucket } = take(this.#bucket ?? { tokens: perMinute, at: now }, now, perMinute, perMinute / 60);
    this.#bucket = bucket;
    return allowed;
  }
}
