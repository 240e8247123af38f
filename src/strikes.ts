// The error rule (docs/PROTOCOL.md, close codes): a socket that draws
// MAX_ERRORS_PER_WINDOW error frames within ERROR_WINDOW_MS is closed with
// 1008 once the last of them is sent, and nothing it sent after the frame
// that drew it is read. A room keeps a socket's strikes in its attachment
// (session.ts) and counts them with `recordStrike`; a part keeps them in a
// StrikeGate.
//
// A one-object room decides each frame before it reads the next, so there
// the rule holds by itself. A part of a large room (docs/LARGE-ROOMS.md)
// cannot decide everything itself: the room decides its sockets' publishes
// and moderation frames, and a refusal comes back a round trip later as a
// strike, by when the socket may have sent more. Read at once, a message sent
// after what turns out to be the closing strike would reach the room, which
// could store it (its bucket refilled meanwhile) after its sender was closed:
// a message nobody saw accepted, in everyone's history.
//
// So a part reads a socket's next frame only while the answers the room
// still owes that socket could not close it, even if every one of them were a
// refusal: strikes in the window + answers owed < MAX_ERRORS_PER_WINDOW.
// Otherwise the frame waits, in order, and is read when answers have come
// back. Only a socket with 20 frames in flight, or strikes already, ever
// waits, and then for one round trip to its room.
//
// No Workers APIs: the RoomPart holds a gate per socket, and the model test
// drives it with the part's stream.

import { ERROR_WINDOW_MS, MAX_ERRORS_PER_WINDOW } from "./protocol.ts";

/**
 * Times of recent error frames, oldest first, with one drawn `now` added
 * and those older than the window dropped, and whether this one closes the
 * socket.
 */
export function recordStrike(strikes: readonly number[], now: number): { strikes: number[]; closing: boolean } {
  const recent = strikes.filter((t) => now - t < ERROR_WINDOW_MS);
  recent.push(now);
  return { strikes: recent, closing: recent.length >= MAX_ERRORS_PER_WINDOW };
}

/**
 * Frames one socket may have waiting. Beyond it a frame is refused in its
 * place, with `rate_limited`, when its turn comes (a strike then, not now:
 * a strike now could close the socket before the answers it waits for).
 */
export const HOLD_LIMIT = 16;

/** A waiting frame, or the refusal that stands in for one that came beyond HOLD_LIMIT. */
export type Waiting<T> = { kind: "frame"; frame: T } | { kind: "refused"; nonce: string | undefined };

export class StrikeGate<T> {
  #strikes: number[] = [];
  readonly #waiting: Waiting<T>[] = [];
  #refusals = 0;

  /** Whether frames are waiting for answers. */
  get holding(): boolean {
    return this.#waiting.length > 0;
  }

  /** Records an error frame sent to the socket now; true when it is the one that closes the socket. */
  strike(now: number): boolean {
    const { strikes, closing } = recordStrike(this.#strikes, now);
    this.#strikes = strikes;
    return closing;
  }

  /**
   * A frame that came now, while the room owes the socket `owed` answers:
   * returned to be read at once, or null when it must wait (with `nonce`,
   * the refusal that may stand in for it).
   */
  arrive(frame: T, nonce: string | undefined, owed: number, now: number): T | null {
    if (this.#waiting.length === 0 && this.#clear(owed, now)) return frame;
    if (this.#waiting.length < HOLD_LIMIT) this.#waiting.push({ kind: "frame", frame });
    else if (this.#refusals < MAX_ERRORS_PER_WINDOW) {
      this.#waiting.push({ kind: "refused", nonce });
      this.#refusals++;
    }
    // Beyond that, so many refusals are ahead of the frame that the socket
    // is closed before its turn comes.
    return null;
  }

  /** The next waiting frame, once the answers owed now could no longer close the socket. */
  next(owed: number, now: number): Waiting<T> | undefined {
    if (this.#waiting.length === 0 || !this.#clear(owed, now)) return undefined;
    const next = this.#waiting.shift();
    if (next?.kind === "refused") this.#refusals--;
    return next;
  }

  #clear(owed: number, now: number): boolean {
    let recent = 0;
    for (const at of this.#strikes) if (now - at < ERROR_WINDOW_MS) recent++;
    return recent + owed < MAX_ERRORS_PER_WINDOW;
  }
}
