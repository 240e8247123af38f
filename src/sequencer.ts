// The sequencer of a large room: the room's side of every part's channel
// (see link.ts and docs/LARGE-ROOMS.md).
//
// It gives every message its id (through the store, which writes it before
// anything is sent), puts every event the parts must see into one order, and
// keeps, per part, a numbered stream of what it sent with the last `window`
// frames, so a part that missed some asks for them again. What a part sends
// up is numbered too, and handled once, in order: a repeat is answered with a
// beat that tells the part how far the room got. A publish repeated after the
// sequencer restarted (its memory of the numbers gone) is recognised by the
// origin stored with the message.
//
// No Workers APIs: the ChatRoom wires it to sockets and storage, and the model
// test drives it through a lossy network.

import {
  LINK_VERSION,
  originOf,
  type BanNotice,
  type Downstream,
  type PendingPublish,
  type Rejection,
  type RejectCode,
  type StreamEvent,
  type StreamId,
  type Upstream,
  type UpstreamOp,
} from "./link.ts";
import type { DeleteFrame, Message, User } from "./protocol.ts";
import { AddressBook, type Roster } from "./roster.ts";

/** The room's history as the sequencer needs it; the ChatRoom backs it with SQLite (history.ts). */
export interface Store {
  readonly lastId: number;
  /** The kept messages, ascending. */
  ring(): Message[];
  /** Whether a kept message was stored from this origin (see originOf). */
  hasOrigin(origin: string): boolean;
  /**
   * The `delete` frames of the kept tombstones, as they went out: every sync
   * carries them, for a part that had no stream when one was made.
   */
  deletes?(): DeleteFrame[];
  /** Stores the next message durably and returns it. */
  append(from: User, text: string, nonce: string | undefined, ts: number, origin: string | null): Message;
}

/** The room's verdict on a publish: rate limits, slow mode and bans live in the room, not in the parts. */
export type Decide = (
  op: Extract<UpstreamOp, { kind: "publish" }>,
  now: number,
) => { ok: true } | { ok: false; code: RejectCode; message: string };

export interface SequencerOptions {
  /** Frames each part's stream keeps for a refill; older misses get a fresh sync. */
  window: number;
  /** Beats sent after the last change of a part's stream, one per tick, to catch a lost tail. */
  beats: number;
  /** Sees every event sent to all parts, in order: the sequencer's own sockets get them from here. */
  local?: (event: StreamEvent) => void;
  /** Moderation from parts' sockets; without it, refused. */
  moderate?: Moderate;
  /** The room's slow mode now, in seconds (0: off), for every sync; changes go out as `settings` events. */
  slowMode: () => number;
  /**
   * The ban in force that covers a socket of `user` from `address` (the
   * part's address key; absent from older code), as a part applies it; null
   * when none. The room's own sockets were closed when a ban was made and
   * are refused at connect; a part's may still send after it (the ban was
   * on its way, or the part had no stream), so the sequencer checks every
   * arrival, publish and moderation frame, and tells each sync.
   */
  banned?: (user: User, address: string | undefined, now: number) => BanNotice | null;
}

/**
 * Refusals and undecidable publishes remembered per part, to repeat in
 * every sync. A part has at most this many publishes outstanding (it stops
 * taking frames from its sockets beyond that), so none is forgotten before
 * its answer arrives.
 */
export const ANSWER_MEMORY = 1024;

/**
 * The room's verdict on a moderation frame from a part's socket; on `ok` the
 * room has applied it, and its effects went out through `announce`. Doing it
 * twice (a repeat after a restart) changes nothing more than once.
 */
export type Moderate = (
  op: Extract<UpstreamOp, { kind: "moderate" }>,
  now: number,
) => { ok: true } | { ok: false; code: RejectCode; message: string };

/** One frame for one part. */
export interface Send {
  part: string;
  frame: Downstream;
}

interface Link {
  incarnation: string;
  stream: StreamId;
  seq: number;
  /** The last upstream number handled. */
  acked: number;
  /** The last `window` event frames, oldest first; outbox[i] has seq `seq - outbox.length + 1 + i`. */
  outbox: Downstream[];
  /** Upstream frames that came before the one due, by number; at most `window`. */
  early: Map<number, UpstreamOp>;
  beatsLeft: number;
}

export class Sequencer {
  readonly epoch: number;
  /** The parts' sockets per address; the room counts hand-offs into it. */
  readonly addresses = new AddressBook();
  readonly #store: Store;
  readonly #roster: Roster;
  readonly #decide: Decide;
  readonly #options: SequencerOptions;
  readonly #links = new Map<string, Link>();
  // Stream generations already used for each part in this epoch: a part that
  // detaches and attaches again must never see an old (epoch, gen) again.
  readonly #gens = new Map<string, number>();
  // Answers a part may have lost with a stream, for its incarnation: the
  // latest refusals and the publishes the room could not decide (see
  // #attach), oldest first, at most ANSWER_MEMORY of each. Every sync repeats them.
  readonly #answers = new Map<string, { incarnation: string; refused: Map<number, Rejection>; unknown: Set<number> }>();
  // Of each part: which incarnation, its last attach and the last upstream number handled.
  // While a part's frame is handled: what `announce` sent meanwhile.
  #collecting: Send[] | null = null;
  readonly #handled = new Map<string, { incarnation: string; attach: number; u: number }>();

  constructor(epoch: number, store: Store, roster: Roster, decide: Decide, options: SequencerOptions) {
    this.epoch = epoch;
    this.#store = store;
    this.#roster = roster;
    this.#decide = decide;
    this.#options = options;
  }

  /** Parts with a live stream. */
  get attached(): string[] {
    return Array.from(this.#links.keys());
  }

  /** Handles one frame from a part. */
  receive(frame: Upstream, now: number): Send[] {
    if (frame.v !== LINK_VERSION) return [];
    this.#collecting = [];
    try {
      switch (frame.type) {
        case "attach":
          return this.#attach(frame, now);
        case "op":
          return this.#op(frame.part, frame.incarnation, frame.u, frame.op, now);
        case "refill":
          return this.#refill(frame.part, frame.incarnation, frame.stream, frame.from, now);
      }
    } finally {
      this.#collecting = null;
    }
  }

  /**
   * A part's channel is gone (evicted, or the socket broke). Its users stay
   * online until `drop`: its clients are reconnecting to other parts, and a
   * leave and join for each would be noise.
   */
  detach(part: string): void {
    this.#links.delete(part);
    this.addresses.drop(part);
  }

  /** The grace period after a detach is over: the part's users leave unless they are elsewhere. */
  drop(part: string, now: number): Send[] {
    if (this.#links.has(part)) return [];
    return this.#broadcast(this.#roster.drop(part, now));
  }

  /** One more socket of `user` on `part`, which has no stream (the sequencer's own sockets). */
  arrive(part: string, user: User, now: number): Send[] {
    return this.#broadcast(this.#roster.arrive(part, user, now));
  }

  /** One socket less on a part without a stream. */
  depart(part: string, userId: string, now: number): Send[] {
    return this.#broadcast(this.#roster.depart(part, userId, now));
  }

  /**
   * An event the room decided by itself (moderation): to every part, in the
   * one order. Announced while a part's frame is being handled (the room
   * acting on a part's moderation frame), the sends join that frame's
   * answer in order instead, after the sync they may follow.
   */
  announce(event: StreamEvent): Send[] {
    const sends = this.#broadcast([event]);
    if (this.#collecting === null) return sends;
    this.#collecting.push(...sends);
    return [];
  }

  /** A message from outside the parts (the HTTP API, the room's own sockets). */
  post(from: User, text: string, nonce: string | undefined, ts: number): { message: Message; sends: Send[] } {
    const message = this.#store.append(from, text, nonce, ts, null);
    return { message, sends: this.#broadcast([{ kind: "message", message }]) };
  }

  /** Presence counts that came due and beats for streams that changed lately. */
  tick(now: number): Send[] {
    const sends = this.#broadcast(this.#roster.tick(now));
    for (const [part, link] of this.#links) {
      if (link.beatsLeft === 0) continue;
      link.beatsLeft--;
      sends.push(this.#beat(part, link));
    }
    return sends;
  }

  #attach(frame: Extract<Upstream, { type: "attach" }>, now: number): Send[] {
    const handled = this.#handled.get(frame.part);
    // A late copy of an older attach, or one the part sent before frames
    // this sequencer has handled since: its users are out of date, and the
    // part has a stream already.
    if (handled?.incarnation === frame.incarnation && (frame.n <= handled.attach || frame.upTo < handled.u)) return [];
    // Off the old stream first: what the roster says about this part's own
    // change reaches the part through the sync, not as events.
    this.#links.delete(frame.part);
    const sends = this.#broadcast(this.#roster.replace(frame.part, frame.users, now));
    if (frame.addresses !== undefined) this.addresses.replace(frame.part, frame.addresses);
    const link = this.#open(frame.part, frame.incarnation, frame.upTo);
    const ringStart = this.#store.ring()[0]?.id ?? this.#store.lastId + 1;
    const answers = this.#answersOf(frame.part, frame.incarnation);
    const fresh: PendingPublish[] = [];
    for (const p of frame.pending.toSorted((a, b) => a.u - b.u)) {
      // Stored already: the sync's history brings it to the part if it needs it.
      if (this.#store.hasOrigin(originOf(frame.part, frame.incarnation, p.u))) continue;
      // Refused already: the sync repeats the refusal.
      if (answers.refused.has(p.u) || answers.unknown.has(p.u)) continue;
      // Not among the kept ids above its floor, so never stored: decide it now.
      if (p.floor !== null && p.floor >= ringStart - 1) fresh.push(p);
      else remember(answers.unknown, p.u);
    }
    const sync = this.#sync(frame.part, link, now);
    sends.push(sync);
    for (const { u, op } of fresh) sends.push(...this.#decideOp(frame.part, frame.incarnation, u, op, now));
    // The part keeps the nonces of these until the events that answer them.
    if (sync.frame.type === "sync") sync.frame.answered = link.seq;
    this.#handled.set(frame.part, { incarnation: frame.incarnation, attach: frame.n, u: frame.upTo });
    return sends;
  }

  #open(part: string, incarnation: string, acked: number): Link {
    const gen = (this.#gens.get(part) ?? 0) + 1;
    this.#gens.set(part, gen);
    const link: Link = {
      incarnation,
      stream: { epoch: this.epoch, gen },
      seq: 0,
      acked,
      outbox: [],
      early: new Map(),
      beatsLeft: this.#options.beats,
    };
    this.#links.set(part, link);
    return link;
  }

  #sync(part: string, link: Link, now: number): Send {
    const answers = this.#answersOf(part, link.incarnation);
    const frame: Extract<Downstream, { type: "sync" }> = {
      v: LINK_VERSION,
      type: "sync",
      stream: link.stream,
      acked: link.acked,
      ring: this.#store.ring(),
      lastId: this.#store.lastId,
      presence: this.#roster.snapshot(),
      slowMode: this.#options.slowMode(),
      unknown: Array.from(answers.unknown),
      answered: 0,
      rejected: Array.from(answers.refused.values()),
    };
    // Only when there are any: most syncs have neither.
    const bans = this.#bansOn(part, now);
    if (bans.length > 0) frame.bans = bans;
    const deletes = this.#store.deletes?.() ?? [];
    if (deletes.length > 0) frame.deletes = deletes;
    return { part, frame };
  }

  /** The bans that cover a socket the roster says `part` holds, each once. */
  #bansOn(part: string, now: number): BanNotice[] {
    const banned = this.#options.banned;
    if (banned === undefined) return [];
    const bans = new Map<string, BanNotice>();
    for (const { user, addresses } of this.#roster.on(part)) {
      for (const address of addresses.length === 0 ? [undefined] : addresses) {
        const ban = banned(user, address, now);
        if (ban !== null) bans.set(ban.user, ban);
      }
    }
    return Array.from(bans.values());
  }

  #op(part: string, incarnation: string, u: number, op: UpstreamOp, now: number): Send[] {
    const link = this.#links.get(part);
    if (link === undefined || link.incarnation !== incarnation) return [this.#reattach(part)];
    // A repeat: the beat tells the part how far the room got.
    if (u <= link.acked) return [this.#beat(part, link)];
    // One that overtook another: held until the gap is filled by the
    // part's resend (it resends everything not acknowledged).
    if (u > link.acked + 1) {
      if (link.early.size < this.#options.window) link.early.set(u, op);
      return [];
    }
    const sends = this.#handle(part, link, u, op, now);
    for (let next = link.early.get(link.acked + 1); next !== undefined; next = link.early.get(link.acked + 1)) {
      link.early.delete(link.acked + 1);
      sends.push(...this.#handle(part, link, link.acked + 1, next, now));
    }
    for (const held of link.early.keys()) if (held <= link.acked) link.early.delete(held);
    return sends;
  }

  #handle(part: string, link: Link, u: number, op: UpstreamOp, now: number): Send[] {
    link.acked = u;
    const handled = this.#handled.get(part);
    if (handled !== undefined) handled.u = u;
    link.beatsLeft = this.#options.beats;
    switch (op.kind) {
      case "arrive": {
        if (op.address !== undefined) this.addresses.add(part, op.address);
        const sends = this.#broadcast(this.#roster.arrive(part, op.user, now, op.address));
        // Banned since the room handed it to the part: closed, never welcomed.
        // Counted all the same, so its departure balances.
        const ban = this.#options.banned?.(op.user, op.address, now) ?? null;
        sends.push(
          this.#emit(
            part,
            link,
            ban === null ? { kind: "admit", u, count: this.#roster.welcomeCount() } : { kind: "ban", ...ban },
          ),
        );
        return sends;
      }
      case "depart":
        if (op.address !== undefined) this.addresses.remove(part, op.address);
        return this.#broadcast(this.#roster.depart(part, op.userId, now, op.address));
      case "publish":
      case "moderate":
        return this.#decideOp(part, link.incarnation, u, op, now);
    }
  }

  #decideOp(part: string, incarnation: string, u: number, op: PendingPublish["op"], now: number): Send[] {
    // As on the room's own sockets, which a ban closed: the part closes what
    // the ban covers, this sender first, so the refusal reaches no one.
    const ban = this.#options.banned?.(op.from, op.address, now) ?? null;
    if (ban !== null) {
      const link = this.#links.get(part);
      return [
        ...(link === undefined ? [] : [this.#emit(part, link, { kind: "ban", ...ban })]),
        ...this.#refuse(part, incarnation, { u, code: "forbidden", message: "you are banned from this room" }),
      ];
    }
    if (op.kind === "publish") return this.#publish(part, incarnation, u, op, now);
    const start = this.#collecting?.length ?? 0;
    const verdict = this.#options.moderate?.(op, now) ?? {
      ok: false,
      code: "forbidden",
      message: "moderation is not available here",
    };
    const effects = this.#collecting?.splice(start) ?? [];
    return verdict.ok
      ? effects
      : [...effects, ...this.#refuse(part, incarnation, { u, code: verdict.code, message: verdict.message })];
  }

  #publish(
    part: string,
    incarnation: string,
    u: number,
    op: Extract<UpstreamOp, { kind: "publish" }>,
    now: number,
  ): Send[] {
    const verdict = this.#decide(op, now);
    if (!verdict.ok) return this.#refuse(part, incarnation, { u, code: verdict.code, message: verdict.message });
    const message = this.#store.append(op.from, op.text, op.nonce, now, originOf(part, incarnation, u));
    return this.#broadcast([{ kind: "message", message }]);
  }

  /** Refuses upstream frame `u`, and remembers it for the syncs to come. */
  #refuse(part: string, incarnation: string, rejection: Rejection): Send[] {
    const { refused } = this.#answersOf(part, incarnation);
    refused.set(rejection.u, rejection);
    for (const old of refused.keys()) {
      if (refused.size <= ANSWER_MEMORY) break;
      refused.delete(old);
    }
    const link = this.#links.get(part);
    return link === undefined ? [] : [this.#emit(part, link, { kind: "reject", ...rejection })];
  }

  #answersOf(part: string, incarnation: string): { refused: Map<number, Rejection>; unknown: Set<number> } {
    const entry = this.#answers.get(part);
    if (entry?.incarnation === incarnation) return entry;
    const fresh = { incarnation, refused: new Map<number, Rejection>(), unknown: new Set<number>() };
    this.#answers.set(part, fresh);
    return fresh;
  }

  #refill(part: string, incarnation: string, stream: StreamId, from: number, now: number): Send[] {
    const link = this.#links.get(part);
    if (link === undefined || link.incarnation !== incarnation) return [this.#reattach(part)];
    // A part still asking in an older stream missed the sync of the newer one.
    const stale = link.stream.epoch !== stream.epoch || link.stream.gen !== stream.gen;
    const oldest = link.seq - link.outbox.length + 1;
    if (!stale && from > link.seq) return [this.#beat(part, link)];
    if (stale || from < oldest) {
      // Beyond the window: a new stream from a sync, which carries the whole
      // kept history and the presence as it is now.
      const fresh = this.#open(part, incarnation, link.acked);
      return [this.#sync(part, fresh, now)];
    }
    return link.outbox.slice(from - oldest).map((frame) => ({ part, frame }));
  }

  #broadcast(events: readonly StreamEvent[]): Send[] {
    const sends: Send[] = [];
    for (const event of events) {
      this.#options.local?.(event);
      for (const [part, link] of this.#links) sends.push(this.#emit(part, link, event));
    }
    return sends;
  }

  #emit(part: string, link: Link, event: StreamEvent): Send {
    link.seq++;
    const frame: Downstream = {
      v: LINK_VERSION,
      type: "event",
      stream: link.stream,
      seq: link.seq,
      acked: link.acked,
      event,
    };
    link.outbox.push(frame);
    if (link.outbox.length > this.#options.window) link.outbox.shift();
    link.beatsLeft = this.#options.beats;
    return { part, frame };
  }

  /**
   * To a part this sequencer has no stream for: it restarted since the
   * part's attach, or the attach was lost. The link closing tells a part
   * the first; this tells it both.
   */
  #reattach(part: string): Send {
    return { part, frame: { v: LINK_VERSION, type: "reattach", epoch: this.epoch } };
  }

  #beat(part: string, link: Link): Send {
    return { part, frame: { v: LINK_VERSION, type: "beat", stream: link.stream, seq: link.seq, acked: link.acked } };
  }
}

function remember(set: Set<number>, value: number): void {
  set.add(value);
  for (const old of set) {
    if (set.size <= ANSWER_MEMORY) break;
    set.delete(old);
  }
}
