// The web client's protocol state (public/js/state.js), in plain Node: no
// browser, no socket. The e2e tests drive the same code through Chromium.

import { describe, expect, it } from "vitest";
import type { Message, User, WelcomeFrame } from "../../public/js/frames.js";
import { parseServerFrame } from "../../public/js/frames.js";
import { ACK_EVERY, BAN_RETRIES, RoomState, foldName, parseBan, shortId } from "../../public/js/state.js";
import { isModerator, mayDelete } from "../../src/protocol.ts";

const alice: User = { id: "u_alice", name: "Alice" };
const bob: User = { id: "u_bob", name: "Bob" };
const limits = { history: 100, text: 2000, name: 32, burst: 2, perSec: 4 };

function msg(id: number, from: User = bob, nonce?: string): Message {
  return nonce === undefined
    ? { type: "message", id, ts: 1000 + id, from, text: `m${id}` }
    : { type: "message", id, ts: 1000 + id, from, text: `m${id}`, nonce };
}

function welcome(history: Message[], extra: Partial<WelcomeFrame> = {}): WelcomeFrame {
  return {
    type: "welcome",
    room: "r",
    you: alice,
    token: "t",
    online: [alice, bob],
    history,
    gap: false,
    limits,
    ...extra,
  };
}

const ids = (list: Message[]) => list.map((m) => m.id);

describe("RoomState", () => {
  it("takes a welcome: who it is, the limits, who is online, the history once", () => {
    const s = new RoomState();
    const got = s.welcome(welcome([msg(1), msg(2)]), 0);
    expect(s.me).toEqual(alice);
    expect(s.limits).toEqual(limits);
    expect(s.people()).toEqual([alice, bob]);
    expect(got).toEqual({ fresh: [msg(1), msg(2)], confirmed: [], history: "kept", trimmed: false });
    expect(s.lastId).toBe(2);
  });

  it("drops ids it has seen, across batches and a reconnect's history", () => {
    const s = new RoomState();
    s.welcome(welcome([msg(1), msg(2)]), 0);
    expect(ids(s.messages([msg(2), msg(3)]).fresh)).toEqual([3]);
    expect(ids(s.messages([msg(3)]).fresh)).toEqual([]);
    expect(ids(s.welcome(welcome([msg(3), msg(4)]), 0).fresh)).toEqual([4]);
    expect(s.lastId).toBe(4);
  });

  it("remembers one number, not every id: 10,000 messages leave nothing behind but lastId", () => {
    const s = new RoomState();
    for (let id = 1; id <= 10_000; id++) s.messages([msg(id)]);
    expect(s.lastId).toBe(10_000);
    expect(Object.keys(s).sort()).toEqual([
      "acked",
      "ban",
      "firstId",
      "lastId",
      "limits",
      "me",
      "online",
      "onlineCount",
      "outbox",
    ]);
    expect(ids(s.messages([msg(1), msg(9999), msg(10_001)]).fresh)).toEqual([10_001]);
  });

  it("says when history was trimmed, missed, or reset", () => {
    const trimmed = new RoomState();
    expect(trimmed.welcome(welcome([msg(5), msg(6)]), 0)).toMatchObject({ history: "kept", trimmed: true });

    const away = new RoomState();
    away.welcome(welcome([msg(1), msg(2)]), 0);
    expect(away.welcome(welcome([msg(50)], { gap: true }), 0)).toMatchObject({ history: "gap", fresh: [msg(50)] });

    const reset = new RoomState();
    reset.welcome(welcome([msg(7), msg(8)]), 0);
    const got = reset.welcome(welcome([msg(1)], { gap: true }), 0);
    expect(got).toMatchObject({ history: "reset", fresh: [msg(1)], trimmed: false });
    expect(reset.lastId).toBe(1);
  });

  it("confirms a pending message by its nonce alone, whoever the room says sent it", () => {
    const s = new RoomState();
    s.welcome(welcome([]), 0);
    const p = s.outbox.add("hello");
    expect(p).not.toBeNull();
    // A new id after a lost token: still this page's message.
    const got = s.messages([msg(1, { id: "u_new", name: "Alice" }, p!.nonce)]);
    expect(got.confirmed).toEqual([p]);
    expect(s.outbox.items).toEqual([]);
    expect(s.messages([msg(2, bob, "someone-else")]).confirmed).toEqual([]);
  });

  it("on a reconnect, what was in flight is confirmed by the history or queued again", () => {
    const s = new RoomState();
    s.welcome(welcome([]), 0);
    const stored = s.outbox.add("stored")!;
    s.sent(stored, 0);
    const lost = s.outbox.add("lost")!;
    expect(s.outbox.next()).toBeUndefined();
    const got = s.welcome(welcome([msg(1, alice, stored.nonce)]), 0);
    expect(got.confirmed).toEqual([stored]);
    expect(s.outbox.next()).toBe(lost);
  });

  it("mirrors the room's token bucket: burst, then one per 1/perSec; rate_limited empties it", () => {
    const s = new RoomState();
    s.welcome(welcome([]), 0);
    const p = s.outbox.add("x")!;
    expect(s.sendWait(0)).toBe(0);
    s.sent(p, 0);
    expect(s.sendWait(0)).toBe(0);
    s.sent(p, 0);
    expect(s.sendWait(0)).toBe(250);
    expect(s.sendWait(125)).toBe(125);
    expect(s.sendWait(250)).toBe(0);
    s.rateLimited();
    expect(p.state).toBe("queued");
    expect(s.sendWait(250)).toBe(250);
  });

  it("acks at once every ACK_EVERY messages", () => {
    const s = new RoomState();
    s.welcome(welcome([]), 0);
    s.messages(Array.from({ length: ACK_EVERY - 1 }, (_, i) => msg(i + 1)));
    expect(s.ackDue).toBe(false);
    s.messages([msg(ACK_EVERY)]);
    expect(s.ackDue).toBe(true);
    s.acked = s.lastId;
    expect(s.ackDue).toBe(false);
  });

  it("keeps presence: a second socket of someone online is not a new join", () => {
    const s = new RoomState();
    s.welcome(welcome([], { online: [alice] }), 0);
    const carol = { id: "u_carol", name: "Carol" };
    expect(s.join(carol)).toBe(true);
    expect(s.join(carol)).toBe(false);
    expect(s.join(bob)).toBe(true);
    expect(s.people().map((u) => u.name)).toEqual(["Alice", "Bob", "Carol"]);
    s.leave(bob);
    expect(s.people().map((u) => u.name)).toEqual(["Alice", "Carol"]);
  });

  it("turns a slow-mode setting into a countdown from this user's last post, on the given clock", () => {
    const s = new RoomState();
    s.welcome(welcome([], { limits: { ...limits, burst: 100, slowMode: 10 } }), 0);
    expect(s.slowMode).toBe(10);
    expect(s.slowWait(0)).toBe(0);
    const p = s.outbox.add("one")!;
    s.sent(p, 1_000);
    expect(s.slowWait(1_000)).toBe(10_000);
    expect(s.sendWait(1_000)).toBe(10_000);
    expect(s.slowWait(7_500)).toBe(3_500);
    // The echo, arriving later, restarts the interval: the room counted from when it got the message.
    s.messages([msg(1, alice, p.nonce)], 1_200);
    expect(s.slowWait(7_500)).toBe(3_700);
    expect(s.slowWait(11_200)).toBe(0);
    // A message from this user's other tab counts too; a message from someone else does not.
    s.messages([msg(2, bob)], 20_000);
    expect(s.slowWait(20_000)).toBe(0);
    s.messages([msg(3, alice)], 20_000);
    expect(s.slowWait(25_000)).toBe(5_000);
    // History on a reconnect is not a post now.
    s.welcome(welcome([msg(4, alice)], { limits: { ...limits, burst: 100, slowMode: 10 } }), 40_000);
    expect(s.slowWait(40_000)).toBe(0);
  });

  it("follows settings frames: on, longer, off", () => {
    const s = new RoomState();
    s.welcome(welcome([]), 0);
    expect(s.slowMode).toBe(0);
    s.sent(s.outbox.add("x")!, 0);
    expect(s.slowWait(0)).toBe(0);
    s.settings(30);
    expect(s.slowWait(1_000)).toBe(29_000);
    s.settings(60);
    expect(s.slowWait(1_000)).toBe(59_000);
    s.settings(0);
    expect(s.slowWait(1_000)).toBe(0);
    expect(s.limits).toEqual({ ...limits, slowMode: 0 });
  });

  it("a slow_mode refusal queues the message again and waits a whole interval from then", () => {
    const s = new RoomState();
    s.welcome(welcome([], { limits: { ...limits, slowMode: 10 } }), 0);
    const p = s.outbox.add("x")!;
    s.sent(p, 0);
    s.slowed(4_000);
    expect(p.state).toBe("queued");
    expect(s.outbox.next()).toBe(p);
    expect(s.slowWait(4_000)).toBe(10_000);
  });

  it("moderators: exempt from slow mode, may delete any message and ban anyone else", () => {
    const mod: User = { id: "v_mod", name: "Mod", verified: true, roles: ["moderator"] };
    const s = new RoomState();
    s.welcome(welcome([], { you: mod, limits: { ...limits, slowMode: 10 } }), 0);
    expect(s.isModerator).toBe(true);
    s.sent(s.outbox.add("x")!, 0);
    expect(s.slowWait(0)).toBe(0);
    expect(s.canDelete(msg(1, bob))).toBe(true);
    expect(s.canBan(bob)).toBe(true);
    expect(s.canBan(mod)).toBe(false);
    expect(s.canDelete({ ...msg(2, bob), text: "", deleted: true })).toBe(false);

    const guest = new RoomState();
    guest.welcome(welcome([]), 0);
    expect(guest.isModerator).toBe(false);
    expect(guest.canDelete(msg(1, alice))).toBe(true);
    expect(guest.canDelete(msg(2, bob))).toBe(false);
    expect(guest.canBan(bob)).toBe(false);
    // The role counts only on a verified user: a guest cannot be a moderator.
    const fake = new RoomState();
    fake.welcome(welcome([], { you: { id: "u_x", name: "x", roles: ["moderator"] } }), 0);
    expect(fake.isModerator).toBe(false);
  });

  it("a delete frame redraws only a message this page has shown", () => {
    const s = new RoomState();
    s.welcome(welcome([msg(5), msg(6)]), 0);
    const del = (id: number) => ({ type: "delete" as const, id, ts: 1 });
    expect(s.deleted(del(5))).toBe(true);
    expect(s.deleted(del(6))).toBe(true);
    expect(s.deleted(del(4))).toBe(false);
    expect(s.deleted(del(7))).toBe(false);
    expect(new RoomState().deleted(del(1))).toBe(false);
  });

  it("presence in a large room: count, partial list, then the whole list again", () => {
    const s = new RoomState();
    // v1 welcome without onlineCount: the list is the count.
    s.welcome(welcome([]), 0);
    expect([s.onlineCount, s.partial]).toEqual([2, false]);
    // Above the presence limit: a sample of the list and the real count.
    s.welcome(welcome([], { online: [alice, bob], onlineCount: 12_345 }), 0);
    expect([s.onlineCount, s.partial]).toEqual([12_345, true]);
    s.presence({ type: "presence", count: 12_000 });
    expect([s.onlineCount, s.partial, s.online.size]).toEqual([12_000, true, 2]);
    // Back under the limit: the whole list, and joins and leaves count again.
    const carol = { id: "u_carol", name: "Carol" };
    s.presence({ type: "presence", count: 3, online: [alice, bob, carol] });
    expect([s.onlineCount, s.partial]).toEqual([3, false]);
    expect(s.people()).toEqual([alice, bob, carol]);
    s.leave(bob);
    s.leave(bob);
    expect([s.onlineCount, s.partial]).toEqual([2, false]);
    s.join({ id: "u_dave", name: "Dave" });
    expect(s.onlineCount).toBe(3);
  });

  it("a join or leave while the list is partial moves the count by one", () => {
    const s = new RoomState();
    s.welcome(welcome([], { online: [alice], onlineCount: 600 }), 0);
    s.join(bob);
    expect(s.onlineCount).toBe(601);
    s.leave(bob);
    expect(s.onlineCount).toBe(600);
    s.leave({ id: "u_not_listed", name: "x" });
    expect(s.onlineCount).toBe(600);
  });

  it("tells apart people whose names read the same", () => {
    const s = new RoomState();
    const alice2: User = { id: "u_other", name: "ＡＬＩＣＥ" };
    s.welcome(welcome([], { online: [alice, bob, alice2] }), 0);
    expect(s.ambiguous(alice)).toBe(true);
    expect(s.ambiguous(alice2)).toBe(true);
    expect(s.ambiguous(bob)).toBe(false);
    expect(foldName("Ａｌｉｃｅ")).toBe(foldName("alice"));
    expect(shortId("u_3f9c0a1b")).toBe("0a1b");
  });
});

describe("bans", () => {
  const now = Date.UTC(2027, 0, 1);

  it.each([
    ["banned", { reason: "", until: null }],
    ["banned: spam", { reason: "spam", until: null }],
    ["banned until 2027-01-15T08:00:00Z", { reason: "", until: Date.UTC(2027, 0, 15, 8) }],
    [
      "banned until 2027-01-15T08:00:00Z: flooding: again",
      { reason: "flooding: again", until: Date.UTC(2027, 0, 15, 8) },
    ],
    ["banned until 2027-01-15T08:00:00.250Z: x", { reason: "x", until: Date.UTC(2027, 0, 15, 8, 0, 0, 250) }],
    ["banned:no space", { reason: "no space", until: null }],
    ["banned until tomorrow", { reason: "banned until tomorrow", until: null }],
    ["something else", { reason: "something else", until: null }],
    ["", { reason: "", until: null }],
  ])("reads the close reason %j", (reason, want) => {
    expect(parseBan(reason)).toEqual(want);
  });

  it("reads what the room writes, a long reason cut short included (src/moderation.ts banCloseReason)", async () => {
    // Imported by URL: its types need the Workers' (SqlStorage), which the client's tsconfig does not have; this function needs none.
    const { banCloseReason } = (await import(
      /* @vite-ignore */ new URL("../../src/moderation.ts", import.meta.url).href
    )) as {
      banCloseReason: (ban: { until: number | null; reason: string | null }) => string;
    };
    const until = Date.UTC(2027, 5, 1, 12, 30);
    for (const ban of [
      { until: null, reason: null },
      { until: null, reason: "spam" },
      { until, reason: null },
      { until, reason: "flooding the room" },
      { until, reason: "ß".repeat(200) },
    ]) {
      const got = parseBan(banCloseReason(ban));
      expect(got.until, banCloseReason(ban)).toBe(ban.until);
      if (ban.reason === null) expect(got.reason).toBe("");
      else expect(ban.reason.startsWith(got.reason.replace(/…$/, ""))).toBe(true);
    }
    expect(parseBan(banCloseReason({ until, reason: "ß".repeat(200) })).reason).toMatch(/^ß+…$/);
  });

  it("mirrors who may delete and who is a moderator as src/protocol.ts says", () => {
    const mod: User = { id: "v_mod", name: "Mod", verified: true, roles: ["moderator"] };
    const users: User[] = [
      alice,
      bob,
      mod,
      { id: "u_fake", name: "F", roles: ["moderator"] },
      { id: "v_2", name: "V", verified: true, roles: [] },
    ];
    for (const me of users) {
      const s = new RoomState();
      s.welcome(welcome([], { you: me }), 0);
      expect(s.isModerator, me.id).toBe(isModerator(me));
      for (const from of users)
        expect(s.canDelete(msg(1, from)), `${me.id} deletes ${from.id}'s`).toBe(mayDelete(me, msg(1, from)));
    }
  });

  it("a 4003 stops the page; a failed connect while banned stops it again; a welcome ends it", () => {
    const s = new RoomState();
    s.welcome(welcome([]), 0);
    expect(s.closed({ code: 1006, reason: "", welcomed: true }, now)).toBe("retry");
    expect(s.closed({ code: 1006, reason: "", welcomed: false }, now)).toBe("retry");
    expect(s.closed({ code: 4003, reason: "banned: spam", welcomed: true }, now)).toBe("banned");
    expect(s.ban).toEqual({ reason: "spam", until: null });
    // Try again by hand: the room's 403 reaches the page as a failed connect.
    expect(s.closed({ code: 1006, reason: "", welcomed: false }, now + 1)).toBe("banned");
    s.welcome(welcome([]), 0);
    expect(s.ban).toBeNull();
    expect(s.closed({ code: 1006, reason: "", welcomed: false }, now + 2)).toBe("retry");
  });

  it("a timed ban is tried again once over, and given up after BAN_RETRIES refusals", () => {
    const s = new RoomState();
    s.welcome(welcome([]), 0);
    expect(s.closed({ code: 4003, reason: "banned until 2027-01-01T00:10:00Z: calm down", welcomed: true }, now)).toBe(
      "banned",
    );
    const end = now + 600_000;
    expect(s.closed({ code: 1006, reason: "", welcomed: false }, end - 1)).toBe("banned");
    for (let i = 1; i < BAN_RETRIES; i++)
      expect(s.closed({ code: 1006, reason: "", welcomed: false }, end + i)).toBe("retry");
    expect(s.closed({ code: 1006, reason: "", welcomed: false }, end + BAN_RETRIES)).toBe("banned");
    expect(s.ban).toEqual({ reason: "calm down", until: null });
  });
});

describe("parseServerFrame, v1.1", () => {
  const user = { id: "v_1", name: "Ann", verified: true, roles: ["moderator", 7] };
  const parse = (v: unknown) => parseServerFrame(JSON.stringify(v));

  it("keeps verified and its roles (strings only), drops roles of a guest", () => {
    expect(parse({ type: "join", user, ts: 1 })).toEqual({
      type: "join",
      user: { id: "v_1", name: "Ann", verified: true, roles: ["moderator"] },
      ts: 1,
    });
    expect(
      parse({ type: "join", user: { id: "u_1", name: "G", verified: "yes", roles: ["moderator"] }, ts: 1 }),
    ).toEqual({
      type: "join",
      user: { id: "u_1", name: "G" },
      ts: 1,
    });
  });

  it("a tombstone shows no text whatever it carries", () => {
    const tomb = { type: "message", id: 3, ts: 5, from: { id: "u_1", name: "G" }, text: "leaked", deleted: true };
    expect(parse(tomb)).toEqual({ ...tomb, text: "" });
    const w = parse({
      type: "welcome",
      room: "r",
      you: { id: "u_1", name: "G" },
      token: "t",
      online: [],
      history: [tomb],
      gap: false,
      limits: { ...limits, slowMode: 30 },
      onlineCount: 9000,
    });
    expect(w).toMatchObject({
      history: [{ ...tomb, text: "" }],
      limits: { ...limits, slowMode: 30 },
      onlineCount: 9000,
    });
  });

  it("delete, settings and presence frames, alone and in a batch", () => {
    const del = { type: "delete", id: 3, ts: 9 };
    expect(parse({ ...del, by: { id: "v_1", name: "Ann", verified: true } })).toEqual(del);
    expect(parse({ type: "settings", slowMode: 0 })).toEqual({ type: "settings", slowMode: 0 });
    expect(parse({ type: "presence", count: 12345 })).toEqual({ type: "presence", count: 12345 });
    expect(parse({ type: "presence", count: 1, online: [{ id: "u_1", name: "G" }] })).toEqual({
      type: "presence",
      count: 1,
      online: [{ id: "u_1", name: "G" }],
    });
    expect(
      parse({ type: "batch", frames: [del, { type: "settings", slowMode: 5 }, { type: "presence", count: 2 }] }),
    ).toEqual({
      type: "batch",
      frames: [del, { type: "settings", slowMode: 5 }, { type: "presence", count: 2 }],
    });
  });

  it.each([
    { type: "delete", id: 0 },
    { type: "delete", id: "3" },
    { type: "settings", slowMode: -1 },
    { type: "settings", slowMode: 1.5 },
    { type: "settings" },
    { type: "presence", count: -1 },
    { type: "presence", count: 3, online: [{ id: 1 }] },
  ])("ignores %j", (frame) => {
    expect(parse(frame)).toBeNull();
  });
});
