// Who is in a large room, as its sequencer knows it: every user with the
// number of sockets it has open on each part of the room, and what the
// clients must be told when that changes.
//
// A user is online while it has a socket on any part. Clients hear of it as
// the contract says: `join` when a user's first socket anywhere opens, `leave`
// when its last one closes, while at most `limit` users are online; above the
// limit only the count, at most once per `countIntervalMs` and only when it
// changed; the whole list again when the count falls back to the limit.
// Exact per-user presence costs a frame per user per client, Θ(N²) in a
// storm, which is why the limit exists at all.
//
// No Workers APIs: the sequencer and the model test use it as it is.

import type { PartAddress, PartUser, PresenceSnapshot, StreamEvent } from "./link.ts";
import type { User } from "./protocol.ts";

/** The presence events the roster asks the sequencer to send to every part. */
export type PresenceEvent = Extract<StreamEvent, { kind: "join" | "leave" | "count" | "list" }>;

interface Entry {
  user: User;
  /** Open sockets by part name; a part with none is not a key. */
  parts: Map<string, number>;
}

export class Roster {
  readonly #limit: number;
  readonly #countIntervalMs: number;
  readonly #users = new Map<string, Entry>();
  readonly #sockets = new Map<string, number>();
  // Where each user's sockets on each part come from (address keys with
  // counts), as the parts report it: a ban of a guest on a part covers its
  // address, as on the room. Kept while the user is counted on that part.
  readonly #from = new Map<string, Map<string, Map<string, number>>>();
  // Whether clients are getting join/leave (at most `limit` online) or counts.
  #listed = true;
  #countSentAt = Number.NEGATIVE_INFINITY;
  // The count clients were last told, in counting mode.
  #countSent = 0;

  constructor(limit: number, countIntervalMs = 1000) {
    this.#limit = limit;
    this.#countIntervalMs = countIntervalMs;
  }

  get count(): number {
    return this.#users.size;
  }

  /** Open sockets on `part`, as its reports say. */
  sockets(part: string): number {
    return this.#sockets.get(part) ?? 0;
  }

  /** Every part that holds at least one socket, with its count. */
  parts(): Map<string, number> {
    return new Map(this.#sockets);
  }

  /** The parts where user `userId` has sockets. */
  partsOf(userId: string): string[] {
    return Array.from(this.#users.get(userId)?.parts.keys() ?? []);
  }

  has(userId: string): boolean {
    return this.#users.has(userId);
  }

  online(): User[] {
    return Array.from(this.#users.values(), (e) => e.user);
  }

  /**
   * Presence as it is now, for a part that starts a new stream. In counting
   * mode that part now knows a count the others may not: the next count
   * goes out to all when it is due, even if it did not change since.
   */
  snapshot(): PresenceSnapshot {
    if (this.#listed) return { count: this.count, online: this.online() };
    this.#countSent = -1;
    return { count: this.count, online: null };
  }

  /**
   * The count for one newcomer's welcome. In counting mode that client now
   * knows a count the others may not: the next count goes out to all when
   * it is due, even if it is back to what they were told last.
   */
  welcomeCount(): number {
    if (!this.#listed && this.count !== this.#countSent) this.#countSent = -1;
    return this.count;
  }

  /** An address a socket of user `userId` has on a part (any, when several), or null. */
  addressOf(userId: string): string | null {
    for (const addresses of this.#from.get(userId)?.values() ?? [])
      for (const address of addresses.keys()) return address;
    return null;
  }

  /** The users with sockets on `part` and the addresses of those sockets, as far as the part reported them. */
  on(part: string): { user: User; addresses: string[] }[] {
    const users: { user: User; addresses: string[] }[] = [];
    for (const [id, entry] of this.#users) {
      if (!entry.parts.has(part)) continue;
      users.push({ user: entry.user, addresses: Array.from(this.#from.get(id)?.get(part)?.keys() ?? []) });
    }
    return users;
  }

  /** One more socket of `user` on `part`, from `address` when the part says. */
  arrive(part: string, user: User, now: number, address?: string): PresenceEvent[] {
    if (address !== undefined) this.#note(user.id, part, address, 1);
    return this.#add(part, user, 1, now);
  }

  /** One socket less of user `userId` on `part`; a report for a socket the roster never counted changes nothing. */
  depart(part: string, userId: string, now: number, address?: string): PresenceEvent[] {
    if (address !== undefined && (this.#users.get(userId)?.parts.get(part) ?? 0) > 0)
      this.#note(userId, part, address, -1);
    return this.#remove(part, userId, 1, now);
  }

  #note(userId: string, part: string, address: string, n: number): void {
    let parts = this.#from.get(userId);
    if (parts === undefined) this.#from.set(userId, (parts = new Map()));
    let addresses = parts.get(part);
    if (addresses === undefined) parts.set(part, (addresses = new Map()));
    const left = (addresses.get(address) ?? 0) + n;
    if (left > 0) addresses.set(address, left);
    else addresses.delete(address);
  }

  #forgetFrom(userId: string, part: string): void {
    const parts = this.#from.get(userId);
    parts?.delete(part);
    if (parts?.size === 0) this.#from.delete(userId);
  }

  /**
   * Makes `part`'s sockets exactly `users` (a part re-attaching after either
   * side restarted), telling clients only what really changed.
   */
  replace(part: string, users: readonly PartUser[], now: number): PresenceEvent[] {
    const want = new Map(users.filter((u) => u.sockets > 0).map((u) => [u.user.id, u] as const));
    const events: PresenceEvent[] = [];
    for (const [id, entry] of Array.from(this.#users)) {
      const have = entry.parts.get(part) ?? 0;
      const target = want.get(id)?.sockets ?? 0;
      if (have > target) events.push(...this.#remove(part, id, have - target, now));
    }
    for (const { user, sockets, addresses } of want.values()) {
      const have = this.#users.get(user.id)?.parts.get(part) ?? 0;
      if (sockets > have) events.push(...this.#add(part, user, sockets - have, now));
      if (addresses === undefined) continue;
      this.#forgetFrom(user.id, part);
      for (const { address, sockets: n } of addresses) if (n > 0) this.#note(user.id, part, address, n);
    }
    return events;
  }

  /** Forgets every socket of `part` (evicted, and not back within the grace period). */
  drop(part: string, now: number): PresenceEvent[] {
    return this.replace(part, [], now);
  }

  /** A count that was held back by the once-a-second rule, when it is due. */
  tick(now: number): PresenceEvent[] {
    if (this.#listed || this.count === this.#countSent || now - this.#countSentAt < this.#countIntervalMs) return [];
    return [this.#countEvent(now)];
  }

  #add(part: string, user: User, n: number, now: number): PresenceEvent[] {
    this.#sockets.set(part, this.sockets(part) + n);
    const entry = this.#users.get(user.id);
    if (entry !== undefined) {
      entry.parts.set(part, (entry.parts.get(part) ?? 0) + n);
      return [];
    }
    this.#users.set(user.id, { user, parts: new Map([[part, n]]) });
    return this.#changed({ kind: "join", user, ts: now }, now);
  }

  #remove(part: string, userId: string, n: number, now: number): PresenceEvent[] {
    const entry = this.#users.get(userId);
    const have = entry?.parts.get(part) ?? 0;
    if (entry === undefined || have === 0) return [];
    const taken = Math.min(n, have);
    const left = this.sockets(part) - taken;
    if (left > 0) this.#sockets.set(part, left);
    else this.#sockets.delete(part);
    if (have > taken) entry.parts.set(part, have - taken);
    else {
      entry.parts.delete(part);
      this.#forgetFrom(userId, part);
    }
    if (entry.parts.size > 0) return [];
    this.#users.delete(userId);
    return this.#changed({ kind: "leave", user: entry.user, ts: now }, now);
  }

  #changed(event: PresenceEvent, now: number): PresenceEvent[] {
    if (this.#listed && this.count <= this.#limit) return [event];
    if (this.count <= this.#limit) {
      this.#listed = true;
      return [{ kind: "list", count: this.count, online: this.online() }];
    }
    // Crossing the limit is told at once: a client that missed this join
    // must know its list is no longer whole. Only counts that follow a
    // count wait for the once-a-second rule.
    if (this.#listed) {
      this.#listed = false;
      return [this.#countEvent(now)];
    }
    return now - this.#countSentAt >= this.#countIntervalMs ? [this.#countEvent(now)] : [];
  }

  #countEvent(now: number): PresenceEvent {
    this.#countSentAt = now;
    this.#countSent = this.count;
    return { kind: "count", count: this.count };
  }
}

/**
 * The sockets each client address holds on each part of a large room, as the
 * parts report them, for ADDRESS_SOCKETS_PER_ROOM across the whole room (the
 * room's own sockets are counted by its RoomQuota, hand-offs in flight by
 * the ShardHub). An `arrive` counts one, a `depart` gives one back, an attach
 * states the part's counts exactly, and a part whose link is gone gives all
 * of its sockets back at once: an evicted part's sockets are closed, and a
 * live one attaches again.
 */
export class AddressBook {
  readonly #parts = new Map<string, Map<string, number>>();
  readonly #total = new Map<string, number>();

  /** Sockets of `address` on every part. */
  sockets(address: string): number {
    return this.#total.get(address) ?? 0;
  }

  add(part: string, address: string, n = 1): void {
    let counts = this.#parts.get(part);
    if (counts === undefined) this.#parts.set(part, (counts = new Map()));
    counts.set(address, (counts.get(address) ?? 0) + n);
    this.#total.set(address, this.sockets(address) + n);
  }

  /** One socket of `address` less on `part`; never below what was counted. */
  remove(part: string, address: string): void {
    const counts = this.#parts.get(part);
    const have = counts?.get(address) ?? 0;
    if (counts === undefined || have === 0) return;
    if (have > 1) counts.set(address, have - 1);
    else counts.delete(address);
    if (counts.size === 0) this.#parts.delete(part);
    const total = this.sockets(address) - 1;
    if (total > 0) this.#total.set(address, total);
    else this.#total.delete(address);
  }

  /** Makes `part`'s counts exactly `addresses`. */
  replace(part: string, addresses: readonly PartAddress[]): void {
    this.drop(part);
    for (const { address, sockets } of addresses) if (sockets > 0) this.add(part, address, sockets);
  }

  drop(part: string): void {
    for (const [address, n] of this.#parts.get(part) ?? []) {
      const total = this.sockets(address) - n;
      if (total > 0) this.#total.set(address, total);
      else this.#total.delete(address);
    }
    this.#parts.delete(part);
  }
}
