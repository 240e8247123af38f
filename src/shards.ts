// The sequencer's side of a large room, as the ChatRoom runs it once its own
// sockets reach SHARD_SIZE (docs/LARGE-ROOMS.md): the Sequencer (ordering,
// streams, repair) wired to one dialled WebSocket per part, a timer for
// retries, beats and presence counts, and the choice of a part for a new
// connection. The room's own sockets count as the part LOCAL_PART and get
// every event through `local`.

import { linkRequest, PART_RETRY_MS } from "./part.ts";
import type { BanNotice, RejectCode, Upstream, StreamEvent } from "./link.ts";
import type { Logger } from "./log.ts";
import { describeError } from "./log.ts";
import type { Message, User } from "./protocol.ts";
import { Roster } from "./roster.ts";
import { Sequencer, type Decide, type Moderate, type Send, type Store } from "./sequencer.ts";
import type { Config } from "./config.ts";

/** The roster's name for the sequencer's own sockets. */
export const LOCAL_PART = "";
/** How long an evicted part's users stay online while its clients reconnect elsewhere. */
export const PART_GRACE_MS = 10_000;
/** How long a part stays linked with no sockets before the room stops paying for it. */
export const PART_IDLE_MS = 2_000;
/**
 * Event frames kept per part for refills; a part that fell further behind
 * gets a sync instead. The frames share their events, but each costs ~86
 * bytes of its own: at 1,024 a room of 200 parts keeps ~17 MiB of its 128 MB
 * (4,096 was 66 MiB, BENCHMARKS.md), still ten seconds at 100 messages a second.
 */
const REFILL_WINDOW = 1024;
const STATE_SCHEMA = "CREATE TABLE IF NOT EXISTS shard_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)";

export interface HubOptions {
  env: Env;
  sql: SqlStorage;
  room: string;
  config: Config;
  log: Logger;
  store: Store;
  /** Delivers an event to the room's own sockets. */
  local: (event: StreamEvent) => void;
  /** No part has sockets any more and every link is closed: the room is a single object again. */
  idle: () => void;
  /**
   * The room's rules for a part's publish, the rate buckets included: the
   * same buckets as for the room's own sockets (quota.ts). `address` is the
   * sender's address key, absent from a part of older code.
   */
  decide: (
    from: User,
    address: string | undefined,
    now: number,
  ) => { ok: true } | { ok: false; code: RejectCode; message: string };
  /** Forgets what the room need not remember (refilled buckets); called every 10 s at most. */
  prune: (now: number) => void;
  /** A part's publish was accepted (slow mode counts from here). */
  posted: (from: User, now: number) => void;
  /** Decides and applies a moderation frame from a part's socket. */
  moderate: Moderate;
  /** The room's slow mode now (seconds, 0: off), from its SQLite: every sync tells a part. */
  slowMode: () => number;
  /** The ban in force covering a part's socket of `user` from `address`, as the part applies it (sequencer.ts). */
  banned: (user: User, address: string | undefined, now: number) => BanNotice | null;
}

export class ShardHub {
  readonly #o: HubOptions;
  readonly #roster: Roster;
  readonly #seq: Sequencer;
  readonly #links = new Map<string, WebSocket>();
  readonly #dialling = new Map<string, Promise<void>>();
  // Since when each linked part has had no sockets.
  readonly #empty = new Map<string, number>();
  // Connections handed to each part whose arrival may not be counted yet.
  readonly #reserved = new Map<string, number>();
  // Connections of each address being handed to a part right now.
  readonly #handing = new Map<string, number>();
  #prunedAt = 0;
  #ticker: ReturnType<typeof setInterval>;

  constructor(o: HubOptions, own: readonly User[]) {
    this.#o = o;
    // A new epoch for every sequencer that starts: one row, once.
    o.sql.exec(STATE_SCHEMA);
    const epoch =
      (o.sql.exec<{ value: number }>("SELECT value FROM shard_state WHERE key = 'epoch'").toArray()[0]?.value ?? 0) + 1;
    o.sql.exec(
      "INSERT INTO shard_state (key, value) VALUES ('epoch', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      epoch,
    );
    this.#roster = new Roster(o.config.presenceLimit);
    const counts = new Map<string, { user: User; sockets: number }>();
    for (const user of own) {
      const entry = counts.get(user.id);
      if (entry === undefined) counts.set(user.id, { user, sockets: 1 });
      else entry.sockets++;
    }
    // The room's own clients know each other already: nothing to tell.
    this.#roster.replace(LOCAL_PART, Array.from(counts.values()), Date.now());
    const decide: Decide = (op, now) => {
      const verdict = o.decide(op.from, op.address, now);
      if (verdict.ok) o.posted(op.from, now);
      return verdict;
    };
    this.#seq = new Sequencer(epoch, o.store, this.#roster, decide, {
      window: REFILL_WINDOW,
      beats: 3,
      local: o.local,
      moderate: o.moderate,
      slowMode: o.slowMode,
      banned: o.banned,
    });
    this.#ticker = setInterval(() => this.#tick(Date.now()), PART_RETRY_MS);
  }

  get roster(): Roster {
    return this.#roster;
  }

  /** The part a new connection of `user` goes to: where the user already is when it has room, else the first with room. */
  partFor(userId: string): string {
    const size = this.#o.config.shardSize;
    const parts = this.#roster.parts();
    const load = (part: string) => (parts.get(part) ?? 0) + (this.#reserved.get(part) ?? 0);
    for (const part of this.#roster.partsOf(userId)) {
      if (part !== LOCAL_PART && load(part) < size) return part;
    }
    for (let k = 1; ; k++) {
      const part = `${this.#o.room}/${k}`;
      if (load(part) < size) return part;
    }
  }

  /**
   * Hands a connection to a part, dialling it first. Until the part reports
   * it, the connection counts as reserved on that part, so a storm of
   * connects does not send them all to one part (which would refuse those
   * beyond SHARD_SIZE).
   */
  async forward(userId: string, address: string, request: Request): Promise<Response> {
    const part = this.partFor(userId);
    this.#reserve(part, 1);
    // Counted until the part has answered, so a storm of connects from one
    // address is held to its limit; by then the part has sent its `arrive`
    // (before its answer), which counts the socket from there on.
    this.#handing.set(address, (this.#handing.get(address) ?? 0) + 1);
    let accepted = false;
    try {
      await this.link(part);
      const response = await this.#o.env.PARTS.get(this.#o.env.PARTS.idFromName(part)).fetch(request);
      accepted = response.status === 101;
      return response;
    } finally {
      const handing = (this.#handing.get(address) ?? 0) - 1;
      if (handing > 0) this.#handing.set(address, handing);
      else this.#handing.delete(address);
      if (!accepted) this.#reserve(part, -1);
    }
  }

  #reserve(part: string, n: number): void {
    const left = (this.#reserved.get(part) ?? 0) + n;
    if (left > 0) this.#reserved.set(part, left);
    else this.#reserved.delete(part);
  }

  /** Dials `part` unless a link to it is open or being opened. */
  link(part: string): Promise<void> {
    if (this.#links.has(part)) return Promise.resolve();
    const pending = this.#dialling.get(part);
    if (pending !== undefined) return pending;
    const dial = this.#dial(part).finally(() => this.#dialling.delete(part));
    this.#dialling.set(part, dial);
    return dial;
  }

  async #dial(part: string): Promise<void> {
    const stub = this.#o.env.PARTS.get(this.#o.env.PARTS.idFromName(part));
    const response = await stub.fetch(linkRequest(this.#o.room, part));
    const ws = response.webSocket;
    if (ws === null) throw new Error(`part ${part} refused the link: ${response.status}`);
    ws.accept();
    this.#links.set(part, ws);
    ws.addEventListener("message", (event) => {
      try {
        if (typeof event.data !== "string") return;
        // From a part of this room, over a link no client can reach; the
        // sequencer drops versions it does not know.
        const before = this.#roster.sockets(part);
        this.#send(this.#seq.receive(JSON.parse(event.data) as Upstream, Date.now()));
        // Sockets the part now reports are no longer only reserved.
        const arrived = this.#roster.sockets(part) - before;
        if (arrived > 0) this.#reserve(part, -Math.min(arrived, this.#reserved.get(part) ?? 0));
      } catch (err) {
        this.#o.log.error("fault", { room: this.#o.room, part, where: "link", error: describeError(err) });
      }
    });
    ws.addEventListener("close", () => {
      if (this.#links.get(part) !== ws) return;
      this.#links.delete(part);
      this.#seq.detach(part);
      setTimeout(() => this.#send(this.#seq.drop(part, Date.now())), PART_GRACE_MS);
    });
  }

  /** A moderation event (a tombstone, settings, a ban) for every part. */
  announce(event: StreamEvent): void {
    this.#send(this.#seq.announce(event));
  }

  arrive(user: User): void {
    this.#send(this.#seq.arrive(LOCAL_PART, user, Date.now()));
  }

  depart(userId: string): void {
    this.#send(this.#seq.depart(LOCAL_PART, userId, Date.now()));
  }

  post(from: User, text: string, nonce: string | undefined): Message {
    const { message, sends } = this.#seq.post(from, text, nonce, Date.now());
    this.#send(sends);
    return message;
  }

  /** An address a socket of `userId` on a part comes from (any, when several), or null. */
  addressOn(userId: string): string | null {
    return this.#roster.addressOf(userId);
  }

  /** Sockets of `address` on the room's parts and on their way there (the room's own are not counted here). */
  addressSockets(address: string): number {
    return this.#seq.addresses.sockets(address) + (this.#handing.get(address) ?? 0);
  }

  /** Parts and their connections, the room's own under LOCAL_PART. */
  parts(): Map<string, number> {
    return this.#roster.parts();
  }

  #tick(now: number): void {
    this.#send(this.#seq.tick(now));
    this.#prune(now);
    // Shrinking: a part with no sockets for a while is unlinked; with none
    // left, the room goes back to being one object.
    for (const [part, ws] of this.#links) {
      if (this.#roster.sockets(part) > 0) {
        this.#empty.delete(part);
        continue;
      }
      const since = this.#empty.get(part) ?? now;
      this.#empty.set(part, since);
      if (now - since < PART_IDLE_MS) continue;
      this.#empty.delete(part);
      this.#links.delete(part);
      this.#seq.detach(part);
      ws.close(1000, "no sockets left");
    }
    const remote = Array.from(this.#roster.parts().keys()).some((part) => part !== LOCAL_PART);
    if (this.#links.size === 0 && this.#dialling.size === 0 && !remote) this.#o.idle();
  }

  #prune(now: number): void {
    if (now - this.#prunedAt < 10_000) return;
    this.#prunedAt = now;
    this.#o.prune(now);
  }

  close(): void {
    clearInterval(this.#ticker);
    for (const ws of this.#links.values()) ws.close(1001, "the room went away");
  }

  #send(sends: Send[]): void {
    for (const { part, frame } of sends) {
      try {
        this.#links.get(part)?.send(JSON.stringify(frame));
      } catch {
        // The link broke: its close detaches the part, which attaches again.
      }
    }
  }
}
