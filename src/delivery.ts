// Delivery: how frames reach the sockets an object holds, the same in a
// one-object room and in a part of a large room.
//
// - Every outgoing frame goes through `send` (one socket) or `broadcast`
//   (every socket, serialized once, in one loop, so every socket sees frames
//   in the same order). A socket whose send throws is closed with 1011 and
//   the others still get the frame (partyserver does the same).
// - The batch window (`?batch=1`, batch.ts): a socket that asked for batches
//   gets broadcasts gathered into one frame every BATCH_MS. A frame meant for
//   it alone (an error) first flushes what is queued, so an answer never
//   overtakes a broadcast sent before it.
// - Slow readers: a socket that acks and falls more than HISTORY_SIZE
//   messages behind is not reading. workerd queues what we send it in memory
//   without limit (there is no bufferedAmount to look at), so it is closed
//   with 1008 rather than fed; its client reconnects with `after` and catches
//   up from storage.
//
// Hibernation: what delivery needs of a socket (`batch`, `acked`) is the
// owner's, read through `recipients` at every broadcast, so it lives where
// the owner keeps it (a room: the socket's attachment). Only the batch queue
// is memory, and a pending flush timer keeps the object from hibernating, so
// nothing queued here is lost to a hibernation; an eviction closes the
// sockets too.

import { BATCH_MS, BatchQueue } from "./batch.ts";
import { CloseCode, isSendableCloseCode, type ErrorCode, type ServerFrame } from "./protocol.ts";

/** What delivery needs of a socket. */
export interface Recipient {
  /** It asked for batched broadcasts (`batch=1`). */
  readonly batch: boolean;
  /** The last message id it acknowledged; null until its first `ack` (v1 clients never send one). */
  readonly acked: number | null;
  /** False while its welcome waits (a part's socket): the welcome covers what it misses until then. */
  readonly welcomed?: boolean;
}

/** The close reason of a reader that fell too far behind. */
export const TOO_SLOW = "too far behind: reconnect with after";

export interface DeliveryOptions<R extends Recipient> {
  historySize: number;
  /** The open sockets, with what delivery needs of each; read at every broadcast and flush. */
  recipients: () => Iterable<[WebSocket, R]>;
  /** Closes a socket whose send failed (1011) or that fell behind (1008, TOO_SLOW), and forgets it. */
  close: (ws: WebSocket, code: CloseCode, reason: string) => void;
}

export class Delivery<R extends Recipient> {
  readonly #o: DeliveryOptions<R>;
  readonly #batches = new BatchQueue();
  #flushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(options: DeliveryOptions<R>) {
    this.#o = options;
  }

  /** One frame to one socket; a send that throws closes the socket. */
  send(ws: WebSocket, frame: ServerFrame): void {
    try {
      ws.send(JSON.stringify(frame));
    } catch {
      this.#o.close(ws, CloseCode.serverError, "send failed");
    }
  }

  /** An error frame for one socket, after the batch it is owed. */
  error(ws: WebSocket, recipient: R, code: ErrorCode, message: string, nonce?: string): void {
    if (recipient.batch) this.flush();
    this.send(ws, nonce === undefined ? { type: "error", code, message } : { type: "error", code, message, nonce });
  }

  /** A batching socket was welcomed now: it must not get what was queued before. */
  welcomed(ws: WebSocket, recipient: R): void {
    if (recipient.batch) this.#batches.start(ws);
  }

  /**
   * To every welcomed socket but `except`; sockets that asked for batches
   * get it with the next flush, in the same order.
   */
  broadcast(frame: ServerFrame, except?: WebSocket): void {
    const text = JSON.stringify(frame);
    let failed: WebSocket[] | undefined;
    let behind: WebSocket[] | undefined;
    let batching = false;
    const limit = frame.type === "message" ? frame.id - this.#o.historySize : Number.NEGATIVE_INFINITY;
    for (const [ws, r] of this.#o.recipients()) {
      if (r.welcomed === false) continue;
      if (r.acked !== null && r.acked < limit) (behind ??= []).push(ws);
      else if (r.batch) batching = true;
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
      this.#flushTimer ??= setTimeout(() => this.flush(), BATCH_MS);
    }
    for (const ws of failed ?? []) this.#o.close(ws, CloseCode.serverError, "send failed");
    for (const ws of behind ?? []) this.#o.close(ws, CloseCode.policyViolation, TOO_SLOW);
  }

  /** Sends every batching socket what is queued for it. */
  flush(): void {
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    if (this.#batches.empty) return;
    const batchFor = this.#batches.drain();
    let failed: WebSocket[] | undefined;
    for (const [ws, r] of this.#o.recipients()) {
      if (!r.batch || r.welcomed === false) continue;
      const text = batchFor(ws);
      if (text === null) continue;
      try {
        ws.send(text);
      } catch {
        (failed ??= []).push(ws);
      }
    }
    for (const ws of failed ?? []) this.#o.close(ws, CloseCode.serverError, "send failed");
  }
}

/**
 * Answers a client's close. web_socket_auto_reply_to_close (compatibility
 * date 2026-04-07) answers it on sockets accepted with accept(), but a
 * hibernatable socket in this workerd still waits for our reply: without it
 * the client never sees its close complete. On a socket that is already
 * closed the call is a no-op.
 */
export function answerClose(ws: WebSocket, code: number): void {
  try {
    ws.close(isSendableCloseCode(code) ? code : CloseCode.normal, "closed");
  } catch {
    // Already closed.
  }
}
