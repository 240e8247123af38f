// do-raw: the smallest Durable Object that accepts hibernatable WebSockets
// (ctx.acceptWebSocket) and re-sends each frame to every socket: no storage,
// no parsing. `/chat/{room}` addresses one object per room, like edge-chat.
// It answers each connect with a constant welcome of edge-chat's size.
//
// The Workers types are declared here, narrowly, so that this file needs no
// @cloudflare/workers-types and the bench stays outside src/'s type setup.
import { rawWelcome } from "../fixture.ts";

interface HibernatingState {
  acceptWebSocket(ws: WebSocket): void;
  getWebSockets(): WebSocket[];
}
interface RoomStub {
  fetch(request: Request): Promise<Response>;
}
interface RoomNamespace {
  idFromName(name: string): unknown;
  get(id: unknown): RoomStub;
}
interface Env {
  ROOM: RoomNamespace;
}
type UpgradeInit = ResponseInit & { webSocket: WebSocket };
declare const WebSocketPair: { new (): { 0: WebSocket; 1: WebSocket } };

const WELCOME = rawWelcome();

export class RawRoom {
  private readonly ctx: HibernatingState;
  // getWebSockets() builds a new array of wrappers on every call; a broadcast
  // per frame would pay that each time, so the set is kept in memory and
  // rebuilt from it only when the object is constructed (after a wake).
  private readonly sockets: Set<WebSocket>;

  constructor(ctx: HibernatingState) {
    this.ctx = ctx;
    this.sockets = new Set(ctx.getWebSockets());
  }

  fetch(): Response {
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    this.sockets.add(pair[1]);
    pair[1].send(WELCOME);
    const init: UpgradeInit = { status: 101, webSocket: pair[0] };
    return new Response(null, init);
  }

  webSocketMessage(_ws: WebSocket, message: string | ArrayBuffer): void {
    for (const peer of this.sockets) {
      try {
        peer.send(message);
      } catch {
        // A socket that is closing; the others still get the frame.
        this.sockets.delete(peer);
      }
    }
  }

  webSocketClose(ws: WebSocket, code: number): void {
    this.sockets.delete(ws);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code);
    } catch {
      // Already closed.
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const match = /^\/chat\/([a-z0-9][a-z0-9_-]{0,63})$/.exec(new URL(request.url).pathname);
    if (match === null) return new Response("not found", { status: 404 });
    if (request.headers.get("Upgrade") !== "websocket") return new Response("upgrade required", { status: 426 });
    return env.ROOM.get(env.ROOM.idFromName(match[1] ?? "")).fetch(request);
  },
};
