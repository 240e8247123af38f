// The room's behaviour over real WebSockets, through the Worker, in workerd.

import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { Message } from "../src/protocol.ts";
import type { ChatRoom } from "../src/room.ts";
import { freshRoom, join, open, publish, roomStub, seed } from "./helpers.ts";

const USER_ID = /^u_[0-9a-f]{24}$/;
const LIMITS = { history: 100, text: 2000, name: 32, burst: 10, perSec: 5 };

describe("welcome", () => {
  it("is the first frame, with the user, the room, presence, history and limits", async () => {
    const room = freshRoom();
    const { welcome } = await join(room, { name: "  alice  " });
    expect(welcome).toEqual({
      type: "welcome",
      room,
      you: { id: expect.stringMatching(USER_ID), name: "alice" },
      token: expect.stringMatching(/^u_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}$/),
      online: [welcome.you],
      onlineCount: 1,
      history: [],
      gap: false,
      limits: LIMITS,
    });
    expect(welcome.token.startsWith(`${welcome.you.id}.`)).toBe(true);
  });

  it("names a guest when the name is absent or breaks a rule", async () => {
    const room = freshRoom();
    // A lone surrogate cannot travel in a URL (it is encoded as U+FFFD); the
    // protocol tests cover it.
    const names = [undefined, "", "   ", "x".repeat(33), "bell\u0007", "del\u007f", "tab\tname"];
    for (const name of names) {
      const { welcome } = await join(room, name === undefined ? {} : { name });
      expect(welcome.you.name, `name ${JSON.stringify(name)}`).toMatch(/^guest-[a-z0-9]{4}$/);
    }
  });

  it("keeps a name of 32 code points, astral ones included", async () => {
    const name = "😀".repeat(32);
    const { welcome } = await join(freshRoom(), { name });
    expect(welcome.you.name).toBe(name);
  });

  it("lists each online user once, however many sockets it has", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    await join(room, { name: "alice", token: alice.welcome.token });
    const bob = await join(room, { name: "bob" });
    expect(bob.welcome.online).toHaveLength(2);
    expect(bob.welcome.online).toEqual(
      expect.arrayContaining([alice.welcome.you, { id: bob.welcome.you.id, name: "bob" }]),
    );
  });
});

describe("messages", () => {
  it("reach every socket, the sender's included, stamped by the server", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const bob = await join(room, { name: "bob" });
    expect(await alice.client.next("bob's join")).toEqual({
      type: "join",
      user: bob.welcome.you,
      ts: expect.any(Number),
    });
    const before = Date.now();
    alice.client.say("  hello\nworld  ", "c1");
    const expected = {
      type: "message",
      id: 1,
      ts: expect.any(Number),
      from: alice.welcome.you,
      text: "  hello\nworld  ",
      nonce: "c1",
    };
    const got = await alice.client.message();
    expect(got).toEqual(expected);
    expect(got.ts).toBeGreaterThanOrEqual(before - 1000);
    expect(await bob.client.message()).toEqual(got);
  });

  it("have no nonce when the client gave none, and ids that count up by one", async () => {
    const room = freshRoom();
    const { client } = await join(room);
    client.say("a");
    client.say("b");
    const a = await client.message();
    const b = await client.message();
    expect([a.id, b.id]).toEqual([1, 2]);
    expect("nonce" in a).toBe(false);
  });

  it("take `from`, `id` and `ts` from the server, never from the client", async () => {
    const room = freshRoom();
    const { client, welcome } = await join(room, { name: "mallory" });
    client.send({ type: "message", text: "hi", from: { id: "bot", name: "admin" }, id: 999, ts: 1 });
    const message = await client.message();
    expect(message.from).toEqual(welcome.you);
    expect(message.id).toBe(1);
    expect(message.ts).not.toBe(1);
  });

  it("arrive in one order for everyone while several users send at once", async () => {
    const room = freshRoom();
    const senders = [];
    for (let i = 0; i < 3; i++) senders.push(await join(room, { name: `s${i}` }));
    const watcher = await join(room, { name: "watcher" });
    const everyone = [...senders, watcher];
    // Drain the join frames each client saw before the test traffic.
    for (const [i, s] of everyone.entries()) {
      for (let j = i + 1; j < everyone.length; j++) expect((await s.client.next("join")).type).toBe("join");
    }
    for (let round = 0; round < 8; round++) for (const [i, s] of senders.entries()) s.client.say(`s${i}-${round}`);
    const total = senders.length * 8;
    const seen = await Promise.all(
      everyone.map(async ({ client }) => {
        const ids: number[] = [];
        const texts: string[] = [];
        for (let n = 0; n < total; n++) {
          const m = await client.message(`message ${n + 1} of ${total}`);
          ids.push(m.id);
          texts.push(m.text);
        }
        return { ids, texts };
      }),
    );
    const ids = Array.from({ length: total }, (_, i) => i + 1);
    for (const s of seen) {
      expect(s.ids).toEqual(ids);
      expect(s.texts).toEqual(seen[0]?.texts);
    }
    // Each sender's own messages keep the order it sent them in.
    for (let i = 0; i < senders.length; i++) {
      const own = seen[0]?.texts.filter((t) => t.startsWith(`s${i}-`));
      expect(own).toEqual(Array.from({ length: 8 }, (_, r) => `s${i}-${r}`));
    }
  });
});

describe("history", () => {
  it("keeps the last 100: after 130 messages a new client gets exactly ids 31..130", async () => {
    const room = freshRoom();
    await seed(room, 130);
    const { welcome } = await join(room);
    expect(welcome.history.map((m) => m.id)).toEqual(Array.from({ length: 100 }, (_, i) => i + 31));
    expect(welcome.history.map((m) => m.text)).toEqual(Array.from({ length: 100 }, (_, i) => `m${i + 31}`));
    expect(welcome.gap).toBe(false);
  });

  it("resumes with `after`: only later messages, no gap", async () => {
    const room = freshRoom();
    await seed(room, 5);
    const { welcome } = await join(room, { after: 3 });
    expect(welcome.history.map((m) => m.id)).toEqual([4, 5]);
    expect(welcome.gap).toBe(false);
    const upToDate = await join(room, { after: 5 });
    expect(upToDate.welcome.history).toEqual([]);
    expect(upToDate.welcome.gap).toBe(false);
  });

  it("reports a gap when messages after `after` are gone, and sends everything kept", async () => {
    const room = freshRoom();
    await seed(room, 130);
    // 30 is the newest id no longer kept: the client missed nothing that is gone.
    const edge = await join(room, { after: 30 });
    expect(edge.welcome.gap).toBe(false);
    expect(edge.welcome.history).toHaveLength(100);
    const behind = await join(room, { after: 29 });
    expect(behind.welcome.gap).toBe(true);
    expect(behind.welcome.history.map((m) => m.id)).toEqual(Array.from({ length: 100 }, (_, i) => i + 31));
  });

  it("reports a gap when `after` is beyond the last id the room issued", async () => {
    const room = freshRoom();
    await seed(room, 3);
    const { welcome } = await join(room, { after: 7 });
    expect(welcome.gap).toBe(true);
    expect(welcome.history.map((m) => m.id)).toEqual([1, 2, 3]);
    const empty = await join(freshRoom(), { after: 1 });
    expect(empty.welcome).toMatchObject({ history: [], gap: true });
  });

  it("ignores an `after` that is not decimal digits alone", async () => {
    const room = freshRoom();
    await seed(room, 3);
    for (const after of ["-1", "1.5", "1e2", "abc", " 2", "0x2", ""]) {
      const { welcome } = await join(room, { after });
      expect(
        welcome.history.map((m) => m.id),
        `after=${after}`,
      ).toEqual([1, 2, 3]);
      expect(welcome.gap).toBe(false);
    }
  });

  it("writes one SQLite row per message and reads at most the one it replaces", async () => {
    const room = freshRoom();
    const { client } = await join(room);
    const stub = roomStub(room);
    const before = await runInDurableObject(stub, (instance: ChatRoom) => instance.usage);
    for (let i = 0; i < 150; i++) {
      const res = await publish(room, { text: `x${i}` });
      expect(res.status).toBe(201);
    }
    client.say("one more");
    for (let i = 0; i < 151; i++) await client.message(`message ${i + 1} of 151`);
    const after = await runInDurableObject(stub, (instance: ChatRoom) => instance.usage);
    expect(after.messages - before.messages).toBe(151);
    expect((after.rowsWritten - before.rowsWritten) / 151).toBe(1);
    // The upsert looks at the slot it overwrites; history itself is served from memory.
    expect(after.rowsRead - before.rowsRead).toBeLessThanOrEqual(151);
    // The table never holds more than the ring.
    const rows = await runInDurableObject(stub, (_: ChatRoom, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM messages").one(),
    );
    expect(rows.n).toBe(100);
  });

  it("survives a restart of the object, and ids carry on without reuse", async () => {
    const room = freshRoom();
    await seed(room, 120);
    const stub = roomStub(room);
    await expect(runInDurableObject(stub, (_: ChatRoom, state) => state.abort("test restart"))).rejects.toThrow();
    // The aborted instance is gone; the next request constructs a new one from storage.
    const { client, welcome } = await join(room);
    // Loading the ring after the restart reads each kept row once, and the
    // ban check looks once at the schema (one row: the messages table) to
    // learn that this room never moderated (src/moderation.ts).
    // (The old stub is broken by the abort; a new one reaches the new instance.)
    const usage = await runInDurableObject(roomStub(room), (instance: ChatRoom) => instance.usage);
    expect(usage.rowsRead).toBe(101);
    expect(welcome.history.map((m) => m.id)).toEqual(Array.from({ length: 100 }, (_, i) => i + 21));
    client.say("after restart");
    expect((await client.message()).id).toBe(121);
  });
});

describe("presence", () => {
  it("announces a user once however many sockets share its token, and leaves with the last", async () => {
    const room = freshRoom();
    const watcher = await join(room, { name: "watcher" });
    const first = await join(room, { name: "alice" });
    expect(await watcher.client.next("alice's join")).toEqual({
      type: "join",
      user: first.welcome.you,
      ts: expect.any(Number),
    });
    const second = await join(room, { name: "alice", token: first.welcome.token });
    expect(second.welcome.you.id).toBe(first.welcome.you.id);
    await watcher.client.quiet();
    first.client.close();
    await first.client.closed;
    await watcher.client.quiet();
    second.client.close();
    expect(await watcher.client.next("alice's leave")).toEqual({
      type: "leave",
      user: first.welcome.you,
      ts: expect.any(Number),
    });
  });

  it("refuses the id a forged or tampered token claims, and issues a fresh id with a token of its own", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const [id = "", sig = ""] = alice.welcome.token.split(".");
    const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    const other = `u_${"0".repeat(24)}`;
    // Each forged token and the id it claims.
    const forged: [string, string][] = [
      [`${id}.${flipped}`, id],
      [`${other}.${sig}`, other],
      [`${other}.`, other],
      [id, id],
      [`${id}.${sig}x`, id],
      ["garbage", "garbage"],
    ];
    const issued = new Set([alice.welcome.you.id]);
    for (const [token, claimed] of forged) {
      const { welcome } = await join(room, { name: "mallory", token });
      expect(welcome.you.id, token).not.toBe(claimed);
      expect(welcome.you.id, token).toMatch(USER_ID);
      expect(issued.has(welcome.you.id), token).toBe(false);
      issued.add(welcome.you.id);
      expect(welcome.token.startsWith(`${welcome.you.id}.`), token).toBe(true);
      // The fresh token is a real one: it brings the new id back.
      const again = await join(room, { name: "mallory", token: welcome.token });
      expect(again.welcome.you.id, token).toBe(welcome.you.id);
    }
  });

  it("keeps one id in every room for one token", async () => {
    const alice = await join(freshRoom(), { name: "alice" });
    const elsewhere = await join(freshRoom(), { name: "alice", token: alice.welcome.token });
    expect(elsewhere.welcome.you.id).toBe(alice.welcome.you.id);
  });

  it("answers ping with pong", async () => {
    const { client } = await join(freshRoom());
    client.send("ping");
    expect(await client.nextText("pong")).toBe("pong");
  });
});

describe("bad input", () => {
  const cases: [string, string, string][] = [
    ["not JSON", "{nope", "bad_json"],
    ["truncated JSON", '{"type":"message","text":"hi"', "bad_json"],
    ["null", "null", "bad_json"],
    ["an array", '[{"type":"message","text":"hi"}]', "bad_json"],
    ["a string", '"hello"', "bad_json"],
    ["a number", "42", "bad_json"],
    ["no type", '{"text":"hi"}', "unknown_type"],
    ["an unknown type", '{"type":"shout","text":"hi"}', "unknown_type"],
    ["a type that is not a string", '{"type":1,"text":"hi"}', "unknown_type"],
    ["no text", '{"type":"message"}', "invalid_message"],
    ["text not a string", '{"type":"message","text":5}', "invalid_message"],
    ["blank text", '{"type":"message","text":" \\n\\t "}', "invalid_message"],
    ["a lone surrogate", '{"type":"message","text":"a\\ud800b"}', "invalid_message"],
    ["text of 2001 characters", JSON.stringify({ type: "message", text: "x".repeat(2001) }), "invalid_message"],
    ["a nonce that is not a string", '{"type":"message","text":"hi","nonce":7}', "invalid_message"],
    [
      "a nonce of 65 characters",
      JSON.stringify({ type: "message", text: "hi", nonce: "n".repeat(65) }),
      "invalid_message",
    ],
    ["text inherited through __proto__", '{"type":"message","__proto__":{"text":"hi"}}', "invalid_message"],
  ];

  it.each(cases)("answers %s with its error code, stays open, and no one else sees it", async (_, frame, code) => {
    const room = freshRoom();
    const bystander = await join(room, { name: "bystander" });
    const mallory = await join(room, { name: "mallory" });
    await bystander.client.next("mallory's join");
    mallory.client.send(frame);
    expect(await mallory.client.next(`error ${code}`)).toEqual({ type: "error", code, message: expect.any(String) });
    mallory.client.say("still here");
    expect((await mallory.client.message()).text).toBe("still here");
    expect(await bystander.client.message()).toMatchObject({ id: 1, text: "still here" });
    await bystander.client.quiet();
  });

  it("echoes the nonce of a refused message (extension)", async () => {
    const { client } = await join(freshRoom());
    client.send({ type: "message", text: "   ", nonce: "c9" });
    expect(await client.next("error")).toEqual({
      type: "error",
      code: "invalid_message",
      message: expect.any(String),
      nonce: "c9",
    });
    // More than the burst of 10, so that however slowly this machine sends
    // them (the bucket refills at 5 a second) some are refused. The room
    // answers in order: echoes of n0, n1, … and then the first refusal,
    // which must carry the nonce of the first message not echoed.
    for (let i = 0; i < 15; i++) client.say(`m${i}`, `n${i}`);
    let echoed = 0;
    let frame = await client.next("an echo or the first refusal");
    while (frame.type === "message") {
      expect(frame.nonce).toBe(`n${echoed}`);
      echoed++;
      frame = await client.next("an echo or the first refusal");
    }
    expect(echoed).toBeGreaterThanOrEqual(10);
    expect(frame).toMatchObject({ type: "error", code: "rate_limited", nonce: `n${echoed}` });
  });

  it("accepts text of exactly 2000 code points, astral ones included", async () => {
    const { client } = await join(freshRoom());
    const text = "😀".repeat(2000);
    client.say(text);
    expect((await client.message()).text).toBe(text);
  });

  it("answers a binary frame with `unsupported`", async () => {
    const { client } = await join(freshRoom());
    client.ws.send(new Uint8Array([0xff, 0xfe, 0x00]));
    await client.error("unsupported");
  });

  it("closes with 1009 a frame over 16 KiB, and keeps one of exactly 16 KiB open", async () => {
    const room = freshRoom();
    const { client } = await join(room);
    client.send("x".repeat(16_384));
    await client.error("bad_json");
    const big = await join(room);
    await client.next("big's join");
    big.client.send("x".repeat(16_385));
    expect(await big.client.closed).toEqual({ code: 1009, reason: expect.any(String) });
    // Multi-byte text is counted in bytes: 5462 euro signs are 16,386 bytes.
    const euro = await join(room);
    euro.client.send("€".repeat(5462));
    expect((await euro.client.closed).code).toBe(1009);
  });

  it("closes with 1008 after the 20th error frame within a minute", async () => {
    const room = freshRoom();
    const bystander = await join(room, { name: "bystander" });
    const { client } = await join(room, { name: "mallory" });
    await bystander.client.next("join");
    for (let i = 0; i < 25; i++) client.send("{bad");
    for (let i = 0; i < 20; i++) await client.error("bad_json");
    expect(await client.closed).toEqual({ code: 1008, reason: expect.any(String) });
    expect(await bystander.client.next("mallory's leave")).toMatchObject({ type: "leave" });
    await bystander.client.quiet();
  });

  it("rate-limits a burst under the default limits: 10 pass at once, then 5 a second", async () => {
    const room = freshRoom();
    const bystander = await join(room);
    const { client } = await join(room);
    await bystander.client.next("join");
    // 25 stays under the 20 errors that would close the connection (1008).
    const started = Date.now();
    for (let i = 0; i < 25; i++) client.say(`burst ${i}`);
    const frames = [];
    for (let i = 0; i < 25; i++) frames.push(await client.next(`answer ${i + 1} of 25`));
    const elapsed = (Date.now() - started) / 1000;
    const delivered = frames.filter((f): f is Message => f.type === "message").map((m) => m.text);
    const limited = frames.filter((f) => f.type === "error" && f.code === "rate_limited");
    // The first 10 always pass; after them only what the bucket refilled in
    // the time the burst took (5 a second) can, however slow this machine is.
    expect(delivered.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `burst ${i}`));
    expect(delivered.length).toBeLessThanOrEqual(10 + Math.floor(elapsed * 5));
    expect(delivered.length + limited.length).toBe(25);
    expect(limited.length).toBeGreaterThan(0);
    const seen = [];
    for (let i = 0; i < delivered.length; i++) seen.push((await bystander.client.message()).text);
    expect(seen).toEqual(delivered);
    await bystander.client.quiet();
  });

  it("leaves stored history untouched", async () => {
    const room = freshRoom();
    await seed(room, 3);
    const { client } = await join(room);
    for (const frame of ["{", "[]", '{"type":"message","text":""}', '{"type":"x"}']) client.send(frame);
    for (let i = 0; i < 4; i++) expect((await client.next("error")).type).toBe("error");
    const again = await join(room);
    expect(again.welcome.history.map((m) => m.text)).toEqual(["m1", "m2", "m3"]);
  });
});

describe("hibernation", () => {
  it("keeps users, names and presence across an eviction with the sockets left open", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const bob = await join(room, { name: "bob" });
    await alice.client.next("bob's join");
    alice.client.say("before");
    await alice.client.message();
    await bob.client.message();
    await evictDurableObject(roomStub(room));
    alice.client.say("after", "n2");
    expect((await alice.client.message()).id).toBe(2);
    expect(await bob.client.message()).toEqual({
      type: "message",
      id: 2,
      ts: expect.any(Number),
      from: alice.welcome.you,
      text: "after",
      nonce: "n2",
    });
    const carol = await join(room, { name: "carol" });
    expect(carol.welcome.online).toHaveLength(3);
    bob.client.close();
    expect(await alice.client.next("carol's join")).toMatchObject({ type: "join" });
    expect(await alice.client.next("bob's leave")).toEqual({
      type: "leave",
      user: bob.welcome.you,
      ts: expect.any(Number),
    });
  });

  it("wakes for a close: the user's only socket leaves once, and presence is right for the next one in", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const bob = await join(room, { name: "bob" });
    await alice.client.next("bob's join");
    await evictDurableObject(roomStub(room));
    bob.client.close();
    expect(await bob.client.closed).toEqual({ code: 1000, reason: expect.any(String) });
    expect(await alice.client.next("bob's leave")).toEqual({
      type: "leave",
      user: bob.welcome.you,
      ts: expect.any(Number),
    });
    await alice.client.quiet();
    const carol = await join(room, { name: "carol" });
    expect(carol.welcome.online).toHaveLength(2);
    expect(carol.welcome.online).toEqual(expect.arrayContaining([alice.welcome.you, carol.welcome.you]));
  });

  it("announces no leave when one of a user's two sockets closes after a wake, and one leave with the last", async () => {
    const room = freshRoom();
    const watcher = await join(room, { name: "watcher" });
    const first = await join(room, { name: "alice" });
    const second = await join(room, { name: "alice", token: first.welcome.token });
    expect(await watcher.client.next("alice's join")).toEqual({
      type: "join",
      user: first.welcome.you,
      ts: expect.any(Number),
    });
    await evictDurableObject(roomStub(room));
    // The close is the event that wakes the room.
    first.client.close();
    await first.client.closed;
    await watcher.client.quiet();
    const late = await join(room, { name: "late" });
    expect(late.welcome.online).toHaveLength(3);
    expect(late.welcome.online).toEqual(
      expect.arrayContaining([watcher.welcome.you, first.welcome.you, late.welcome.you]),
    );
    await watcher.client.next("late's join");
    await evictDurableObject(roomStub(room));
    second.client.close();
    await second.client.closed;
    expect(await watcher.client.next("alice's leave")).toEqual({
      type: "leave",
      user: first.welcome.you,
      ts: expect.any(Number),
    });
    await watcher.client.quiet();
  });
});

describe("dead connections", () => {
  /** Makes a socket look silent since `ms` ago, as if its client vanished without a close. */
  async function silence(room: string, userId: string, ms: number): Promise<void> {
    await runInDurableObject(roomStub(room), (_: ChatRoom, state) => {
      for (const ws of state.getWebSockets()) {
        const session = ws.deserializeAttachment() as { user: { id: string }; seen: number };
        if (session.user.id === userId) ws.serializeAttachment({ ...session, seen: Date.now() - ms });
      }
    });
    // A wake reads the attachments afresh.
    await evictDurableObject(roomStub(room));
  }

  /** Polls the room's socket count (a round trip each) until `done`; the runtime drops a socket once its close is handled. */
  async function until(room: string, what: string, done: (sockets: number) => boolean): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const sockets = await runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.getWebSockets().length);
      if (done(sockets)) return;
      await scheduler.wait(10);
    }
    throw new Error(`expected ${what}, but it never happened`);
  }

  it("closes a socket silent for 60 s, and its user leaves", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const ghost = await join(room, { name: "ghost" });
    await alice.client.next("ghost's join");
    await silence(room, ghost.welcome.you.id, 61_000);
    expect(await runDurableObjectAlarm(roomStub(room))).toBe(true);
    expect(await alice.client.next("ghost's leave")).toEqual({
      type: "leave",
      user: ghost.welcome.you,
      ts: expect.any(Number),
    });
    expect((await ghost.client.closed).code).toBe(1000);
    // Alice was active, so she stays, and the sweep stays scheduled for her.
    alice.client.say("still here");
    expect((await alice.client.message()).text).toBe("still here");
    const alarm = await runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
  });

  it("announces one leave for a socket it closed, when the client's close comes only after a wake", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const ghost = await join(room, { name: "ghost", halfOpen: true });
    await alice.client.next("ghost's join");
    await silence(room, ghost.welcome.you.id, 61_000);
    expect(await runDurableObjectAlarm(roomStub(room))).toBe(true);
    expect(await alice.client.next("ghost's leave")).toEqual({
      type: "leave",
      user: ghost.welcome.you,
      ts: expect.any(Number),
    });
    expect((await ghost.client.closed).code).toBe(1000);
    // The room forgets everything in memory; then the ghost's close arrives.
    await evictDurableObject(roomStub(room));
    ghost.client.close();
    await until(room, "the ghost's close reached the room", (sockets) => sockets === 1);
    await alice.client.quiet();
  });

  it("counts a ping, answered without waking the room, as a sign of life", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const quiet = await join(room, { name: "quiet" });
    await alice.client.next("join");
    await silence(room, quiet.welcome.you.id, 61_000);
    quiet.client.send("ping");
    expect(await quiet.client.nextText("pong")).toBe("pong");
    await runDurableObjectAlarm(roomStub(room));
    await alice.client.quiet();
    quiet.client.say("alive");
    expect((await quiet.client.message()).text).toBe("alive");
  });
});

describe("faults", () => {
  /**
   * Makes the next call of a runtime method throw, as storage or the runtime
   * can fail; the room under test runs unchanged. workerd has no switch to
   * make its local storage fail, so the fault is injected into the object the
   * room calls (its own `ctx` or `ctx.storage`), once.
   */
  function failOnce(target: object, method: string): void {
    Object.defineProperty(target, method, {
      configurable: true,
      value: () => {
        delete (target as Record<string, unknown>)[method];
        throw new Error(`injected fault in ${method}`);
      },
    });
  }

  const faultInjected = (target: object, method: string) => Object.hasOwn(target, method);

  it("arms the idle sweep on the next connect when arming it failed once", async () => {
    const room = freshRoom();
    await runInDurableObject(roomStub(room), (_: ChatRoom, state) => failOnce(state.storage, "getAlarm"));
    await join(room, { name: "first" });
    await join(room, { name: "second" });
    const { pending, alarm } = await runInDurableObject(roomStub(room), async (_: ChatRoom, state) => ({
      pending: faultInjected(state.storage, "getAlarm"),
      alarm: await state.storage.getAlarm(),
    }));
    expect(pending).toBe(false);
    expect(alarm).not.toBeNull();
  });

  it("arms the idle sweep on the next connect when the sweep failed to store its next alarm", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    await runInDurableObject(roomStub(room), (_: ChatRoom, state) => failOnce(state.storage, "setAlarm"));
    await expect(runDurableObjectAlarm(roomStub(room))).rejects.toThrow("injected fault in setAlarm");
    await join(room, { name: "bob" });
    const alarm = await runInDurableObject(roomStub(room), (_: ChatRoom, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(await alice.client.next("bob's join")).toMatchObject({ type: "join" });
    alice.client.say("still here");
    expect((await alice.client.message()).text).toBe("still here");
  });

  it("logs a fault in the close handler with its context, and the room serves on", async () => {
    const room = freshRoom();
    const alice = await join(room, { name: "alice" });
    const bob = await join(room, { name: "bob" });
    await alice.client.next("bob's join");
    await evictDurableObject(roomStub(room));
    // The next event rebuilds the members from the runtime's socket list: make that fail.
    await runInDurableObject(roomStub(room), (_: ChatRoom, state) => failOnce(state, "getWebSockets"));
    const errors = vi.spyOn(console, "error");
    try {
      bob.client.close();
      await bob.client.closed;
      await alice.client.quiet();
      const faults = errors.mock.calls.map(([line]) => String(line)).filter((line) => line.includes('"event":"fault"'));
      expect(faults.map((line) => JSON.parse(line) as unknown)).toEqual([
        {
          level: "error",
          event: "fault",
          component: "room",
          where: "close",
          code: 1000,
          error: "Error: injected fault in getWebSockets",
        },
      ]);
    } finally {
      errors.mockRestore();
    }
    const carol = await join(room, { name: "carol" });
    expect(carol.welcome.online.map((u) => u.name).sort()).toEqual(["alice", "carol"]);
  });
});

describe("connections", () => {
  it("opens a room per name, folding upper case", async () => {
    const room = freshRoom();
    const lower = await join(room, { name: "a" });
    const upper = await open(room.toUpperCase(), { name: "b" });
    const welcome = await upper.welcome();
    expect(welcome.room).toBe(room);
    expect(welcome.online.map((u) => u.id)).toContain(lower.welcome.you.id);
  });
});
