// The load generator: WebSocket clients that send benchmark messages and
// check every delivery (latency, loss, duplicates, order) without a full
// JSON.parse on the hot path: a delivery is found and read in the raw bytes.
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { TEXT_PREFIX, messageFrame } from "./fixture.ts";
import { Histogram } from "./stats.ts";

const TEXT_MARK = Buffer.from(`"text":"${TEXT_PREFIX}`);
const ID_MARK = Buffer.from(`"id":`);
const TYPE_JOIN = Buffer.from(`"type":"join"`);
const TYPE_LEAVE = Buffer.from(`"type":"leave"`);
const TYPE_ERROR = Buffer.from(`"type":"error"`);
/** How a batch frame of the `batch=1` extension starts (edge-chat serializes it exactly so). */
const BATCH_PREFIX = Buffer.from(`{"type":"batch","frames":[`);
/**
 * Where each inner frame of a batch starts. JSON strings escape every `"`,
 * so this sequence can only be the opening of a frame object: no text, name
 * or nonce can contain it, and no nested object (from, user) starts with
 * `type`.
 */
const FRAME_START = Buffer.from(`{"type":"`);
/** One batch frame in VERIFY_EVERY (and one plain frame in 8×) is also JSON.parsed and compared with the byte path. */
const VERIFY_EVERY = 32;
/** The keep-alive of the protocol: a client sends `ping` at least every 30 s, or a room may close it as dead after 60 s. */
const PING = "ping";
const PONG = Buffer.from("pong");
const PING_EVERY_MS = 20_000;
const SPACE = 0x20;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/** Reads a non-negative decimal (digits, optional fraction) at `pos`; returns [value, end]. */
function readNumber(buf: Buffer, pos: number): [number, number] {
  let i = pos;
  let value = 0;
  for (; i < buf.length; i++) {
    const c = buf[i] ?? 0;
    if (c < ZERO || c > NINE) break;
    value = value * 10 + (c - ZERO);
  }
  if (buf[i] === DOT) {
    let scale = 0.1;
    for (i++; i < buf.length; i++) {
      const c = buf[i] ?? 0;
      if (c < ZERO || c > NINE) break;
      value += (c - ZERO) * scale;
      scale /= 10;
    }
  }
  return [value, i];
}

/** The top-level message `id` (a number), skipping `"id":"u_…"` of `from`. */
function readId(buf: Buffer): number {
  let at = buf.indexOf(ID_MARK);
  while (at >= 0) {
    const c = buf[at + ID_MARK.length] ?? 0;
    if (c >= ZERO && c <= NINE) return readNumber(buf, at + ID_MARK.length)[0];
    at = buf.indexOf(ID_MARK, at + 1);
  }
  return -1;
}

export interface Target {
  /** ws://127.0.0.1:P */
  base: string;
  /** edge-chat numbers its messages; the raw servers relay frames as they are. */
  hasIds: boolean;
  /** Connect with `batch=1` (edge-chat's extension) and unwrap `batch` frames. */
  batch: boolean;
  /**
   * Send the protocol's `ping` every 20 s (edge-chat closes a socket silent
   * for 60 s). Not for the raw servers: they would relay it to everyone.
   */
  keepAlive: boolean;
}

/** Everything counted across all clients of one fleet. */
export interface Tally {
  deliveries: number;
  lastDeliveryAt: number;
  duplicates: number;
  /** Arrivals with a sender sequence or a room id that is not the next one. */
  outOfOrder: number;
  /** Non-consecutive room ids (edge-chat only). */
  idErrors: number;
  joins: number;
  leaves: number;
  errorFrames: number;
  otherFrames: number;
  unexpectedCloses: number;
  connectFailures: number;
  closeCodes: Record<string, number>;
  /** WebSocket frames received after the welcome (plain or batch), keep-alive `pong`s aside. */
  wireFrames: number;
  pongs: number;
  /** Of those, `batch` frames, and the frames they held. */
  batchFrames: number;
  innerFrames: number;
  /** Sampled frames whose JSON.parse disagreed with the byte-level reading. */
  verified: number;
  verifyMismatches: number;
  firstMismatch: string | null;
}

function emptyTally(): Tally {
  return {
    deliveries: 0,
    lastDeliveryAt: 0,
    duplicates: 0,
    outOfOrder: 0,
    idErrors: 0,
    joins: 0,
    leaves: 0,
    errorFrames: 0,
    otherFrames: 0,
    unexpectedCloses: 0,
    connectFailures: 0,
    closeCodes: {},
    wireFrames: 0,
    pongs: 0,
    batchFrames: 0,
    innerFrames: 0,
    verified: 0,
    verifyMismatches: 0,
    firstMismatch: null,
  };
}

export class Client {
  readonly ws: WebSocket;
  readonly index: number;
  readonly startedAt = performance.now();
  welcomeAt = -1;
  /** Messages in the welcome's history, and whether their ids were consecutive. */
  historyLength = 0;
  historyConsecutive = true;
  lastId = -1;
  /** Next expected sequence number from each sender. */
  readonly #next: Int32Array;
  readonly #missing = new Map<number, Set<number>>();
  readonly #fleet: Fleet;
  #closing = false;
  #pinger: NodeJS.Timeout | null = null;
  readonly #welcomed: Promise<boolean>;

  constructor(fleet: Fleet, index: number, url: string) {
    this.#fleet = fleet;
    this.index = index;
    this.#next = new Int32Array(fleet.maxSenders);
    this.ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 120_000 });
    this.#welcomed = new Promise((resolve) => {
      this.ws.on("message", (data: Buffer, isBinary: boolean) => {
        if (this.welcomeAt < 0) {
          this.#onWelcome(data);
          if (fleet.target.keepAlive) this.#keepAlive();
          resolve(true);
        } else if (!isBinary) {
          this.#onFrame(data);
        }
      });
      this.ws.on("error", () => {
        if (this.welcomeAt < 0) fleet.tally.connectFailures++;
        resolve(false);
      });
      this.ws.on("close", (code) => {
        if (this.#pinger !== null) clearInterval(this.#pinger);
        const key = String(code);
        fleet.tally.closeCodes[key] = (fleet.tally.closeCodes[key] ?? 0) + 1;
        if (!this.#closing) fleet.tally.unexpectedCloses++;
        resolve(false);
      });
    });
  }

  #keepAlive(): void {
    // Spread over the interval, so a thousand clients do not ping at once.
    const first = setTimeout(() => {
      this.#ping();
      this.#pinger = setInterval(() => this.#ping(), PING_EVERY_MS);
      this.#pinger.unref();
    }, Math.random() * PING_EVERY_MS);
    first.unref();
    this.#pinger = first;
  }

  #ping(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(PING);
  }

  welcomed(): Promise<boolean> {
    return this.#welcomed;
  }

  /** Sequence numbers this client must have seen from `sender` that it has not. */
  missingFrom(sender: number, sent: number): number {
    return (this.#missing.get(sender)?.size ?? 0) + Math.max(0, sent - (this.#next[sender] ?? 0));
  }

  close(): void {
    this.#closing = true;
    if (this.#pinger !== null) clearInterval(this.#pinger);
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }

  #onWelcome(data: Buffer): void {
    this.welcomeAt = performance.now();
    // Once per connection, so a real parse is affordable here.
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString("utf8"));
    } catch {
      parsed = null;
    }
    if (typeof parsed !== "object" || parsed === null || !("history" in parsed) || !Array.isArray(parsed.history)) {
      this.#fleet.tally.otherFrames++;
      this.historyConsecutive = false;
      return;
    }
    const history: unknown[] = parsed.history;
    this.historyLength = history.length;
    let previous = -1;
    for (const m of history) {
      const id = typeof m === "object" && m !== null && "id" in m && typeof m.id === "number" ? m.id : -1;
      if (previous >= 0 && id !== previous + 1) this.historyConsecutive = false;
      previous = id;
    }
    if (this.#fleet.target.hasIds) this.lastId = previous;
  }

  #onFrame(data: Buffer): void {
    const tally = this.#fleet.tally;
    if (data.length === PONG.length && data.equals(PONG)) {
      tally.pongs++;
      return;
    }
    tally.wireFrames++;
    const now = performance.now();
    if (
      this.#fleet.target.batch &&
      data.length > BATCH_PREFIX.length &&
      data.compare(BATCH_PREFIX, 0, BATCH_PREFIX.length, 0, BATCH_PREFIX.length) === 0
    ) {
      // `{"type":"batch","frames":[F1,F2,…]}`: each inner frame from its
      // `{"type":"` to the next one (a trailing comma does not matter), all
      // received now, in order.
      tally.batchFrames++;
      const end = data.length - 2;
      const before = tally.deliveries + tally.joins + tally.leaves + tally.errorFrames + tally.otherFrames;
      let start = BATCH_PREFIX.length;
      let inner = 0;
      while (start < end) {
        let next = data.indexOf(FRAME_START, start + 1);
        if (next < 0 || next > end) next = end;
        this.#onOne(data.subarray(start, next), now);
        inner++;
        start = next;
      }
      tally.innerFrames += inner;
      if (tally.batchFrames % VERIFY_EVERY === 1) {
        const counted = tally.deliveries + tally.joins + tally.leaves + tally.errorFrames + tally.otherFrames - before;
        this.#verify(data, inner, counted);
      }
      return;
    }
    const before = tally.deliveries + tally.joins + tally.leaves + tally.errorFrames + tally.otherFrames;
    this.#onOne(data, now);
    if (tally.wireFrames % (VERIFY_EVERY * 8) === 1) {
      this.#verify(
        data,
        1,
        tally.deliveries + tally.joins + tally.leaves + tally.errorFrames + tally.otherFrames - before,
      );
    }
  }

  /**
   * Checks the byte-level reading of one wire frame against a real parse:
   * the number of frames it held, and that each counted exactly once.
   */
  #verify(data: Buffer, inner: number, counted: number): void {
    const tally = this.#fleet.tally;
    tally.verified++;
    let frames: unknown[];
    try {
      const parsed: unknown = JSON.parse(data.toString("utf8"));
      if (
        typeof parsed === "object" &&
        parsed !== null &&
        "type" in parsed &&
        parsed.type === "batch" &&
        "frames" in parsed &&
        Array.isArray(parsed.frames)
      ) {
        frames = parsed.frames;
        if (frames.length === 0) throw new Error("empty batch");
      } else {
        frames = [parsed];
      }
    } catch (err) {
      tally.verifyMismatches++;
      tally.firstMismatch ??= `unparsable frame (${err instanceof Error ? err.message : String(err)}): ${data.toString("utf8").slice(0, 160)}`;
      return;
    }
    const ok = frames.every((f) => typeof f === "object" && f !== null && "type" in f && typeof f.type === "string");
    if (!ok || frames.length !== inner || counted !== inner) {
      tally.verifyMismatches++;
      tally.firstMismatch ??= `parse found ${frames.length} frames, byte path ${inner} (${counted} counted): ${data.toString("utf8").slice(0, 160)}`;
    }
  }

  /** One v1 frame (alone on the wire, or inside a batch), received at `now`. */
  #onOne(data: Buffer, now: number): void {
    const fleet = this.#fleet;
    const tally = fleet.tally;
    const at = data.indexOf(TEXT_MARK);
    if (at < 0) {
      if (data.indexOf(TYPE_JOIN) >= 0) tally.joins++;
      else if (data.indexOf(TYPE_LEAVE) >= 0) tally.leaves++;
      else if (data.indexOf(TYPE_ERROR) >= 0) {
        tally.errorFrames++;
        if (fleet.firstError === null) fleet.firstError = data.toString("utf8").slice(0, 200);
      } else tally.otherFrames++;
      return;
    }
    const [sender, afterSender] = readNumber(data, at + TEXT_MARK.length);
    const [seq, afterSeq] = readNumber(data, afterSender + 1);
    const [sentAt] = readNumber(data, afterSeq + 1);
    if (data[afterSender] !== SPACE || data[afterSeq] !== SPACE) {
      tally.otherFrames++;
      return;
    }
    tally.deliveries++;
    tally.lastDeliveryAt = now;
    fleet.latency.record(now - sentAt);

    const expected = this.#next[sender] ?? 0;
    if (seq === expected) {
      this.#next[sender] = expected + 1;
    } else if (seq > expected) {
      tally.outOfOrder++;
      let gap = this.#missing.get(sender);
      if (gap === undefined) this.#missing.set(sender, (gap = new Set()));
      for (let s = expected; s < seq; s++) gap.add(s);
      this.#next[sender] = seq + 1;
    } else if (this.#missing.get(sender)?.delete(seq) === true) {
      // A late arrival filling an earlier gap: already counted as out of order.
    } else {
      tally.duplicates++;
    }

    if (fleet.target.hasIds) {
      const id = readId(data);
      if (this.lastId >= 0 && id !== this.lastId + 1) tally.idErrors++;
      if (id > this.lastId) this.lastId = id;
    }
  }
}

/** A set of clients in one room of one target, with their shared counters. */
export class Fleet {
  readonly target: Target;
  readonly room: string;
  readonly maxSenders: number;
  readonly clients: Client[] = [];
  readonly tally: Tally = emptyTally();
  readonly latency = new Histogram();
  /** Messages sent so far by each sender (index = sender number). */
  readonly sent: number[];
  firstError: string | null = null;

  constructor(target: Target, room: string, maxSenders: number) {
    this.target = target;
    this.room = room;
    this.maxSenders = maxSenders;
    this.sent = new Array<number>(maxSenders).fill(0);
  }

  /** Opens `count` clients at once; resolves when every one has its welcome or has failed. */
  async connect(count: number): Promise<Client[]> {
    const opened: Client[] = [];
    for (let i = 0; i < count; i++) {
      const index = this.clients.length;
      const url = `${this.target.base}/chat/${this.room}?name=b${index}${this.target.batch ? "&batch=1" : ""}`;
      const client = new Client(this, index, url);
      this.clients.push(client);
      opened.push(client);
    }
    await Promise.all(opened.map((c) => c.welcomed()));
    return opened;
  }

  /** Sends the next benchmark message of `sender` from `client`. */
  send(client: Client, sender: number): void {
    const seq = this.sent[sender] ?? 0;
    this.sent[sender] = seq + 1;
    client.ws.send(messageFrame(sender, seq, performance.now()));
  }

  totalSent(): number {
    return this.sent.reduce((a, b) => a + b, 0);
  }

  /** Deliveries never received by a client that was there from the start. */
  lost(receivers: readonly Client[]): number {
    let lost = 0;
    for (const client of receivers) {
      for (let s = 0; s < this.maxSenders; s++) lost += client.missingFrom(s, this.sent[s] ?? 0);
    }
    return lost;
  }

  async closeAll(timeoutMs = 10_000): Promise<void> {
    const closed = this.clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once("close", () => resolve());
          c.close();
        }),
    );
    const timer = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
    await Promise.race([Promise.all(closed), timer]);
    for (const c of this.clients) if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate();
  }
}
