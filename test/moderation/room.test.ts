// Moderation frames over real sockets in workerd: delete, ban, unban and
// slow mode, who may send them, and what survives a restart and a wake.
//
// The clock of a ban: the room compares a ban's stored `until` with the time
// of each check, so instead of waiting a minute a test moves the stored
// `until` into the past (runInDurableObject on the room's own SQLite) and
// restarts the room so it reads the ban back. That drives exactly the path a
// real expiry takes after a wake (stored ban, compared at read time, no
// alarm) without sleeping and without a test-only hook in the room.

import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { banCloseReason } from "../../src/moderation.ts";
import type { HistoryPage, Message, ServerFrame, User } from "../../src/protocol.ts";
import type { ChatRoom } from "../../src/room.ts";
import { Client, freshRoom, join, request, roomStub, seed, upgradeHeaders } from "../helpers.ts";
import { joinAs, restart, upgradeAs, usage, verifiedUser } from "./support.ts";

async function history(room: string): Promise<Message[]> {
  const res = await request(`/api/rooms/${room}/messages`);
  expect(res.status).toBe(200);
  return ((await res.json()) as HistoryPage).messages;
}

const isPresence = (frame: ServerFrame) => frame.type === "join" || frame.type === "leave";

/** The next frame of `type`; `join`/`leave` frames before it are passed over unless one is asked for. */
async function next<T extends ServerFrame["type"]>(
  client: Client,
  type: T,
): Promise<Extract<ServerFrame, { type: T }>> {
  for (;;) {
    const frame = await client.next(`a ${type} frame`);
    if (frame.type === type) return frame as Extract<ServerFrame, { type: T }>;
    if (type === "join" || type === "leave" || !isPresence(frame))
      throw new Error(`expected ${type}, got ${JSON.stringify(frame)}`);
  }
}

/** Like Client.quiet, but presence frames may come before the barrier's error; anything else fails. */
async function settle(client: Client): Promise<void> {
  const nonce = `barrier-${crypto.randomUUID()}`;
  client.send({ type: "message", text: " ", nonce });
  for (;;) {
    const frame = await client.next("the barrier's error");
    if (isPresence(frame)) continue;
    if (frame.type === "error" && frame.code === "invalid_message" && frame.nonce === nonce) return;
    throw new Error(`expected nothing but presence before the barrier's error, got ${JSON.stringify(frame)}`);
  }
}

/** Upgrades through the Worker as a guest from `ip` with an earlier token (or none). */
function upgrade(room: string, ip: string, token?: string): Promise<Response> {
  const query = token === undefined ? "" : `?token=${encodeURIComponent(token)}`;
  return request(`/chat/${room}${query}`, { headers: upgradeHeaders({ "CF-Connecting-IP": ip }) });
}

const MODERATOR = ["moderator"];

describe("delete", () => {
  it("lets the author tombstone a message: one row, a delete frame to plain and batching sockets, tombstones in welcome and HTTP history", async () => {
    const room = freshRoom();
    const author = await join(room, { name: "ann" });
    const plain = await join(room, { name: "bob" });
    const batching = await join(room, { name: "cy", batch: true });
    author.client.say("oops", "n1");
    author.client.say("keep");
    const first = await next(author.client, "message");
    await next(author.client, "message");
    const before = await usage(room);
    author.client.send({ type: "delete", id: first.id });
    const expected = { type: "delete", id: 1, by: author.welcome.you, ts: expect.any(Number) };
    expect(await next(author.client, "delete")).toEqual(expected);
    // bob saw join (cy) and the two messages first.
    await next(plain.client, "message");
    await next(plain.client, "message");
    expect(await next(plain.client, "delete")).toEqual(expected);
    const frames: ServerFrame[] = [];
    while (!frames.some((f) => f.type === "delete")) {
      const batch = await next(batching.client, "batch");
      frames.push(...batch.frames);
    }
    expect(frames.map((f) => f.type)).toEqual(["message", "message", "delete"]);
    expect(frames[2]).toEqual(expected);
    const after = await usage(room);
    expect({ read: after.rowsRead - before.rowsRead, written: after.rowsWritten - before.rowsWritten }).toEqual({
      read: 1,
      written: 1,
    });
    const tomb = { type: "message", id: 1, ts: first.ts, from: author.welcome.you, text: "", deleted: true };
    expect((await join(room)).welcome.history).toEqual([tomb, expect.objectContaining({ id: 2, text: "keep" })]);
    expect((await history(room))[0]).toEqual(tomb);
    // A tombstone deleted again: nothing written, nothing sent (the barrier's error is next).
    author.client.send({ type: "delete", id: 1, nonce: "again" });
    await settle(author.client);
    expect((await usage(room)).rowsWritten).toBe(after.rowsWritten);
  });

  it("refuses another's message to a guest (forbidden) and an id not kept (not_found), echoing the nonce", async () => {
    const room = freshRoom();
    const ann = await join(room, { name: "ann" });
    const bob = await join(room, { name: "bob" });
    ann.client.say("mine");
    await next(bob.client, "message");
    bob.client.send({ type: "delete", id: 1, nonce: "x" });
    expect(await next(bob.client, "error")).toEqual({
      type: "error",
      code: "forbidden",
      message: "only its author or a moderator may delete this message",
      nonce: "x",
    });
    bob.client.send({ type: "delete", id: 7, nonce: "y" });
    expect(await next(bob.client, "error")).toEqual({
      type: "error",
      code: "not_found",
      message: "no kept message has id 7",
      nonce: "y",
    });
    expect((await history(room))[0]).toMatchObject({ id: 1, text: "mine" });
  });

  it("lets a moderator delete anyone's message", async () => {
    const room = freshRoom();
    const ann = await join(room, { name: "ann" });
    ann.client.say("spam");
    await next(ann.client, "message");
    const mod = await verifiedUser("mod");
    const client = await joinAs(room, "mod", MODERATOR);
    client.send({ type: "delete", id: 1 });
    expect(await next(ann.client, "delete")).toEqual({ type: "delete", id: 1, by: mod, ts: expect.any(Number) });
  });

  it("keeps tombstones across a restart, and keeps the message's nonce out of them", async () => {
    const room = freshRoom();
    const ann = await join(room);
    ann.client.say("secret", "nonce-1");
    await next(ann.client, "message");
    ann.client.send({ type: "delete", id: 1 });
    await next(ann.client, "delete");
    await restart(room);
    const fresh = await join(room);
    expect(fresh.welcome.history).toEqual([
      {
        type: "message",
        id: 1,
        ts: expect.any(Number),
        from: { id: ann.welcome.you.id, name: ann.welcome.you.name },
        text: "",
        deleted: true,
      },
    ]);
  });
});

describe("ban", () => {
  it("closes every socket of the user with 4003, refuses its upgrades with 403 and covers a guest's /64, not a verified user there", async () => {
    const room = freshRoom();
    const ip = "2001:db8:aa:bb::1";
    const first = await upgrade(room, ip);
    expect(first.status).toBe(101);
    const target = new Client(first.webSocket!);
    const welcome = await target.welcome();
    const second = await upgrade(room, "2001:db8:aa:bb::2", welcome.token);
    const twin = new Client(second.webSocket!);
    await twin.welcome();
    // A verified user on the same network, connected before the ban.
    const carol = await joinAs(room, "carol", [], { ip: "2001:db8:aa:bb::5" });
    const client = await joinAs(room, "mod", MODERATOR);
    client.send({ type: "ban", user: welcome.you.id, minutes: 30, reason: "spam" });
    const closes = await Promise.all([target.closed, twin.closed]);
    const reason = closes[0].reason;
    expect(reason).toMatch(/^banned until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: spam$/);
    expect(closes).toEqual([
      { code: 4003, reason },
      { code: 4003, reason },
    ]);
    const until = Date.parse(reason.slice("banned until ".length, reason.indexOf("Z") + 1));
    // The same user (its token) from anywhere:
    const again = await upgrade(room, "192.0.2.50", welcome.token);
    expect(again.status).toBe(403);
    const body = (await again.json()) as { until: number };
    expect(body).toEqual({
      error: "banned",
      message: `you are banned from this room until ${new Date(body.until).toISOString()}`,
      until: body.until,
      reason: "spam",
    });
    expect(Math.floor(body.until / 1000) * 1000).toBe(until);
    expect(reason).toBe(banCloseReason({ until: body.until, reason: "spam" }));
    // Another guest id from the same /64:
    const neighbour = await upgrade(room, "2001:db8:aa:bb::99");
    expect(neighbour.status).toBe(403);
    expect(await neighbour.json()).toMatchObject({ error: "banned", until: body.until });
    // A guest from another /64 and a verified user from the banned one get in.
    expect((await upgrade(room, "2001:db8:aa:bc::1")).status).toBe(101);
    expect((await upgradeAs(room, "carol", [], { ip: "2001:db8:aa:bb::6" })).status).toBe(101);
    // carol's socket stayed open through the ban.
    await settle(carol);
  });

  it("bans a verified user by id only, and an offline guest by id only", async () => {
    const room = freshRoom();
    const client = await joinAs(room, "mod", MODERATOR);
    const dave = await verifiedUser("dave");
    const daveSocket = await joinAs(room, "dave", [], { ip: "198.51.100.7" });
    client.send({ type: "ban", user: dave.id });
    expect(await daveSocket.closed).toEqual({ code: 4003, reason: "banned" });
    expect((await upgradeAs(room, "dave", [], { ip: "203.0.113.1" })).status).toBe(403);
    // A guest on dave's address is not covered.
    expect((await upgrade(room, "198.51.100.7")).status).toBe(101);
    // A guest banned while offline: its id, and nothing else.
    client.send({ type: "ban", user: "u_0123456789abcdef01234567" });
    await settle(client);
    expect((await upgrade(room, "198.51.100.8")).status).toBe(101);
  });

  it("with purge tombstones the user's kept messages, one delete frame each, and leaves the others", async () => {
    const room = freshRoom();
    const spammer = await join(room, { name: "spam" });
    const watcher = await join(room, { name: "watch" });
    spammer.client.say("a");
    watcher.client.say("b");
    spammer.client.say("c");
    for (let i = 0; i < 3; i++) await next(spammer.client, "message");
    const mod = await verifiedUser("mod");
    const client = await joinAs(room, "mod", MODERATOR);
    for (let i = 0; i < 3; i++) await next(watcher.client, "message");
    const before = await usage(room);
    client.send({ type: "ban", user: spammer.welcome.you.id, purge: true });
    expect(await spammer.client.closed).toEqual({ code: 4003, reason: "banned" });
    expect(await next(watcher.client, "delete")).toEqual({ type: "delete", id: 1, by: mod, ts: expect.any(Number) });
    expect(await next(watcher.client, "delete")).toEqual({ type: "delete", id: 3, by: mod, ts: expect.any(Number) });
    await settle(watcher.client);
    const after = await usage(room);
    // The first ban of the room creates its table (3 rows written), then one row per tombstone.
    expect({ read: after.rowsRead - before.rowsRead, written: after.rowsWritten - before.rowsWritten }).toEqual({
      read: 3,
      written: 5,
    });
    expect((await history(room)).map((m) => [m.id, m.text, m.deleted])).toEqual([
      [1, "", true],
      [2, "b", undefined],
      [3, "", true],
    ]);
  });

  it("ends when its minutes are over, with no alarm to lift it", async () => {
    const room = freshRoom();
    const res = await upgrade(room, "192.0.2.10");
    const guest = new Client(res.webSocket!);
    const welcome = await guest.welcome();
    const client = await joinAs(room, "mod", MODERATOR);
    client.send({ type: "ban", user: welcome.you.id, minutes: 1 });
    await guest.closed;
    expect((await upgrade(room, "192.0.2.99", welcome.token)).status).toBe(403);
    expect((await upgrade(room, "192.0.2.10")).status).toBe(403);
    const alarm = await runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.storage.getAlarm());
    // The idle sweep's alarm (sockets are open) is at most a minute away; nothing is set for the ban.
    expect(alarm === null || alarm <= Date.now() + 60_000).toBe(true);
    // A minute later: the stored ban ends in the past.
    await runInDurableObject(roomStub(room), (_: ChatRoom, state) => {
      state.storage.sql.exec("UPDATE moderation_bans SET until = ?", Date.now() - 1);
    });
    await restart(room);
    expect((await upgrade(room, "192.0.2.99", welcome.token)).status).toBe(101);
    expect((await upgrade(room, "192.0.2.10")).status).toBe(101);
  });

  it("is lifted by unban, for the user and its address", async () => {
    const room = freshRoom();
    const res = await upgrade(room, "192.0.2.20");
    const guest = new Client(res.webSocket!);
    const welcome = await guest.welcome();
    const client = await joinAs(room, "mod", MODERATOR);
    client.send({ type: "ban", user: welcome.you.id });
    await guest.closed;
    expect((await upgrade(room, "192.0.2.20")).status).toBe(403);
    client.send({ type: "unban", user: welcome.you.id });
    await settle(client);
    expect((await upgrade(room, "192.0.2.21", welcome.token)).status).toBe(101);
    expect((await upgrade(room, "192.0.2.20")).status).toBe(101);
  });

  it("survives a restart and a wake, and a moderator is still one after a wake", async () => {
    const room = freshRoom();
    const res = await upgrade(room, "192.0.2.30");
    const guest = new Client(res.webSocket!);
    const welcome = await guest.welcome();
    const client = await joinAs(room, "mod", MODERATOR);
    const other = await join(room);
    await next(client, "join");
    await evictDurableObject(roomStub(room));
    client.send({ type: "ban", user: welcome.you.id, reason: "flood" });
    expect(await guest.closed).toEqual({ code: 4003, reason: "banned: flood" });
    await evictDurableObject(roomStub(room));
    expect((await upgrade(room, "192.0.2.31", welcome.token)).status).toBe(403);
    await restart(room);
    const refused = await upgrade(room, "192.0.2.30");
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({
      error: "banned",
      message: "you are banned from this room",
      until: null,
      reason: "flood",
    });
    other.client.close();
  });
});

describe("slow mode", () => {
  async function setUp(room: string, seconds: number): Promise<{ mod: User; client: Client }> {
    const mod = await verifiedUser("mod");
    const client = await joinAs(room, "mod", MODERATOR);
    client.send({ type: "settings", slowMode: seconds });
    expect(await next(client, "settings")).toEqual({ type: "settings", slowMode: seconds });
    return { mod, client };
  }

  it("lets a user post once per interval across its sockets, exempts moderators, and tells everyone", async () => {
    const room = freshRoom();
    const watcher = await join(room);
    const { client } = await setUp(room, 60);
    expect(await next(watcher.client, "settings")).toEqual({ type: "settings", slowMode: 60 });
    const a = await join(room, { name: "ann" });
    expect(a.welcome.limits.slowMode).toBe(60);
    const b = await join(room, { name: "ann", token: a.welcome.token });
    a.client.say("first");
    expect(await next(a.client, "message")).toMatchObject({ text: "first" });
    await next(b.client, "message");
    b.client.say("second", "s2");
    const refused = await next(b.client, "error");
    expect(refused).toEqual({
      type: "error",
      code: "slow_mode",
      message: expect.stringMatching(/^slow mode: wait \d+ s before the next message$/),
      nonce: "s2",
    });
    // Moderators are exempt.
    client.say("one");
    client.say("two");
    expect((await next(watcher.client, "message")).text).toBe("first");
    expect((await next(watcher.client, "message")).text).toBe("one");
    expect((await next(watcher.client, "message")).text).toBe("two");
    // Off again: everyone may post.
    client.send({ type: "settings", slowMode: 0 });
    expect((await next(b.client, "message")).text).toBe("one");
    expect((await next(b.client, "message")).text).toBe("two");
    await next(b.client, "settings");
    b.client.say("now");
    expect((await next(b.client, "message")).text).toBe("now");
  });

  it("counts a slow_mode refusal as a strike", async () => {
    const room = freshRoom();
    await setUp(room, 60);
    const { client } = await join(room);
    client.say("first");
    await next(client, "message");
    for (let i = 0; i < 19; i++) {
      client.say("again");
      await client.error("slow_mode");
    }
    client.say("again");
    await client.error("slow_mode");
    expect(await client.closed).toEqual({ code: 1008, reason: "too many errors" });
  });

  it("holds across a wake from the posting socket's snapshot, even when its post has left the history ring", async () => {
    const room = freshRoom();
    await setUp(room, 600);
    const a = await join(room);
    const b = await join(room, { token: a.welcome.token });
    a.client.say("first");
    await next(b.client, "message");
    // 100 messages from the HTTP API (not slowed) push "first" out of the ring.
    await seed(room, 100);
    for (let i = 0; i < 100; i++) await next(b.client, "message");
    expect((await history(room)).some((m) => m.from.id === a.welcome.you.id)).toBe(false);
    await evictDurableObject(roomStub(room));
    b.client.say("after the wake", "w");
    expect(await next(b.client, "error")).toMatchObject({ code: "slow_mode", nonce: "w" });
  });

  it("holds across a restart from the history ring, and keeps its setting", async () => {
    const room = freshRoom();
    await setUp(room, 600);
    const a = await join(room);
    a.client.say("first");
    await next(a.client, "message");
    await restart(room);
    const c = await join(room, { token: a.welcome.token });
    expect(c.welcome.limits.slowMode).toBe(600);
    c.client.say("after the restart");
    await c.client.error("slow_mode");
  });
});

describe("messages", () => {
  it("still cost one row written each with moderation in use", async () => {
    const room = freshRoom();
    const client = await joinAs(room, "mod", MODERATOR);
    client.send({ type: "settings", slowMode: 5 });
    await next(client, "settings");
    client.send({ type: "ban", user: "u_0123456789abcdef01234567" });
    const guest = await join(room);
    await next(client, "join");
    const before = await usage(room);
    guest.client.say("one");
    client.say("two");
    await next(guest.client, "message");
    await next(guest.client, "message");
    const after = await usage(room);
    expect(after.messages - before.messages).toBe(2);
    expect(after.rowsWritten - before.rowsWritten).toBe(2);
  });
});

describe("row costs (BENCHMARKS.md)", () => {
  it("of delete, ban, ban with purge, unban and settings, in a warm room", async () => {
    const room = freshRoom();
    const client = await joinAs(room, "mod", MODERATOR);
    const spammer = await join(room);
    for (let i = 0; i < 5; i++) spammer.client.say(`s${i}`);
    for (let i = 0; i < 5; i++) await next(client, "message");
    client.say("mine");
    await next(client, "message");
    const cost = async (frame: unknown, until: () => Promise<unknown>) => {
      const before = await usage(room);
      client.send(frame);
      await until();
      const after = await usage(room);
      return [after.rowsRead - before.rowsRead, after.rowsWritten - before.rowsWritten];
    };
    const rows = {
      delete: await cost({ type: "delete", id: 6 }, () => next(client, "delete")),
      deleteAgain: await cost({ type: "delete", id: 6 }, () => settle(client)),
      firstBan: await cost({ type: "ban", user: "u_aaaaaaaaaaaaaaaaaaaaaaaa" }, () => settle(client)),
      ban: await cost({ type: "ban", user: "u_bbbbbbbbbbbbbbbbbbbbbbbb", minutes: 5 }, () => settle(client)),
      banPurge5: await cost({ type: "ban", user: spammer.welcome.you.id, purge: true }, async () => {
        for (let i = 0; i < 5; i++) await next(client, "delete");
      }),
      unban: await cost({ type: "unban", user: "u_bbbbbbbbbbbbbbbbbbbbbbbb" }, () => settle(client)),
      unbanNotBanned: await cost({ type: "unban", user: "u_bbbbbbbbbbbbbbbbbbbbbbbb" }, () => settle(client)),
      firstSettings: await cost({ type: "settings", slowMode: 5 }, () => next(client, "settings")),
      settings: await cost({ type: "settings", slowMode: 10 }, () => next(client, "settings")),
      sameSettings: await cost({ type: "settings", slowMode: 10 }, () => next(client, "settings")),
    };
    // [rows read, rows written]; the first ban and the first settings change create their table.
    expect(rows).toEqual({
      delete: [1, 1],
      deleteAgain: [0, 0],
      firstBan: [1, 3],
      ban: [0, 1],
      banPurge5: [5, 6],
      unban: [1, 1],
      unbanNotBanned: [0, 0],
      firstSettings: [1, 3],
      settings: [0, 1],
      sameSettings: [0, 0],
    });
  });
});
