// A chat client built for chaos: it reconnects by itself (capped exponential
// backoff with full jitter, reset only after a minimum uptime, a connect
// timeout), resumes with `after` and its `token`, and checks every frame it
// gets against PROTOCOL.md as it goes:
//
// - `welcome` comes first; its history is ascending and consecutive, starts at
//   `after + 1` unless `gap` is true, and a `gap` is real (something was
//   missed for good) and leaves the whole kept history;
// - every live message is the last id + 1: nothing twice, nothing skipped;
// - the same id is the same message for every client (the shared Ledger);
// - a token keeps `you.id`.
//
// As a sender it keeps an outbox keyed by `nonce`. A message goes out once per
// connection; one not echoed when that connection dies is sent again only on
// the next connection, after the welcome's history was read, and only if its
// nonce is not in that history. A nonce that came back is never sent again.
// The server's error frame does not name the dropped message, so retrying
// only after a resync is what keeps this at-least-once without guessing.

import WebSocket from "ws";
import type { Limits, Message, PresenceFrame, User, WelcomeFrame } from "../src/protocol.ts";
import { narrowServerFrame } from "../tools/harness/frames.ts";
import type { Findings, Ledger } from "./findings.ts";

export interface ClientOptions {
  /** `ws://host:port` */
  base: string;
  room: string;
  name: string;
  label: string;
  random: () => number;
  findings: Findings;
  ledger: Ledger;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  minUptimeMs?: number;
  connectTimeoutMs?: number;
  /** Fraction of the server's refill rate the outbox may use. */
  pace?: number;
  /**
   * What the rest of the room has seen under a nonce. Only consulted when a
   * resume says `gap`: the history then cannot tell whether a message sent
   * on the dead connection was stored, and resending blindly would store it
   * twice. A real client would have to accept the duplicate or the loss; the
   * harness asks the other clients instead.
   */
  oracle?: (nonce: string) => Message | undefined;
}

export interface Outgoing {
  readonly nonce: string;
  readonly text: string;
  readonly seq: number;
  sends: number;
  echoedId: number | null;
  /** True when the echo was not seen by the sender but by another client (see `oracle`). */
  byOracle: boolean;
}

const PING_EVERY_MS = 20_000;

export class ChatClient {
  readonly label: string;
  you: User | null = null;
  limits: Limits | null = null;
  /** The last message id this client has seen, in order; resumes use it as `after`. */
  lastId: number | null = null;
  firstId: number | null = null;
  /** Messages received over the client's whole life, history and live, each id once. */
  received = 0;
  /** Ids this client missed for good, as announced by `welcome.gap`. */
  readonly holes: Array<{ from: number; to: number }> = [];
  readonly closeCodes = new Map<number, number>();
  readonly httpRefusals = new Map<string, number>();
  connects = 0;
  welcomes = 0;
  gaps = 0;
  errorsByCode = new Map<string, number>();
  /** Between a welcome and the end of that connection. */
  online = false;
  /**
   * Who this client believes is in the room, from its last welcome and the
   * presence frames since: the users it was told of, and the count it shows
   * (`onlineCount`, or the list's length). `partial` above PRESENCE_LIMIT,
   * where a count frame changes the count and leaves the list stale.
   */
  readonly presence = { users: new Map<string, string>(), count: 0, partial: false };
  /** `join` for a user already listed, `leave` for one not listed, while the list was whole. */
  readonly presenceAnomalies: string[] = [];
  /** Presence frames received, by kind (`presence` split by whether it carried the list). */
  readonly presenceFrames = { join: 0, leave: 0, count: 0, list: 0 };

  // Outbox.
  private readonly outbox = new Map<string, Outgoing>();
  private queue: Outgoing[] = [];
  private inflight: Outgoing[] = [];
  /** Sent on a connection that died, then a resume with a gap: fate unknown. */
  private limbo: Outgoing[] = [];

  private ws: WebSocket | null = null;
  private token: string | null = null;
  private stopped = true;
  private paused = false;
  private attempt = 0;
  private welcomedAt = 0;
  private holdUntil = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pumpTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private tokens = 0;
  private refilledAt = 0;
  private afterSent: number | null = null;
  private expectGapStart = false;

  private readonly o: Required<ClientOptions>;

  constructor(options: ClientOptions) {
    this.o = {
      backoffBaseMs: 100,
      backoffCapMs: 2_000,
      minUptimeMs: 2_000,
      connectTimeoutMs: 5_000,
      pace: 0.7,
      oracle: () => undefined,
      ...options,
    };
    this.label = options.label;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Closes for good (code 1000) and stops reconnecting. */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.online = false;
    if (ws !== null && ws.readyState <= WebSocket.OPEN) ws.close(1000, "done");
  }

  /**
   * Drops the connection the way a flaky network would: `abrupt` tears the
   * TCP connection down without a close frame. The client comes back by
   * itself, not before `holdMs`.
   */
  drop(abrupt: boolean, holdMs = 0): void {
    this.holdUntil = Date.now() + holdMs;
    const ws = this.ws;
    if (ws === null) return;
    if (abrupt) ws.terminate();
    else ws.close(1000, "chaos");
  }

  /** Keeps the client from reconnecting (the current connection is left alone) until `resume`. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    if (this.ws === null && this.reconnectTimer === null) this.scheduleReconnect();
  }

  /** Queues a message; it goes out as soon as the connection and the rate allow. */
  post(text: string, nonce: string): void {
    if (this.outbox.has(nonce)) throw new Error(`nonce ${nonce} posted twice`);
    const item: Outgoing = { nonce, text, seq: this.outbox.size, sends: 0, echoedId: null, byOracle: false };
    this.outbox.set(nonce, item);
    this.queue.push(item);
    this.pump();
  }

  get pending(): number {
    let n = 0;
    for (const item of this.outbox.values()) if (item.echoedId === null) n++;
    return n;
  }

  get sent(): number {
    return this.outbox.size;
  }

  get items(): Iterable<Outgoing> {
    return this.outbox.values();
  }

  private connect(): void {
    if (this.stopped) return;
    if (this.paused) return;
    this.connects++;
    const params = new URLSearchParams({ name: this.o.name });
    this.afterSent = this.lastId;
    if (this.lastId !== null) params.set("after", String(this.lastId));
    if (this.token !== null) params.set("token", this.token);
    const ws = new WebSocket(`${this.o.base}/chat/${this.o.room}?${params}`, {
      perMessageDeflate: false,
      handshakeTimeout: this.o.connectTimeoutMs,
    });
    this.ws = ws;
    let down = false;
    let welcomed = false;
    const connectTimer = setTimeout(() => {
      if (!welcomed) ws.terminate();
    }, this.o.connectTimeoutMs);
    const onDown = (code: number): void => {
      // `error` and `close` may both fire; only the first counts.
      if (down) return;
      down = true;
      clearTimeout(connectTimer);
      this.closeCodes.set(code, (this.closeCodes.get(code) ?? 0) + 1);
      if (this.ws === ws) this.ws = null;
      if (welcomed) {
        this.online = false;
        if (this.pingTimer !== null) clearInterval(this.pingTimer);
        this.pingTimer = null;
        if (Date.now() - this.welcomedAt >= this.o.minUptimeMs) this.attempt = 0;
      }
      this.scheduleReconnect();
    };
    ws.on("unexpected-response", (_req, res) => {
      const key = String(res.statusCode);
      this.httpRefusals.set(key, (this.httpRefusals.get(key) ?? 0) + 1);
      res.resume();
      ws.terminate();
    });
    ws.on("error", () => {
      // `close` follows every `error` in ws; the code is read there.
    });
    ws.on("close", (code) => onDown(code));
    ws.on("message", (data, isBinary) => {
      if (this.ws !== ws) return;
      if (isBinary) {
        this.o.findings.violation(`${this.label}: the server sent a binary frame`);
        return;
      }
      const raw = data.toString();
      if (raw === "pong") return;
      const frame = narrowServerFrame(raw);
      if (!frame.ok) {
        this.o.findings.violation(`${this.label}: malformed server frame (${frame.why})`);
        return;
      }
      const f = frame.value;
      if (!welcomed) {
        if (f.type !== "welcome") {
          this.o.findings.violation(`${this.label}: first frame is ${f.type}, not welcome`);
          return;
        }
        welcomed = true;
        clearTimeout(connectTimer);
        this.onWelcome(f);
        return;
      }
      switch (f.type) {
        case "welcome":
          this.o.findings.violation(`${this.label}: a second welcome on one connection`);
          return;
        case "message":
          this.onMessage(f, "live");
          return;
        case "error":
          this.errorsByCode.set(f.code, (this.errorsByCode.get(f.code) ?? 0) + 1);
          return;
        case "join":
        case "leave":
          this.onPresence(f);
          return;
        case "presence":
          this.presenceFrames[f.online === undefined ? "count" : "list"]++;
          this.presence.count = f.count;
          if (f.online === undefined) {
            this.presence.partial = true;
          } else {
            this.presence.users = new Map(f.online.map((u) => [u.id, u.name]));
            this.presence.partial = false;
            if (f.count !== f.online.length)
              this.o.findings.violation(
                `${this.label}: presence frame with count ${f.count} and a list of ${f.online.length}`,
              );
          }
          return;
      }
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.paused) return;
    // Full jitter: anywhere between 0 and the capped exponential step, so a
    // room full of clients dropped at once does not come back in one wave.
    const step = Math.min(this.o.backoffCapMs, this.o.backoffBaseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    const wait = Math.max(0, this.holdUntil - Date.now()) + this.o.random() * step;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, wait);
  }

  private onPresence(f: PresenceFrame): void {
    const p = this.presence;
    this.presenceFrames[f.type]++;
    const listed = p.users.has(f.user.id);
    if (!p.partial && listed === (f.type === "join")) {
      this.presenceAnomalies.push(`${f.type} ${f.user.id} (${f.user.name}) while ${listed ? "listed" : "not listed"}`);
    }
    if (f.type === "join") {
      p.users.set(f.user.id, f.user.name);
      if (!listed || p.partial) p.count++;
    } else {
      p.users.delete(f.user.id);
      if (listed || p.partial) p.count--;
    }
  }

  private onWelcome(w: WelcomeFrame): void {
    this.welcomes++;
    const who = this.label;
    const f = this.o.findings;
    if (this.you !== null && w.you.id !== this.you.id) {
      f.violation(`${who}: token did not keep identity (${this.you.id} became ${w.you.id})`);
    }
    this.you = w.you;
    this.token = w.token;
    this.limits = w.limits;
    if (w.room !== this.o.room) f.violation(`${who}: welcome.room is ${w.room}, expected ${this.o.room}`);
    if (!w.online.some((u) => u.id === w.you.id)) f.violation(`${who}: welcome.online does not list the new user`);
    this.presence.users = new Map(w.online.map((u) => [u.id, u.name]));
    this.presence.count = w.onlineCount ?? w.online.length;
    this.presence.partial = this.presence.count > w.online.length;
    if (this.presence.count < w.online.length)
      f.violation(`${who}: welcome.onlineCount ${this.presence.count} is below the ${w.online.length} users it lists`);
    const h = w.history;
    const ids = h.map((m) => m.id);
    for (let i = 1; i < ids.length; i++) {
      const [prev = 0, id = 0] = [ids[i - 1], ids[i]];
      if (id !== prev + 1) {
        f.violation(`${who}: welcome.history not consecutive (${prev} then ${id})`);
        break;
      }
    }
    // Defined whenever h is not empty.
    const firstId = ids[0] ?? 0;
    const lastId = ids.at(-1) ?? 0;
    if (h.length > w.limits.history) f.violation(`${who}: welcome.history holds ${h.length} > ${w.limits.history}`);
    const after = this.afterSent;
    this.expectGapStart = false;
    if (after === null && w.gap) f.violation(`${who}: gap=true on a connection without after`);
    if (after !== null) {
      if (h.length > 0 && firstId <= after && !w.gap) {
        f.violation(`${who}: history after=${after} starts at ${firstId}`);
      }
      if (!w.gap) {
        if (h.length > 0 && firstId > after + 1) {
          f.violation(
            `${who}: gap=false but history after=${after} starts at ${firstId} (ids ${after + 1}..${firstId - 1} silently lost)`,
          );
        }
      } else if (h.length === 0 || lastId < after) {
        // The room has issued fewer ids than this client has seen: it lost
        // messages it had already broadcast (or its storage was reset).
        f.violation(
          `${who}: gap=true after=${after} but the room's history ends at ${h.length ? lastId : "nothing"}: messages it broadcast were lost`,
        );
      } else if (firstId <= after + 1) {
        f.violation(
          `${who}: gap=true after=${after} though the history holds ${firstId}..${lastId} (nothing was missed)`,
        );
      } else {
        if (h.length !== w.limits.history)
          f.violation(`${who}: gap=true but history holds ${h.length}, not the ${w.limits.history} kept`);
        this.gaps++;
        this.holes.push({ from: after + 1, to: firstId - 1 });
        this.expectGapStart = true;
      }
    }
    // The history is read before the outbox is looked at, so echoes in it count.
    this.welcomedAt = Date.now();
    for (const m of h) {
      if (after !== null && m.id <= after) continue;
      this.onMessage(m, "history");
    }
    this.expectGapStart = false;
    this.online = true;
    // What the last connection sent and never saw echoed goes out again,
    // ahead of anything newer, now that the history has been read.
    let retry = this.inflight.filter((item) => item.echoedId === null);
    this.inflight = [];
    this.settleLimbo();
    if (w.gap && after !== null) {
      // Whatever was in flight may be stored in the ids this client missed.
      for (const item of retry) if (!this.settle(item)) this.limbo.push(item);
      retry = [];
    }
    this.queue = [...retry, ...this.queue.filter((item) => !retry.includes(item))];
    this.queue.sort((a, b) => a.seq - b.seq);
    // A fresh connection has a full bucket on the server; start below it anyway.
    this.tokens = Math.max(1, Math.floor(w.limits.burst / 2));
    this.refilledAt = Date.now();
    this.pingTimer = setInterval(() => this.ws?.send("ping"), PING_EVERY_MS);
    this.pump();
  }

  private onMessage(m: Message, how: "history" | "live"): void {
    const who = this.label;
    const f = this.o.findings;
    this.o.ledger.record(m, who);
    if (this.lastId !== null) {
      if (m.id <= this.lastId) {
        f.violation(`${who}: ${how} message ${m.id} after ${this.lastId} (duplicate or out of order)`);
        return;
      }
      if (m.id !== this.lastId + 1 && !this.expectGapStart) {
        f.violation(`${who}: ${how} message ${m.id} after ${this.lastId}: ids ${this.lastId + 1}..${m.id - 1} skipped`);
      }
    } else {
      this.firstId = m.id;
    }
    this.expectGapStart = false;
    this.lastId = m.id;
    this.received++;
    if (m.nonce === undefined || this.you === null || m.from.id !== this.you.id) return;
    const item = this.outbox.get(m.nonce);
    if (item === undefined) return;
    if (m.text !== item.text) f.violation(`${who}: message ${m.id} (nonce ${m.nonce}) came back with a different text`);
    if (item.echoedId !== null) {
      if (item.byOracle && item.echoedId === m.id) return;
      // A second copy after a resend is counted from the ledger at the end.
      if (item.sends === 1)
        f.violation(`${who}: nonce ${m.nonce}, sent once, stored twice (ids ${item.echoedId} and ${m.id})`);
      return;
    }
    item.echoedId = m.id;
    this.inflight = this.inflight.filter((x) => x !== item);
    this.queue = this.queue.filter((x) => x !== item);
    this.limbo = this.limbo.filter((x) => x !== item);
  }

  /** Marks an item echoed if another client saw it stored; true when settled. */
  private settle(item: Outgoing): boolean {
    const m = this.o.oracle(item.nonce);
    if (m === undefined || this.you === null || m.from.id !== this.you.id) return false;
    item.echoedId = m.id;
    item.byOracle = true;
    return true;
  }

  private settleLimbo(): void {
    this.limbo = this.limbo.filter((item) => item.echoedId === null && !this.settle(item));
  }

  /**
   * At the end of a run: what is still in limbo and that no client has seen
   * stored was not stored (or only in ids nobody kept), so it is sent again.
   */
  releaseLimbo(): number {
    this.settleLimbo();
    const n = this.limbo.length;
    this.queue.push(...this.limbo);
    this.queue.sort((a, b) => a.seq - b.seq);
    this.limbo = [];
    this.pump();
    return n;
  }

  get inLimbo(): number {
    return this.limbo.length;
  }

  private pump(): void {
    if (this.pumpTimer !== null || !this.online || this.ws === null || this.limits === null) return;
    const rate = Math.max(0.5, this.limits.perSec * this.o.pace);
    const burst = Math.max(1, this.limits.burst);
    const now = Date.now();
    this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
    while (this.queue.length > 0 && this.tokens >= 1) {
      const item = this.queue.shift();
      if (item === undefined) break;
      if (item.echoedId !== null) throw new Error(`chaos client bug: ${item.nonce} was echoed and is queued again`);
      item.sends++;
      this.inflight.push(item);
      this.tokens -= 1;
      this.ws.send(JSON.stringify({ type: "message", text: item.text, nonce: item.nonce }));
    }
    if (this.queue.length > 0) {
      const wait = Math.ceil(((1 - this.tokens) / rate) * 1000);
      this.pumpTimer = setTimeout(
        () => {
          this.pumpTimer = null;
          this.pump();
        },
        Math.max(5, wait),
      );
    }
  }

  private clearTimers(): void {
    for (const t of [this.reconnectTimer, this.pumpTimer]) if (t !== null) clearTimeout(t);
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.reconnectTimer = this.pumpTimer = this.pingTimer = null;
  }
}
