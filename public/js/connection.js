// @ts-check
// A WebSocket that stays connected: capped exponential backoff with full
// jitter, a connect timeout, a ping keep-alive that notices a dead link, and
// one place (`drop`) where a socket ends, so `error` followed by `close` (or
// a timeout racing a `close`) schedules exactly one reconnect. The shape
// follows partysocket's ws.ts; the jitter is the "full jitter" of AWS's
// "Exponential Backoff And Jitter": sleep = random(0, min(cap, base * 2^n)).

import { parseServerFrame } from "./frames.js";

/** @typedef {import("./frames.js").ServerFrame} ServerFrame */
/** @typedef {import("./frames.js").ClientFrame} ClientFrame */

/**
 * @typedef {{ kind: "connecting" }
 *   | { kind: "online" }
 *   | { kind: "reconnecting", at: number }
 *   | { kind: "offline" }
 *   | { kind: "stopped" }
 *   | { kind: "idle" }} ConnectionState
 * `stopped`: `onClose` said not to reconnect (banned); `retryNow` tries again.
 */

/**
 * @typedef {object} CloseInfo
 * @property {number} code  1006 when the socket never opened or the link died
 * @property {string} reason
 * @property {boolean} welcomed  whether this socket got its `welcome`
 */

/** @typedef {"retry" | "connect" | "ping" | "pong" | "stable"} TimerName */

export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 15_000;
/** A connection must live this long before the backoff starts again from the bottom. */
export const MIN_UPTIME_MS = 10_000;
/** From `new WebSocket` to `welcome`; a handshake stuck behind a dead proxy would otherwise hang forever. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Below the protocol's 30 s, so a late timer in a background tab still makes it. */
export const PING_EVERY_MS = 20_000;
/** No `pong` this long after a `ping`: the link is dead even if the browser has not noticed. */
export const PONG_TIMEOUT_MS = 10_000;

// Close codes a client may send (RFC 6455 7.4.2: 1000 or 3000-4999).
const CLOSE_NORMAL = 1000;
const CLOSE_DEAD = 4000;

/**
 * @typedef {object} ConnectionOptions
 * @property {() => string | Promise<string>} url  called before every attempt, so `after` and `name` are current; it may wait (for a fresh JWT from the host page)
 * @property {(frame: ServerFrame) => void} onFrame
 * @property {(state: ConnectionState) => void} onState
 * @property {(close: CloseInfo) => boolean} onClose  a socket ended (not one this page closed); false: do not reconnect
 */

export class Connection {
  /** @type {WebSocket | null} */
  #ws = null;
  /** Consecutive attempts that did not reach a stable connection. */
  #attempt = 0;
  /** @type {ConnectionState} */
  #state = { kind: "idle" };
  /** @type {Record<TimerName, ReturnType<typeof setTimeout> | undefined>} */
  #timers = { retry: undefined, connect: undefined, ping: undefined, pong: undefined, stable: undefined };
  #opts;
  /** Counts attempts, so an attempt still waiting for its URL knows when a newer one replaced it. */
  #opening = 0;
  #welcomed = false;

  /** @param {ConnectionOptions} opts */
  constructor(opts) {
    this.#opts = opts;
    addEventListener("online", () => this.#wake());
    addEventListener("offline", () => {
      // The socket may linger for minutes on a dead link; a ping finds out.
      if (this.#ws !== null) this.#ping();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.#wake();
    });
  }

  get state() {
    return this.#state;
  }

  start() {
    if (this.#state.kind !== "idle") return;
    void this.#open();
  }

  /** Closes the socket and reconnects at once, e.g. after a name change (the name is part of the URL). */
  restart() {
    this.#attempt = 0;
    if (this.#ws !== null) this.#drop(this.#ws, CLOSE_NORMAL, "reconnect", false);
    this.#clear("retry");
    void this.#open();
  }

  /** Skips the wait of a scheduled reconnect, or tries again after `stopped`. */
  retryNow() {
    if (this.#state.kind === "reconnecting" || this.#state.kind === "offline" || this.#state.kind === "stopped") {
      this.#clear("retry");
      void this.#open();
    }
  }

  /**
   * @param {ClientFrame} frame
   * @returns {boolean} false when there is no open, welcomed socket to send on
   */
  send(frame) {
    const ws = this.#ws;
    if (ws === null || this.#state.kind !== "online" || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /** @param {ConnectionState} state */
  #set(state) {
    this.#state = state;
    this.#opts.onState(state);
  }

  /** @param {TimerName} name */
  #clear(name) {
    clearTimeout(this.#timers[name]);
    this.#timers[name] = undefined;
  }

  #wake() {
    if (this.#state.kind === "reconnecting" || this.#state.kind === "offline") this.retryNow();
    else if (this.#state.kind === "online") this.#ping();
  }

  async #open() {
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      this.#set({ kind: "offline" });
      return;
    }
    this.#set({ kind: "connecting" });
    const attempt = ++this.#opening;
    /** @type {string} */
    let url;
    try {
      url = await this.#opts.url();
    } catch {
      url = "";
    }
    if (attempt !== this.#opening || this.#state.kind !== "connecting") return;
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      // A malformed URL throws synchronously; treat it like any failed attempt.
      this.#schedule();
      return;
    }
    this.#ws = ws;
    this.#welcomed = false;
    this.#timers.connect = setTimeout(() => this.#drop(ws, CLOSE_DEAD, "connect timeout"), CONNECT_TIMEOUT_MS);
    ws.addEventListener("message", (ev) => this.#receive(ws, ev));
    ws.addEventListener("close", (ev) => this.#drop(ws, undefined, undefined, { code: ev.code, reason: ev.reason }));
    ws.addEventListener("error", () => this.#drop(ws));
  }

  /**
   * @param {WebSocket} ws
   * @param {MessageEvent} ev
   */
  #receive(ws, ev) {
    if (ws !== this.#ws || typeof ev.data !== "string") return;
    if (ev.data === "pong") {
      this.#clear("pong");
      return;
    }
    const frame = parseServerFrame(ev.data);
    if (frame === null) return;
    if (frame.type === "welcome") {
      this.#clear("connect");
      this.#welcomed = true;
      this.#set({ kind: "online" });
      this.#timers.stable = setTimeout(() => {
        this.#attempt = 0;
      }, MIN_UPTIME_MS);
      this.#schedulePing();
    }
    if (frame.type === "batch") for (const f of frame.frames) this.#opts.onFrame(f);
    else this.#opts.onFrame(frame);
  }

  #schedulePing() {
    this.#clear("ping");
    this.#timers.ping = setTimeout(() => this.#ping(), PING_EVERY_MS);
  }

  #ping() {
    const ws = this.#ws;
    if (ws === null || ws.readyState !== WebSocket.OPEN) return;
    ws.send("ping");
    if (this.#timers.pong === undefined) {
      this.#timers.pong = setTimeout(() => this.#drop(ws, CLOSE_DEAD, "no pong"), PONG_TIMEOUT_MS);
    }
    this.#schedulePing();
  }

  /**
   * The one way a socket ends. Idempotent per socket: `error` then `close`,
   * or a timeout then `close`, reach here twice and the second does nothing.
   * @param {WebSocket} ws
   * @param {number} [code]  when given, we close the socket ourselves
   * @param {string} [reason]
   * @param {{ code: number, reason: string } | false} [closed]  how the socket closed; `false`: do not reconnect
   */
  #drop(ws, code, reason, closed = { code: 1006, reason: "" }) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    for (const name of /** @type {const} */ (["connect", "ping", "pong", "stable"])) this.#clear(name);
    if (code !== undefined) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closing; nothing more to do.
      }
    }
    if (closed === false) return;
    // Only a close the room sent says anything; ours (a timeout) is a dead link.
    const info =
      code === undefined
        ? { ...closed, welcomed: this.#welcomed }
        : { code: 1006, reason: "", welcomed: this.#welcomed };
    if (this.#opts.onClose(info)) this.#schedule();
    else this.#set({ kind: "stopped" });
  }

  #schedule() {
    if (navigator.onLine === false) {
      this.#set({ kind: "offline" });
      return;
    }
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    const delay = Math.max(100, Math.random() * ceiling);
    this.#clear("retry");
    this.#timers.retry = setTimeout(() => {
      this.#timers.retry = undefined;
      void this.#open();
    }, delay);
    this.#set({ kind: "reconnecting", at: Date.now() + delay });
  }
}
