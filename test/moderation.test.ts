// The moderation store on a real room's SQLite in workerd: bans, expiry on
// a clock the test controls, address bans, settings, restarts, and what
// each operation costs in rows.

import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MAX_BANS, Moderation, PostClock, banCloseReason, bannedError, truncateUtf8 } from "../src/moderation.ts";
import type { ChatRoom } from "../src/room.ts";
import { freshRoom, join, roomStub } from "./helpers.ts";

const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const MINUTE = 60_000;
const NET = "2001:db8:1:2::/64";

/** Runs `fn` inside a fresh room's Durable Object with its storage. */
function inRoom<T>(room: string, fn: (state: DurableObjectState) => T): Promise<T> {
  return runInDurableObject(roomStub(room), (_: ChatRoom, state) => fn(state));
}

function moderationTables(sql: SqlStorage): string[] {
  return sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE name LIKE 'moderation%' ORDER BY name")
    .toArray()
    .map((row) => row.name);
}

function banRows(sql: SqlStorage): number {
  return sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM moderation_bans").one().n;
}

describe("Moderation store", () => {
  it("reads a room that never moderated without creating storage, then reads nothing at all", async () => {
    const result = await inRoom(freshRoom(), (state) => {
      const sql = state.storage.sql;
      const size = sql.databaseSize;
      const store = new Moderation(sql);
      const ban = store.banOf("u_1", NET, T0);
      const list = store.list(T0);
      const settings = store.settings();
      const warm = [store.banOf("u_2", NET, T0), store.list(T0), store.settings(), store.unban("u_1", T0)];
      // Setting the default value writes nothing either.
      const off = store.setSettings({ slowMode: 0 });
      return {
        answers: [ban.ban, list.bans, settings.settings],
        firstWritten: ban.cost.rowsWritten + list.cost.rowsWritten + settings.cost.rowsWritten,
        warm: warm.map((r) => r.cost),
        off,
        tables: moderationTables(sql),
        grew: sql.databaseSize - size,
      };
    });
    expect(result.answers).toEqual([null, [], { slowMode: 0 }]);
    expect(result.firstWritten).toBe(0);
    expect(result.warm).toEqual(Array(4).fill({ rowsRead: 0, rowsWritten: 0 }));
    expect(result.off).toEqual({ settings: { slowMode: 0 }, cost: { rowsRead: 0, rowsWritten: 0 } });
    expect(result.tables).toEqual([]);
    expect(result.grew).toBe(0);
  });

  it("bans until a time or until unbanned, decided against the given now", async () => {
    const result = await inRoom(freshRoom(), (state) => {
      const store = new Moderation(state.storage.sql);
      const timed = store.ban({ user: "u_timed", address: null, minutes: 10, reason: "flood", by: "v_mod" }, T0);
      const forever = store.ban({ user: "v_forever", address: null, by: "v_mod" }, T0 + 1);
      return {
        timed,
        forever,
        justBefore: store.banOf("u_timed", null, T0 + 10 * MINUTE - 1).ban?.user ?? null,
        atEnd: store.banOf("u_timed", null, T0 + 10 * MINUTE).ban,
        foreverLater: store.banOf("v_forever", null, T0 + 3650 * 24 * 60 * MINUTE).ban?.until,
        other: store.banOf("u_other", null, T0).ban,
        listBefore: store.list(T0 + MINUTE).bans,
        listAfter: store.list(T0 + 10 * MINUTE).bans,
        tables: moderationTables(state.storage.sql),
      };
    });
    expect(result.timed).toMatchObject({
      ok: true,
      ban: { user: "u_timed", address: null, until: T0 + 10 * MINUTE, reason: "flood", at: T0, by: "v_mod" },
    });
    expect(result.forever).toMatchObject({ ok: true, ban: { user: "v_forever", until: null, reason: null } });
    // The second ban finds the table made: one upsert, one row.
    expect(result.forever.cost).toEqual({ rowsRead: 0, rowsWritten: 1 });
    expect(result.justBefore).toBe("u_timed");
    expect(result.atEnd).toBeNull();
    expect(result.foreverLater).toBeNull();
    expect(result.other).toBeNull();
    expect(result.listBefore).toEqual([
      { user: "u_timed", until: T0 + 10 * MINUTE, reason: "flood" },
      { user: "v_forever", until: null },
    ]);
    expect(result.listAfter).toEqual([{ user: "v_forever", until: null }]);
    expect(result.tables).toEqual(["moderation_bans"]);
  });

  it("costs the first ban a table and one row, later bans one row", async () => {
    const costs = await inRoom(freshRoom(), (state) => {
      const store = new Moderation(state.storage.sql);
      store.list(T0); // the schema lookup, so the ban's cost is the ban's alone
      const first = store.ban({ user: "u_a", address: NET, by: "admin" }, T0).cost;
      const second = store.ban({ user: "u_b", address: null, by: "admin" }, T0).cost;
      const again = store.ban({ user: "u_b", address: null, minutes: 5, by: "admin" }, T0).cost;
      return { first, second, again };
    });
    expect(costs.first).toEqual({ rowsRead: 1, rowsWritten: 3 });
    expect(costs.second).toEqual({ rowsRead: 0, rowsWritten: 1 });
    expect(costs.again).toEqual({ rowsRead: 0, rowsWritten: 1 });
  });

  it("covers a guest's address, for as long as its longest ban, and not for a null address", async () => {
    const result = await inRoom(freshRoom(), (state) => {
      const store = new Moderation(state.storage.sql);
      store.ban({ user: "u_g1", address: NET, minutes: 5, reason: "first", by: "v_mod" }, T0);
      store.ban({ user: "u_g2", address: NET, minutes: 60, reason: "second", by: "v_mod" }, T0);
      const fresh = (now: number) => store.banOf("u_new", NET, now).ban?.reason ?? null;
      const seen = {
        longest: fresh(T0),
        afterFirst: fresh(T0 + 5 * MINUTE),
        otherNet: store.banOf("u_new", "2001:db8:1:3::/64", T0).ban,
        verified: store.banOf("u_new", null, T0).ban,
        afterBoth: fresh(T0 + 60 * MINUTE),
      };
      const net2 = "198.51.100.7";
      store.ban({ user: "u_t", address: net2, minutes: 5, by: "v_mod" }, T0);
      store.ban({ user: "u_f", address: net2, by: "v_mod" }, T0);
      const foreverWins = store.banOf("u_new", net2, T0).ban?.user;
      store.unban("u_g2", T0);
      const afterUnban = fresh(T0 + MINUTE);
      // A new ban given without an address keeps the one the user was banned with.
      store.ban({ user: "u_g1", address: null, minutes: 30, reason: "again", by: "v_mod" }, T0 + MINUTE);
      const rebanned = store.banOf("u_new", NET, T0 + 20 * MINUTE).ban;
      return { seen, foreverWins, afterUnban, rebanned };
    });
    expect(result.seen).toEqual({
      longest: "second",
      afterFirst: "second",
      otherNet: null,
      verified: null,
      afterBoth: null,
    });
    expect(result.foreverWins).toBe("u_f");
    expect(result.afterUnban).toBe("first");
    expect(result.rebanned).toMatchObject({ user: "u_g1", address: NET, until: T0 + 31 * MINUTE, reason: "again" });
  });

  it("unbans with one row, and an unban of nobody costs nothing", async () => {
    const result = await inRoom(freshRoom(), (state) => {
      const store = new Moderation(state.storage.sql);
      store.ban({ user: "u_1", address: NET, by: "v_mod" }, T0);
      const unban = store.unban("u_1", T0 + 1);
      const again = store.unban("u_1", T0 + 2);
      return {
        unban,
        again,
        user: store.banOf("u_1", null, T0 + 3).ban,
        address: store.banOf("u_2", NET, T0 + 3).ban,
        list: store.list(T0 + 3).bans,
        rows: banRows(state.storage.sql),
      };
    });
    expect(result.unban).toEqual({ removed: true, cost: { rowsRead: 1, rowsWritten: 1 } });
    expect(result.again).toEqual({ removed: false, cost: { rowsRead: 0, rowsWritten: 0 } });
    expect(result.user).toBeNull();
    expect(result.address).toBeNull();
    expect(result.list).toEqual([]);
    expect(result.rows).toBe(0);
  });

  it("prunes an expired ban's row on the next write, never on a read", async () => {
    const result = await inRoom(freshRoom(), (state) => {
      const sql = state.storage.sql;
      const store = new Moderation(sql);
      store.ban({ user: "u_old", address: NET, minutes: 1, by: "v_mod" }, T0);
      const read = store.banOf("u_old", NET, T0 + 2 * MINUTE);
      const rowsAfterRead = banRows(sql);
      const next = store.ban({ user: "u_next", address: null, by: "v_mod" }, T0 + 2 * MINUTE);
      return { read, rowsAfterRead, nextCost: next.cost, rows: banRows(sql) };
    });
    expect(result.read).toEqual({ ban: null, cost: { rowsRead: 0, rowsWritten: 0 } });
    expect(result.rowsAfterRead).toBe(1);
    // The prune deletes u_old by key (1 read, 1 written), then the upsert writes u_next.
    expect(result.nextCost).toEqual({ rowsRead: 1, rowsWritten: 2 });
    expect(result.rows).toBe(1);
  });

  it("keeps bans and settings across a new store on the same storage, and across a restart", async () => {
    const room = freshRoom();
    await inRoom(room, (state) => {
      const store = new Moderation(state.storage.sql);
      store.ban({ user: "u_g", address: NET, minutes: 60, reason: "spam", by: "v_mod" }, T0);
      store.ban({ user: "v_x", address: null, by: "admin" }, T0 + 1);
      store.setSettings({ slowMode: 15 });
    });
    const reopened = await inRoom(room, (state) => {
      const schema = state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM sqlite_master").one().n;
      const store = new Moderation(state.storage.sql);
      const ban = store.banOf("u_other", NET, T0 + MINUTE);
      const warm = [store.banOf("v_x", null, T0 + MINUTE), store.list(T0 + MINUTE), store.settings()];
      return {
        schema,
        ban,
        warm: warm.map((r) => r.cost),
        list: store.list(T0 + MINUTE).bans,
        settings: store.settings().settings,
      };
    });
    // One scan of sqlite_master (whatever else the room keeps), then the two ban rows.
    expect(reopened.ban).toEqual({
      ban: { user: "u_g", address: NET, until: T0 + 60 * MINUTE, reason: "spam", at: T0, by: "v_mod" },
      cost: { rowsRead: reopened.schema + 2, rowsWritten: 0 },
    });
    // The settings row is read on first use; everything else is memory.
    expect(reopened.warm).toEqual([
      { rowsRead: 0, rowsWritten: 0 },
      { rowsRead: 0, rowsWritten: 0 },
      { rowsRead: 1, rowsWritten: 0 },
    ]);
    expect(reopened.list).toEqual([
      { user: "u_g", until: T0 + 60 * MINUTE, reason: "spam" },
      { user: "v_x", until: null },
    ]);
    expect(reopened.settings).toEqual({ slowMode: 15 });

    await expect(inRoom(room, (state) => state.abort("test restart"))).rejects.toThrow();
    const restarted = await inRoom(room, (state) => {
      const store = new Moderation(state.storage.sql);
      return { list: store.list(T0 + MINUTE).bans, settings: store.settings().settings };
    });
    expect(restarted).toEqual({ list: reopened.list, settings: { slowMode: 15 } });
  });

  it("stores a settings change in one row and an unchanged value in none", async () => {
    const room = freshRoom();
    const costs = await inRoom(room, (state) => {
      const store = new Moderation(state.storage.sql);
      store.settings();
      const first = store.setSettings({ slowMode: 30 });
      const same = store.setSettings({ slowMode: 30 });
      const change = store.setSettings({ slowMode: 0 });
      return { first, same, change, tables: moderationTables(state.storage.sql) };
    });
    expect(costs.first).toEqual({ settings: { slowMode: 30 }, cost: { rowsRead: 1, rowsWritten: 3 } });
    expect(costs.same).toEqual({ settings: { slowMode: 30 }, cost: { rowsRead: 0, rowsWritten: 0 } });
    expect(costs.change).toEqual({ settings: { slowMode: 0 }, cost: { rowsRead: 0, rowsWritten: 1 } });
    expect(costs.tables).toEqual(["moderation_settings"]);
    const reread = await inRoom(room, (state) => new Moderation(state.storage.sql).settings().settings);
    expect(reread).toEqual({ slowMode: 0 });
  });

  it(`refuses a new ban past ${MAX_BANS} in force, and makes room as bans expire`, async () => {
    const result = await inRoom(freshRoom(), (state) => {
      const store = new Moderation(state.storage.sql);
      store.ban({ user: "u_short", address: null, minutes: 1, by: "v_mod" }, T0);
      for (let i = 1; i < MAX_BANS; i++) store.ban({ user: `u_${i}`, address: null, by: "v_mod" }, T0);
      const full = store.ban({ user: "u_more", address: null, by: "v_mod" }, T0);
      const replace = store.ban({ user: "u_1", address: null, minutes: 5, by: "v_mod" }, T0);
      const later = store.ban({ user: "u_more", address: null, by: "v_mod" }, T0 + MINUTE);
      return { full, replaced: replace.ok, later: later.ok, count: store.list(T0 + MINUTE).bans.length };
    });
    expect(result.full).toEqual({ ok: false, cost: { rowsRead: 0, rowsWritten: 0 } });
    expect(result.replaced).toBe(true);
    expect(result.later).toBe(true);
    expect(result.count).toBe(MAX_BANS);
  });
});

describe("ban answers", () => {
  it("tells a banned user why and until when", () => {
    const ban = { user: "u_1", address: null, until: T0 + MINUTE, reason: "spam", at: T0, by: "v_mod" };
    expect(bannedError(ban)).toEqual({
      error: "banned",
      message: "you are banned from this room until 2026-11-29T12:01:00.000Z",
      until: T0 + MINUTE,
      reason: "spam",
    });
    expect(bannedError({ ...ban, until: null, reason: null })).toEqual({
      error: "banned",
      message: "you are banned from this room",
      until: null,
    });
  });

  it("fits when and why into a close frame without splitting a character", () => {
    expect(banCloseReason({ until: null, reason: null })).toBe("banned");
    expect(banCloseReason({ until: null, reason: "spam" })).toBe("banned: spam");
    expect(banCloseReason({ until: T0 + MINUTE, reason: null })).toBe("banned until 2026-11-29T12:01:00Z");
    expect(banCloseReason({ until: T0 + MINUTE, reason: "spam" })).toBe("banned until 2026-11-29T12:01:00Z: spam");
    const long = banCloseReason({ until: null, reason: "😀".repeat(200) });
    expect(new TextEncoder().encode(long).length).toBeLessThanOrEqual(123);
    // "banned: " is 8 bytes, each emoji 4, the ellipsis 3: 28 emoji fit.
    expect(long).toBe(`banned: ${"😀".repeat(28)}…`);
    const timed = banCloseReason({ until: T0 + MINUTE, reason: "é".repeat(200) });
    // 35 bytes of head, 42 two-byte characters, the ellipsis: 122, since a 43rd would make 124.
    expect(timed).toBe(`banned until 2026-11-29T12:01:00Z: ${"é".repeat(42)}…`);
    expect(truncateUtf8("x".repeat(123), 123)).toBe("x".repeat(123));
    expect(truncateUtf8("x".repeat(124), 123)).toBe(`${"x".repeat(120)}…`);
  });
});

describe("PostClock", () => {
  it("makes a user wait the slow-mode interval after their latest post", () => {
    const clock = new PostClock();
    expect(clock.wait("u_1", T0, 30)).toBe(0);
    clock.note("u_1", T0);
    expect(clock.wait("u_1", T0 + 1000, 30)).toBe(29_000);
    expect(clock.wait("u_1", T0 + 30_000, 30)).toBe(0);
    expect(clock.wait("u_1", T0 + 1000, 0)).toBe(0);
    expect(clock.wait("u_2", T0 + 1000, 30)).toBe(0);
    // An older snapshot read back after a wake does not move the clock back.
    clock.note("u_1", T0 - 60_000);
    expect(clock.wait("u_1", T0 + 1000, 30)).toBe(29_000);
  });

  it("forgets posts too old to matter once it holds many users", () => {
    const clock = new PostClock();
    clock.note("u_old", T0);
    for (let i = 0; i < 1100; i++) clock.note(`u_${i}`, T0 + 3600_000 + i);
    // Reaching 1024 users dropped u_old, older than the longest slow mode; the rest are kept.
    expect(clock.size).toBe(1100);
    expect(clock.wait("u_5", T0 + 3600_005, 3600)).toBe(3600_000);
  });
});

describe("a guest's moderation frames", () => {
  it("answers ban, unban and settings with forbidden, echoing the nonce, and keeps the socket", async () => {
    const { client } = await join(freshRoom());
    client.send({ type: "ban", user: "u_x", minutes: 5, nonce: "b1" });
    client.send({ type: "unban", user: "u_x", nonce: "u1" });
    client.send({ type: "settings", slowMode: 10 });
    expect(await client.next("the ban's error")).toEqual({
      type: "error",
      code: "forbidden",
      message: "only moderators may send ban",
      nonce: "b1",
    });
    expect(await client.next("the unban's error")).toEqual({
      type: "error",
      code: "forbidden",
      message: "only moderators may send unban",
      nonce: "u1",
    });
    expect(await client.next("the settings' error")).toEqual({
      type: "error",
      code: "forbidden",
      message: "only moderators may send settings",
    });
    client.say("still here");
    expect(await client.message()).toMatchObject({ id: 1, text: "still here" });
  });
});
