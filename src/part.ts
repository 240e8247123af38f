// A part of a large room (docs/LARGE-ROOMS.md): a Durable Object named
// `${room}/${k}` that holds some of the room's sockets and does for them what
// a room does per socket, with the room's own modules: the welcome
// (admission.ts), frame checks (protocol.ts) and strikes (strikes.ts),
// delivery with the batch window and the closing of readers behind their
// acks (delivery.ts), while the room's ChatRoom, the sequencer, orders and
// stores everything. The ordering logic is PartStream (stream.ts); this file
// wires it to sockets and to the link, the WebSocket the sequencer dials to
// this part.
//
// What survives hibernation: nothing yet. A part keeps a timer running while
// it has sockets or a link, so it is never hibernated with its stream state
// (the checkpoint that would let it sleep is described in the design and not
// built); an eviction closes its sockets and their clients resume.

import { DurableObject } from "cloudflare:workers";
import { notAdmitted, readAdmission, welcomeFrame, welcomeLimits, type Admission } from "./admission.ts";
import { readConfig, type Config } from "./config.ts";
import { answerClose, Delivery } from "./delivery.ts";
import type { Downstream } from "./link.ts";
import { createLogger, describeError, type Logger } from "./log.ts";
import {
  CloseCode,
  ackRefusal,
  IDLE_TIMEOUT_MS,
  MAX_FRAME_BYTES,
  PING,
  PONG,
  readClientFrame,
  publicUser,
  type ClientFrame,
  type ErrorCode,
} from "./protocol.ts";
import { covers } from "./moderation.ts";
import { PartStream, type PartAction } from "./stream.ts";
import { StrikeGate } from "./strikes.ts";

/** The path of the link the sequencer dials; the Worker never forwards to it. */
export const LINK_PATH = "/link";
const LINK_TAG = "link";
/** How often a part retries what its room has not answered. */
export const PART_RETRY_MS = 250;

/** Builds the sequencer's request for a link to `part` of `room`. */
export function linkRequest(room: string, part: string): Request {
  const url = new URL(`https://part.internal${LINK_PATH}`);
  url.searchParams.set("room", room);
  url.searchParams.set("part", part);
  return new Request(url, { headers: { Upgrade: "websocket" } });
}

/** A client frame as read, before it is handled. */
type Read = ReturnType<typeof readClientFrame>;

interface Member {
  id: number;
  admission: Admission;
  /** Delivery's (delivery.ts): `admission.batch`, `acked` and `welcomed`. */
  readonly batch: boolean;
  /** Its strikes, and the frames that wait while its room's answers could still close it (strikes.ts). */
  gate: StrikeGate<Read>;
  acked: number | null;
  welcomed: boolean;
  /** When the client last sent a frame other than `ping` (or connected). */
  seen: number;
}

export class RoomPart extends DurableObject<Env> {
  readonly #config: Config;
  readonly #log: Logger;
  #stream: PartStream | null = null;
  #link: WebSocket | null = null;
  #room = "";
  #nextId = 1;
  readonly #members = new Map<WebSocket, Member>();
  readonly #byId = new Map<number, WebSocket>();
  // Sockets with frames waiting for their room's answers (see strikes.ts).
  readonly #holding = new Set<WebSocket>();
  readonly #delivery: Delivery<Member>;
  #ticker: ReturnType<typeof setInterval> | null = null;
  #sweptAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#config = readConfig(env);
    this.#log = createLogger(this.#config.logLevel, { component: "part" });
    this.#delivery = new Delivery({
      historySize: this.#config.historySize,
      recipients: () => this.#members,
      close: (ws, code, reason) => this.#close(ws, code, reason),
    });
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
  }

  /** Connections this part holds, for stats and tests. */
  connections(): number {
    return this.#members.size;
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    try {
      if (url.pathname === LINK_PATH) return this.#acceptLink(url);
      const admission = readAdmission(request);
      if (admission === null) return notAdmitted();
      return this.#connect(admission);
    } catch (err) {
      this.#log.error("fault", { where: "fetch", error: describeError(err) });
      return Response.json({ error: "internal", message: "the part could not accept the connection" }, { status: 500 });
    }
  }

  #streamFor(part: string): PartStream {
    this.#stream ??= new PartStream(part, crypto.randomUUID(), {
      historySize: this.#config.historySize,
      presenceLimit: this.#config.presenceLimit,
      retryMs: PART_RETRY_MS,
      holdLimit: 4096,
    });
    return this.#stream;
  }

  #acceptLink(url: URL): Response {
    const room = url.searchParams.get("room");
    const part = url.searchParams.get("part");
    if (room === null || part === null)
      return Response.json({ error: "bad_request", message: "room and part" }, { status: 400 });
    this.#room = room;
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [LINK_TAG]);
    const old = this.#link;
    this.#link = server;
    if (old !== null) {
      try {
        old.close(CloseCode.goingAway, "replaced");
      } catch {
        // Already closed.
      }
    }
    this.#apply(this.#streamFor(part).attach(Date.now()));
    this.#keepTicking();
    return new Response(null, { status: 101, webSocket: client });
  }

  #connect(admission: Admission): Response {
    if (this.#members.size >= this.#config.shardSize) {
      return Response.json({ error: "room_full", message: "this part of the room is full" }, { status: 503 });
    }
    this.#room = admission.room;
    const stream = this.#streamFor(this.ctx.id.name ?? admission.room);
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    const member: Member = {
      id: this.#nextId++,
      admission,
      batch: admission.batch,
      gate: new StrikeGate(),
      acked: null,
      welcomed: false,
      seen: Date.now(),
    };
    this.#members.set(server, member);
    this.#byId.set(member.id, server);
    this.#apply(stream.open(member.id, admission.user, admission.after, Date.now(), admission.address));
    if (this.#link === null) this.#askForLink();
    this.#keepTicking();
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A part with sockets and no link asks its room to dial it. */
  #askForLink(): void {
    const name = this.ctx.id.name;
    if (name === undefined) return;
    const room = this.env.ROOMS.get(this.env.ROOMS.idFromName(this.#room));
    room.linkPart(name).catch((err: unknown) => this.#log.error("fault", { where: "link", error: describeError(err) }));
  }

  #keepTicking(): void {
    this.#ticker ??= setInterval(() => {
      if (this.#members.size === 0 && this.#link === null) {
        if (this.#ticker !== null) clearInterval(this.#ticker);
        this.#ticker = null;
        return;
      }
      if (this.#link === null && this.#members.size > 0) this.#askForLink();
      const now = Date.now();
      if (this.#stream !== null) this.#apply(this.#stream.tick(now));
      this.#sweep(now);
    }, PART_RETRY_MS);
  }

  override async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    try {
      if (ws === this.#link || this.ctx.getTags(ws).includes(LINK_TAG)) {
        // A link the room replaced (it restarted and dialled again) may
        // still deliver what the old sequencer sent: a late sync of it would
        // end the attach to the new one, which would never hear of this part.
        if (ws !== this.#link || typeof data !== "string" || this.#stream === null) return;
        // Internal frames come only from this room's sequencer, over a link
        // no client can reach; the stream drops versions it does not know.
        this.#apply(this.#stream.receive(JSON.parse(data) as Downstream, Date.now()));
        this.#release();
        return;
      }
      const member = this.#members.get(ws);
      if (member === undefined) return;
      this.#receive(ws, member, data);
    } catch (err) {
      this.#log.error("fault", { room: this.#room, where: "message", error: describeError(err) });
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    answerClose(ws, code);
    this.#gone(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.#gone(ws);
  }

  #gone(ws: WebSocket): void {
    if (ws === this.#link) {
      this.#link = null;
      return;
    }
    const member = this.#members.get(ws);
    if (member === undefined) return;
    this.#members.delete(ws);
    this.#byId.delete(member.id);
    this.#holding.delete(ws);
    if (this.#stream !== null) this.#apply(this.#stream.close(member.id, Date.now()));
  }

  /**
   * Dead connections, as the room's alarm finds them: no frame and no
   * `ping` (answered by the runtime, timestamped without waking us) for
   * IDLE_TIMEOUT_MS. The part's timer is running anyway, so no alarm.
   */
  #sweep(now: number): void {
    if (now - this.#sweptAt < IDLE_TIMEOUT_MS / 6) return;
    this.#sweptAt = now;
    const idle: WebSocket[] = [];
    for (const [ws, member] of this.#members) {
      const pinged = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      if (now - Math.max(member.seen, pinged) >= IDLE_TIMEOUT_MS) idle.push(ws);
    }
    for (const ws of idle) this.#close(ws, CloseCode.normal, "no frame or ping for 60 s");
  }

  #receive(ws: WebSocket, member: Member, data: string | ArrayBuffer): void {
    const now = Date.now();
    member.seen = now;
    const read = readClientFrame(data);
    const nonce = read === "too_big" ? undefined : read.ok ? nonceOf(read.value) : read.nonce;
    const frame = member.gate.arrive(read, nonce, this.#owed(member), now);
    if (frame !== null) this.#handle(ws, member, frame);
    else this.#holding.add(ws);
  }

  /** What the room still owes a socket: answers that could each be a strike. */
  #owed(member: Member): number {
    return this.#stream?.owed(member.id) ?? 0;
  }

  /** Reads the frames that waited for answers, as far as the answers now allow. */
  #release(): void {
    for (const ws of this.#holding) {
      // Reading a frame may close the socket (its member is gone then).
      for (let member = this.#members.get(ws); member !== undefined; member = this.#members.get(ws)) {
        const next = member.gate.next(this.#owed(member), Date.now());
        if (next === undefined) break;
        if (next.kind === "frame") this.#handle(ws, member, next.frame);
        else this.#reject(ws, member, "rate_limited", "too many frames at once; this one was dropped", next.nonce);
      }
      if (this.#members.get(ws)?.gate.holding !== true) this.#holding.delete(ws);
    }
  }

  #handle(ws: WebSocket, member: Member, frame: Read): void {
    if (frame === "too_big") {
      this.#close(ws, CloseCode.tooBig, `frame over ${MAX_FRAME_BYTES} bytes`);
      return;
    }
    if (!frame.ok) {
      this.#reject(ws, member, frame.code, frame.message, frame.nonce);
      return;
    }
    if (frame.value.type === "ack") {
      const refused = ackRefusal(member.acked, frame.value.id, this.#stream?.lastId ?? 0);
      if (refused !== null) this.#reject(ws, member, "invalid_message", refused);
      else member.acked = frame.value.id;
      return;
    }
    if (frame.value.type !== "message") {
      if (this.#stream !== null) this.#apply(this.#stream.moderate(member.id, frame.value, Date.now()));
      return;
    }
    if (this.#stream !== null)
      this.#apply(this.#stream.publish(member.id, frame.value.text, frame.value.nonce, Date.now()));
  }

  #reject(ws: WebSocket, member: Member, code: ErrorCode, message: string, nonce?: string): void {
    const closing = member.gate.strike(Date.now());
    this.#delivery.error(ws, member, code, message, nonce);
    if (closing) this.#close(ws, CloseCode.policyViolation, "too many errors");
  }

  #apply(actions: PartAction[]): void {
    for (const action of actions) {
      switch (action.kind) {
        case "up":
          try {
            this.#link?.send(JSON.stringify(action.frame));
          } catch {
            // The link broke: its close comes next, and the stream resends.
          }
          break;
        case "welcome": {
          const ws = this.#byId.get(action.socket);
          const member = ws === undefined ? undefined : this.#members.get(ws);
          if (ws === undefined || member === undefined) break;
          member.welcomed = true;
          this.#delivery.welcomed(ws, member);
          this.#delivery.send(
            ws,
            welcomeFrame(member.admission, {
              online: action.online.map(publicUser),
              onlineCount: action.onlineCount,
              history: action.history,
              gap: action.gap,
              limits: welcomeLimits(this.#config, action.slowMode),
            }),
          );
          break;
        }
        case "deliver":
          this.#delivery.broadcast(action.frame);
          break;
        case "error": {
          const ws = this.#byId.get(action.socket);
          const member = ws === undefined ? undefined : this.#members.get(ws);
          if (ws !== undefined && member !== undefined)
            this.#reject(ws, member, action.code, action.message, action.nonce);
          break;
        }
        case "close": {
          const ws = this.#byId.get(action.socket);
          if (ws !== undefined) this.#close(ws, action.code, action.reason);
          break;
        }
        case "ban": {
          const ban = { user: action.user, address: action.address };
          const covered = [...this.#members].filter(([, m]) => covers(ban, m.admission.user, m.admission.address));
          for (const [ws] of covered) this.#close(ws, CloseCode.banned, action.reason);
          break;
        }
      }
    }
  }

  #close(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      // Already closed.
    }
    this.#gone(ws);
  }
}

/** The nonce a client frame carries, for the refusal that may answer it. */
function nonceOf(frame: ClientFrame): string | undefined {
  return frame.type === "ack" ? undefined : frame.nonce;
}
