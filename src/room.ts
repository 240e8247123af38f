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
//   - the history and the last issued id in SQLite (see history.ts).
// The maps in memory (sockets to sessions, presence by user id, the history
// ring) are caches, rebuilt from those on the first event after a wake; only
// open sockets count, so a close that wakes the room is counted once.
// Keep-alive `ping`s are answered by `setWebSocketAutoResponse` without waking
// the room at all.
//
// What a message costs: one SQLite row written (an upsert into the ring), no
// row read once the ring is in memory, one JSON.stringify, and one `send` per
// connected socket.

import { DurableObject } from "cloudflare:workers";
import { readConfig, type Config } from "./config.ts";
import { BATCH_MS, BatchQueue } from "./batch.ts";
import { History, type RowCost, type Slice } from "./history.ts";
import { readAuthSettings, type GuestMode } from "./auth.ts";
import { createLogger, describeError, type Logger } from "./log.ts";
import {
  CloseCode,
  ERROR_WINDOW_MS,
  IDLE_TIMEOUT_MS,
  MAX_ERRORS_PER_WINDOW,
  MAX_FRAME_BYTES,
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
  PING,
  PONG,
  isOversized,
  isSendableCloseCode,
  parseClientFrame,
  publicUser,
  type ErrorCode,
  type Limits,
  type Message,
  type ServerFrame,
  type User,
} from "./protocol.ts";
import { RoomQuota } from "./quota.ts";
import { recordStrike } from "./ratelimit.ts";
import { parseSession, sessionRoles, type Session } from "./session.ts";

/** What the Worker has already checked and decided for a new connection. */
export interface Admission {
  room: string;
  /** A verified user carries `verified` and the JWT's `roles` in full. */
  user: User;
  /** The client's address key (see address.ts). */
  address: string;
  token: string;
  after: number | null;
  batch: boolean;
}

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

const ADMISSION_PATH = "/connect";

/** Builds the Worker-to-room request that carries an admitted connection. */
export function admissionRequest(admission: Admission): Request {
  const url = new URL(`https://room.internal${ADMISSION_PATH}`);
  url.searchParams.set("room", admission.room);
  url.searchParams.set("id", admission.user.id);
  url.searchParams.set("name", admission.user.name);
  if (admission.user.verified === true) {
    url.searchParams.set("verified", "1");
    for (const role of admission.user.roles ?? []) url.searchParams.append("role", role);
  }
  url.searchParams.set("address", admission.address);
  url.searchParams.set("token", admission.token);
  if (admission.after !== null) url.searchParams.set("after", String(admission.after));
  if (admission.batch) url.searchParams.set("batch", "1");
  return new Request(url, { headers: { Upgrade: "websocket" } });
}

function readAdmission(request: Request): Admission | null {
  const url = new URL(request.url);
  const q = url.searchParams;
  const room = q.get("room");
  const id = q.get("id");
  const name = q.get("name");
  const address = q.get("address");
  const token = q.get("token");
  const after = q.get("after");
  if (url.pathname !== ADMISSION_PATH || room === null || id === null || name === null || address === null || token === null) {
    return null;
  }
  const user: User = q.get("verified") === "1" ? { id, name, verified: true, roles: q.getAll("role") } : { id, name };
  return { room, user, address, token, after: after === null ? null : Number(after), batch: q.get("batch") === "1" };
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
  readonly #guests: GuestMode;
  // Caches of what the sockets' attachments say; null until the first event
  // after construction (a wake) rebuilds them.
  #sessions: Map<WebSocket, Session> | null = null;
  #presence = new Map<string, Presence>();
  readonly #usage: Usage = { messages: 0, connects: 0, rowsRead: 0, rowsWritten: 0 };
  // Whether this instance has made sure a sweep alarm is pending.
  #sweepArmed = false;
  // Broadcasts waiting for the next flush to sockets that asked for batches.
  // A pending flush timer keeps the room from hibernating, so nothing queued
  // here can be lost to a hibernation; an eviction closes the sockets too.
  readonly #batches = new BatchQueue();
  #flushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#config = readConfig(env);
    this.#log = createLogger(this.#config.logLevel, { component: "room" });
    this.#history = new History(ctx.storage.sql, this.#config.historySize);
    this.#quota = new RoomQuota(this.#config);
    // The Worker logs what is wrong with the auth settings; the room only
    // needs to know whether guests may post.
    this.#guests = readAuthSettings(env).settings.guests;
    this.#limits = {
      history: this.#config.historySize,
      text: MAX_TEXT_LENGTH,
      name: MAX_NAME_LENGTH,
      burst: this.#config.rateBurst,
      perSec: this.#config.ratePerSec,
    };
    // Answered by the runtime itself: a keep-alive never wakes the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  get usage(): Usage {
    return { ...this.#usage };
  }

  // ---- connections -------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const admission = readAdmission(request);
    if (admission === null) return jsonResponse(400, { error: "bad_request", message: "not an admitted connection" });
    try {
      return this.#connect(admission);
    } catch (err) {
      this.#log.error("fault", { room: admission.room, where: "connect", error: describeError(err) });
      return jsonResponse(500, { error: "internal", message: "the room could not accept the connection" });
    }
  }

  #connect({ room, user, address, token, after, batch }: Admission): Response {
    const sessions = this.#members();
    // The members map, not getWebSockets(): no array of every socket per connect.
    if (sessions.size >= this.#config.maxConnections) {
      this.#log.warn("room_full", { room, connections: this.#config.maxConnections });
      return jsonResponse(503, { error: "room_full", message: "this room has reached its connection limit" });
    }
    if (!this.#quota.admits(address)) {
      this.#log.info("address_full", { room, connections: this.#config.addressSocketsPerRoom });
      return jsonResponse(429, {
        error: "too_many_connections",
        message: `at most ${this.#config.addressSocketsPerRoom} connections from one address in a room`,
      });
    }
    const cost = this.#history.load();
    const now = Date.now();
    const { 0: client, 1: server } = new WebSocketPair();
    const session: Session = {
      room,
      user: user.verified === true ? { ...publicUser(user), roles: sessionRoles(user.roles ?? []) } : publicUser(user),
      address,
      ...this.#quota.snapshots(user.id, address, now),
      strikes: [],
      seen: now,
      batch,
      acked: null,
      departed: false,
    };
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment(session);
    sessions.set(server, session);
    this.#quota.opened(address);
    if (batch) this.#batches.start(server);
    const first = this.#arrive(session.user);
    // Nothing is awaited between reading history and sending `welcome`, and
    // the room is single-threaded: every message stored after this snapshot
    // is broadcast after the welcome, so the client sees each one exactly once.
    const { messages, gap }: Slice = this.#history.since(after);
    this.#send(server, {
      type: "welcome",
      room,
      you: user,
      token,
      online: this.#online(),
      history: messages,
      gap,
      limits: this.#limits,
    });
    if (first) this.#broadcast({ type: "join", user: publicUser(user), ts: now }, server);
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
      this.#log.error("fault", { room: session.room, user: session.user.id, where: "message", error: describeError(err) });
      this.#close(ws, CloseCode.serverError, "server fault");
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, _reason: string, wasClean: boolean): Promise<void> {
    // web_socket_auto_reply_to_close (compatibility date 2026-04-07) answers
    // the client's close frame on sockets accepted with accept(), but a
    // hibernatable socket in this workerd still waits for our reply: without
    // it the client never sees its close complete. On a socket that is
    // already closed the call is a no-op.
    try {
      this.#reply(ws, isSendableCloseCode(code) ? code : CloseCode.normal);
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
    const oversized = typeof data === "string" ? isOversized(data) : data.byteLength > MAX_FRAME_BYTES;
    if (oversized) {
      this.#log.info("frame_rejected", { room: session.room, user: session.user.id, code: CloseCode.tooBig });
      this.#close(ws, CloseCode.tooBig, `frame over ${MAX_FRAME_BYTES} bytes`);
      return;
    }
    if (typeof data !== "string") {
      this.#reject(ws, session, "unsupported", "binary frames are not supported");
      return;
    }
    const frame = parseClientFrame(data);
    if (!frame.ok) {
      this.#reject(ws, session, frame.code, frame.message, frame.nonce);
      return;
    }
    if (frame.value.type === "ack") {
      this.#ack(ws, session, frame.value.id);
      return;
    }
    if (frame.value.type !== "message") {
      // Moderation frames (v1.1) parse, but this room does not act on them yet.
      this.#reject(ws, session, "forbidden", "moderation is not available in this room", frame.value.nonce);
      return;
    }
    // After the parse, so a malformed frame from a read-only guest still
    // gets the error that names what is wrong with it.
    if (this.#guests === "read" && session.user.verified !== true) {
      this.#reject(ws, session, "forbidden", "guests may read but not post here; sign in to post", frame.value.nonce);
      return;
    }
    const now = Date.now();
    if (!this.#quota.take(session, now)) {
      this.#reject(ws, session, "rate_limited", "too many messages; this one was dropped", frame.value.nonce);
      return;
    }
    ws.serializeAttachment(session);
    this.#publish(session.room, publicUser(session.user), frame.value.text, frame.value.nonce, now);
  }

  /**
   * Stores, then broadcasts. `sql.exec` is synchronous and the runtime's
   * output gate holds every outgoing frame of this event until the write is
   * durable, so no peer can see a message that a crash could still lose.
   */
  #publish(room: string, from: User, text: string, nonce: string | undefined, now: number): Message {
    const { message, cost } = this.#history.append(from, text, nonce, now);
    this.#count(cost);
    this.#usage.messages++;
    this.#broadcast(message);
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
    if (session.acked !== null && id <= session.acked) {
      this.#reject(ws, session, "invalid_message", `ack ${id} is not above the last ack, ${session.acked}`);
      return;
    }
    this.#count(this.#history.load());
    if (id > this.#history.lastId) {
      this.#reject(ws, session, "invalid_message", `ack ${id} is beyond the last message, ${this.#history.lastId}`);
      return;
    }
    session.acked = id;
    ws.serializeAttachment(session);
  }

  #reject(ws: WebSocket, session: Session, code: ErrorCode, message: string, nonce?: string): void {
    session.strikes = recordStrike(session.strikes, Date.now(), ERROR_WINDOW_MS);
    ws.serializeAttachment(session);
    this.#log.info("frame_rejected", { room: session.room, user: session.user.id, code });
    // An error must not overtake broadcasts already queued for this socket:
    // a client that sees the answer to its frame has seen everything the
    // room sent before it. Flushing early only makes that batch smaller.
    if (session.batch) this.#flush();
    this.#send(ws, nonce === undefined ? { type: "error", code, message } : { type: "error", code, message, nonce });
    if (session.strikes.length >= MAX_ERRORS_PER_WINDOW) {
      this.#log.warn("connection_closed", { room: session.room, user: session.user.id, code: CloseCode.policyViolation });
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
    if (last) this.#broadcast({ type: "leave", user: publicUser(session.user), ts: Date.now() });
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

  // ---- HTTP API, called by the Worker over RPC ------------------------------

  history(after: number | null): Slice {
    const cost = this.#history.load();
    this.#count(cost);
    return this.#history.since(after);
  }

  post({ room, name, text, nonce }: Publication): Message {
    return this.#publish(room, { id: "bot", name }, text, nonce, Date.now());
  }

  // ---- presence and delivery ---------------------------------------------

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

  #send(ws: WebSocket, frame: ServerFrame): void {
    ws.send(JSON.stringify(frame));
  }

  /**
   * Serializes once and sends to every member, in one loop, so every socket
   * sees frames in the same order. A socket whose send throws is closed and
   * departs after the loop; the others still get the frame. Sockets that
   * asked for batches get it with the next flush, in the same order.
   */
  #broadcast(frame: ServerFrame, except?: WebSocket): void {
    const text = JSON.stringify(frame);
    let failed: WebSocket[] | undefined;
    let behind: WebSocket[] | undefined;
    let batching = false;
    // A socket that acks and is more than a history behind is not reading:
    // workerd queues what we send it in memory without limit (there is no
    // bufferedAmount to look at), so it is closed rather than fed. Its
    // client reconnects with `after` and catches up from storage.
    const limit = frame.type === "message" ? frame.id - this.#config.historySize : Number.NEGATIVE_INFINITY;
    for (const [ws, session] of this.#members()) {
      if (session.acked !== null && session.acked < limit) (behind ??= []).push(ws);
      else if (session.batch) batching = true;
      else if (ws !== except) {
        try {
          ws.send(text);
        } catch {
          (failed ??= []).push(ws);
        }
      }
    }
    if (batching) {
      this.#batches.push(text, except);
      this.#flushTimer ??= setTimeout(() => this.#flush(), BATCH_MS);
    }
    for (const ws of failed ?? []) this.#close(ws, CloseCode.serverError, "send failed");
    for (const ws of behind ?? []) {
      const session = this.#members().get(ws);
      this.#log.warn("too_slow", { room: session?.room, user: session?.user.id });
      this.#close(ws, CloseCode.policyViolation, "too far behind: reconnect with after");
    }
  }

  #flush(): void {
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    if (this.#batches.empty) return;
    const batchFor = this.#batches.drain();
    let failed: WebSocket[] | undefined;
    for (const [ws, session] of this.#members()) {
      if (!session.batch) continue;
      const text = batchFor(ws);
      if (text === null) continue;
      try {
        ws.send(text);
      } catch {
        (failed ??= []).push(ws);
      }
    }
    for (const ws of failed ?? []) this.#close(ws, CloseCode.serverError, "send failed");
  }

  #reply(ws: WebSocket, code: number): void {
    try {
      ws.close(code, "closed");
    } catch {
      // Already closed.
    }
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
