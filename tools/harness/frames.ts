// Narrows what the server sends from `unknown` to the wire types of
// PROTOCOL.md. The tools treat the server as untrusted input too: a
// frame that does not match the contract is a finding, not a crash.

import type {
  ErrorCode,
  ErrorFrame,
  Limits,
  Message,
  PresenceCountFrame,
  PresenceFrame,
  ServerFrame,
  User,
  WelcomeFrame,
  HistoryPage,
} from "../../src/protocol.ts";

export type Narrowed<T> = { ok: true; value: T } | { ok: false; why: string };

const ERROR_CODES: readonly ErrorCode[] = [
  "bad_json",
  "unknown_type",
  "invalid_message",
  "unsupported",
  "rate_limited",
];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function isSafeInt(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

function user(value: unknown): User | null {
  if (!isRecord(value)) return null;
  const id = own(value, "id");
  const name = own(value, "name");
  return typeof id === "string" && typeof name === "string" ? { id, name } : null;
}

export function narrowMessage(value: unknown): Narrowed<Message> {
  if (!isRecord(value) || own(value, "type") !== "message") return { ok: false, why: "not a message" };
  const id = own(value, "id");
  const ts = own(value, "ts");
  const from = user(own(value, "from"));
  const text = own(value, "text");
  const nonce = own(value, "nonce");
  if (!isSafeInt(id) || id < 1) return { ok: false, why: `message id ${String(id)} is not a positive integer` };
  if (!isSafeInt(ts)) return { ok: false, why: `message ${id}: ts is not an integer` };
  if (from === null) return { ok: false, why: `message ${id}: from is not a user` };
  if (typeof text !== "string") return { ok: false, why: `message ${id}: text is not a string` };
  if (nonce !== undefined && typeof nonce !== "string")
    return { ok: false, why: `message ${id}: nonce is not a string` };
  const message: Message = { type: "message", id, ts, from, text };
  if (nonce !== undefined) message.nonce = nonce;
  return { ok: true, value: message };
}

function messages(value: unknown, where: string): Narrowed<Message[]> {
  if (!Array.isArray(value)) return { ok: false, why: `${where} is not an array` };
  const out: Message[] = [];
  for (const item of value) {
    const m = narrowMessage(item);
    if (!m.ok) return { ok: false, why: `${where}: ${m.why}` };
    out.push(m.value);
  }
  return { ok: true, value: out };
}

function users(value: unknown, where: string): Narrowed<User[]> {
  if (!Array.isArray(value)) return { ok: false, why: `${where} is not an array` };
  const out: User[] = [];
  for (const u of value) {
    const nu = user(u);
    if (nu === null) return { ok: false, why: `${where} entry is not a user` };
    out.push(nu);
  }
  return { ok: true, value: out };
}

function limits(value: unknown): Limits | null {
  if (!isRecord(value)) return null;
  const keys = ["history", "text", "name", "burst", "perSec"] as const;
  const out = { history: 0, text: 0, name: 0, burst: 0, perSec: 0 };
  for (const k of keys) {
    const v = own(value, k);
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return null;
    out[k] = v;
  }
  return out;
}

export function narrowServerFrame(raw: string): Narrowed<ServerFrame> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, why: `not JSON: ${raw.slice(0, 80)}` };
  }
  if (!isRecord(value)) return { ok: false, why: "not a JSON object" };
  const type = own(value, "type");
  switch (type) {
    case "message":
      return narrowMessage(value);
    case "welcome": {
      const room = own(value, "room");
      const you = user(own(value, "you"));
      const token = own(value, "token");
      const online = users(own(value, "online"), "welcome.online");
      const onlineCount = own(value, "onlineCount");
      const history = messages(own(value, "history"), "welcome.history");
      const gap = own(value, "gap");
      const lim = limits(own(value, "limits"));
      if (typeof room !== "string" || you === null || typeof token !== "string")
        return { ok: false, why: "welcome: bad room/you/token" };
      if (!online.ok) return online;
      if (onlineCount !== undefined && (!isSafeInt(onlineCount) || onlineCount < 0))
        return { ok: false, why: "welcome: onlineCount is not a count" };
      if (!history.ok) return history;
      if (typeof gap !== "boolean") return { ok: false, why: "welcome: gap is not a boolean" };
      if (lim === null) return { ok: false, why: "welcome: bad limits" };
      const frame: WelcomeFrame = {
        type: "welcome",
        room,
        you,
        token,
        online: online.value,
        history: history.value,
        gap,
        limits: lim,
      };
      if (onlineCount !== undefined) frame.onlineCount = onlineCount;
      return { ok: true, value: frame };
    }
    case "join":
    case "leave": {
      const u = user(own(value, "user"));
      const ts = own(value, "ts");
      if (u === null || !isSafeInt(ts)) return { ok: false, why: `${type}: bad user/ts` };
      const frame: PresenceFrame = { type, user: u, ts };
      return { ok: true, value: frame };
    }
    case "presence": {
      const count = own(value, "count");
      if (!isSafeInt(count) || count < 0) return { ok: false, why: "presence: count is not a count" };
      const frame: PresenceCountFrame = { type: "presence", count };
      const online = own(value, "online");
      if (online !== undefined) {
        const list = users(online, "presence.online");
        if (!list.ok) return list;
        frame.online = list.value;
      }
      return { ok: true, value: frame };
    }
    case "error": {
      const code = own(value, "code");
      const message = own(value, "message");
      const known = ERROR_CODES.find((c) => c === code);
      if (known === undefined) return { ok: false, why: `error: unknown code ${String(code)}` };
      if (typeof message !== "string") return { ok: false, why: "error: message is not a string" };
      const frame: ErrorFrame = { type: "error", code: known, message };
      return { ok: true, value: frame };
    }
    default:
      return { ok: false, why: `unknown frame type ${String(type)}` };
  }
}

export function narrowHistoryPage(value: unknown): Narrowed<HistoryPage> {
  if (!isRecord(value)) return { ok: false, why: "history page is not an object" };
  const room = own(value, "room");
  const gap = own(value, "gap");
  const msgs = messages(own(value, "messages"), "page.messages");
  if (typeof room !== "string" || typeof gap !== "boolean") return { ok: false, why: "history page: bad room/gap" };
  if (!msgs.ok) return msgs;
  return { ok: true, value: { room, messages: msgs.value, gap } };
}

/** Two messages are the same stored message when everything but `type` matches. */
export function sameMessage(a: Message, b: Message): boolean {
  return (
    a.id === b.id &&
    a.ts === b.ts &&
    a.text === b.text &&
    a.nonce === b.nonce &&
    a.from.id === b.from.id &&
    a.from.name === b.from.name
  );
}

export function describe(m: Message): string {
  const text = m.text.length > 40 ? `${m.text.slice(0, 40)}…` : m.text;
  return `#${m.id} from ${m.from.id} nonce=${m.nonce ?? "-"} text=${JSON.stringify(text)}`;
}
