import { DurableObject } from "cloudflare:workers";
import { take, type Bucket } from "./ratelimit.ts";

/** What a per-address allowance is for; each has its own bucket. */
export type Purpose = "connect" | "api";

/** The secrets whose guessing is throttled: PUBLISH_TOKEN, and ADMIN_TOKEN or a moderator's JWT. */
export type BearerKind = "publish" | "moderation";

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
    const { allowed, bucket } = take(
      this.#buckets.get(purpose) ?? { tokens: perMinute, at: now },
      now,
      perMinute,
      perMinute / 60,
    );
    this.#buckets.set(purpose, bucket);
    return allowed;
  }

  // Times of this address's failed bearer attempts in the last minute, one list per kind of secret.
  readonly #failures = new Map<BearerKind, number[]>();

  /**
   * Checks an attempt that presented a wrong (`failed`) or a good bearer for
   * `kind`, and returns the seconds to wait before the next attempt counts,
   * or 0 to go on. While `perMinute` failures are less than a minute old
   * every attempt waits, the good bearer too: otherwise a guess that
   * succeeds while throttled would still tell itself apart. Attempts that
   * wait are not counted, so the wait never outlasts the oldest failure.
   */
  bearerAttempt(kind: BearerKind, failed: boolean, perMinute: number): number {
    const now = Date.now();
    const recent = (this.#failures.get(kind) ?? []).filter((t) => now - t < 60_000);
    this.#failures.set(kind, recent);
    const oldest = recent[0];
    if (oldest !== undefined && recent.length >= perMinute)
      return Math.max(1, Math.ceil((oldest + 60_000 - now) / 1000));
    if (failed) recent.push(now);
    return 0;
  }
}
