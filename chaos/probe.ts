// A bare WebSocket for the fuzz run: no reconnects, no politeness, every
// event queued in order so a test can say "the next thing the server does
// is close with 1009" and wait for exactly that.

import WebSocket from "ws";
import type { ServerFrame, WelcomeFrame } from "../src/protocol.ts";
import { narrowServerFrame } from "../tools/harness/frames.ts";

export type ProbeEvent =
  | { kind: "frame"; frame: ServerFrame }
  | { kind: "pong" }
  | { kind: "malformed"; why: string }
  | { kind: "close"; code: number; reason: string }
  | { kind: "timeout" };

export function show(e: ProbeEvent): string {
  switch (e.kind) {
    case "frame":
      return e.frame.type === "error"
        ? `error ${e.frame.code}`
        : e.frame.type === "message"
          ? `message #${e.frame.id}`
          : e.frame.type;
    case "close":
      return `close ${e.code}${e.reason ? ` (${e.reason})` : ""}`;
    case "malformed":
      return `malformed frame: ${e.why}`;
    default:
      return e.kind;
  }
}

export class Probe {
  readonly events: ProbeEvent[] = [];
  private read = 0;
  private wake: (() => void) | null = null;
  welcome: WelcomeFrame | null = null;
  closed: { code: number; reason: string } | null = null;

  private readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data, isBinary) => {
      if (isBinary) return this.push({ kind: "malformed", why: "binary frame from the server" });
      const raw = data.toString();
      if (raw === "pong") return this.push({ kind: "pong" });
      const f = narrowServerFrame(raw);
      this.push(f.ok ? { kind: "frame", frame: f.value } : { kind: "malformed", why: f.why });
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.push({ kind: "close", code, reason: reason.toString() });
    });
    ws.on("error", () => {
      // `close` follows.
    });
  }

  /** Opens a socket and waits for its welcome; an HTTP refusal is returned as its status. */
  static async open(url: string, timeoutMs = 10_000): Promise<Probe | { status: number } | { error: string }> {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs, maxPayload: 1 << 24 });
    return new Promise((resolve) => {
      let settled = false;
      const done = (v: Probe | { status: number } | { error: string }): void => {
        if (!settled) {
          settled = true;
          resolve(v);
        }
      };
      const probe = new Probe(ws);
      ws.on("unexpected-response", (_req, res) => {
        res.resume();
        ws.terminate();
        done({ status: res.statusCode ?? 0 });
      });
      ws.on("close", () => done({ error: "closed before welcome" }));
      ws.on("error", (e) => done({ error: e.message }));
      void probe.next(timeoutMs).then((e) => {
        if (e.kind === "frame" && e.frame.type === "welcome") {
          probe.welcome = e.frame;
          done(probe);
        } else {
          ws.terminate();
          done({ error: `first event: ${show(e)}` });
        }
      });
    });
  }

  private push(e: ProbeEvent): void {
    this.events.push(e);
    this.wake?.();
  }

  /** The next event, or `timeout`. */
  async next(timeoutMs = 10_000): Promise<ProbeEvent> {
    const end = Date.now() + timeoutMs;
    while (this.read >= this.events.length) {
      const left = end - Date.now();
      if (left <= 0) return { kind: "timeout" };
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
    const event = this.events[this.read++];
    return event ?? { kind: "timeout" };
  }

  /** Events until the socket closes (or the time is up); the close is the last one. */
  async drain(timeoutMs: number): Promise<ProbeEvent[]> {
    const out: ProbeEvent[] = [];
    const end = Date.now() + timeoutMs;
    for (;;) {
      const e = await this.next(Math.max(1, end - Date.now()));
      out.push(e);
      if (e.kind === "close" || e.kind === "timeout") return out;
    }
  }

  /** Every event not read yet, marking them read. */
  take(): ProbeEvent[] {
    const out = this.events.slice(this.read);
    this.read = this.events.length;
    return out;
  }

  send(data: string | Buffer, binary = false): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data, { binary });
  }

  close(): void {
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "done");
  }

  terminate(): void {
    this.ws.terminate();
  }
}
