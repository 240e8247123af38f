// @ts-check
// What the client knows about the room, with no DOM and no timers: who it
// is, the room's limits, the last message id, who is online, what it still
// has to send, and when to ack. app.js feeds it frames and the clock, and
// draws what these methods return. Kept apart so it can be tested in Node
// (test/client/state.test.ts) and so the page never reads state back from
// what it has drawn.

import { Outbox } from "./outbox.js";
import { DEFAULT_LIMITS } from "./rules.js";

/** @typedef {import("./frames.js").WelcomeFrame} WelcomeFrame */
/** @typedef {import("./frames.js").Message} Message */
/** @typedef {import("./frames.js").User} User */
/** @typedef {import("./frames.js").Limits} Limits */
/** @typedef {import("./frames.js").DeleteFrame} DeleteFrame */
/** @typedef {import("./frames.js").PresenceFrame} PresenceFrame */
/** @typedef {import("./outbox.js").Pending} Pending */

/** Ack at once after this many unacked messages; otherwise a while after the last (ACK_AFTER_MS). */
export const ACK_EVERY = 10;
export const ACK_AFTER_MS = 1000;

export const MODERATOR_ROLE = "moderator";
/** Close code: banned from this room (docs/PROTOCOL.md, "Moderation"). */
export const CLOSE_BANNED = 4003;
/** Connects refused after a timed ban should have ended before the page stops trying. */
export const BAN_RETRIES = 3;

/**
 * @typedef {object} Ban
 * @property {string} reason  what the moderator wrote, "" when nothing
 * @property {number | null} until  ms since the epoch (the room's clock); null: until a moderator lifts it (or unknown)
 */

/**
 * Reads the reason of a `4003` close, as the room writes it
 * (src/moderation.ts `banCloseReason`): `banned`, `banned: {reason}`,
 * `banned until {ISO 8601 UTC}` or `banned until {time}: {reason}`, the
 * whole under 123 bytes, a long reason cut short with "…" (the time goes
 * first so the cut never takes it). A reason in any other shape is shown as
 * it is, without an end.
 * @param {string} closeReason
 * @returns {Ban}
 */
export function parseBan(closeReason) {
  const m = /^banned(?: until (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z))?(?:: ?([\s\S]*))?$/.exec(closeReason);
  if (m === null) return { reason: closeReason.trim(), until: null };
  const until = m[1] === undefined ? null : Date.parse(m[1]);
  return { reason: (m[2] ?? "").trim(), until: until === null || Number.isNaN(until) ? null : until };
}

/**
 * Folds a display name the way people read it: case, width and compatibility
 * forms ("Ａｌｉｃｅ", "ALICE") count as the same name.
 * @param {string} name
 */
export function foldName(name) {
  return name.normalize("NFKC").toLocaleLowerCase();
}

/**
 * A few characters of a user id that tell two people with one name apart.
 * @param {string} id
 */
export function shortId(id) {
  return id.slice(-4);
}

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
  /**
   * Users online in the whole room. Above the room's presence limit this is
   * more than `online` holds: the list is then a sample, and counts arrive
   * instead of joins and leaves.
   */
  onlineCount = 0;
  outbox = new Outbox();
  /** @type {Ban | null} the ban this page was told of, until a welcome shows it is over */
  ban = null;
  #refusedAfterBan = 0;
  /** When this user last posted (own message sent or echoed), on the clock of `sendWait`; slow mode counts from it. */
  #postedAt = -Infinity;
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
    this.onlineCount = w.onlineCount ?? this.online.size;
    this.ban = null;
    this.#refusedAfterBan = 0;
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
   * @param {number} [now]  given for live messages: an own one restarts the slow-mode interval
   * @returns {Received}
   */
  messages(list, now) {
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
      // Slow mode is per user, so a message from this user's other tab counts too.
      if (now !== undefined && this.isOwn(m)) this.#postedAt = Math.max(this.#postedAt, now);
    }
    return { fresh, confirmed };
  }

  /**
   * A message became a tombstone.
   * @param {DeleteFrame} d
   * @returns {boolean} true when it is one this page has shown (so it must be redrawn)
   */
  deleted(d) {
    return this.firstId > 0 && d.id >= this.firstId && d.id <= this.lastId;
  }

  /** @param {number} seconds */
  settings(seconds) {
    this.limits = { ...this.limits, slowMode: seconds };
  }

  /** Slow mode in seconds, 0 when off. */
  get slowMode() {
    return this.limits.slowMode ?? 0;
  }

  /** Mirrors src/protocol.ts `isModerator` (and `canDelete` its `mayDelete`); test/client/state.test.ts checks they agree. */
  get isModerator() {
    return this.me?.verified === true && this.me.roles?.includes(MODERATOR_ROLE) === true;
  }

  /**
   * @param {Message} m
   * @returns {boolean} whether this page may delete it: its author can, a moderator can delete any
   */
  canDelete(m) {
    return m.deleted !== true && (this.isOwn(m) || this.isModerator);
  }

  /**
   * @param {User} u
   * @returns {boolean} whether this page may ban that user
   */
  canBan(u) {
    return this.isModerator && u.id !== this.me?.id;
  }

  /**
   * Slow mode's wait, on the clock of `sendWait`.
   * @param {number} now  ms
   * @returns {number} 0 when a message may go now, else the ms left
   */
  slowWait(now) {
    if (this.slowMode === 0 || this.isModerator) return 0;
    return Math.max(0, Math.ceil(this.#postedAt + this.slowMode * 1000 - now));
  }

  /**
   * The room refused a send with `slow_mode` (another tab posted, or this
   * page's clock ran ahead of the room's): it was dropped, so it goes again
   * once a whole interval has passed from now.
   * @param {number} now
   */
  slowed(now) {
    const p = this.outbox.inFlight;
    if (p !== undefined) p.state = "queued";
    this.#postedAt = now;
  }

  /**
   * A large room's presence frame: the count, and with a list the whole list
   * again (the room fell back under its presence limit).
   * @param {PresenceFrame} f
   */
  presence(f) {
    this.onlineCount = f.count;
    if (f.online !== undefined) this.online = new Map(f.online.map((u) => [u.id, u]));
  }

  /** True when the room has more people online than the list holds. */
  get partial() {
    return this.onlineCount > this.online.size;
  }

  /**
   * True when someone else online goes by a name that reads the same: the
   * page then shows a short id next to both.
   * @param {User} u
   */
  ambiguous(u) {
    const name = foldName(u.name);
    for (const other of this.online.values()) if (other.id !== u.id && foldName(other.name) === name) return true;
    return false;
  }

  /**
   * A socket closed. Decides whether to connect again: not while banned.
   * A 4003 says so with its reason; once banned, a connect that fails before
   * its `welcome` is the room's `403` (a browser cannot read the status of a
   * refused upgrade), so the page stops there rather than retry for ever. A
   * timed ban is tried again once it has run out; if the room still refuses
   * BAN_RETRIES times, the page stops and no longer promises an end.
   * @param {{ code: number, reason: string, welcomed: boolean }} close
   * @param {number} now  ms since the epoch
   * @returns {"retry" | "banned"}
   */
  closed(close, now) {
    if (close.code === CLOSE_BANNED) {
      this.ban = parseBan(close.reason);
      this.#refusedAfterBan = 0;
    } else if (close.welcomed || this.ban === null) {
      return "retry";
    }
    const ban = this.ban;
    if (ban.until === null || ban.until > now) return "banned";
    if (close.code === CLOSE_BANNED || ++this.#refusedAfterBan < BAN_RETRIES) return "retry";
    this.ban = { reason: ban.reason, until: null };
    return "banned";
  }

  /**
   * @param {User} user
   * @returns {boolean} false when the user was already online (another of their sockets)
   */
  join(user) {
    if (this.online.has(user.id)) return false;
    const partial = this.partial;
    this.online.set(user.id, user);
    this.#recount(partial, 1);
    return true;
  }

  /** @param {User} user */
  leave(user) {
    const partial = this.partial;
    if (this.online.delete(user.id)) this.#recount(partial, -1);
  }

  /**
   * Joins and leaves come while the whole list is known, and the count is
   * then the list's; should one arrive while the list is a sample, it moves
   * the count by one.
   * @param {boolean} partial  before the change
   * @param {1 | -1} delta
   */
  #recount(partial, delta) {
    this.onlineCount = partial ? Math.max(this.online.size, this.onlineCount + delta) : this.online.size;
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
    const bucket = b.tokens >= 1 ? 0 : Math.ceil(((1 - b.tokens) / this.limits.perSec) * 1000);
    return Math.max(bucket, this.slowWait(now));
  }

  /**
   * A message went out on the socket.
   * @param {Pending} p
   * @param {number} now  the clock of `sendWait`
   */
  sent(p, now) {
    this.#bucket.tokens -= 1;
    this.#postedAt = now;
    p.state = "sending";
  }

  /** The room refused a send with `rate_limited`: it was dropped, and the bucket is empty. */
  rateLimited() {
    const p = this.outbox.inFlight;
    if (p !== undefined) p.state = "queued";
    this.#bucket.tokens = 0;
  }
}
