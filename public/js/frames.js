// @ts-check
// Narrows what arrives on the socket from `unknown` to the protocol's types,
// once, at the boundary (STYLE.md). The server is ours, but a proxy, an old
// deploy or a bug must not crash the page or smuggle a non-string into the
// DOM, so every field the client uses is checked before it is trusted.

// The types are the protocol's (src/protocol.ts), plus what the page reads
// of issue 11's large rooms (`onlineCount`, `presence` counts), which are not
// there yet; a `delete`'s `by` is not shown, so not required.

/** @typedef {import("../../src/protocol.ts").ErrorCode} ErrorCode */
/** @typedef {import("../../src/protocol.ts").User} User */
/** @typedef {import("../../src/protocol.ts").Limits} Limits */
/** @typedef {import("../../src/protocol.ts").Message} Message */
/** @typedef {import("../../src/protocol.ts").WelcomeFrame & { onlineCount?: number }} WelcomeFrame */
/** @typedef {import("../../src/protocol.ts").PresenceFrame} JoinLeaveFrame */
/** @typedef {import("../../src/protocol.ts").ErrorFrame} ErrorFrame */
/** @typedef {{ type: "delete", id: number, ts: number }} DeleteFrame */
/** @typedef {import("../../src/protocol.ts").SettingsFrame} SettingsFrame */
/** A large room's presence: the count alone, or with `online` the whole list again. */
/** @typedef {{ type: "presence", count: number, online?: User[] }} PresenceFrame */
/** @typedef {Message | JoinLeaveFrame | DeleteFrame | SettingsFrame | PresenceFrame} BroadcastFrame */
/** @typedef {WelcomeFrame | ErrorFrame | BroadcastFrame | { type: "batch", frames: BroadcastFrame[] }} ServerFrame */
/** @typedef {import("../../src/protocol.ts").ClientFrame} ClientFrame */
/** @typedef {import("../../src/protocol.ts").ClientDelete | import("../../src/protocol.ts").ClientBan | import("../../src/protocol.ts").ClientSettings} ModerationFrame */

/**
 * @param {unknown} v
 * @returns {v is Record<string, unknown>}
 */
function isRecord(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** @param {unknown} v */
function isId(v) {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0;
}

/**
 * @param {unknown} v
 * @returns {User | null}
 */
function user(v) {
  if (!isRecord(v) || typeof v.id !== "string" || typeof v.name !== "string") return null;
  /** @type {User} */
  const u = { id: v.id, name: v.name };
  if (v.verified === true) {
    u.verified = true;
    if (Array.isArray(v.roles)) u.roles = v.roles.filter((r) => typeof r === "string");
  }
  return u;
}

/** @param {unknown} v */
function isCount(v) {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * @param {unknown} v
 * @returns {Message | null}
 */
function message(v) {
  if (!isRecord(v) || v.type !== "message" || !isId(v.id)) return null;
  if (typeof v.ts !== "number" || !Number.isFinite(v.ts) || typeof v.text !== "string") return null;
  const from = user(v.from);
  if (from === null) return null;
  /** @type {Message} */
  const m = { type: "message", id: /** @type {number} */ (v.id), ts: v.ts, from, text: v.text };
  if (typeof v.nonce === "string") m.nonce = v.nonce;
  // A tombstone: whatever `text` says, nothing of the message is shown.
  if (v.deleted === true) {
    m.deleted = true;
    m.text = "";
  }
  return m;
}

/**
 * @template T
 * @param {unknown} v
 * @param {(x: unknown) => T | null} item
 * @returns {T[] | null}
 */
function list(v, item) {
  if (!Array.isArray(v)) return null;
  /** @type {T[]} */
  const out = [];
  for (const x of v) {
    const parsed = item(x);
    if (parsed === null) return null;
    out.push(parsed);
  }
  return out;
}

/**
 * @param {unknown} v
 * @returns {Limits | null}
 */
function limits(v) {
  if (!isRecord(v)) return null;
  const keys = /** @type {const} */ (["history", "text", "name", "burst", "perSec"]);
  for (const k of keys) if (typeof v[k] !== "number" || !(Number(v[k]) > 0)) return null;
  /** @type {Limits} */
  const out = {
    history: Number(v.history),
    text: Number(v.text),
    name: Number(v.name),
    burst: Number(v.burst),
    perSec: Number(v.perSec),
  };
  if (isCount(v.slowMode)) out.slowMode = Number(v.slowMode);
  return out;
}

/**
 * One text frame from the server, or null when it is not a frame this
 * client understands (ignored, so a newer server can add frame types).
 * @param {string} raw
 * @returns {ServerFrame | null}
 */
export function parseServerFrame(raw) {
  /** @type {unknown} */
  let v;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (isRecord(v) && v.type === "batch") {
    // The batching extension (docs/PROTOCOL.md): broadcasts gathered by the room.
    const frames = list(v.frames, (f) => {
      const frame = frameOf(f);
      return frame === null || frame.type === "welcome" || frame.type === "error" || frame.type === "batch"
        ? null
        : frame;
    });
    return frames === null ? null : { type: "batch", frames };
  }
  return frameOf(v);
}

/**
 * @param {unknown} v
 * @returns {ServerFrame | null}
 */
function frameOf(v) {
  if (!isRecord(v)) return null;
  switch (v.type) {
    case "message":
      return message(v);
    case "welcome": {
      const you = user(v.you);
      const online = list(v.online, user);
      const history = list(v.history, message);
      const lim = limits(v.limits);
      if (you === null || online === null || history === null || lim === null) return null;
      if (typeof v.room !== "string" || typeof v.token !== "string") return null;
      /** @type {WelcomeFrame} */
      const w = {
        type: "welcome",
        room: v.room,
        you,
        token: v.token,
        online,
        history,
        gap: v.gap === true,
        limits: lim,
      };
      if (isCount(v.onlineCount)) w.onlineCount = Number(v.onlineCount);
      return w;
    }
    case "delete":
      if (!isId(v.id)) return null;
      return { type: "delete", id: Number(v.id), ts: typeof v.ts === "number" ? v.ts : Date.now() };
    case "settings":
      return isCount(v.slowMode) ? { type: "settings", slowMode: Number(v.slowMode) } : null;
    case "presence": {
      if (!isCount(v.count)) return null;
      if (v.online === undefined) return { type: "presence", count: Number(v.count) };
      const online = list(v.online, user);
      return online === null ? null : { type: "presence", count: Number(v.count), online };
    }
    case "join":
    case "leave": {
      const u = user(v.user);
      if (u === null) return null;
      return { type: v.type, user: u, ts: typeof v.ts === "number" ? v.ts : Date.now() };
    }
    case "error": {
      if (typeof v.code !== "string") return null;
      const message = typeof v.message === "string" ? v.message : "";
      /** @type {ErrorFrame} */
      const e = { type: "error", code: /** @type {ErrorCode} */ (v.code), message };
      if (typeof v.nonce === "string") e.nonce = v.nonce;
      return e;
    }
    default:
      return null;
  }
}
