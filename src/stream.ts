// A part's side of its channel to the sequencer (see link.ts and
// docs/LARGE-ROOMS.md): what the part's sockets are shown, and when.
//
// The part applies the room's events strictly in its stream's order. An event
// that comes early is held and the missing ones are asked for again; a
// repeat is dropped; a lost tail shows up in the room's beat. What the part
// sends up is numbered and kept until the room acknowledges it, and resent
// in order until then. A new socket is welcomed only when the room's answer
// to its arrival comes through the stream: at that point the part has applied
// everything the room sent before it, so the part's copy of the history, of
// presence and of slow mode is the room's, and the welcome is exact (history,
// `gap`, the online list with the newcomer's own join already in it,
// `limits.slowMode`), and every later event reaches the socket exactly once.
//
// No Workers APIs: the RoomPart Durable Object applies the actions to its
// sockets, and the model test applies them to simulated clients.

import {
  LINK_VERSION,
  compareStreams,
  type Downstream,
  type PartUser,
  type ModerationRequest,
  type PendingPublish,
  type PresenceSnapshot,
  type RejectCode,
  type StreamEvent,
  type StreamId,
  type Upstream,
  type UpstreamOp,
} from "./link.ts";
import { ANSWER_MEMORY } from "./sequencer.ts";
import { covers } from "./moderation.ts";
import {
  CloseCode,
  publicUser,
  tombstone,
  type BroadcastFrame,
  type ErrorCode,
  type Message,
  type PresenceCountFrame,
  type User,
} from "./protocol.ts";

/** What the part must do, in this order. */
export type PartAction =
  | { kind: "up"; frame: Upstream }
  | {
      kind: "welcome";
      socket: number;
      history: Message[];
      gap: boolean;
      online: User[];
      onlineCount: number;
      /** The room's slow mode in seconds (0: off), for `welcome.limits`. */
      slowMode: number;
    }
  /** To every socket welcomed so far. */
  | { kind: "deliver"; frame: BroadcastFrame | PresenceCountFrame }
  | { kind: "error"; socket: number; code: ErrorCode; message: string; nonce?: string }
  | { kind: "close"; socket: number; code: number; reason: string }
  /** Close with 4003 every socket of `user`, and every guest socket from `address`. */
  | { kind: "ban"; user: string; address: string | null; reason: string };

export interface PartStreamOptions {
  historySize: number;
  presenceLimit: number;
  /** How long an unanswered attach, refill or upstream frame waits before it is sent again. */
  retryMs: number;
  /** Early frames held while a gap is refilled; beyond it they are dropped and refilled too. */
  holdLimit: number;
}

interface Socket {
  user: User;
  after: number | null;
  /** The upstream number of its `arrive`. */
  u: number;
  welcomed: boolean;
  address?: string;
  /** What it sent before its welcome: sent up after it, in order, so the answers come live. */
  early: Early[];
  /** Its publishes and moderation frames sent to the room and not answered yet. */
  asked: number;
}

/** A message or moderation frame that came before its socket's welcome. */
type Early =
  | { kind: "publish"; text: string; nonce: string | undefined }
  | { kind: "moderate"; frame: ModerationRequest };

/** The `depart` op for a socket, with its address for the room's per-address count. */
function departure(s: Socket): UpstreamOp {
  return s.address === undefined
    ? { kind: "depart", userId: s.user.id }
    : { kind: "depart", userId: s.user.id, address: s.address };
}

/** Messages a socket may send before its welcome; beyond it they are refused. */
export const EARLY_LIMIT = 16;

interface Sent {
  u: number;
  op: UpstreamOp;
  at: number;
}

type PublishOp = Extract<UpstreamOp, { kind: "publish" }>;

/** The close code that sends a client back to resume with `after` (contract: the room goes away). */
export const RESUME_CLOSE_CODE = 1001;

export class PartStream {
  readonly part: string;
  readonly incarnation: string;
  readonly #options: PartStreamOptions;

  #stream: StreamId | null = null;
  #seq = 0;
  readonly #held = new Map<number, Extract<Downstream, { type: "event" }>>();
  // The highest sequence number known to exist in this stream.
  #known = 0;
  // The highest sequence number seen, while attaching, of a stream newer than
  // ours: frames (beats too) that overtook that stream's sync. Dropped then,
  // they still say how far the stream goes once the sync comes.
  #ahead: { stream: StreamId; seq: number } | null = null;
  #refillAt = Number.NEGATIVE_INFINITY;

  // The room's kept history as of the last applied event, and its last id;
  // null before the first sync.
  #ring: Message[] = [];
  #lastId: number | null = null;

  // Presence as the part's welcomed sockets know it.
  #listed = true;
  #online = new Map<string, User>();
  #count = 0;
  // The room's slow mode as the part's welcomed sockets know it.
  #slowMode = 0;

  // Repeated publishes are answered by the stream's events up to this seq.
  #answeredAt = 0;
  #nextU = 1;
  #unacked: Sent[] = [];
  #attaches = 0;
  #attachAt: number | null = null;

  readonly #sockets = new Map<number, Socket>();
  // Publishes still waiting for their answer (their message, or a refusal),
  // by upstream number: an attach repeats them.
  readonly #publishes = new Map<number, { socket: number; pending: PendingPublish }>();

  constructor(part: string, incarnation: string, options: PartStreamOptions) {
    this.part = part;
    this.incarnation = incarnation;
    this.#options = options;
  }

  /** Last message id delivered; null before the first sync. */
  get lastId(): number | null {
    return this.#lastId;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  /**
   * The answers the room still owes `socket`: its messages held for its
   * welcome and its publishes and moderation frames not answered yet (by
   * the message, or a refusal). Each could still come back as an error, a
   * strike toward 1008 (see strikes.ts).
   */
  owed(socket: number): number {
    const s = this.#sockets.get(socket);
    return s === undefined ? 0 : s.early.length + s.asked;
  }

  /** The channel to the room is (again) open: attach, telling the room everything it needs to know. */
  attach(now: number): PartAction[] {
    this.#attachAt = now;
    this.#attaches++;
    const users = new Map<string, { user: User; sockets: number; from: Map<string, number> }>();
    const addresses = new Map<string, number>();
    for (const { user, address } of this.#sockets.values()) {
      let entry = users.get(user.id);
      if (entry === undefined) users.set(user.id, (entry = { user: publicUser(user), sockets: 0, from: new Map() }));
      entry.sockets++;
      if (address === undefined) continue;
      entry.from.set(address, (entry.from.get(address) ?? 0) + 1);
      addresses.set(address, (addresses.get(address) ?? 0) + 1);
    }
    const pending = Array.from(this.#publishes.values(), (p) => p.pending);
    // Arrivals and departures are in `users`; they stay unacknowledged here
    // all the same: if this attach is lost and a refill's sync opens the
    // next stream instead, they are sent again, in order.
    return [
      {
        kind: "up",
        frame: {
          v: LINK_VERSION,
          type: "attach",
          part: this.part,
          incarnation: this.incarnation,
          n: this.#attaches,
          upTo: this.#nextU - 1,
          lastId: this.#lastId,
          users: Array.from(
            users.values(),
            ({ user, sockets, from }): PartUser => ({
              user,
              sockets,
              addresses: Array.from(from, ([address, n]) => ({ address, sockets: n })),
            }),
          ),
          addresses: Array.from(addresses, ([address, sockets]) => ({ address, sockets })),
          pending,
        },
      },
    ];
  }

  /** A socket was upgraded; its welcome waits for the room. `address` is its client's address key (address.ts). */
  open(socket: number, user: User, after: number | null, now: number, address?: string): PartAction[] {
    const u = this.#nextU;
    this.#sockets.set(
      socket,
      address === undefined
        ? { user, after, u, welcomed: false, early: [], asked: 0 }
        : { user, after, u, welcomed: false, early: [], asked: 0, address },
    );
    // Presence shows the public user; a publish carries the roles (the
    // room decides whether a moderator may skip slow mode).
    const arrive: Extract<UpstreamOp, { kind: "arrive" }> = { kind: "arrive", user: publicUser(user) };
    if (address !== undefined) arrive.address = address;
    return this.#send(arrive, now);
  }

  /** A socket closed (either side). */
  close(socket: number, now: number): PartAction[] {
    const s = this.#sockets.get(socket);
    if (s === undefined) return [];
    this.#sockets.delete(socket);
    return this.#send(departure(s), now);
  }

  /** A valid `message` frame from a socket, to be decided and ordered by the room. */
  publish(socket: number, text: string, nonce: string | undefined, now: number): PartAction[] {
    const s = this.#sockets.get(socket);
    if (s === undefined) return [];
    // Sent before its welcome, a message would be stored before the
    // welcome's history is taken, and a history of the last N messages may
    // not reach back to it: the sender would never see its own message.
    if (!s.welcomed) return early(s, socket, { kind: "publish", text, nonce }, nonce);
    // The room remembers this many answers per part (see ANSWER_MEMORY); a
    // part that far behind its room is overloaded anyway.
    if (this.#publishes.size >= ANSWER_MEMORY) {
      const busy: PartAction = {
        kind: "error",
        socket,
        code: "rate_limited",
        message: "the room is busy; this message was dropped",
      };
      if (nonce !== undefined) busy.nonce = nonce;
      return [busy];
    }
    const op: PublishOp = { kind: "publish", from: s.user, text };
    if (nonce !== undefined) op.nonce = nonce;
    if (s.address !== undefined) op.address = s.address;
    this.#ask(s, socket, op);
    return this.#send(op, now);
  }

  /** A moderation frame from a welcomed socket, for the room to decide and apply. */
  moderate(socket: number, frame: ModerationRequest, now: number): PartAction[] {
    const s = this.#sockets.get(socket);
    if (s === undefined) return [];
    // Held like an early message: a one-object room welcomes on accept, so
    // there nothing a client sends ever comes before its welcome.
    if (!s.welcomed) return early(s, socket, { kind: "moderate", frame }, frame.nonce);
    if (this.#publishes.size >= ANSWER_MEMORY) {
      const refused: PartAction = {
        kind: "error",
        socket,
        code: "rate_limited",
        message: "the room is busy; this frame was dropped",
      };
      if (frame.nonce !== undefined) refused.nonce = frame.nonce;
      return [refused];
    }
    const op: PendingPublish["op"] = { kind: "moderate", from: s.user, frame };
    if (s.address !== undefined) op.address = s.address;
    this.#ask(s, socket, op);
    return this.#send(op, now);
  }

  /** Keeps a publish or moderation frame, numbered as the next upstream op, until its answer. */
  #ask(s: Socket, socket: number, op: PendingPublish["op"]): void {
    this.#publishes.set(this.#nextU, { socket, pending: { u: this.#nextU, op, floor: this.#lastId } });
    s.asked++;
  }

  /** Forgets publish `u`: answered, or its socket is gone. */
  #answered(u: number): void {
    const publish = this.#publishes.get(u);
    if (publish === undefined) return;
    this.#publishes.delete(u);
    const s = this.#sockets.get(publish.socket);
    if (s !== undefined) s.asked--;
  }

  /** Retries: an attach, a refill or upstream frames that stayed unanswered. */
  tick(now: number): PartAction[] {
    const due = (at: number) => now - at >= this.#options.retryMs;
    if (this.#attachAt !== null) return due(this.#attachAt) ? this.attach(now) : [];
    const actions: PartAction[] = [];
    if (this.#known > this.#seq && due(this.#refillAt)) actions.push(...this.#askRefill(now));
    const oldest = this.#unacked[0];
    if (oldest !== undefined && due(oldest.at)) {
      for (const sent of this.#unacked) {
        sent.at = now;
        actions.push(this.#op(sent));
      }
    }
    return actions;
  }

  receive(frame: Downstream, now: number): PartAction[] {
    if (frame.v !== LINK_VERSION) return [];
    if (frame.type === "sync") return this.#sync(frame, now);
    if (frame.type === "reattach") {
      const stale = this.#stream !== null && frame.epoch < this.#stream.epoch;
      return stale || this.#attachAt !== null ? [] : this.attach(now);
    }
    const order = this.#stream === null ? 1 : compareStreams(frame.stream, this.#stream);
    // An older stream is over. A newer one whose sync never came: attach again.
    if (order < 0) return [];
    if (order > 0) {
      if (this.#attachAt === null) return this.attach(now);
      const ahead = this.#ahead;
      if (ahead === null || compareStreams(frame.stream, ahead.stream) > 0)
        this.#ahead = { stream: frame.stream, seq: frame.seq };
      else if (compareStreams(frame.stream, ahead.stream) === 0) ahead.seq = Math.max(ahead.seq, frame.seq);
      return [];
    }
    if (frame.type === "beat") {
      this.#known = Math.max(this.#known, frame.seq);
      if (frame.seq === this.#seq) this.#retire(frame.acked, true);
      return this.#known > this.#seq ? this.#askRefill(now) : [];
    }
    if (frame.seq <= this.#seq) return [];
    this.#known = Math.max(this.#known, frame.seq);
    if (frame.seq > this.#seq + 1) {
      if (this.#held.size < this.#options.holdLimit) this.#held.set(frame.seq, frame);
      return this.#askRefill(now);
    }
    const actions = this.#apply(frame, now);
    for (let next = this.#held.get(this.#seq + 1); next !== undefined; next = this.#held.get(this.#seq + 1)) {
      this.#held.delete(next.seq);
      actions.push(...this.#apply(next, now));
    }
    for (const seq of this.#held.keys()) if (seq <= this.#seq) this.#held.delete(seq);
    return actions;
  }

  #send(op: UpstreamOp, now: number): PartAction[] {
    const sent = this.#queue(op, now);
    // While attaching, the attach's answer opens the stream these go on.
    return this.#attachAt === null ? [this.#op(sent)] : [];
  }

  #queue(op: UpstreamOp, now: number): Sent {
    const sent = { u: this.#nextU++, op, at: now };
    this.#unacked.push(sent);
    return sent;
  }

  #op({ u, op }: Sent): PartAction {
    return {
      kind: "up",
      frame: { v: LINK_VERSION, type: "op", part: this.part, incarnation: this.incarnation, u, op },
    };
  }

  #askRefill(now: number): PartAction[] {
    if (this.#stream === null || now - this.#refillAt < this.#options.retryMs) return [];
    this.#refillAt = now;
    return [
      {
        kind: "up",
        frame: {
          v: LINK_VERSION,
          type: "refill",
          part: this.part,
          incarnation: this.incarnation,
          stream: this.#stream,
          from: this.#seq + 1,
        },
      },
    ];
  }

  /**
   * Forgets what the room has acknowledged, and the nonces of publishes
   * whose answer (a message or a reject) has been applied.
   */
  #retire(acked: number, answered: boolean): void {
    if ((this.#unacked[0]?.u ?? Number.POSITIVE_INFINITY) <= acked)
      this.#unacked = this.#unacked.filter((s) => s.u > acked);
    if (!answered || this.#seq < this.#answeredAt) return;
    for (const u of this.#publishes.keys()) if (u <= acked) this.#answered(u);
  }

  #sync(frame: Extract<Downstream, { type: "sync" }>, now: number): PartAction[] {
    if (this.#stream !== null && compareStreams(frame.stream, this.#stream) <= 0) return [];
    const actions: PartAction[] = [];
    // Bans made while the part had no stream: what they cover closes first,
    // as it would have then, and is neither welcomed nor sent what it missed.
    for (const ban of frame.bans ?? []) {
      for (const [socket, s] of this.#sockets) {
        if (!covers(ban, s.user, s.address)) continue;
        this.#sockets.delete(socket);
        actions.push({ kind: "close", socket, code: CloseCode.banned, reason: ban.reason });
        this.#queue(departure(s), now);
      }
    }
    const ringStart = frame.ring[0]?.id ?? frame.lastId + 1;
    const delivered = this.#lastId ?? 0;
    // Sockets welcomed before missed messages the room no longer keeps (or
    // the room's ids went backwards, which only a reset storage does): they
    // must resume, and their welcome will say `gap`.
    const lost = delivered < ringStart - 1 || delivered > frame.lastId;
    for (const [socket, s] of this.#sockets) {
      if (!s.welcomed) continue;
      if (lost) {
        this.#sockets.delete(socket);
        actions.push({
          kind: "close",
          socket,
          code: RESUME_CLOSE_CODE,
          reason: "the room restarted: reconnect with after",
        });
        this.#queue(departure(s), now);
      }
    }
    if (!lost) {
      // Deletes of messages the sockets have, made while the part had no
      // stream: one `delete` each, as they would have had it live. A
      // message they never had comes below as the tombstone.
      const had = new Map(this.#ring.map((m) => [m.id, m] as const));
      for (const deletion of frame.deletes ?? []) {
        const message = deletion.id <= delivered ? had.get(deletion.id) : undefined;
        if (message !== undefined && message.deleted !== true) actions.push({ kind: "deliver", frame: deletion });
      }
      for (const message of frame.ring) if (message.id > delivered) actions.push({ kind: "deliver", frame: message });
    }
    // Publishes the room cannot tell stored or not: the sender resumes and
    // finds its nonce in the history, or not.
    for (const u of frame.unknown) {
      const publish = this.#publishes.get(u);
      const s = publish === undefined ? undefined : this.#sockets.get(publish.socket);
      if (publish === undefined || s === undefined) continue;
      this.#sockets.delete(publish.socket);
      actions.push({ kind: "close", socket: publish.socket, code: RESUME_CLOSE_CODE, reason: "reconnect with after" });
      this.#queue(departure(s), now);
    }
    actions.push(...this.#resetPresence(frame.presence, now));
    // A change the part missed while it had no stream; before the welcomes
    // below, which carry the new value and must not get the frame too.
    if (frame.slowMode !== undefined && frame.slowMode !== this.#slowMode) {
      this.#slowMode = frame.slowMode;
      actions.push({ kind: "deliver", frame: { type: "settings", slowMode: frame.slowMode } });
    }
    this.#stream = frame.stream;
    this.#seq = 0;
    // A tail that came before its sync is refilled by the next tick.
    this.#known = this.#ahead !== null && compareStreams(this.#ahead.stream, frame.stream) === 0 ? this.#ahead.seq : 0;
    this.#ahead = null;
    this.#held.clear();
    this.#refillAt = Number.NEGATIVE_INFINITY;
    this.#attachAt = null;
    this.#ring = frame.ring.slice();
    this.#lastId = frame.lastId;
    // Every socket the attach reported is in the roster now, and what the
    // room handled of this part's frames came before this sync.
    for (const [socket, s] of this.#sockets) {
      if (!s.welcomed && s.u <= frame.acked) actions.push(...this.#welcome(socket, s, now));
    }
    for (const { u, code, message } of frame.rejected) actions.push(...this.#reject(u, code, message));
    this.#answeredAt = frame.answered;
    this.#retire(frame.acked, frame.answered === 0);
    // Frames sent while attaching go on the new stream.
    for (const sent of this.#unacked) {
      sent.at = now;
      actions.push(this.#op(sent));
    }
    return actions;
  }

  /** Tells welcomed sockets what changed between what they know and `snapshot`. */
  #resetPresence(snapshot: PresenceSnapshot, ts: number): PartAction[] {
    const actions: PartAction[] = [];
    if (snapshot.online === null) {
      if (this.#listed || this.#count !== snapshot.count)
        actions.push({ kind: "deliver", frame: { type: "presence", count: snapshot.count } });
      this.#listed = false;
      this.#count = snapshot.count;
      return actions;
    }
    const next = new Map(snapshot.online.map((u) => [u.id, u] as const));
    if (!this.#listed) {
      actions.push({ kind: "deliver", frame: { type: "presence", count: snapshot.count, online: snapshot.online } });
    } else {
      for (const [id, user] of this.#online)
        if (!next.has(id)) actions.push({ kind: "deliver", frame: { type: "leave", user, ts } });
      for (const [id, user] of next)
        if (!this.#online.has(id)) actions.push({ kind: "deliver", frame: { type: "join", user, ts } });
    }
    this.#listed = true;
    this.#online = next;
    this.#count = next.size;
    return actions;
  }

  #apply(frame: Extract<Downstream, { type: "event" }>, now: number): PartAction[] {
    this.#seq = frame.seq;
    const actions = this.#event(frame.event, now);
    this.#retire(frame.acked, true);
    return actions;
  }

  #event(event: StreamEvent, now: number): PartAction[] {
    switch (event.kind) {
      case "message": {
        const { message } = event;
        this.#ring.push(message);
        if (this.#ring.length > this.#options.historySize)
          this.#ring.splice(0, this.#ring.length - this.#options.historySize);
        this.#lastId = message.id;
        return [{ kind: "deliver", frame: message }];
      }
      case "join":
        this.#online.set(event.user.id, event.user);
        this.#count = this.#online.size;
        return [{ kind: "deliver", frame: { type: "join", user: event.user, ts: event.ts } }];
      case "leave":
        this.#online.delete(event.user.id);
        this.#count = this.#online.size;
        return [{ kind: "deliver", frame: { type: "leave", user: event.user, ts: event.ts } }];
      case "count":
        this.#listed = false;
        this.#count = event.count;
        return [{ kind: "deliver", frame: { type: "presence", count: event.count } }];
      case "list":
        this.#listed = true;
        this.#online = new Map(event.online.map((u) => [u.id, u] as const));
        this.#count = event.count;
        return [{ kind: "deliver", frame: { type: "presence", count: event.count, online: event.online } }];
      case "admit": {
        for (const [socket, s] of this.#sockets)
          if (s.u === event.u && !s.welcomed) return this.#welcome(socket, s, now, event.count);
        return [];
      }
      case "reject":
        return this.#reject(event.u, event.code, event.message);
      case "frame":
        if (event.frame.type === "delete") {
          const { id } = event.frame;
          this.#ring = this.#ring.map((m) => (m.id === id ? tombstone(m) : m));
        } else {
          this.#slowMode = event.frame.slowMode;
        }
        return [{ kind: "deliver", frame: event.frame }];
      case "ban":
        return [{ kind: "ban", user: event.user, address: event.address, reason: event.reason }];
    }
  }

  /** Answers a refused publish once: a repeated refusal finds no publish left. */
  #reject(u: number, code: RejectCode, message: string): PartAction[] {
    const publish = this.#publishes.get(u);
    this.#answered(u);
    if (publish === undefined || !this.#sockets.has(publish.socket)) return [];
    const error: PartAction = { kind: "error", socket: publish.socket, code, message };
    const { op } = publish.pending;
    const nonce = op.kind === "publish" ? op.nonce : op.frame.nonce;
    if (nonce !== undefined) error.nonce = nonce;
    return [error];
  }

  #welcome(socket: number, s: Socket, now: number, count = this.#count): PartAction[] {
    s.welcomed = true;
    const lastId = this.#lastId ?? 0;
    const { after } = s;
    let history: Message[];
    let gap: boolean;
    if (after === null) {
      history = this.#ring.slice();
      gap = false;
    } else if (after > lastId) {
      history = this.#ring.slice();
      gap = true;
    } else {
      history = this.#ring.filter((m) => m.id > after);
      gap = history.length < lastId - after;
    }
    const actions: PartAction[] = [
      {
        kind: "welcome",
        socket,
        history,
        gap,
        online: this.#welcomeOnline(s.user),
        onlineCount: this.#listed ? this.#count : count,
        slowMode: this.#slowMode,
      },
    ];
    for (const held of s.early.splice(0)) {
      actions.push(
        ...(held.kind === "publish"
          ? this.publish(socket, held.text, held.nonce, now)
          : this.moderate(socket, held.frame, now)),
      );
    }
    return actions;
  }

  /** The whole list while it is short; above the limit, this part's own users (all surely online), the newcomer first. */
  #welcomeOnline(you: User): User[] {
    if (this.#listed) return Array.from(this.#online.values());
    const local = new Map<string, User>([[you.id, publicUser(you)]]);
    for (const { user, welcomed } of this.#sockets.values()) {
      if (local.size >= this.#options.presenceLimit) break;
      if (welcomed) local.set(user.id, publicUser(user));
    }
    return Array.from(local.values());
  }
}

/** Holds what a socket sent before its welcome, up to EARLY_LIMIT; refuses the rest. */
function early(s: Socket, socket: number, held: Early, nonce: string | undefined): PartAction[] {
  if (s.early.length < EARLY_LIMIT) {
    s.early.push(held);
    return [];
  }
  const refused: PartAction = {
    kind: "error",
    socket,
    code: "rate_limited",
    message: "wait for the welcome; this frame was dropped",
  };
  if (nonce !== undefined) refused.nonce = nonce;
  return [refused];
}
