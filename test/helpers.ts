// Test clients that talk to the Worker through real WebSockets in workerd.

import { env, exports } from "cloudflare:workers";
import type { ErrorCode, Message, ServerFrame, WelcomeFrame } from "../src/protocol.ts";

export const ORIGIN = "https://chat.example";
export const PUBLISH_TOKEN = "test-publish-token";

/** A room of its own for every test: storage is shared within a test file. */
export function freshRoom(): string {
  return `t-${crypto.randomUUID()}`;
}

/** A client IP of its own, so the per-IP connect limit never couples tests. */
export function freshIp(): string {
  const b = crypto.getRandomValues(new Uint8Array(3));
  return `10.${b[0]}.${b[1]}.${b[2]}`;
}

/** A request as Cloudflare's edge hands it on: with the client's address, a fresh one unless `init` names one. */
export function edgeRequest(path: string, init: RequestInit = {}): Request {
  const req = new Request(`${ORIGIN}${path}`, init);
  if (!req.headers.has("CF-Connecting-IP")) req.headers.set("CF-Connecting-IP", freshIp());
  return req;
}

export function request(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(edgeRequest(path, init));
}

export function upgradeHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { Upgrade: "websocket", "CF-Connecting-IP": freshIp(), ...extra };
}

export interface Closed {
  code: number;
  reason: string;
}

type Received = { kind: "frame"; frame: ServerFrame } | { kind: "text"; text: string };

// Generous: the machine running the tests may be busy with other work.
const WAIT_MS = 10_000;

export class Client {
  readonly ws: WebSocket;
  readonly closed: Promise<Closed>;
  readonly #inbox: Received[] = [];
  #waiter: (() => void) | null = null;
  #closedAt: Closed | null = null;

  /**
   * With `halfOpen` the client does not answer the server's close frame: it
   * sees the close, and the server hears nothing until `close()`, like a
   * peer on a link that stalled.
   */
  constructor(ws: WebSocket, { halfOpen = false }: { halfOpen?: boolean } = {}) {
    this.ws = ws;
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => {
        this.#closedAt = { code: event.code, reason: event.reason };
        resolve(this.#closedAt);
        this.#wake();
      });
    });
    ws.addEventListener("message", (event) => {
      const text = typeof event.data === "string" ? event.data : "<binary>";
      // Everything but the keep-alive must be a JSON frame; a test that
      // receives anything else fails on the parse.
      this.#inbox.push(
        text === "pong" ? { kind: "text", text } : { kind: "frame", frame: JSON.parse(text) as ServerFrame },
      );
      this.#wake();
    });
    ws.accept({ allowHalfOpen: halfOpen });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  async #take(what: string, timeoutMs: number): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const item = this.#inbox.shift();
      if (item !== undefined) return item;
      if (this.#closedAt !== null) {
        throw new Error(`expected ${what}, but the socket closed (${this.#closedAt.code} ${this.#closedAt.reason})`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${what}, but nothing arrived within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The next frame, whatever it is, in arrival order. */
  async next(what = "a frame", timeoutMs = WAIT_MS): Promise<ServerFrame> {
    const item = await this.#take(what, timeoutMs);
    if (item.kind !== "frame") throw new Error(`expected ${what}, got the text frame ${item.text}`);
    return item.frame;
  }

  async nextText(what: string, timeoutMs = WAIT_MS): Promise<string> {
    const item = await this.#take(what, timeoutMs);
    if (item.kind !== "text") throw new Error(`expected ${what}, got ${JSON.stringify(item.frame)}`);
    return item.text;
  }

  async welcome(): Promise<WelcomeFrame> {
    const frame = await this.next("welcome");
    if (frame.type !== "welcome") throw new Error(`expected welcome, got ${JSON.stringify(frame)}`);
    return frame;
  }

  async message(what = "a message"): Promise<Message> {
    const frame = await this.next(what);
    if (frame.type !== "message") throw new Error(`expected ${what}, got ${JSON.stringify(frame)}`);
    return frame;
  }

  async error(code: ErrorCode): Promise<void> {
    const frame = await this.next(`error ${code}`);
    if (frame.type !== "error" || frame.code !== code) {
      throw new Error(`expected error ${code}, got ${JSON.stringify(frame)}`);
    }
  }

  /**
   * Asserts that nothing is on its way to this socket, with a round trip
   * through the room rather than a pause: it sends a message the room must
   * refuse (blank text) with a nonce of its own, and the very next frame must
   * be the `invalid_message` error echoing that nonce. The room handles one
   * event at a time, sends a socket's frames in order, and flushes a batching
   * socket's queued broadcasts before an error, so whatever the room sent
   * this socket before it took the barrier (a late duplicate, a false
   * `leave`) arrives first and fails here. (`ping` is no barrier: the runtime
   * answers it without the room.) Each call costs the socket one error strike.
   */
  async quiet(): Promise<void> {
    const nonce = `barrier-${crypto.randomUUID()}`;
    this.send({ type: "message", text: " ", nonce });
    const frame = await this.next("the barrier's error");
    if (frame.type !== "error" || frame.code !== "invalid_message" || frame.nonce !== nonce) {
      throw new Error(`expected nothing before the barrier's error, got ${JSON.stringify(frame)}`);
    }
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  say(text: string, nonce?: string): void {
    this.send(nonce === undefined ? { type: "message", text } : { type: "message", text, nonce });
  }

  close(): void {
    this.ws.close(1000, "bye");
  }
}

export interface ConnectOptions {
  name?: string;
  token?: string;
  after?: string | number;
  batch?: boolean;
  headers?: Record<string, string>;
  halfOpen?: boolean;
}

export async function open(room: string, options: ConnectOptions = {}): Promise<Client> {
  const query = new URLSearchParams();
  if (options.name !== undefined) query.set("name", options.name);
  if (options.token !== undefined) query.set("token", options.token);
  if (options.after !== undefined) query.set("after", String(options.after));
  if (options.batch === true) query.set("batch", "1");
  const qs = query.size > 0 ? `?${query}` : "";
  const res = await request(`/chat/${room}${qs}`, { headers: upgradeHeaders(options.headers) });
  if (res.status !== 101 || res.webSocket === null) {
    throw new Error(`expected 101 for /chat/${room}, got ${res.status}: ${await res.text()}`);
  }
  return new Client(res.webSocket, { halfOpen: options.halfOpen === true });
}

/** Opens a client and reads its welcome. */
export async function join(
  room: string,
  options: ConnectOptions = {},
): Promise<{ client: Client; welcome: WelcomeFrame }> {
  const client = await open(room, options);
  return { client, welcome: await client.welcome() };
}

export function publish(room: string, body: unknown, token = PUBLISH_TOKEN): Promise<Response> {
  return request(`/api/rooms/${room}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Seeds a room with `count` messages through the HTTP API (which has no per-connection rate limit). */
export async function seed(room: string, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) {
    const res = await publish(room, { text: `m${i}` });
    if (res.status !== 201) throw new Error(`seeding message ${i}: ${res.status} ${await res.text()}`);
  }
}

export function roomStub(room: string) {
  return env.ROOMS.get(env.ROOMS.idFromName(room));
}
