// @ts-check
// Narrows what arrives on the socket from `unknown` to the protocol's types,
// once, at the boundary (STYLE.md). The server is ours, but a proxy, an old
// deploy or a bug must not crash the page or smuggle a non-string into the
// DOM, so every field the client uses is checked before it is trusted.

/** @typedef {import("../../src/protocol.ts").ServerFrame} ServerFrame */
/** @typedef {import("../../src/protocol.ts").Message} Message */
/** @typedef {import("../../src/protocol.ts").User} User */
/** @typedef {import("../../src/protocol.ts").Limits} Limits */
/** @typedef {import("../../src/protocol.ts").ErrorCode} ErrorCode */

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
  return { id: v.id, name: v.name };
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
  return {
    history: Number(v.history),
    text: Number(v.text),
    name: Number(v.name),
    burst: Number(v.burst),
    perSec: Number(v.perSec),
  };
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
      return frame !== null && (frame.type === "message" || frame.type === "join" || frame.type === "leave") ? frame : null;
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
      return { type: "welcome", room: v.room, you, token: v.token, online, history, gap: v.gap === true, limits: lim };
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
      return { type: "error", code: /** @type {ErrorCode} */ (v.code), message };
    }
    default:
      return null;
  }
}
