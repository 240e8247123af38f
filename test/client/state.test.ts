// The web client's protocol state (public/js/state.js), in plain Node: no
// browser, no socket. The e2e tests drive the same code through Chromium.

import { describe, expect, it } from "vitest";
import type { Message, User, WelcomeFrame } from "../../src/protocol.ts";
import { ACK_EVERY, RoomState } from "../../public/js/state.js";

const alice: User = { id: "u_alice", name: "Alice" };
const bob: User = { id: "u_bob", name: "Bob" };
const limits = { history: 100, text: 2000, name: 32, burst: 2, perSec: 4 };

function msg(id: number, from: User = bob, nonce?: string): Message {
  return nonce === undefined ? { type: "message", id, ts: 1000 + id, from, text: `m${id}` } : { type: "message", id, ts: 1000 + id, from, text: `m${id}`, nonce };
}

function welcome(history: Message[], extra: Partial<WelcomeFrame> = {}): WelcomeFrame {
  return { type: "welcome", room: "r", you: alice, token: "t", online: [alice, bob], history, gap: false, limits, ...extra };
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
    expect(Object.keys(s).sort()).toEqual(["acked", "firstId", "lastId", "limits", "me", "online", "outbox"]);
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
});
