import { isVerifiedUserId } from "./auth.ts";
import { tombstone, type DeleteFrame, type Message, type User } from "./protocol.ts";

// The rolling history is a fixed ring of `size` rows: message `id` lives in
// slot `id % size` and overwrites the message `size` ids older. Storing a
// message is one upsert of one row (rowsWritten = 1), there is no index but
// the primary key to maintain, no DELETE to trim, and the table can never
// outgrow the ring. The newest id is always still in the table (only a larger
// id can overwrite its slot), so ids keep increasing across restarts without a
// counter row of their own.
//
// Changing HISTORY_SIZE changes which slot an id belongs in, and a row left
// in its old slot would be overwritten by the wrong id (a ring grown from 10
// to 20 would lose ids 10 and 11 to ids 20 and 21). So the first load after
// a change moves every kept row to `id % size` and deletes the rows beyond
// the newest `size` ids, once; from then on a message is one row again.
// Within the last `size` ids every residue is different, so moved rows never
// collide. A table an older version resized without care may have holes;
// `since` counts ids instead of assuming them consecutive, and reports them
// as a gap.
//
// The table is created by the first message, not when the room starts: a room
// nobody wrote to answers its empty history without writing anything, so
// reading the history of any number of random room names creates no storage.

const SCHEMA = `CREATE TABLE IF NOT EXISTS messages (
  slot INTEGER PRIMARY KEY,
  id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  from_id TEXT NOT NULL,
  from_name TEXT NOT NULL,
  text TEXT NOT NULL,
  nonce TEXT,
  origin TEXT,
  deletion TEXT
)`;

const SELECT_ALL = "SELECT slot, id, ts, from_id, from_name, text, nonce, origin, deletion FROM messages";

// Columns added after the first release, each by one ALTER TABLE the first
// time a room written before them loads its history.
const LATER_COLUMNS = ["origin", "deletion"] as const;

type Row = {
  slot: number;
  id: number;
  ts: number;
  from_id: string;
  from_name: string;
  text: string;
  nonce: string | null;
  /** Large rooms: the part's publish this message was stored from (see sequencer.ts); null otherwise. */
  origin: string | null;
  /** A tombstone's `{"id","by","ts"}`: who deleted it and when (see `erase`); null otherwise. */
  deletion: string | null;
};

/** Who deleted a message and when, as its `delete` frame said. */
interface Deletion {
  by: User;
  ts: number;
}

/**
 * A stored deletion, read back: our own JSON, still checked, so a bad row
 * costs only its `delete` frame. It names its message's id: code from before
 * the column (a rollback) rewrites a slot and tombstones it again without
 * touching `deletion`, and a value left from another message must not count.
 */
function readDeletion(text: string, messageId: number): Deletion | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { id: deletedId, by, ts } = value as { id?: unknown; by?: unknown; ts?: unknown };
  if (deletedId !== messageId || typeof ts !== "number" || typeof by !== "object" || by === null) return null;
  const { id, name, verified } = by as { id?: unknown; name?: unknown; verified?: unknown };
  if (typeof id !== "string" || typeof name !== "string") return null;
  return { by: verified === true ? { id, name, verified: true } : { id, name }, ts };
}

/** SQLite rows touched by one operation, from the cursor (what Cloudflare bills). */
export interface RowCost {
  rowsRead: number;
  rowsWritten: number;
}

export interface Slice {
  messages: Message[];
  gap: boolean;
}

function toMessage(row: Row): Message {
  // Only a verified user's id has the `v_` form (guests are `u_…`, the
  // publish endpoint `bot`), so the mark needs no column of its own.
  const from: User = isVerifiedUserId(row.from_id)
    ? { id: row.from_id, name: row.from_name, verified: true }
    : { id: row.from_id, name: row.from_name };
  // A valid message never has empty text, so '' marks a tombstone (see `erase`).
  if (row.text === "") return tombstone({ type: "message", id: row.id, ts: row.ts, from, text: "" });
  const message: Message = {
    type: "message",
    id: row.id,
    ts: row.ts,
    from,
    text: row.text,
  };
  if (row.nonce !== null) message.nonce = row.nonce;
  return message;
}

/** The index of the first message with an id above `after` in ascending `kept`. */
function firstAfter(kept: Message[], after: number): number {
  let lo = 0;
  let hi = kept.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((kept[mid]?.id ?? Number.POSITIVE_INFINITY) > after) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class History {
  readonly size: number;
  readonly #sql: SqlStorage;
  // The kept messages in ascending id, read from storage on first use after a
  // wake; afterwards every append keeps it equal to the table.
  #kept: Message[] | null = null;
  #lastId = 0;
  // Origins of the kept messages that came from a large room's parts, by id.
  readonly #origins = new Map<number, string>();
  // Who deleted each kept tombstone and when, by id, where its row says.
  readonly #deletions = new Map<number, Deletion>();
  // Whether the messages table is known to exist.
  #created = false;

  constructor(sql: SqlStorage, size: number) {
    this.#sql = sql;
    this.size = size;
  }

  /** Whether a kept message was stored from `origin` (a large room's repeated publish). Call `load()` first after a wake. */
  hasOrigin(origin: string): boolean {
    for (const o of this.#origins.values()) if (o === origin) return true;
    return false;
  }

  /**
   * The `delete` frames of the kept tombstones whose row says who deleted
   * them, ascending (a tombstone from before that was stored has none).
   * Call `load()` first after a wake.
   */
  deletes(): DeleteFrame[] {
    return Array.from(this.#deletions, ([id, { by, ts }]): DeleteFrame => ({ type: "delete", id, by, ts })).sort(
      (a, b) => a.id - b.id,
    );
  }

  /** The last id this room issued; 0 before the first message. Call `load()` first after a wake. */
  get lastId(): number {
    return this.#lastId;
  }

  /** Loads the ring into memory if it is not there yet; returns what that cost. */
  load(): RowCost {
    return this.#ring().cost;
  }

  #ring(): { kept: Message[]; cost: RowCost } {
    if (this.#kept !== null) return { kept: this.#kept, cost: { rowsRead: 0, rowsWritten: 0 } };
    // A plain scan, sorted here: the table holds only the ring, and SQLite's
    // ORDER BY id ... LIMIT (no index on id) reads every row twice.
    const cursor = this.#scan();
    if (cursor === null) {
      this.#kept = [];
      this.#lastId = 0;
      return { kept: this.#kept, cost: { rowsRead: 0, rowsWritten: 0 } };
    }
    this.#created = true;
    const rows = cursor.toArray().sort((a, b) => a.id - b.id);
    const lastId = rows.at(-1)?.id ?? 0;
    const first = rows.findIndex((r) => r.id > lastId - this.size);
    const window = first < 0 ? [] : rows.slice(first);
    const cost = { rowsRead: cursor.rowsRead, rowsWritten: cursor.rowsWritten };
    if (window.length < rows.length || window.some((r) => r.slot !== r.id % this.size)) {
      const resized = this.#resize(lastId);
      cost.rowsRead += resized.rowsRead;
      cost.rowsWritten += resized.rowsWritten;
    }
    const kept = window.map(toMessage);
    this.#origins.clear();
    this.#deletions.clear();
    for (const row of window) {
      if (row.origin !== null) this.#origins.set(row.id, row.origin);
      const deletion = row.deletion === null || row.text !== "" ? null : readDeletion(row.deletion, row.id);
      if (deletion !== null) this.#deletions.set(row.id, deletion);
    }
    this.#kept = kept;
    this.#lastId = lastId;
    return { kept, cost };
  }

  /** Every row of the table; null when the room was never written and has no table. */
  #scan(): SqlStorageCursor<Row> | null {
    for (let added = 0; ; added++) {
      try {
        return this.#sql.exec<Row>(SELECT_ALL);
      } catch (err) {
        // Only a missing table is an empty room; sqlite_master is read on this
        // path alone, so a room with messages pays nothing for the check.
        if (
          this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").toArray().length ===
          0
        )
          return null;
        // A table from before a later column (SQLite names the first one
        // missing): that column, once.
        const column = LATER_COLUMNS.find((c) => String(err).includes(c));
        if (column === undefined || added >= LATER_COLUMNS.length) throw err;
        this.#sql.exec(`ALTER TABLE messages ADD COLUMN ${column} TEXT`);
      }
    }
  }

  /** Brings a table written under another HISTORY_SIZE into this ring's layout (see the top of this file). */
  #resize(lastId: number): RowCost {
    const cost = { rowsRead: 0, rowsWritten: 0 };
    const run = (query: string, ...bindings: number[]) => {
      const cursor = this.#sql.exec(query, ...bindings);
      cost.rowsRead += cursor.rowsRead;
      cost.rowsWritten += cursor.rowsWritten;
    };
    run("DELETE FROM messages WHERE id <= ?", lastId - this.size);
    // Through negative slots: a row may be due in a slot that another row
    // has yet to leave.
    run("UPDATE messages SET slot = -1 - (id % ?) WHERE slot != id % ?", this.size, this.size);
    run("UPDATE messages SET slot = -1 - slot WHERE slot < 0");
    return cost;
  }

  /**
   * The kept messages after `after` (all of them when it is null), with `gap`
   * true when some messages after it are gone for good or when `after` is
   * beyond every id this room has issued (its storage was reset).
   */
  since(after: number | null): Slice {
    const { kept } = this.#ring();
    if (after === null) return { messages: kept.slice(), gap: false };
    if (after > this.#lastId) return { messages: kept.slice(), gap: true };
    const messages = kept.slice(firstAfter(kept, after));
    // Ids never repeat, so all of after+1 … lastId are here exactly when
    // there are that many of them.
    return { messages, gap: messages.length < this.#lastId - after };
  }

  /** How many messages the ring keeps and the oldest kept id (null when none). Call `load()` first after a wake. */
  get extent(): { count: number; oldestId: number | null; deleted: number } {
    const kept = this.#kept ?? [];
    return {
      count: kept.length,
      oldestId: kept[0]?.id ?? null,
      deleted: kept.filter((m) => m.deleted === true).length,
    };
  }

  /** The kept message with this id, tombstones included; undefined when the ring does not hold it. */
  find(id: number): { message: Message | undefined; cost: RowCost } {
    const { kept, cost } = this.#ring();
    const index = firstAfter(kept, id - 1);
    const message = kept[index];
    return { message: message?.id === id ? message : undefined, cost };
  }

  /**
   * Turns kept message `id` into a tombstone in place: the row keeps its slot,
   * id, ts and author, loses its text and nonce, and keeps who deleted it
   * (`by`) and when (`ts`), so the `delete` frame can be told again to a
   * large room's part that missed it (1 row read, 1 written).
   * Returns the tombstone, or null when the ring does not hold a live message
   * with that id (not kept, or already a tombstone: nothing is written).
   */
  erase(id: number, by: User, ts: number): { erased: Message | null; cost: RowCost } {
    const { kept, cost } = this.#ring();
    const index = firstAfter(kept, id - 1);
    const message = kept[index];
    if (message === undefined || message.id !== id || message.deleted === true) return { erased: null, cost };
    const deletion: Deletion = { by, ts };
    const cursor = this.#sql.exec(
      "UPDATE messages SET text = '', nonce = NULL, deletion = ? WHERE slot = ? AND id = ?",
      JSON.stringify({ id, ...deletion }),
      id % this.size,
      id,
    );
    const erased = tombstone(message);
    kept[index] = erased;
    this.#deletions.set(id, deletion);
    return {
      erased,
      cost: { rowsRead: cost.rowsRead + cursor.rowsRead, rowsWritten: cost.rowsWritten + cursor.rowsWritten },
    };
  }

  /** Stores a message under the next id and returns it; memory is left untouched if the write throws. */
  append(
    from: User,
    text: string,
    nonce: string | undefined,
    ts: number,
    origin: string | null = null,
  ): { message: Message; cost: RowCost } {
    const { kept, cost } = this.#ring();
    if (!this.#created) {
      this.#sql.exec(SCHEMA);
      this.#created = true;
    }
    const id = this.#lastId + 1;
    const cursor = this.#sql.exec(
      `INSERT INTO messages (slot, id, ts, from_id, from_name, text, nonce, origin, deletion)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)
       ON CONFLICT (slot) DO UPDATE SET id = excluded.id, ts = excluded.ts, from_id = excluded.from_id,
         from_name = excluded.from_name, text = excluded.text, nonce = excluded.nonce, origin = excluded.origin,
         deletion = NULL`,
      id % this.size,
      id,
      ts,
      from.id,
      from.name,
      text,
      nonce ?? null,
      origin,
    );
    const message: Message = { type: "message", id, ts, from, text };
    if (nonce !== undefined) message.nonce = nonce;
    this.#lastId = id;
    kept.push(message);
    const stale = firstAfter(kept, id - this.size);
    if (stale > 0) kept.splice(0, stale);
    if (origin !== null) this.#origins.set(id, origin);
    for (const old of this.#origins.keys()) if (old <= id - this.size) this.#origins.delete(old);
    for (const old of this.#deletions.keys()) if (old <= id - this.size) this.#deletions.delete(old);
    return {
      message,
      cost: { rowsRead: cost.rowsRead + cursor.rowsRead, rowsWritten: cost.rowsWritten + cursor.rowsWritten },
    };
  }
}
