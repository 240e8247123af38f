// A minimal Chrome DevTools Protocol client for workerd's V8 inspector
// (Miniflare's `inspectorPort`, wrangler dev's `--inspector-port`): numbered
// requests with their answers matched by id, and events by method. The
// profiler (profile-do.ts) and the memory scenario (memory.ts) use it.
import WebSocket from "ws";

interface Target {
  id: string;
  title: string;
  webSocketDebuggerUrl: string;
}

export class Cdp {
  readonly #ws: WebSocket;
  #next = 1;
  readonly #pending = new Map<number, (result: unknown) => void>();
  readonly #listeners = new Map<string, (params: unknown) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on("message", (data: Buffer) => {
      const msg: unknown = JSON.parse(data.toString("utf8"));
      if (typeof msg !== "object" || msg === null) return;
      if ("id" in msg && typeof msg.id === "number") {
        const resolve = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        resolve?.("result" in msg ? msg.result : msg);
      } else if ("method" in msg && typeof msg.method === "string") {
        this.#listeners.get(msg.method)?.("params" in msg ? msg.params : undefined);
      }
    });
  }

  static open(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 });
      ws.once("open", () => resolve(new Cdp(ws)));
      ws.once("error", reject);
    });
  }

  /**
   * The inspector target of the Worker the harness's Miniflare host names
   * "bench" (its Durable Objects run in the same isolate), on a loopback port.
   */
  static async openWorker(inspectorPort: number): Promise<{ cdp: Cdp; targets: string[] }> {
    const listed: unknown = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
    const list = Array.isArray(listed) ? (listed as Target[]) : [];
    const target = list.find((t) => `${t.id} ${t.title}`.includes("bench")) ?? list[0];
    if (target === undefined) throw new Error("no inspector target");
    return { cdp: await Cdp.open(target.webSocketDebuggerUrl), targets: list.map((t) => t.title || t.id) };
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** One listener per event method; a later one replaces it. */
  on(method: string, listener: (params: unknown) => void): void {
    this.#listeners.set(method, listener);
  }

  close(): void {
    this.#ws.close();
  }
}
