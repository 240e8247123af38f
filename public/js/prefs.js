// @ts-check
// What the browser remembers between visits: the display name, the identity
// token from `welcome` (global: one token keeps the same user id in every
// room) and recently visited rooms. Storage can be unavailable (disabled
// cookies, some private modes, a sandboxed frame); then everything is kept in
// memory for the life of the page. The token above all: without it every
// reconnect would make this page a new user, whose own messages it could not
// tell apart from anyone else's.

const NAME = "edge-chat:name";
const TOKEN = "edge-chat:token";
const ROOMS = "edge-chat:rooms";
const MAX_RECENT = 8;

/** @type {Map<string, string>} */
const memory = new Map();

/** @param {string} key */
function read(key) {
  try {
    return localStorage.getItem(key) ?? memory.get(key) ?? null;
  } catch {
    return memory.get(key) ?? null;
  }
}

/**
 * @param {string} key
 * @param {string} value
 */
function write(key, value) {
  memory.set(key, value);
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage full or disabled: keep going without remembering.
  }
}

export const prefs = {
  /** @returns {string | null} */
  get name() {
    return read(NAME);
  },
  set name(value) {
    if (value !== null) write(NAME, value);
  },
  /** @returns {string | null} */
  get token() {
    return read(TOKEN);
  },
  set token(value) {
    if (value !== null) write(TOKEN, value);
  },
  /** @returns {string[]} most recent first */
  get rooms() {
    const raw = read(ROOMS);
    if (raw === null) return [];
    try {
      /** @type {unknown} */
      const v = JSON.parse(raw);
      return Array.isArray(v) ? v.filter((r) => typeof r === "string").slice(0, MAX_RECENT) : [];
    } catch {
      return [];
    }
  },
  /** @param {string} room */
  visit(room) {
    const rooms = [room, ...this.rooms.filter((r) => r !== room)].slice(0, MAX_RECENT);
    write(ROOMS, JSON.stringify(rooms));
  },
};
