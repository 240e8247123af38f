// @ts-check
// Messages the user typed that the room has not yet confirmed. Each one has
// a nonce; the server echoes it in the `message` frame, which is the only
// proof a message was stored. A pending message is matched by its nonce
// alone, never by the sender's id: that id changes when the page loses its
// token (storage blocked, a new token after a reset), and a stored message
// matched by nothing would be sent twice. Nonces are broadcast to everyone
// in the room, so each is drawn at random: nobody can post ahead with the
// nonce of a message this page has not sent yet.
//
// Stop-and-wait: at most one is in flight, so an `error` frame (which names
// no nonce) always belongs to that one.
//
// After a reconnect the in-flight message may or may not have been stored.
// `welcome.history` (asked with `after`) holds it with its nonce if it was;
// the caller confirms those first, and only then are the rest sent again.

/**
 * @typedef {object} Pending
 * @property {string} nonce
 * @property {string} text
 * @property {"queued" | "sending"} state
 */

export const MAX_PENDING = 50;

/** 128 random bits as 32 hex digits, well under the protocol's 64. */
function randomNonce() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Outbox {
  /** @type {Pending[]} */
  items = [];

  get full() {
    return this.items.length >= MAX_PENDING;
  }

  /**
   * @param {string} text
   * @returns {Pending | null} null when the queue is full
   */
  add(text) {
    if (this.full) return null;
    /** @type {Pending} */
    const p = { nonce: randomNonce(), text, state: "queued" };
    this.items.push(p);
    return p;
  }

  /**
   * Removes and returns the pending message with this nonce, if any.
   * @param {string | undefined} nonce
   */
  confirm(nonce) {
    if (nonce === undefined) return undefined;
    const i = this.items.findIndex((p) => p.nonce === nonce);
    return i < 0 ? undefined : this.items.splice(i, 1)[0];
  }

  /** The message sent and not yet confirmed, if any. */
  get inFlight() {
    return this.items.find((p) => p.state === "sending");
  }

  /** The next message to send, unless one is already in flight. */
  next() {
    return this.inFlight === undefined ? this.items.find((p) => p.state === "queued") : undefined;
  }

  /** @param {Pending} p */
  remove(p) {
    this.items = this.items.filter((x) => x !== p);
  }

  /** The socket is gone: whatever was in flight must be checked against history and maybe sent again. */
  unsend() {
    for (const p of this.items) p.state = "queued";
  }
}
