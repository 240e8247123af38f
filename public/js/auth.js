// @ts-check
// The host application's JWT (docs/PROTOCOL.md, "Identity from the host
// application"): how the page receives it and when it needs a new one. No
// DOM here; app.js wires it to `location`, `history` and `postMessage`.
//
// Two ways in:
// - the URL fragment, `#auth=JWT` or `#room&auth=JWT`: a fragment is never
//   sent to a server, and the page removes it from the address bar
//   (history.replaceState) as soon as it has read it, so it is not copied,
//   bookmarked or shared with the link;
// - `postMessage` from the page that frames this one, when that page's
//   origin is one the deployment allows. The page asks for one with
//   `{"type":"edge-chat:need-auth"}` before a connect when it has none, when
//   the one it has is about to expire, and after a connect that failed.
//
// The page never verifies a JWT (it has no key and needs none: the room
// does). It reads `exp` and `sub` only to know when to ask for a new one and
// whether a new one is a different person.

export const AUTH_MESSAGE = "edge-chat:auth";
export const NEED_AUTH_MESSAGE = "edge-chat:need-auth";
/** Ask for a new JWT this long before the current one expires. */
export const RENEW_BEFORE_MS = 60_000;
/** A JWT longer than this is not one a host would mint (and would not fit in a URL some proxies accept). */
export const MAX_JWT_LENGTH = 8192;

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * @typedef {object} Fragment
 * @property {string | null} room  the room named in the fragment, decoded, not yet validated
 * @property {string | null} auth  a JWT given as `auth=`
 * @property {string} rest  the fragment to leave in the address bar: everything but `auth`, with its `#`, or ""
 */

/**
 * Splits `#room&auth=…`. The first part without `=` is the room, so every
 * `/#room` link of v1 means what it did; `key=value` parts are parameters,
 * of which the page knows `auth` and keeps the others as they were. Room
 * names cannot hold `&` or `=`, so nothing is ambiguous.
 * @param {string} hash  `location.hash`, with or without its `#`
 * @returns {Fragment}
 */
export function parseFragment(hash) {
  const body = hash.startsWith("#") ? hash.slice(1) : hash;
  /** @type {string | null} */
  let room = null;
  /** @type {string | null} */
  let auth = null;
  /** @type {string[]} */
  const kept = [];
  for (const part of body.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq < 0) {
      if (room === null) room = decode(part);
      kept.push(part);
    } else if (part.slice(0, eq) === "auth") {
      const value = decode(part.slice(eq + 1));
      auth = isJwt(value) ? value : null;
    } else {
      kept.push(part);
    }
  }
  return { room, auth, rest: kept.length === 0 ? "" : `#${kept.join("&")}` };
}

/**
 * A fragment is whatever the link said; a broken escape (`#%E0%A4%A`) makes
 * decodeURIComponent throw, and is then taken as written.
 * @param {string} s
 */
function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The shape of a compact JWS, not its validity.
 * @param {unknown} v
 * @returns {v is string}
 */
export function isJwt(v) {
  return typeof v === "string" && v.length <= MAX_JWT_LENGTH && JWT.test(v);
}

/**
 * The claims the page reads, from the unverified payload.
 * @param {string} jwt
 * @returns {{ exp: number | null, sub: string | null }}  `exp` in ms since the epoch
 */
export function peekClaims(jwt) {
  const payload = jwt.split(".")[1] ?? "";
  try {
    const json = atob(
      payload
        .replace(/-/g, "+")
        .replace(/_/g, "/")
        .padEnd(Math.ceil(payload.length / 4) * 4, "="),
    );
    /** @type {unknown} */
    const v = JSON.parse(json);
    if (typeof v !== "object" || v === null) return { exp: null, sub: null };
    const { exp, sub } = /** @type {Record<string, unknown>} */ (v);
    return {
      exp: typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : null,
      sub: typeof sub === "string" ? sub : null,
    };
  } catch {
    return { exp: null, sub: null };
  }
}

/**
 * True when a connect should first ask the host for a new JWT.
 * @param {string} jwt
 * @param {number} now  ms since the epoch
 */
export function needsRenewal(jwt, now) {
  const { exp } = peekClaims(jwt);
  return exp !== null && exp - now < RENEW_BEFORE_MS;
}

/**
 * The origins allowed to hand this page a JWT, from
 * `<meta name="edge-chat-allowed-origins" content="…">`: the deployment's
 * `ALLOWED_ORIGINS` (comma- or space-separated origins, or `*`). Anything
 * that is not an origin (a path, a typo) is left out.
 * @param {string | null | undefined} content
 * @returns {string[]}
 */
export function parseAllowedOrigins(content) {
  /** @type {string[]} */
  const out = [];
  for (const raw of (content ?? "").split(/[\s,]+/)) {
    if (raw === "*") {
      out.push("*");
      continue;
    }
    try {
      const origin = new URL(raw).origin;
      if (origin !== "null" && origin === raw.replace(/\/$/, "")) out.push(origin);
    } catch {
      // Not a URL: not an origin.
    }
  }
  return out;
}

/**
 * The JWT in a `message` event, when it comes from the framing page and an
 * allowed origin and says `{"type":"edge-chat:auth","jwt":"…"}`; else null.
 * @param {{ data: unknown, origin: string, fromParent: boolean }} ev
 * @param {string[]} allowed
 * @returns {string | null}
 */
export function authFromMessage(ev, allowed) {
  if (!ev.fromParent) return null;
  if (!allowed.includes("*") && !allowed.includes(ev.origin)) return null;
  const data = ev.data;
  if (typeof data !== "object" || data === null || Array.isArray(data)) return null;
  const { type, jwt } = /** @type {Record<string, unknown>} */ (data);
  return type === AUTH_MESSAGE && isJwt(jwt) ? jwt : null;
}
