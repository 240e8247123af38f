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
const AUTH = "edge-chat:auth";
const BAN = "edge-chat:ban:";
const MAX_RECENT = 8;

/** @type {Map<string, string>} */
const memory = new Map();

/**
 * The host's JWT lives for the tab only (sessionStorage): it is a
 * credential, and a reload of the same tab should not turn a signed-in user
 * into a guest, but a new tab gets a new one from the host.
 * @param {string} key
 */
function readSession(key) {
  try {
    return sessionStorage.getItem(key) ?? memory.get(key) ?? null;
  } catch {
    return memory.get(key) ?? null;
  }
}

/**
 * @param {string} key
 * @param {string} value
 */
function writeSession(key, value) {
  memory.set(key, value);
  try {
    sessionStorage.setItem(key, value);
  } catch {
    // Storage disabled: memory only.
  }
}

/** @param {string} key */
function forget(key) {
  memory.delete(key);
  try {
    localStorage.removeItem(key);
  } catch {
    // Nothing stored.
  }
}

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
  /** @returns {string | null} */
  get auth() {
    return readSession(AUTH);
  },
  set auth(value) {
    if (value !== null) writeSession(AUTH, value);
  },
  /**
   * The ban this browser was told of in a room (the 4003 close), so a reload
   * can still say why it cannot connect: the room's later `403` cannot be
   * read by a page. Kept per identity: tabs of one browser may be different
   * users, and one user's welcome must not clear another's ban.
   * @param {string} room
   * @param {string} holder  who was banned (see banHolder in app.js)
   * @returns {import("./state.js").Ban | null}
   */
  ban(room, holder) {
    const raw = read(`${BAN}${room}:${holder}`);
    if (raw === null) return null;
    try {
      /** @type {unknown} */
      const v = JSON.parse(raw);
      if (typeof v !== "object" || v === null) return null;
      const { reason, until } = /** @type {Record<string, unknown>} */ (v);
      if (typeof reason !== "string" || !(until === null || (typeof until === "number" && Number.isFinite(until))))
        return null;
      return { reason, until };
    } catch {
      return null;
    }
  },
  /**
   * @param {string} room
   * @param {string} holder
   * @param {import("./state.js").Ban | null} ban
   */
  setBan(room, holder, ban) {
    const key = `${BAN}${room}:${holder}`;
    if (ban === null) forget(key);
    else write(key, JSON.stringify(ban));
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
