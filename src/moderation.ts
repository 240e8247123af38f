// What a room's moderators decided, kept in the room's own SQLite: bans and
// settings (v1.1 "Moderation" in docs/PROTOCOL.md), plus the slow-mode clock.
//
// Storage. Two WITHOUT ROWID tables, so a row is one B-tree entry and a write
// touches one row (a rowid table with a TEXT key writes a second row into
// its automatic index). They are created by the first write that needs them:
// a room that never moderates has no moderation tables, and reading an empty
// state (a connect, a `GET /bans`) only asks `sqlite_master` once per
// instance, which creates nothing. Memory holds all of it after the first
// read (bans are capped at MAX_BANS), so once warm a connect check, a
// message's slow-mode check and a listing read zero rows.
//
// Expiry needs no alarm: a ban keeps its `until`, every check compares it
// with the `now` it is given, and an expired ban simply stops matching. Its
// row is deleted by the next ban or unban (1 row read, 1 written each), so
// nothing wakes a sleeping room to forget a ban.
//
// Rows (from the cursors, what Cloudflare bills; measured in
// test/moderation.test.ts):
//   first use after a wake    one scan of sqlite_master (a row per table or
//                             index the room has, 3 today), then 1 per
//                             stored ban when bans are first needed and
//                             1 per stored setting when settings are
//   check on connect, warm    0
//   slow mode check           0 (PostClock is memory only, see below)
//   ban, first in the room    1 read, 3 written (CREATE TABLE, then the row)
//   ban, later                0 read, 1 written (an upsert, a re-ban of the
//                             same user too), + 1 read and 1 written per
//                             expired ban it prunes
//   unban                     1 read, 1 written; 0 when not banned
//   settings, first change    1 read, 3 written; later changes 0 read,
//                             1 written; setting the current value 0
//
// How the room wires it (the design this store is cut for):
//   - connect: `banOf(user.id, address, now)` before accepting; `address`
//     is the guest's address key (IPv6 by /64), null for a verified user, so
//     a verified user is never refused for sharing a guest's network. A hit
//     answers `403` with `bannedError(ban, now)`.
//   - `delete` frame / `DELETE /messages/{id}`: `mayDelete(user, message)`
//     (the author or a moderator), else `forbidden`. The history ring row is
//     updated in place by slot, `UPDATE messages SET text = '', nonce = NULL,
//     deletion = ? WHERE slot = ? AND id = ?` (1 row read, 1 written;
//     `deletion` keeps who deleted it and when, for a large room's parts
//     that missed the `delete` frame), and the cached ring entry replaced
//     by `tombstone(message)`. A valid message never has empty text, so
//     `text = ''` marks a tombstone (history's row mapping adds
//     `deleted: true` for it). A tombstone
//     deleted again is a silent no-op (0 rows); an id not in the ring is
//     `not_found`. Broadcast `{"type":"delete","id","by","ts"}`; over HTTP
//     with ADMIN_TOKEN, `by` is a fixed `{"id":"admin","name":"admin"}`.
//   - `ban` frame / `PUT /bans/{user}`: `ban(...)` (see rows above), then
//     close every socket of that user with 4003 and `banCloseReason(ban)`;
//     for a guest also every guest socket from its address. `purge`: one
//     tombstone update per kept message of that user (1 read + 1 written
//     each, at most HISTORY_SIZE) and one `delete` broadcast each.
//   - `unban` frame / `DELETE /bans/{user}`: `unban(...)`; `204` either way.
//   - `settings` frame / `PATCH /settings`: `setSettings(...)`, broadcast
//     `{"type":"settings","slowMode"}`; `welcome.limits.slowMode` from
//     `settings()` (0 rows once warm).
//   - `GET /bans`: `list(now)`, 0 rows once warm. `GET /stats`: the room's
//     memory (sockets, presence, last id, `list(now).bans.length`), 0 rows.
//   - slow mode: `PostClock`, below.

import type { RowCost } from "./history.ts";
import { MAX_SLOW_MODE_SECONDS, type BanEntry, type BannedError, type RoomSettings, type User } from "./protocol.ts";

/**
 * A room keeps at most this many bans, so a wake never reads more than this
 * many rows and memory stays small (about 200 bytes a ban). Timed bans make
 * room as they expire; past the cap `ban` refuses rather than dropping one.
 */
export const MAX_BANS = 10_000;

/** RFC 6455 5.5: a close frame's payload is at most 125 bytes, 2 of them the code. */
export const MAX_CLOSE_REASON_BYTES = 123;

const MAX_SLOW_MODE_MS = MAX_SLOW_MODE_SECONDS * 1000;

const BANS = "moderation_bans";
const SETTINGS = "moderation_settings";

const BANS_SCHEMA = `CREATE TABLE IF NOT EXISTS ${BANS} (
  user_id TEXT PRIMARY KEY,
  address TEXT,
  until INTEGER,
  reason TEXT,
  banned_at INTEGER NOT NULL,
  banned_by TEXT NOT NULL
) WITHOUT ROWID`;

// One row per setting, so adding a setting later needs no ALTER TABLE.
const SETTINGS_SCHEMA = `CREATE TABLE IF NOT EXISTS ${SETTINGS} (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID`;

export interface Ban {
  user: string;
  /** The address key the ban also covers (a guest's), or null. */
  address: string | null;
  /** Milliseconds since the epoch; null: until unbanned. */
  until: number | null;
  reason: string | null;
  at: number;
  /** Who banned: a moderator's user id, or `admin` for the HTTP API's ADMIN_TOKEN. */
  by: string;
}

export interface BanInput {
  user: string;
  address: string | null;
  minutes?: number;
  reason?: string;
  by: string;
}

type BanRow = {
  user_id: string;
  address: string | null;
  until: number | null;
  reason: string | null;
  banned_at: number;
  banned_by: string;
};

type SettingRow = { name: string; value: number };

export const DEFAULT_SETTINGS: Readonly<RoomSettings> = { slowMode: 0 };

function isActive(ban: Ban, now: number): boolean {
  return ban.until === null || ban.until > now;
}

function entry(ban: Ban): BanEntry {
  return ban.reason === null
    ? { user: ban.user, until: ban.until }
    : { user: ban.user, until: ban.until, reason: ban.reason };
}

/** Adds what a cursor touched to `cost`; call after the cursor is consumed. */
function tally(cost: RowCost, cursor: SqlStorageCursor<Record<string, SqlStorageValue>>): void {
  cost.rowsRead += cursor.rowsRead;
  cost.rowsWritten += cursor.rowsWritten;
}

const noCost = (): RowCost => ({ rowsRead: 0, rowsWritten: 0 });

export class Moderation {
  readonly #sql: SqlStorage;
  // Which of the two tables exist; null until the first read asks.
  #tables: Set<string> | null = null;
  // Every stored ban by user id, expired ones included until a write prunes
  // them, and the user ids of the bans covering each address.
  #bans: Map<string, Ban> | null = null;
  readonly #byAddress = new Map<string, Set<string>>();
  #settings: RoomSettings | null = null;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /** The ban that refuses this user (or, when `address` is given, this address) at `now`, or null. */
  banOf(user: string, address: string | null, now: number): { ban: Ban | null; cost: RowCost } {
    const cost = noCost();
    const bans = this.#loadBans(cost);
    const own = bans.get(user);
    if (own !== undefined && isActive(own, now)) return { ban: own, cost };
    if (address === null) return { ban: null, cost };
    let found: Ban | null = null;
    for (const id of this.#byAddress.get(address) ?? []) {
      const ban = bans.get(id);
      if (ban === undefined || !isActive(ban, now)) continue;
      // The one that lasts longest answers, so the client is told the real end.
      if (found === null || ban.until === null || (found.until !== null && ban.until > found.until)) found = ban;
    }
    return { ban: found, cost };
  }

  /** The bans in force at `now`, oldest first, as `GET /api/rooms/{room}/bans` lists them. */
  list(now: number): { bans: BanEntry[]; cost: RowCost } {
    const cost = noCost();
    const active = [...this.#loadBans(cost).values()].filter((ban) => isActive(ban, now));
    active.sort((a, b) => a.at - b.at || (a.user < b.user ? -1 : 1));
    return { bans: active.map(entry), cost };
  }

  /**
   * Bans `user` from `now` for `minutes` (absent: until unbanned), replacing
   * any ban it had; a new ban without an address keeps the address of the
   * one it replaces. `ok: false` when MAX_BANS other bans are in force.
   */
  ban(input: BanInput, now: number): { ok: true; ban: Ban; cost: RowCost } | { ok: false; cost: RowCost } {
    const cost = noCost();
    const bans = this.#loadBans(cost);
    this.#prune(bans, now, cost);
    const previous = bans.get(input.user);
    if (previous === undefined && bans.size >= MAX_BANS) return { ok: false, cost };
    const ban: Ban = {
      user: input.user,
      address: input.address ?? previous?.address ?? null,
      until: input.minutes === undefined ? null : now + input.minutes * 60_000,
      reason: input.reason ?? null,
      at: now,
      by: input.by,
    };
    this.#create(BANS, BANS_SCHEMA, cost);
    const cursor = this.#sql.exec(
      `INSERT INTO ${BANS} (user_id, address, until, reason, banned_at, banned_by) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET address = excluded.address, until = excluded.until,
         reason = excluded.reason, banned_at = excluded.banned_at, banned_by = excluded.banned_by`,
      ban.user,
      ban.address,
      ban.until,
      ban.reason,
      ban.at,
      ban.by,
    );
    tally(cost, cursor);
    if (previous !== undefined) this.#forget(previous);
    this.#remember(ban);
    return { ok: true, ban, cost };
  }

  /** Ends the ban of `user`; false when it had none in force. */
  unban(user: string, now: number): { removed: boolean; cost: RowCost } {
    const cost = noCost();
    const bans = this.#loadBans(cost);
    const ban = bans.get(user);
    const removed = ban !== undefined && isActive(ban, now);
    if (ban !== undefined) this.#delete(ban, cost);
    this.#prune(bans, now, cost);
    return { removed, cost };
  }

  settings(): { settings: RoomSettings; cost: RowCost } {
    const cost = noCost();
    return { settings: this.#loadSettings(cost), cost };
  }

  /** Stores settings that changed; a value equal to the current one costs no row. */
  setSettings(next: RoomSettings): { settings: RoomSettings; cost: RowCost } {
    const cost = noCost();
    const current = this.#loadSettings(cost);
    if (next.slowMode !== current.slowMode) {
      this.#create(SETTINGS, SETTINGS_SCHEMA, cost);
      const cursor = this.#sql.exec(
        `INSERT INTO ${SETTINGS} (name, value) VALUES ('slowMode', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
        next.slowMode,
      );
      tally(cost, cursor);
    }
    this.#settings = { slowMode: next.slowMode };
    return { settings: { ...this.#settings }, cost };
  }

  #exists(table: string, cost: RowCost): boolean {
    if (this.#tables === null) {
      // A read of the schema, not CREATE TABLE IF NOT EXISTS: reading must
      // leave a room that never moderated without storage.
      const cursor = this.#sql.exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
        BANS,
        SETTINGS,
      );
      this.#tables = new Set(cursor.toArray().map((row) => row.name));
      tally(cost, cursor);
    }
    return this.#tables.has(table);
  }

  #create(table: string, schema: string, cost: RowCost): void {
    if (this.#exists(table, cost)) return;
    tally(cost, this.#sql.exec(schema));
    this.#tables?.add(table);
  }

  #loadBans(cost: RowCost): Map<string, Ban> {
    if (this.#bans !== null) return this.#bans;
    this.#bans = new Map();
    this.#byAddress.clear();
    if (!this.#exists(BANS, cost)) return this.#bans;
    const cursor = this.#sql.exec<BanRow>(`SELECT user_id, address, until, reason, banned_at, banned_by FROM ${BANS}`);
    for (const row of cursor) {
      this.#remember({
        user: row.user_id,
        address: row.address,
        until: row.until,
        reason: row.reason,
        at: row.banned_at,
        by: row.banned_by,
      });
    }
    tally(cost, cursor);
    return this.#bans;
  }

  #loadSettings(cost: RowCost): RoomSettings {
    if (this.#settings !== null) return this.#settings;
    const settings = { ...DEFAULT_SETTINGS };
    if (this.#exists(SETTINGS, cost)) {
      const cursor = this.#sql.exec<SettingRow>(`SELECT name, value FROM ${SETTINGS}`);
      for (const row of cursor) if (row.name === "slowMode") settings.slowMode = row.value;
      tally(cost, cursor);
    }
    this.#settings = settings;
    return settings;
  }

  #remember(ban: Ban): void {
    this.#bans?.set(ban.user, ban);
    if (ban.address === null) return;
    let users = this.#byAddress.get(ban.address);
    if (users === undefined) this.#byAddress.set(ban.address, (users = new Set()));
    users.add(ban.user);
  }

  #forget(ban: Ban): void {
    this.#bans?.delete(ban.user);
    if (ban.address === null) return;
    const users = this.#byAddress.get(ban.address);
    users?.delete(ban.user);
    if (users?.size === 0) this.#byAddress.delete(ban.address);
  }

  #delete(ban: Ban, cost: RowCost): void {
    tally(cost, this.#sql.exec(`DELETE FROM ${BANS} WHERE user_id = ?`, ban.user));
    this.#forget(ban);
  }

  /** Deletes the rows of bans that have expired; called only on a write, so reads never write. */
  #prune(bans: Map<string, Ban>, now: number, cost: RowCost): void {
    for (const ban of [...bans.values()]) if (!isActive(ban, now)) this.#delete(ban, cost);
  }
}

/** The `403` body for a banned user's upgrade (the contract's `{"error":"banned"}` plus when it ends and why). */
/**
 * Whether a ban closes a socket of `user` from `address`: every socket of the
 * banned user, and for a guest's ban every guest socket from its address (a
 * verified user is never closed for sharing a guest's network). The room and
 * its parts close their own sockets by it; `address` is undefined for a
 * part's socket whose address the part did not say (older code).
 */
export function covers(ban: Pick<Ban, "user" | "address">, user: User, address: string | undefined): boolean {
  return user.id === ban.user || (ban.address !== null && user.verified !== true && address === ban.address);
}

export function bannedError(ban: Ban): BannedError {
  const message =
    ban.until === null
      ? "you are banned from this room"
      : `you are banned from this room until ${new Date(ban.until).toISOString()}`;
  const body: BannedError = { error: "banned", message, until: ban.until };
  if (ban.reason !== null) body.reason = ban.reason;
  return body;
}

/**
 * The reason of a 4003 close: `banned`, `until <ISO time>` for a timed ban,
 * then `: ` and the moderator's reason cut to fit a close frame. A browser
 * never sees the body of a refused upgrade (only a 1006 close), so this is
 * the one place a banned web user can learn why and for how long; the time
 * comes first so it survives the cut.
 */
export function banCloseReason(ban: Pick<Ban, "until" | "reason">): string {
  const head =
    ban.until === null ? "banned" : `banned until ${new Date(ban.until).toISOString().replace(/\.\d{3}Z$/, "Z")}`;
  return truncateUtf8(ban.reason === null ? head : `${head}: ${ban.reason}`, MAX_CLOSE_REASON_BYTES);
}

const encoder = new TextEncoder();

/** `text` cut to at most `maxBytes` of UTF-8 at a code point boundary, with "…" when cut. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (encoder.encode(text).length <= maxBytes) return text;
  const room = maxBytes - 3; // "…" is 3 bytes
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const size = encoder.encode(char).length;
    if (bytes + size > room) break;
    bytes += size;
    end += char.length;
  }
  return `${text.slice(0, end)}…`;
}

/**
 * Slow mode's memory: when each user last posted. Kept in memory, not in
 * SQLite: a row per post would double what a message costs (the contract
 * keeps it at one row). What a wake loses, the room rebuilds with `note`
 * from what it reads anyway: the `ts` of each user's newest message in the
 * history ring (loaded by the first append), and a `lastPost` snapshot in
 * each socket's attachment, written with the rate bucket it already
 * serializes on every message. Only a user whose last post left the ring,
 * whose posting socket closed and whose room was evicted in between gets to
 * post early once.
 */
export class PostClock {
  readonly #last = new Map<string, number>();
  #pruneAt = 1024;

  /** Records a post at `ts`, or a snapshot read back after a wake; the latest time wins. */
  note(user: string, ts: number): void {
    const last = this.#last.get(user);
    if (last === undefined || ts > last) this.#last.set(user, ts);
    if (this.#last.size >= this.#pruneAt) this.#prune(ts);
  }

  /** Users remembered now (for the stats endpoint and tests). */
  get size(): number {
    return this.#last.size;
  }

  /** Milliseconds `user` must still wait at `now` under a slow mode of `seconds`; 0 when it may post. */
  wait(user: string, now: number, seconds: number): number {
    if (seconds <= 0) return 0;
    const last = this.#last.get(user);
    if (last === undefined) return 0;
    return Math.max(0, last + seconds * 1000 - now);
  }

  // Posts older than the longest slow mode can never make anyone wait.
  #prune(now: number): void {
    for (const [user, ts] of this.#last) if (now - ts >= MAX_SLOW_MODE_MS) this.#last.delete(user);
    this.#pruneAt = Math.max(1024, this.#last.size * 2);
  }
}
