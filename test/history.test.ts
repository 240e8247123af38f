// The history ring on a room's own SQLite storage when HISTORY_SIZE changes
// between two runs of the room: a History of one size writes, one of another
// size reads the same table, as a deploy with a new setting would.

import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { History, type Slice } from "../src/history.ts";
import type { ChatRoom } from "../src/room.ts";
import { freshRoom, join, publish, request, roomStub } from "./helpers.ts";

const user = { id: "u_000000000000000000000001", name: "writer" };

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function ids(slice: Slice): number[] {
  return slice.messages.map((m) => m.id);
}

/** Runs `fn` against the storage of a room of its own, outside the room's own History. */
function onStorage<R>(fn: (sql: SqlStorage) => R): Promise<R> {
  return runInDurableObject(roomStub(freshRoom()), (_: ChatRoom, state) => fn(state.storage.sql));
}

function rows(sql: SqlStorage): { slot: number; id: number }[] {
  return sql.exec<{ slot: number; id: number }>("SELECT slot, id FROM messages ORDER BY id").toArray();
}

function write(history: History, from: number, to: number): void {
  for (let id = from; id <= to; id++) expect(history.append(user, `m${id}`, undefined, id).message.id).toBe(id);
}

describe("History across a change of HISTORY_SIZE", () => {
  it("keeps every kept message when the ring grows: 15 with 10, then 6 with 20", async () => {
    const result = await onStorage((sql) => {
      write(new History(sql, 10), 1, 15);
      write(new History(sql, 20), 16, 21);
      const reread = new History(sql, 20);
      return {
        all: reread.since(null),
        after12: reread.since(12),
        after5: reread.since(5),
        after4: reread.since(4),
        rows: rows(sql),
      };
    });
    expect(ids(result.all)).toEqual(range(6, 21));
    expect(result.all.messages.map((m) => m.text)).toEqual(range(6, 21).map((id) => `m${id}`));
    expect(result.after12).toMatchObject({ gap: false });
    expect(ids(result.after12)).toEqual(range(13, 21));
    expect(result.after5).toMatchObject({ gap: false });
    expect(ids(result.after5)).toEqual(range(6, 21));
    expect(result.after4.gap).toBe(true);
    expect(result.rows).toEqual(range(6, 21).map((id) => ({ slot: id % 20, id })));
  });

  it("keeps the newest when the ring shrinks, and the table holds no more than the ring", async () => {
    const result = await onStorage((sql) => {
      write(new History(sql, 20), 1, 12);
      const small = new History(sql, 5);
      const before = { all: small.since(null), after7: small.since(7), after6: small.since(6) };
      write(small, 13, 13);
      return { before, after: new History(sql, 5).since(null), rows: rows(sql) };
    });
    expect(ids(result.before.all)).toEqual(range(8, 12));
    expect(result.before.after7).toMatchObject({ gap: false });
    expect(ids(result.before.after7)).toEqual(range(8, 12));
    expect(result.before.after6.gap).toBe(true);
    expect(ids(result.after)).toEqual(range(9, 13));
    expect(result.rows).toEqual(range(9, 13).map((id) => ({ slot: id % 5, id })));
  });

  it("pays for a resize once, at the first load, and then writes one row per message", async () => {
    const costs = await onStorage((sql) => {
      write(new History(sql, 10), 1, 15);
      const grown = new History(sql, 20);
      const load = grown.load();
      const appends = range(16, 40).map((id) => grown.append(user, `m${id}`, undefined, id).cost.rowsWritten);
      return { load, appends, reload: new History(sql, 20).load() };
    });
    expect(costs.load.rowsWritten).toBeGreaterThan(0);
    expect(costs.appends).toEqual(range(16, 40).map(() => 1));
    expect(costs.reload).toEqual({ rowsRead: 20, rowsWritten: 0 });
  });

  it("reports a gap for holes an earlier resize left behind, and serves what is there", async () => {
    // What the ring of size 10 grown to 20 without care left: ids 10 and 11
    // overwritten by 20 and 21.
    const result = await onStorage((sql) => {
      // The table comes with the first message.
      new History(sql, 20).append(user, "m1", undefined, 1);
      sql.exec("DELETE FROM messages");
      for (const id of [...range(6, 9), ...range(12, 21)]) {
        const slot = id >= 16 ? id % 20 : id % 10;
        sql.exec(
          "INSERT INTO messages (slot, id, ts, from_id, from_name, text, nonce) VALUES (?, ?, ?, ?, ?, ?, NULL)",
          slot,
          id,
          id,
          user.id,
          user.name,
          `m${id}`,
        );
      }
      const history = new History(sql, 20);
      return {
        all: history.since(null),
        after12: history.since(12),
        after11: history.since(11),
        after9: history.since(9),
        after8: history.since(8),
      };
    });
    expect(ids(result.all)).toEqual([6, 7, 8, 9, ...range(12, 21)]);
    expect(result.after12).toMatchObject({ gap: false });
    expect(ids(result.after12)).toEqual(range(13, 21));
    expect(result.after11).toMatchObject({ gap: false });
    expect(ids(result.after11)).toEqual(range(12, 21));
    expect(result.after9.gap).toBe(true);
    expect(ids(result.after9)).toEqual(range(12, 21));
    expect(result.after8.gap).toBe(true);
    expect(ids(result.after8)).toEqual([9, ...range(12, 21)]);
  });
});

describe("a room restarted with a larger HISTORY_SIZE", () => {
  /** Ends the room's instance: the next request builds a new one from storage, as a deploy does. */
  async function restart(room: string): Promise<void> {
    await expect(runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.abort("restart"))).rejects.toThrow();
  }

  it("serves every message its smaller ring kept, on the socket and over HTTP, and resumes without a false gap", async () => {
    const room = freshRoom();
    // The room ran with HISTORY_SIZE 10 (this runtime's is 100) and stored 15 messages.
    await runInDurableObject(roomStub(room), (_: ChatRoom, state) => write(new History(state.storage.sql, 10), 1, 15));
    await restart(room);
    // Ids 100 and 101 take the slots (0 and 1) where the old ring put 10 and 11.
    for (let id = 16; id <= 101; id++) expect((await publish(room, { text: `m${id}` })).status).toBe(201);
    await restart(room);
    const { welcome } = await join(room);
    expect(welcome.history.map((m) => m.id)).toEqual(range(6, 101));
    const resumed = await join(room, { after: 12 });
    expect(resumed.welcome.gap).toBe(false);
    expect(resumed.welcome.history.map((m) => m.id)).toEqual(range(13, 101));
    const res = await request(`/api/rooms/${room}/messages?after=12`);
    const page = (await res.json()) as { messages: { id: number; text: string }[]; gap: boolean };
    expect(page.gap).toBe(false);
    expect(page.messages.map((m) => [m.id, m.text])).toEqual(range(13, 101).map((id) => [id, `m${id}`]));
  });
});

describe("origins of a large room's messages", () => {
  it("keeps a message's origin in its own row, across a reload, while the message is kept", async () => {
    const result = await onStorage((sql) => {
      const history = new History(sql, 3);
      history.append(user, "from a part", undefined, 1, "lobby/1/i/7");
      const cost = history.append(user, "plain", undefined, 2).cost;
      const reread = new History(sql, 3);
      reread.load();
      const before = reread.hasOrigin("lobby/1/i/7");
      write(reread, 3, 4);
      return {
        rowsWritten: cost.rowsWritten,
        before,
        other: reread.hasOrigin("lobby/1/i/8"),
        after: reread.hasOrigin("lobby/1/i/7"),
      };
    });
    expect(result).toEqual({ rowsWritten: 1, before: true, other: false, after: false });
  });

  it("adds the origin column to a table written before large rooms, once", async () => {
    const result = await onStorage((sql) => {
      sql.exec(
        "CREATE TABLE messages (slot INTEGER PRIMARY KEY, id INTEGER NOT NULL, ts INTEGER NOT NULL, from_id TEXT NOT NULL, from_name TEXT NOT NULL, text TEXT NOT NULL, nonce TEXT)",
      );
      sql.exec(
        "INSERT INTO messages (slot, id, ts, from_id, from_name, text, nonce) VALUES (1, 1, 1, ?, ?, 'old', NULL)",
        user.id,
        user.name,
      );
      const history = new History(sql, 10);
      const old = history.since(null).messages.map((m) => m.text);
      history.append(user, "new", undefined, 2, "r/1/i/1");
      history.erase(1, { id: "admin", name: "admin" }, 3);
      const reread = new History(sql, 10);
      reread.load();
      return { old, origin: reread.hasOrigin("r/1/i/1"), ids: ids(reread.since(null)), deletes: reread.deletes() };
    });
    expect(result).toEqual({
      old: ["old"],
      origin: true,
      ids: [1, 2],
      deletes: [{ type: "delete", id: 1, by: { id: "admin", name: "admin" }, ts: 3 }],
    });
  });

  it("keeps who deleted a tombstone and when in its own row, and never takes another message's for it", async () => {
    const result = await onStorage((sql) => {
      const history = new History(sql, 3);
      write(history, 1, 3);
      const { cost } = history.erase(2, { id: "v_m", name: "mod", verified: true }, 7);
      const reread = new History(sql, 3);
      reread.load();
      const kept = reread.deletes();
      write(reread, 4, 4);
      // Code from before the column (a rollback) writes message 5 into that
      // slot and tombstones it, leaving the old deletion in place.
      sql.exec("UPDATE messages SET id = 5, ts = 5, text = '' WHERE slot = 2");
      const rolledBack = new History(sql, 3);
      rolledBack.load();
      return {
        rowsWritten: cost.rowsWritten,
        kept,
        still: reread.deletes(),
        rolledBack: { ids: ids(rolledBack.since(null)), deletes: rolledBack.deletes() },
      };
    });
    expect(result).toEqual({
      rowsWritten: 1,
      kept: [{ type: "delete", id: 2, by: { id: "v_m", name: "mod", verified: true }, ts: 7 }],
      still: [{ type: "delete", id: 2, by: { id: "v_m", name: "mod", verified: true }, ts: 7 }],
      rolledBack: { ids: [3, 4, 5], deletes: [] },
    });
  });
});
