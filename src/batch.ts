// Batched delivery, the opt-in extension `?batch=1`: a socket that asks for
// it gets the room's broadcasts (message, join, leave) gathered into one
// `{"type":"batch","frames":[…]}` frame every BATCH_MS instead of one frame
// each. Under heavy fan-out this divides the number of sends by the number of
// frames per window, and during a connect storm it turns N joins per socket
// into a handful of frames. Each frame is serialized once, when broadcast; a
// batch is the concatenation of those strings, built once per flush and
// shared by every batching socket.

/** How long a broadcast may wait for companions: Cloudflare suggests tens of ms. */
export const BATCH_MS = 25;

interface Pending {
  seq: number;
  text: string;
  except: WebSocket | undefined;
}

export class BatchQueue {
  #items: Pending[] = [];
  #seq = 0;
  // Batching sockets that were welcomed while frames were queued: their
  // welcome already covers every frame up to this sequence number.
  readonly #since = new Map<WebSocket, number>();

  get empty(): boolean {
    return this.#items.length === 0;
  }

  push(text: string, except?: WebSocket): void {
    this.#items.push({ seq: ++this.#seq, text, except });
  }

  /** Marks a socket welcomed now: it must not get what was queued before. */
  start(ws: WebSocket): void {
    if (this.#items.length > 0) this.#since.set(ws, this.#seq);
  }

  /** Empties the queue; the result gives each socket its batch frame, or null when nothing is for it. */
  drain(): (ws: WebSocket) => string | null {
    const items = this.#items;
    const since = new Map(this.#since);
    const excepted = new Set(items.flatMap((i) => (i.except === undefined ? [] : [i.except])));
    this.#items = [];
    this.#since.clear();
    const wrap = (parts: Pending[]) =>
      parts.length === 0 ? null : `{"type":"batch","frames":[${parts.map((p) => p.text).join(",")}]}`;
    const common = wrap(items);
    return (ws) => {
      const from = since.get(ws);
      if (from === undefined && !excepted.has(ws)) return common;
      return wrap(items.filter((i) => i.seq > (from ?? 0) && i.except !== ws));
    };
  }
}
