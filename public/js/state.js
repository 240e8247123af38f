// @ts-check
// What the client knows about the room, with no DOM and no timers: who it
// is, the room's limits, the last message id, who is online, what it still
// has to send, and when to ack. app.js feeds it frames and the clock, and
// draws what these methods return. Kept apart so it can be tested in Node
// (test/client/state.test.ts) and so the page never reads state back from
// what it has drawn.

import { Outbox } from "./outbox.js";
import { DEFAULT_LIMITS } from "./rules.js";

/** @typedef {import("../../src/protocol.ts").WelcomeFrame} WelcomeFrame */
/** @typedef {import("../../src/protocol.ts").Message} Message */
/** @typedef {import("../../src/protocol.ts").User} User */
/** @typedef {import("../../src/protocol.ts").Limits} Limits */
/** @typedef {import("./outbox.js").Pending} Pending */

/** Ack at once after this many unacked messages; otherwise a while after the last (ACK_AFTER_MS). */
export const ACK_EVERY = 10;
export const ACK_AFTER_MS = 1000;

/**
 * @typedef {object} Received
 * @property {Message[]} fresh  messages not seen before, in order, to draw
 * @property {Pending[]} confirmed  pending messages these were the echoes of
 */

/**
 * @typedef {Received & {
 *   history: "kept" | "gap" | "reset",
 *   trimmed: boolean,
 * }} Welcomed
 * `gap`: messages were missed while away; `reset`: ids went backwards, the
 * room's storage was reset and what is shown is no longer its past;
 * `trimmed`: the oldest message shown is not the room's first.
 */

export class RoomState {
  /** @type {User | null} */
  me = null;
  /** @type {Limits} */
  limits = DEFAULT_LIMITS;
  /**
   * The highest message id received: the `after` of the next connect. A
   * room sends ids in increasing order on each socket and a reconnect asks
   * for those above it, so any id not above it was seen already. One number
   * instead of a set of every id the page ever saw.
   */
  lastId = 0;
  /** The lowest message id shown, 0 before any. */
  firstId = 0;
  /** The last id acked to the room. */
  acked = 0;
  /** @type {Map<string, User>} */
  online = new Map();
  outbox = new Outbox();
  /** Mirrors the room's token bucket so the client rarely hits `rate_limited`. */
  #bucket = { tokens: DEFAULT_LIMITS.burst, at: 0 };

  /**
   * @param {WelcomeFrame} w
   * @param {number} now  ms, the clock of the rate bucket
   * @returns {Welcomed}
   */
  welcome(w, now) {
    this.me = w.you;
    this.limits = w.limits;
    this.#bucket = { tokens: w.limits.burst, at: now };
    this.online = new Map(w.online.map((u) => [u.id, u]));
    /** @type {Welcomed["history"]} */
    let history = "kept";
    if (w.gap && this.lastId > 0) {
      const first = w.history[0];
      if (first === undefined || first.id <= this.lastId) {
        history = "reset";
        this.lastId = 0;
        this.firstId = 0;
        this.acked = 0;
      } else {
        history = "gap";
      }
    }
    // Whatever was in flight on the old socket is either in this history (stored) or must be sent again.
    this.outbox.unsend();
    const got = this.messages(w.history);
    // Ids start at 1 and have no holes: a first id above 1 means older messages were trimmed.
    return { ...got, history, trimmed: this.firstId > 1 };
  }

  /**
   * @param {Message[]} list
   * @returns {Received}
   */
  messages(list) {
    /** @type {Message[]} */
    const fresh = [];
    /** @type {Pending[]} */
    const confirmed = [];
    for (const m of list) {
      if (m.id <= this.lastId) continue;
      this.lastId = m.id;
      if (this.firstId === 0) this.firstId = m.id;
      fresh.push(m);
      const p = this.outbox.confirm(m.nonce);
      if (p !== undefined) confirmed.push(p);
    }
    return { fresh, confirmed };
  }

  /**
   * @param {User} user
   * @returns {boolean} false when the user was already online (another of their sockets)
   */
  join(user) {
    if (this.online.has(user.id)) return false;
    this.online.set(user.id, user);
    return true;
  }

  /** @param {User} user */
  leave(user) {
    this.online.delete(user.id);
  }

  /** Online users, this page's own first, then by name. */
  people() {
    const me = this.me?.id;
    return [...this.online.values()].sort((a, b) => {
      if (a.id === me) return -1;
      if (b.id === me) return 1;
      return a.name.localeCompare(b.name);
    });
  }

  /** @param {Message} m */
  isOwn(m) {
    return this.me !== null && m.from.id === this.me.id;
  }

  /** True when enough has arrived unacked that the ack should go now rather than later. */
  get ackDue() {
    return this.lastId - this.acked >= ACK_EVERY;
  }

  /**
   * Refills the mirrored bucket up to `now`.
   * @param {number} now  ms
   * @returns {number} 0 when a message may go now, else how many ms until it may
   */
  sendWait(now) {
    const b = this.#bucket;
    b.tokens = Math.min(this.limits.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.limits.perSec);
    b.at = now;
    return b.tokens >= 1 ? 0 : Math.ceil(((1 - b.tokens) / this.limits.perSec) * 1000);
  }

  /**
   * A message went out on the socket.
   * @param {Pending} p
   */
  sent(p) {
    this.#bucket.tokens -= 1;
    p.state = "sending";
  }

  /** The room refused a send with `rate_limited`: it was dropped, and the bucket is empty. */
  rateLimited() {
    const p = this.outbox.inFlight;
    if (p !== undefined) p.state = "queued";
    this.#bucket.tokens = 0;
  }
}
