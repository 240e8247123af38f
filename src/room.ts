// The ChatRoom Durable Object: one instance per room, everywhere in the world.
//
// Why one object per room: a room needs a single order of messages and a
// single place that knows who is connected. A Durable Object is exactly that:
// one single-threaded instance, addressed by name (`idFromName(room)`), with
// its own SQLite database. Rooms share nothing, so they scale out by count.
//
// What survives hibernation: the runtime hibernates an idle room (evicts it
// from memory while keeping its WebSockets open) and constructs it again for
// the next event. So everything the protocol needs lives where a wake finds it:
//   - per connection, the user, its address, the error strikes, snapshots
//     of the user's and the address's rate-limit buckets and whether its
//     departure was already announced, in the socket's attachment
//     (`serializeAttachment`); the buckets shared by several sockets are
//     rebuilt from those snapshots (see quota.ts);
//   - the history and the last issued id in SQLite (see history.ts), a
//     deleted message as a tombstone in its own ring row, with who deleted
//     it and when;
//   - bans and settings in SQLite (see moderation.ts); a ban's end is
//     compared with the clock at each check, so no alarm lifts it;
//   - slow mode's "when did this user last post" in memory only, rebuilt
//     from each socket's `lastPost` and the authors and times in the ring.
// The maps in memory (sockets to sessions, presence by user id, the history
// ring) are caches, rebuilt from those on the first event after a wake; only
// open sockets count, so a close that wakes the room is counted once.
// Keep-alive `ping`s are answered by `setWebSocketAutoResponse` without waking
// the room at all.
//
// What a message costs: one SQLite row written (an upsert into the ring), no
// row read once the ring is in memory, one JSON.stringify, and one `send` per
// connected socket.
// Moderation adds no row to it: the ban check at connect and the slow-mode
// check read memory once warm. What moderation itself costs is in
// BENCHMARKS.md.

import { DurableObject } from "cloudflare:workers";
import {
  admissionRequest,
  notAdmitted,
  readAdmission,
  welcomeFrame,
  welcomeLimits,
  type Admission,
} from "./admission.ts";
import { readConfig, type Config } from "./config.ts";
import { answerClose, Delivery, TOO_SLOW } from "./delivery.ts";
import { History, type RowCost, type Slice } from "./history.ts";
import { createLogger, describeError, type Logger } from "./log.ts";
import {
  CloseCode,
  ackRefusal,
  IDLE_TIMEOUT_MS,
  MAX_FRAME_BYTES,
  PING,
  PONG,
  isModerator,
  mayDelete,
  readClientFrame,
  type BanEntry,
  type BanRequest,
  type ClientBan,
  type ClientDelete,
  type ClientSettings,
  type ClientUnban,
  publicUser,
  type ErrorCode,
  type Limits,
  type Message,
  type RoomSettings,
  type DeleteFrame,
  type SettingsFrame,
  type User,
} from "./protocol.ts";
import { Moderation, PostClock, banCloseReason, bannedError, covers, type Ban } from "./moderation.ts";
import { RoomQuota } from "./quota.ts";
import { recordStrike } from "./strikes.ts";
import { isVerifiedUserId, readAuthSettings, type GuestMode } from "./auth.ts";
import { parseSession, sessionRoles, type Session } from "./session.ts";
import type { ModerationRequest, RejectCode, StreamEvent } from "./link.ts";
import type { Store } from "./sequencer.ts";
import { LOCAL_PART, ShardHub } from "./shards.ts";

/** A message from the HTTP publish endpoint, already validated by the Worker. */
export interface Publication {
  room: string;
  name: string;
  text: string;
  nonce?: string;
}

/** Counters for tests and benchmarks; cheap enough to keep in production. */
export interface Usage {
  messages: number;
  connects: number;
  rowsRead: number;
  rowsWritten: number;
}

/** What `GET /api/rooms/{room}/stats` shows: the room as it is now, from memory (0 rows once warm). */
export interface RoomStats {
  room: string;
  /** Open sockets. */
  connections: number;
  /** Users online (a user with several sockets counts once). */
  users: number;
  lastId: number;
  /** Durable Objects holding this room's connections: 1, plus each part of a large room with connections. */
  shards: number;
  /** A large room's objects (the room first) and their connections; absent while it is one object. */
  parts?: { part: string; connections: number }[];
  /** Messages the history ring keeps, tombstones included, and how many of them are tombstones. */
  messages: number;
  deleted: number;
  /** The oldest id a client can still fetch; null before the first message. */
  oldestId: number | null;
  /** Bans in force now. */
  bans: number;
  slowMode: number;
  /** Sockets that asked for batched broadcasts. */
  batching: number;
  /** Since this instance started (a wake starts from zero). */
  usage: Usage;
}

/** The fields of a ban request the store keeps (`purge` is an action, not state). */
function pick({ minutes, reason }: BanRequest): { minutes?: number; reason?: string } {
  const out: { minutes?: number; reason?: string } = {};
  if (minutes !== undefined) out.minutes = minutes;
  if (reason !== undefined) out.reason = reason;
  return out;
}

function jsonResponse(status: number, body: unknown): Response {
  return Response.json(body, { status });
}

interface Presence {
  user: User;
  sockets: number;
}

export class ChatRoom extends DurableObject<Env> {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #history: History;
  readonly #limits: Limits;
  readonly #quota: RoomQuota;
  readonly #moderation: Moderation;
  // When each user last posted, for slow mode; rebuilt after a wake from the
  // sockets' `lastPost` and, on the first check, from the history ring.
  readonly #clock = new PostClock();
  #clockWarm = false;
  readonly #guests: GuestMode;
  // Caches of what the sockets' attachments say; null until the first event
  // after construction (a wake) rebuilds them.
  #sessions: Map<WebSocket, Session> | null = null;
  #presence = new Map<string, Presence>();
  readonly #usage: Usage = { messages: 0, connects: 0, rowsRead: 0, rowsWritten: 0 };
  // Whether this instance has made sure a sweep alarm is pending.
  #sweepArmed = false;
  // Frames to the members: one send, broadcasts, the batch window, slow
  // readers (delivery.ts). Its `batch` and `acked` are the sessions'.
  readonly #delivery: Delivery<Session>;
  // Once the room's own sockets reach SHARD_SIZE: the sequencer of its
  // parts (see shards.ts, docs/LARGE-ROOMS.md). Null: exactly a single room.
  #hub: ShardHub | null = null;
  // The socket whose own arrival is being told, so it does not hear its join.
  #joining: WebSocket | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#config = readConfig(env);
    this.#log = createLogger(this.#config.logLevel, { component: "room" });
    this.#history = new History(ctx.storage.sql, this.#config.historySize);
    this.#quota = new RoomQuota(this.#config);
    this.#moderation = new Moderation(ctx.storage.sql);
    // The Worker logs what is wrong with the auth settings; the room only
    // needs to know whether guests may post.
    this.#guests = readAuthSettings(env).settings.guests;
    this.#limits = welcomeLimits(this.#config);
    this.#delivery = new Delivery({
      historySize: this.#config.historySize,
      recipients: () => this.#members(),
      close: (ws, code, reason) => {
        if (reason === TOO_SLOW) {
          const session = this.#members().get(ws);
          this.#log.warn("too_slow", { room: session?.room, user: session?.user.id });
        }
        this.#close(ws, code, reason);
      },
    });
    // Answered by the runtime itself: a keep-alive never wakes the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  get usage(): Usage {
    return { ...this.#usage };
  }

  // ---- connections -------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const admission = readAdmission(request);
    if (admission === null) return notAdmitted();
    try {
      const refused = this.#refuse(admission);
      if (refused !== null) return refused;
      if (this.#members().size >= this.#config.shardSize) return await this.#toPart(admission);
      return this.#connect(admission);
    } catch (err) {
      this.#log.error("fault", { room: admission.room, where: "connect", error: describeError(err) });
      return jsonResponse(500, { error: "internal", message: "the room could not accept the connection" });
    }
  }

  /** The answer to a connection the room will not take, wherever it would land; null to go on. */
  #refuse({ room, user, address }: Admission): Response | null {
    const sessions = this.#members();
    // A verified user is never refused for a guest's address: its id is the
    // identity the host vouches for, and that is what a ban of it names.
    const banned = this.#moderation.banOf(user.id, user.verified === true ? null : address, Date.now());
    this.#count(banned.cost);
    if (banned.ban !== null) {
      this.#log.info("banned_refused", { room, user: user.id, by: banned.ban.user === user.id ? "user" : "address" });
      return jsonResponse(403, bannedError(banned.ban));
    }
    // The members map, not getWebSockets(): no array of every socket per
    // connect. A large room counts its parts' sockets too.
    if (sessions.size + this.#remoteConnections() >= this.#config.maxConnections) {
      this.#log.warn("room_full", { room, connections: this.#config.maxConnections });
      return jsonResponse(503, { error: "room_full", message: "this room has reached its connection limit" });
    }
    // A large room counts the address's sockets on its parts too.
    if (!this.#quota.admits(address, this.#hub?.addressSockets(address) ?? 0)) {
      this.#log.info("address_full", { room, connections: this.#config.addressSocketsPerRoom });
      return jsonResponse(429, {
        error: "too_many_connections",
        message: `at most ${this.#config.addressSocketsPerRoom} connections from one address in a room`,
      });
    }
    return null;
  }

  #connect(admission: Admission): Response {
    const { room, user, address, after, batch } = admission;
    const sessions = this.#members();
    const cost = this.#history.load();
    const now = Date.now();
    const { 0: client, 1: server } = new WebSocketPair();
    const session: Session = {
      room,
      user: user.verified === true ? { ...publicUser(user), roles: sessionRoles(user.roles ?? []) } : publicUser(user),
      address,
      ...this.#quota.snapshots(user.id, address, now),
      strikes: [],
      lastPost: null,
      seen: now,
      batch,
      acked: null,
      departed: false,
    };
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment(session);
    sessions.set(server, session);
    this.#quota.opened(address);
    this.#delivery.welcomed(server, session);
    const first = this.#arrive(session.user);
    // Nothing is awaited between reading history and sending `welcome`, and
    // the room is single-threaded: every message stored after this snapshot
    // is broadcast after the welcome, so the client sees each one exactly once.
    const { messages, gap }: Slice = this.#history.since(after);
    this.#delivery.send(
      server,
      welcomeFrame(admission, {
        ...this.#welcomeOnline(session.user),
        history: messages,
        gap,
        limits: this.#welcomeLimits(),
      }),
    );
    if (this.#hub !== null) this.#hubArrive(session.user, server);
    else if (first) this.#delivery.broadcast({ type: "join", user: publicUser(user), ts: now }, server);
    if (!this.#sweepArmed) {
      this.#armSweep(now).catch((err) => this.#log.error("fault", { room, where: "alarm", error: describeError(err) }));
    }
    this.#count(cost);
    this.#usage.connects++;
    this.#log.info("connect", {
      room,
      user: user.id,
      connections: sessions.size,
      after,
      history: messages.length,
      gap,
      rowsRead: cost.rowsRead,
      rowsWritten: cost.rowsWritten,
    });
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    const session = this.#session(ws);
    if (session === null) return;
    try {
      this.#receive(ws, session, data);
    } catch (err) {
      this.#log.error("fault", {
        room: session.room,
        user: session.user.id,
        where: "message",
        error: describeError(err),
      });
      this.#close(ws, CloseCode.serverError, "server fault");
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, _reason: string, wasClean: boolean): Promise<void> {
    try {
      answerClose(ws, code);
      this.#depart(ws, { code, wasClean });
    } catch (err) {
      this.#log.error("fault", { where: "close", code, error: describeError(err) });
    }
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    try {
      this.#depart(ws, { error: describeError(error) });
    } catch (err) {
      this.#log.error("fault", { where: "error", error: describeError(err) });
    }
  }

  #receive(ws: WebSocket, session: Session, data: string | ArrayBuffer): void {
    session.seen = Date.now();
    const frame = readClientFrame(data);
    if (frame === "too_big") {
      this.#log.info("frame_rejected", { room: session.room, user: session.user.id, code: CloseCode.tooBig });
      this.#close(ws, CloseCode.tooBig, `frame over ${MAX_FRAME_BYTES} bytes`);
      return;
    }
    if (!frame.ok) {
      this.#reject(ws, session, frame.code, frame.message, frame.nonce);
      return;
    }
    const value = frame.value;
    switch (value.type) {
      case "ack":
        this.#ack(ws, session, value.id);
        return;
      case "delete":
        this.#deleteFrame(ws, session, value);
        return;
      case "ban":
      case "unban":
      case "settings":
        this.#moderate(ws, session, value);
        return;
      case "message":
        break;
    }
    // After the parse, so a malformed frame from a read-only guest still
    // gets the error that names what is wrong with it.
    if (this.#guests === "read" && session.user.verified !== true) {
      this.#reject(ws, session, "forbidden", "guests may read but not post here; sign in to post", value.nonce);
      return;
    }
    const now = Date.now();
    // Before the rate buckets: a message slow mode drops costs no token.
    const wait = this.#slowWait(session.user, now);
    if (wait > 0) {
      this.#reject(
        ws,
        session,
        "slow_mode",
        `slow mode: wait ${Math.ceil(wait / 1000)} s before the next message`,
        value.nonce,
      );
      return;
    }
    if (!this.#quota.take(session, now)) {
      this.#reject(ws, session, "rate_limited", "too many messages; this one was dropped", value.nonce);
      return;
    }
    session.lastPost = now;
    this.#clock.note(session.user.id, now);
    ws.serializeAttachment(session);
    this.#publish(session.room, publicUser(session.user), value.text, value.nonce, now);
  }

  // ---- moderation -------------------------------------------------------------
  //
  // Bans and settings live in the room's SQLite (moderation.ts), tombstones in
  // the history ring itself (history.ts), so all of it survives a restart and
  // a wake. A ban's end is compared with the clock when it is checked; no
  // alarm keeps a room awake to lift it.

  #deleteFrame(ws: WebSocket, session: Session, { id, nonce }: ClientDelete): void {
    const { message, cost } = this.#history.find(id);
    this.#count(cost);
    if (message === undefined) {
      this.#reject(ws, session, "not_found", `no kept message has id ${id}`, nonce);
      return;
    }
    if (!mayDelete(session.user, message)) {
      this.#reject(ws, session, "forbidden", "only its author or a moderator may delete this message", nonce);
      return;
    }
    this.#erase(session.room, id, session.user, Date.now());
  }

  #moderate(ws: WebSocket, session: Session, frame: ClientBan | ClientUnban | ClientSettings): void {
    if (!isModerator(session.user)) {
      this.#reject(ws, session, "forbidden", `only moderators may send ${frame.type}`, frame.nonce);
      return;
    }
    const now = Date.now();
    if (frame.type === "settings") {
      this.#applySettings(session.room, { slowMode: frame.slowMode });
    } else if (frame.type === "unban") {
      this.#unban(session.room, frame.user, session.user, now);
    } else if (this.#ban(session.room, frame.user, frame, session.user, now) === null) {
      this.#reject(
        ws,
        session,
        "forbidden",
        "this room holds as many bans as it can; unban someone first",
        frame.nonce,
      );
    }
  }

  /** Tombstones message `id` and tells everyone; false when no live message has that id (a tombstone is a no-op). */
  #erase(room: string, id: number, by: User, now: number): boolean {
    const { erased, cost } = this.#history.erase(id, publicUser(by), now);
    this.#count(cost);
    if (erased === null) return false;
    this.#announce({ type: "delete", id, by: publicUser(by), ts: now });
    this.#log.info("message_deleted", { room, id, by: by.id, rowsRead: cost.rowsRead, rowsWritten: cost.rowsWritten });
    return true;
  }

  /**
   * Bans `target`, closes its sockets (and, for a guest, every guest socket
   * from its address) with 4003, and with `purge` tombstones its kept
   * messages. Null when the room's ban list is full.
   */
  #ban(room: string, target: string, request: BanRequest, by: User, now: number): Ban | null {
    const input = { user: target, address: this.#guestAddress(target), by: by.id, ...pick(request) };
    const result = this.#moderation.ban(input, now);
    this.#count(result.cost);
    if (!result.ok) {
      this.#log.warn("bans_full", { room, user: target });
      return null;
    }
    const { ban } = result;
    const reason = banCloseReason(ban);
    const covered = [...this.#members()].filter(([, s]) => covers(ban, s.user, s.address));
    for (const [ws] of covered) this.#close(ws, CloseCode.banned, reason);
    this.#hub?.announce({ kind: "ban", user: target, address: ban.address, reason });
    let purged = 0;
    if (request.purge === true) {
      this.#count(this.#history.load());
      for (const message of this.#history.since(null).messages) {
        if (message.from.id === target && this.#erase(room, message.id, by, now)) purged++;
      }
    }
    this.#log.info("banned", {
      room,
      user: target,
      by: by.id,
      until: ban.until,
      address: ban.address !== null,
      closed: covered.length,
      purged,
    });
    return ban;
  }

  /**
   * The address a ban of `target` also covers: where the guest is connected
   * from now, on this room or on one of its parts (as the parts report
   * their sockets). A verified user's ban never covers an address (its id
   * is what the host vouches for), and a guest who is offline is banned by
   * id alone.
   */
  #guestAddress(target: string): string | null {
    if (isVerifiedUserId(target)) return null;
    for (const session of this.#members().values()) {
      if (session.user.id === target && session.user.verified !== true) return session.address;
    }
    return this.#hub?.addressOn(target) ?? null;
  }

  #unban(room: string, target: string, by: User, now: number): void {
    const { removed, cost } = this.#moderation.unban(target, now);
    this.#count(cost);
    this.#log.info("unbanned", { room, user: target, by: by.id, removed });
  }

  #applySettings(room: string, next: RoomSettings): RoomSettings {
    const { settings, cost } = this.#moderation.setSettings(next);
    this.#count(cost);
    this.#announce({ type: "settings", slowMode: settings.slowMode });
    this.#log.info("settings", { room, slowMode: settings.slowMode, rowsWritten: cost.rowsWritten });
    return settings;
  }

  /** Milliseconds `session`'s user must still wait under slow mode; 0 when it may post. */
  #slowWait(user: User, now: number): number {
    const slowMode = this.#slowMode();
    if (slowMode === 0 || isModerator(user)) return 0;
    if (!this.#clockWarm) {
      // The ring's authors and times cover users whose posting socket closed
      // before a wake; its load is needed by the append anyway.
      this.#count(this.#history.load());
      for (const message of this.#history.since(null).messages) this.#clock.note(message.from.id, message.ts);
      this.#clockWarm = true;
    }
    return this.#clock.wait(user.id, now, slowMode);
  }

  /** Seconds of slow mode now; 0 when it is off. */
  #slowMode(): number {
    const { settings, cost } = this.#moderation.settings();
    this.#count(cost);
    return settings.slowMode;
  }

  #welcomeLimits(): Limits {
    const slowMode = this.#slowMode();
    return slowMode > 0 ? welcomeLimits(this.#config, slowMode) : this.#limits;
  }

  /**
   * Stores, then broadcasts. `sql.exec` is synchronous and the runtime's
   * output gate holds every outgoing frame of this event until the write is
   * durable, so no peer can see a message that a crash could still lose.
   */
  #publish(room: string, from: User, text: string, nonce: string | undefined, now: number): Message {
    if (this.#hub !== null) {
      this.#usage.messages++;
      return this.#hub.post(from, text, nonce);
    }
    const { message, cost } = this.#history.append(from, text, nonce, now);
    this.#count(cost);
    this.#usage.messages++;
    this.#delivery.broadcast(message);
    this.#log.debug("message_stored", {
      room,
      user: from.id,
      id: message.id,
      rowsRead: cost.rowsRead,
      rowsWritten: cost.rowsWritten,
      length: text.length,
    });
    return message;
  }

  /**
   * Acks go through no bucket: they cost no storage and no broadcast. But each
   * one wakes the room and rewrites the attachment, so an ack that tells the
   * room nothing new (not above this socket's last one) or claims a message
   * that does not exist is an error, and 20 of them close the socket like any
   * other errors. A client acks only ids it has received, each once.
   */
  #ack(ws: WebSocket, session: Session, id: number): void {
    this.#count(this.#history.load());
    const refused = ackRefusal(session.acked, id, this.#history.lastId);
    if (refused !== null) {
      this.#reject(ws, session, "invalid_message", refused);
      return;
    }
    session.acked = id;
    ws.serializeAttachment(session);
  }

  #reject(ws: WebSocket, session: Session, code: ErrorCode, message: string, nonce?: string): void {
    const { strikes, closing } = recordStrike(session.strikes, Date.now());
    session.strikes = strikes;
    ws.serializeAttachment(session);
    this.#log.info("frame_rejected", { room: session.room, user: session.user.id, code });
    this.#delivery.error(ws, session, code, message, nonce);
    if (closing) {
      this.#log.warn("connection_closed", {
        room: session.room,
        user: session.user.id,
        code: CloseCode.policyViolation,
      });
      this.#close(ws, CloseCode.policyViolation, "too many errors");
    }
  }

  /**
   * Handles a socket's departure once, whichever comes first: our own close,
   * the client's close, an error. The mark goes into the attachment, not
   * memory: a socket the room closed may report its close only after the
   * room has hibernated and forgotten that it already announced the `leave`.
   */
  #depart(ws: WebSocket, detail: Record<string, string | number | boolean>): void {
    const sessions = this.#members();
    const member = sessions.get(ws);
    sessions.delete(ws);
    const session = member ?? parseSession(ws.deserializeAttachment());
    // Only a socket counted as a member was counted for its address.
    if (member !== undefined) this.#quota.closed(member.address);
    if (session === null || session.departed) return;
    session.departed = true;
    ws.serializeAttachment(session);
    // Only a member was counted in presence. A socket that was already
    // closing when a wake rebuilt the members (the close is often the very
    // event that wakes the room) never was: its user leaves only when no
    // member socket of that user is left.
    const last = member !== undefined ? this.#leave(session.user.id) : !this.#presence.has(session.user.id);
    if (this.#hub !== null) {
      if (member !== undefined) this.#hub.depart(session.user.id);
    } else if (last) this.#delivery.broadcast({ type: "leave", user: publicUser(session.user), ts: Date.now() });
    this.#log.info("disconnect", { room: session.room, user: session.user.id, connections: sessions.size, ...detail });
  }

  // ---- dead connections ------------------------------------------------------
  //
  // A client that vanishes without a close (a phone that lost its network)
  // may never produce a close event (workerd#1187), so its user would stay
  // "online" forever. An alarm looks at every socket's last sign of life:
  // its last frame (in the attachment) or its last `ping`, which the runtime
  // answered and timestamped without waking us. Sockets silent for
  // IDLE_TIMEOUT_MS are closed and their users leave. The alarm runs only
  // while sockets are open, at most once per IDLE_TIMEOUT_MS: an idle room
  // wakes for a moment once a minute and sleeps again.

  async #armSweep(now: number): Promise<void> {
    // Set before the awaits, so connects in the meantime do not ask again;
    // cleared when arming fails, so the next connect tries again instead of
    // leaving dead connections unswept for the life of this instance.
    this.#sweepArmed = true;
    try {
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + IDLE_TIMEOUT_MS);
    } catch (err) {
      this.#sweepArmed = false;
      throw err;
    }
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    let oldest = Number.POSITIVE_INFINITY;
    const idle: WebSocket[] = [];
    for (const [ws, session] of this.#members()) {
      const pinged = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      const alive = Math.max(session.seen, pinged);
      if (now - alive >= IDLE_TIMEOUT_MS) idle.push(ws);
      else oldest = Math.min(oldest, alive);
    }
    for (const ws of idle) {
      const session = this.#members().get(ws);
      this.#log.info("idle_closed", { room: session?.room, user: session?.user.id });
      this.#close(ws, CloseCode.normal, "no frame or ping for 60 s");
    }
    this.#quota.prune(now);
    // Armed only once the next alarm is stored: if setAlarm fails, the
    // runtime retries this handler, and the next connect arms it too.
    this.#sweepArmed = false;
    if (!Number.isFinite(oldest)) return;
    await this.ctx.storage.setAlarm(Math.max(oldest + IDLE_TIMEOUT_MS, now + 1000));
    this.#sweepArmed = true;
  }

  // ---- large rooms: this room as the sequencer of its parts ------------------

  #ensureHub(): ShardHub {
    if (this.#hub !== null) return this.#hub;
    const history = this.#history;
    this.#count(history.load());
    // The origin goes into the message's own row: a publish repeated after
    // this room restarted is found in storage, at no extra row written.
    const store: Store = {
      get lastId() {
        return history.lastId;
      },
      ring: () => history.since(null).messages,
      hasOrigin: (origin) => history.hasOrigin(origin),
      deletes: () => history.deletes(),
      append: (from, text, nonce, ts, origin) => {
        // A part's publish carries the sender's roles; a message never does.
        const { message, cost } = history.append(publicUser(from), text, nonce, ts, origin);
        this.#count(cost);
        return message;
      },
    };
    const own = Array.from(this.#members().values(), (s) => publicUser(s.user));
    this.#hub = new ShardHub(
      {
        env: this.env,
        sql: this.ctx.storage.sql,
        room: this.#name(),
        config: this.#config,
        log: this.#log,
        store,
        local: (e) => this.#deliverLocal(e),
        idle: () => {
          this.#hub?.close();
          this.#hub = null;
          // Parts' publishes took from the shared buckets, which no socket's
          // snapshot holds yet; the room may hibernate from here on.
          for (const [ws, session] of this.#members()) if (this.#quota.sync(session)) ws.serializeAttachment(session);
        },
        decide: (from, address, now) => this.#decidePart(from, address, now),
        prune: (now) => this.#quota.prune(now),
        posted: (from, now) => this.#clock.note(from.id, now),
        moderate: (op, now) => this.#moderatePart(op.from, op.frame, now),
        slowMode: () => this.#slowMode(),
        banned: (user, address, now) => {
          const { ban, cost } = this.#moderation.banOf(
            user.id,
            user.verified === true || address === undefined ? null : address,
            now,
          );
          this.#count(cost);
          return ban === null ? null : { user: ban.user, address: ban.address, reason: banCloseReason(ban) };
        },
      },
      own,
    );
    return this.#hub;
  }

  /** The room's name: the Durable Object's, as the Worker addressed it. */
  #name(): string {
    for (const session of this.#members().values()) return session.room;
    return this.ctx.id.name ?? "";
  }

  /** The room's rules for a message a part's socket sent, the same as for its own sockets, in the same buckets. */
  #decidePart(
    from: User,
    address: string | undefined,
    now: number,
  ): { ok: true } | { ok: false; code: RejectCode; message: string } {
    if (this.#guests === "read" && from.verified !== true) {
      return { ok: false, code: "forbidden", message: "guests may read but not post here; sign in to post" };
    }
    const wait = this.#slowWait(from, now);
    if (wait > 0)
      return {
        ok: false,
        code: "slow_mode",
        message: `slow mode: wait ${Math.ceil(wait / 1000)} s before the next message`,
      };
    if (!this.#quota.takeFor(from.id, address, now))
      return { ok: false, code: "rate_limited", message: "too many messages; this one was dropped" };
    return { ok: true };
  }

  /** A moderation frame from a socket on a part: the same rules as #deleteFrame and #moderate. */
  #moderatePart(
    from: User,
    frame: ModerationRequest,
    now: number,
  ): { ok: true } | { ok: false; code: RejectCode; message: string } {
    const room = this.#name();
    if (frame.type === "delete") {
      const { message, cost } = this.#history.find(frame.id);
      this.#count(cost);
      if (message === undefined) return { ok: false, code: "not_found", message: `no kept message has id ${frame.id}` };
      if (!mayDelete(from, message))
        return { ok: false, code: "forbidden", message: "only its author or a moderator may delete this message" };
      this.#erase(room, frame.id, from, now);
      return { ok: true };
    }
    if (!isModerator(from)) return { ok: false, code: "forbidden", message: `only moderators may send ${frame.type}` };
    if (frame.type === "settings") this.#applySettings(room, { slowMode: frame.slowMode });
    else if (frame.type === "unban") this.#unban(room, frame.user, from, now);
    else if (this.#ban(room, frame.user, frame, from, now) === null) {
      return { ok: false, code: "forbidden", message: "this room holds as many bans as it can; unban someone first" };
    }
    return { ok: true };
  }

  /** A moderation broadcast for everyone: through the hub in a large room, so parts get it in order. */
  #announce(frame: DeleteFrame | SettingsFrame): void {
    if (this.#hub !== null) this.#hub.announce({ kind: "frame", frame });
    else this.#delivery.broadcast(frame);
  }

  /** A connection beyond the room's own SHARD_SIZE: handed to a part, which the room dials first. */
  async #toPart(admission: Admission): Promise<Response> {
    return this.#ensureHub().forward(admission.user.id, admission.address, admissionRequest(admission));
  }

  /** Sockets on this room's parts, as their reports say. */
  #remoteConnections(): number {
    let n = 0;
    for (const [part, sockets] of this.#hub?.parts() ?? []) if (part !== LOCAL_PART) n += sockets;
    return n;
  }

  /** How many objects hold this room's connections, and how many each; for stats and tests. */
  shards(): { shards: number; sequencing: boolean; parts: { part: string; connections: number }[] } {
    const own = this.#members().size;
    const parts = Array.from(this.#hub?.parts() ?? [], ([part, connections]) => ({ part, connections })).filter(
      (p) => p.part !== LOCAL_PART,
    );
    return {
      shards: 1 + parts.length,
      sequencing: this.#hub !== null,
      parts: [{ part: this.#name(), connections: own }, ...parts],
    };
  }

  /** A part with sockets and no link (this room restarted, or the link broke) asks to be dialled. */
  async linkPart(part: string): Promise<void> {
    await this.#ensureHub().link(part);
  }

  #hubArrive(user: User, ws: WebSocket): void {
    this.#joining = ws;
    try {
      this.#hub?.arrive(publicUser(user));
    } finally {
      this.#joining = undefined;
    }
  }

  /** An event of the room's one order, for the room's own sockets. */
  #deliverLocal(event: StreamEvent): void {
    switch (event.kind) {
      case "message":
        this.#delivery.broadcast(event.message);
        break;
      case "join":
      case "leave":
        this.#delivery.broadcast({ type: event.kind, user: event.user, ts: event.ts }, this.#joining);
        break;
      case "count":
        this.#delivery.broadcast({ type: "presence", count: event.count });
        break;
      case "list":
        this.#delivery.broadcast({ type: "presence", count: event.count, online: event.online });
        break;
      case "frame":
        this.#delivery.broadcast(event.frame);
        break;
      case "admit":
      case "reject":
      case "ban":
        // Not for the room's own sockets: its #ban closes them itself.
        break;
    }
  }

  /** `welcome.online` and `onlineCount`, the newcomer included. */
  #welcomeOnline(you: User): { online: User[]; onlineCount: number } {
    if (this.#hub === null) return { online: this.#online(), onlineCount: this.#presence.size };
    const roster = this.#hub.roster;
    const listed = new Map(roster.online().map((u) => [u.id, u] as const));
    listed.set(you.id, publicUser(you));
    const count = listed.size;
    if (count <= this.#config.presenceLimit) return { online: Array.from(listed.values()), onlineCount: count };
    return {
      online: [publicUser(you), ...this.#online().filter((u) => u.id !== you.id)].slice(0, this.#config.presenceLimit),
      onlineCount: count,
    };
  }

  // ---- HTTP API, called by the Worker over RPC ------------------------------

  history(after: number | null): Slice {
    const cost = this.#history.load();
    this.#count(cost);
    return this.#history.since(after);
  }

  post({ room, name, text, nonce }: Publication): Message {
    return this.#publish(room, { id: "bot", name }, text, nonce, Date.now());
  }

  // The moderation API. The Worker has checked that the caller is a
  // moderator (ADMIN_TOKEN or a moderator's JWT) and validated every field.

  deleteMessage(room: string, id: number, by: User): "deleted" | "not_found" {
    const { message, cost } = this.#history.find(id);
    this.#count(cost);
    if (message === undefined) return "not_found";
    this.#erase(room, id, by, Date.now());
    return "deleted";
  }

  /** False when the room's ban list is full. */
  banUser(room: string, user: string, request: BanRequest, by: User): boolean {
    return this.#ban(room, user, request, by, Date.now()) !== null;
  }

  unbanUser(room: string, user: string, by: User): void {
    this.#unban(room, user, by, Date.now());
  }

  bans(): BanEntry[] {
    const { bans, cost } = this.#moderation.list(Date.now());
    this.#count(cost);
    return bans;
  }

  updateSettings(room: string, settings: RoomSettings): RoomSettings {
    return this.#applySettings(room, settings);
  }

  stats(room: string): RoomStats {
    const sessions = this.#members();
    this.#count(this.#history.load());
    const bans = this.#moderation.list(Date.now());
    const settings = this.#moderation.settings();
    this.#count(bans.cost);
    this.#count(settings.cost);
    const { count, deleted, oldestId } = this.#history.extent;
    let batching = 0;
    for (const session of sessions.values()) if (session.batch) batching++;
    const { shards, parts } = this.shards();
    return {
      room,
      connections: sessions.size + this.#remoteConnections(),
      users: this.#hub?.roster.count ?? this.#presence.size,
      lastId: this.#history.lastId,
      shards,
      ...(shards > 1 ? { parts } : {}),
      messages: count,
      deleted,
      oldestId,
      bans: bans.bans.length,
      slowMode: settings.settings.slowMode,
      batching,
      usage: { ...this.#usage },
    };
  }

  // ---- members and presence ----------------------------------------------
  //
  // Who is connected and who is online; what reaches their sockets is
  // delivery.ts, the welcome's contract with the Worker admission.ts.

  /** The open sockets and their sessions, rebuilt from attachments after a wake. */
  #members(): Map<WebSocket, Session> {
    if (this.#sessions !== null) return this.#sessions;
    const sessions = new Map<WebSocket, Session>();
    this.#presence = new Map();
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const session = parseSession(ws.deserializeAttachment());
      if (session === null) {
        this.#log.error("fault", { where: "wake", error: "unreadable attachment" });
        ws.close(CloseCode.serverError, "session lost");
        continue;
      }
      sessions.set(ws, session);
      this.#quota.restore(session);
      if (session.lastPost !== null) this.#clock.note(session.user.id, session.lastPost);
      this.#arrive(session.user);
    }
    this.#sessions = sessions;
    return sessions;
  }

  #session(ws: WebSocket): Session | null {
    const session = this.#members().get(ws);
    if (session !== undefined) return session;
    // A socket that is closing is not a member any more; ignore what it sends.
    return null;
  }

  /** Counts one more socket of `user`; true when it is the user's first. */
  #arrive(user: User): boolean {
    const entry = this.#presence.get(user.id);
    if (entry !== undefined) {
      entry.sockets++;
      return false;
    }
    this.#presence.set(user.id, { user: publicUser(user), sockets: 1 });
    return true;
  }

  /** Counts one member socket less; true when it was the user's last. */
  #leave(userId: string): boolean {
    const entry = this.#presence.get(userId);
    if (entry === undefined) return false;
    entry.sockets--;
    if (entry.sockets > 0) return false;
    this.#presence.delete(userId);
    return true;
  }

  #online(): User[] {
    return Array.from(this.#presence.values(), (p) => p.user);
  }

  /** Closes a socket from our side; its user leaves now, not when the client answers. */
  #close(ws: WebSocket, code: CloseCode, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      // Already closed: nothing left to tell this client.
    }
    this.#depart(ws, { code, by: "server" });
  }

  #count(cost: RowCost): void {
    this.#usage.rowsRead += cost.rowsRead;
    this.#usage.rowsWritten += cost.rowsWritten;
  }
}
