// @ts-check
// The protocol's input rules, mirrored for the user's sake only (the server
// enforces them): the browser cannot load src/protocol.ts without a build
// step, so these few lines repeat its normalizeRoom / normalizeName and
// count in code points like the server does.

import { parseFragment } from "./auth.js";

export const DEFAULT_ROOM = "lobby";
export const MAX_ROOM_LENGTH = 64;
export const MAX_NAME_LENGTH = 32;

/** @type {import("./frames.js").Limits} */
export const DEFAULT_LIMITS = { history: 100, text: 2000, name: 32, burst: 10, perSec: 5 };

const ROOM = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /\p{Cs}/u;
const BIDI_CONTROL = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const INVISIBLE = /[\u00ad\u200b\u2060\ufeff\u115f\u1160\u3164\uffa0]/u;
const BOT_NAME = "bot";

/** Length in Unicode code points, the unit of every text limit. */
export function codePointLength(/** @type {string} */ s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * @param {string} raw
 * @returns {string | null}
 */
export function normalizeRoom(raw) {
  if (raw.length < 1 || raw.length > MAX_ROOM_LENGTH || !ROOM.test(raw)) return null;
  return raw.toLowerCase();
}

/**
 * @param {string} raw
 * @returns {string | null}
 */
export function normalizeName(raw) {
  if (BIDI_CONTROL.test(raw) || INVISIBLE.test(raw)) return null;
  const name = raw.trim();
  const n = codePointLength(name);
  if (n < 1 || n > MAX_NAME_LENGTH || LONE_SURROGATE.test(name) || CONTROL.test(name)) return null;
  if (name.toLowerCase() === BOT_NAME) return null;
  return name;
}

/**
 * The room named by the page's URL: `?room=ops` first, then `#ops` (or
 * `#ops&auth=…`, see auth.js).
 * @param {{ search: string, hash: string }} loc
 * @returns {{ room: string, invalid: string | null }}
 */
export function roomFromLocation(loc) {
  const raw = new URLSearchParams(loc.search).get("room") ?? parseFragment(loc.hash).room ?? "";
  if (raw === "") return { room: DEFAULT_ROOM, invalid: null };
  const room = normalizeRoom(raw);
  return room === null ? { room: DEFAULT_ROOM, invalid: raw } : { room, invalid: null };
}

/**
 * The shareable address of a room.
 * @param {string} room
 */
export function roomUrl(room) {
  const url = new URL("/", location.href);
  if (room !== DEFAULT_ROOM) url.searchParams.set("room", room);
  return url.href;
}

/**
 * What is sent for what was typed: blank lines around the text dropped,
 * everything else (indentation, inner blank lines) exactly as typed.
 * @param {string} typed
 */
export function composeText(typed) {
  return typed.replace(/^(?:[ \t]*\r?\n)+/, "").trimEnd();
}
