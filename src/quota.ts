// What a user and a client address may do in one room, whatever number of
// sockets they spread it over: one message bucket per user, one per address,
// and a count of each address's open sockets.
//
// The buckets are shared by sockets, and the room forgets its memory when it
// hibernates, so they must be rebuilt from the sockets' attachments. Every
// socket's session carries a snapshot of its user's and its address's bucket
// as of the last frame it sent (or its connect). A bucket changes only
// when a socket takes from it, and that socket's snapshot is written in the
// same event, so the snapshot with the latest `at` among a key's sockets is
// exactly the bucket's last state (`take` only lowers `tokens` within one
// millisecond, so a tie goes to the lower count). A wake therefore never
// hands out a full bucket that was empty.

import { take, type Bucket } from "./ratelimit.ts";
import type { Session } from "./session.ts";

export interface QuotaSettings {
  rateBurst: number;
  ratePerSec: number;
  /** 0 in either turns the per-address bucket off. */
  addressRateBurst: number;
  addressRatePerSec: number;
  /** 0 turns the per-address socket limit off. */
  addressSocketsPerRoom: number;
}

function later(a: Bucket | undefined, b: Bucket): Bucket {
  if (a === undefined || b.at > a.at) return b;
  if (b.at === a.at && b.tokens < a.tokens) return b;
  return a;
}

/** `bucket` as of `now`, refilled but not taken from. */
function refilled(bucket: Bucket, now: number, burst: number, perSec: number): Bucket {
  const elapsed = Math.max(0, now - bucket.at);
  return { tokens: Math.min(burst, bucket.tokens + (elapsed * perSec) / 1000), at: now };
}

export class RoomQuota {
  readonly #settings: QuotaSettings;
  readonly #users = new Map<string, Bucket>();
  readonly #addresses = new Map<string, Bucket>();
  readonly #sockets = new Map<string, number>();

  constructor(settings: QuotaSettings) {
    this.#settings = settings;
  }

  get #addressRated(): boolean {
    return this.#settings.addressRateBurst > 0 && this.#settings.addressRatePerSec > 0;
  }

  /** Counts a socket found open after a wake, and takes its snapshots into account. */
  restore(session: Session): void {
    this.#users.set(session.user.id, later(this.#users.get(session.user.id), session.bucket));
    this.#addresses.set(session.address, later(this.#addresses.get(session.address), session.addressBucket));
    this.#opened(session.address);
  }

  /** Whether `address` may open one more socket in this room, which holds `elsewhere` more of them on its parts. */
  admits(address: string, elsewhere = 0): boolean {
    const limit = this.#settings.addressSocketsPerRoom;
    return limit === 0 || (this.#sockets.get(address) ?? 0) + elsewhere < limit;
  }

  /** The snapshots a new socket starts with: the shared buckets as they are now. */
  snapshots(userId: string, address: string, now: number): Pick<Session, "bucket" | "addressBucket"> {
    const { rateBurst, addressRateBurst } = this.#settings;
    return {
      bucket: { ...(this.#users.get(userId) ?? { tokens: rateBurst, at: now }) },
      addressBucket: { ...(this.#addresses.get(address) ?? { tokens: addressRateBurst, at: now }) },
    };
  }

  /** Counts a new socket of `address`. */
  opened(address: string): void {
    this.#opened(address);
  }

  #opened(address: string): void {
    this.#sockets.set(address, (this.#sockets.get(address) ?? 0) + 1);
  }

  /** Counts one socket of `address` less; only for sockets that were counted. */
  closed(address: string): void {
    const count = (this.#sockets.get(address) ?? 0) - 1;
    if (count > 0) this.#sockets.set(address, count);
    else this.#sockets.delete(address);
  }

  /**
   * Takes one message from the user's and the address's bucket, or from
   * neither: a message refused by one bucket costs the other nothing. Writes
   * the new state into the session's snapshots, which the caller stores.
   */
  take(session: Session, now: number): boolean {
    const { allowed, user, address } = this.#take(
      session.user.id,
      session.address,
      session.bucket,
      session.addressBucket,
      now,
    );
    session.bucket = user;
    session.addressBucket = address ?? session.addressBucket;
    return allowed;
  }

  /**
   * The same for a publish from a socket on one of the room's parts: the
   * room decides every publish, so one bucket per user and per address holds
   * across its own sockets and every part's. `address` is absent from a part
   * of older code: then only the user's bucket counts. No socket of the room
   * carries the new state, so the caller must `sync` its own sockets before
   * the room can hibernate.
   */
  takeFor(userId: string, address: string | undefined, now: number): boolean {
    const { rateBurst, addressRateBurst } = this.#settings;
    const full = (tokens: number): Bucket => ({ tokens, at: now });
    return this.#take(userId, address, full(rateBurst), full(addressRateBurst), now).allowed;
  }

  /**
   * Writes the shared buckets' state into `session`'s snapshots when it is
   * later than what they hold; true when it changed (the caller stores it).
   * After a part took from a bucket, this keeps the wake story true.
   */
  sync(session: Session): boolean {
    const user = later(session.bucket, this.#users.get(session.user.id) ?? session.bucket);
    const address = later(session.addressBucket, this.#addresses.get(session.address) ?? session.addressBucket);
    if (user === session.bucket && address === session.addressBucket) return false;
    session.bucket = user;
    session.addressBucket = address;
    return true;
  }

  #take(
    userId: string,
    address: string | undefined,
    userFallback: Bucket,
    addressFallback: Bucket,
    now: number,
  ): { allowed: boolean; user: Bucket; address: Bucket | null } {
    const { rateBurst, ratePerSec, addressRateBurst, addressRatePerSec } = this.#settings;
    const user = take(this.#users.get(userId) ?? userFallback, now, rateBurst, ratePerSec);
    const byAddress =
      this.#addressRated && address !== undefined
        ? take(this.#addresses.get(address) ?? addressFallback, now, addressRateBurst, addressRatePerSec)
        : null;
    const allowed = user.allowed && byAddress?.allowed !== false;
    const keep = (result: { allowed: boolean; bucket: Bucket }): Bucket =>
      result.allowed && !allowed ? { tokens: result.bucket.tokens + 1, at: result.bucket.at } : result.bucket;
    const userBucket = keep(user);
    const addressBucket = byAddress === null ? null : keep(byAddress);
    this.#users.set(userId, userBucket);
    if (address !== undefined && addressBucket !== null) this.#addresses.set(address, addressBucket);
    return { allowed, user: userBucket, address: addressBucket };
  }

  /** Forgets buckets that have refilled: a full bucket and no bucket are the same. */
  prune(now: number): void {
    const { rateBurst, ratePerSec, addressRateBurst, addressRatePerSec } = this.#settings;
    for (const [key, bucket] of this.#users) {
      if (refilled(bucket, now, rateBurst, ratePerSec).tokens >= rateBurst) this.#users.delete(key);
    }
    for (const [key, bucket] of this.#addresses) {
      if (
        !this.#addressRated ||
        refilled(bucket, now, addressRateBurst, addressRatePerSec).tokens >= addressRateBurst
      ) {
        this.#addresses.delete(key);
      }
    }
  }
}
