// The Worker-to-room contract: how a connection the Worker has admitted
// reaches the object that will hold its socket (the room, or one of its
// parts), and what that object tells the client first.
//
// The Worker checks what can be checked before a Durable Object is billed
// (origin, room name, the client's token or the host's JWT, its address) and
// decides who the client is. It sends the upgrade on with that identity in
// the query of an internal URL, which no client can reach: a room's own
// fetch and a part's take only requests the Worker built (or the room
// forwarded), so what they read here is trusted as the Worker decided it.
// What only the room can check (bans, MAX_CONNECTIONS, the address's sockets
// across the room) it checks itself; a part checks its own size.
//
// No Workers APIs beyond Request and Response.

import type { Config } from "./config.ts";
import {
  MAX_NAME_LENGTH,
  MAX_TEXT_LENGTH,
  type Limits,
  type Message,
  type User,
  type WelcomeFrame,
} from "./protocol.ts";

/** What the Worker has already checked and decided for a new connection. */
export interface Admission {
  room: string;
  /** A verified user carries `verified` and the JWT's `roles` in full. */
  user: User;
  /** The client's address key (see address.ts). */
  address: string;
  token: string;
  after: number | null;
  batch: boolean;
}

const ADMISSION_PATH = "/connect";

/** Builds the Worker-to-room request that carries an admitted connection. */
export function admissionRequest(admission: Admission): Request {
  const url = new URL(`https://room.internal${ADMISSION_PATH}`);
  url.searchParams.set("room", admission.room);
  url.searchParams.set("id", admission.user.id);
  url.searchParams.set("name", admission.user.name);
  if (admission.user.verified === true) {
    url.searchParams.set("verified", "1");
    for (const role of admission.user.roles ?? []) url.searchParams.append("role", role);
  }
  url.searchParams.set("address", admission.address);
  url.searchParams.set("token", admission.token);
  if (admission.after !== null) url.searchParams.set("after", String(admission.after));
  if (admission.batch) url.searchParams.set("batch", "1");
  return new Request(url, { headers: { Upgrade: "websocket" } });
}

/** The connection `admissionRequest` carries; null for any other request. */
export function readAdmission(request: Request): Admission | null {
  const url = new URL(request.url);
  const q = url.searchParams;
  const room = q.get("room");
  const id = q.get("id");
  const name = q.get("name");
  const address = q.get("address");
  const token = q.get("token");
  const after = q.get("after");
  if (
    url.pathname !== ADMISSION_PATH ||
    room === null ||
    id === null ||
    name === null ||
    address === null ||
    token === null
  ) {
    return null;
  }
  const user: User = q.get("verified") === "1" ? { id, name, verified: true, roles: q.getAll("role") } : { id, name };
  return { room, user, address, token, after: after === null ? null : Number(after), batch: q.get("batch") === "1" };
}

/** The answer to a request that did not come through `admissionRequest`. */
export function notAdmitted(): Response {
  return Response.json({ error: "bad_request", message: "not an admitted connection" }, { status: 400 });
}

/** `welcome.limits` under these settings; `slowMode` only while it is on. */
export function welcomeLimits(config: Config, slowMode = 0): Limits {
  const limits: Limits = {
    history: config.historySize,
    text: MAX_TEXT_LENGTH,
    name: MAX_NAME_LENGTH,
    burst: config.rateBurst,
    perSec: config.ratePerSec,
  };
  if (slowMode > 0) limits.slowMode = slowMode;
  return limits;
}

/** What the object holding the socket knows of the room when it welcomes it. */
export interface RoomView {
  online: User[];
  onlineCount: number;
  history: Message[];
  gap: boolean;
  limits: Limits;
}

/** The first frame of every connection: who the client is (as the Worker decided) and the room as it is now. */
export function welcomeFrame({ room, user, token }: Admission, view: RoomView): WelcomeFrame {
  return {
    type: "welcome",
    room,
    you: user,
    token,
    online: view.online,
    onlineCount: view.onlineCount,
    history: view.history,
    gap: view.gap,
    limits: view.limits,
  };
}
