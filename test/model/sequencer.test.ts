// The sequencer (src/sequencer.ts): the room's side of every part's channel.

import { describe, expect, it } from "vitest";
import {
  LINK_VERSION,
  originOf,
  type BanNotice,
  type Downstream,
  type PendingPublish,
  type Upstream,
  type UpstreamOp,
} from "../../src/link.ts";
import type { User } from "../../src/protocol.ts";
import { Roster } from "../../src/roster.ts";
import { Sequencer, type Decide, type Send } from "../../src/sequencer.ts";
import { MemoryStore } from "./sim.ts";

const alice: User = { id: "u_a", name: "alice" };
const bob: User = { id: "u_b", name: "bob" };
const v = LINK_VERSION;

const refuseBang: Decide = (op) =>
  op.text.includes("!") ? { ok: false, code: "slow_mode", message: "wait" } : { ok: true };

function setup(epoch = 1, store = new MemoryStore(4), window = 4) {
  const seq = new Sequencer(epoch, store, new Roster(10), refuseBang, { window, beats: 2, slowMode: () => 0 });
  return { seq, store };
}

function attach(part: string, over: Partial<Extract<Upstream, { type: "attach" }>> = {}): Upstream {
  return {
    v,
    type: "attach",
    part,
    incarnation: `${part}-i`,
    n: 1,
    upTo: 0,
    lastId: null,
    users: [],
    pending: [],
    ...over,
  };
}

function op(part: string, u: number, o: UpstreamOp): Upstream {
  return { v, type: "op", part, incarnation: `${part}-i`, u, op: o };
}

const publish = (from: User, text: string, nonce?: string): Extract<UpstreamOp, { kind: "publish" }> =>
  nonce === undefined ? { kind: "publish", from, text } : { kind: "publish", from, text, nonce };

const framesTo = (sends: Send[], part: string): Downstream[] =>
  sends.filter((s) => s.part === part).map((s) => s.frame);

describe("Sequencer", () => {
  it("answers an attach with a sync: the kept history, presence, and what it acknowledges", () => {
    const { seq, store } = setup();
    for (let i = 1; i <= 6; i++) store.append(bob, `m${i}`, undefined, i, null);
    const sends = seq.receive(attach("p1", { upTo: 3, users: [{ user: alice, sockets: 2 }] }), 100);
    expect(sends).toEqual([
      {
        part: "p1",
        frame: {
          v,
          type: "sync",
          stream: { epoch: 1, gen: 1 },
          acked: 3,
          ring: store.log.slice(2),
          lastId: 6,
          presence: { count: 1, online: [alice] },
          slowMode: 0,
          unknown: [],
          answered: 0,
          rejected: [],
        },
      },
    ]);
    expect(seq.attached).toEqual(["p1"]);
  });

  // Stream generations count per part: p1 and p2 are both in their first.
  it("orders arrivals and publishes into every part's stream, and admits the newcomer after its join", () => {
    const { seq, store } = setup();
    seq.receive(attach("p1"), 0);
    seq.receive(attach("p2"), 0);
    const arrived = seq.receive(op("p1", 1, { kind: "arrive", user: alice }), 10);
    expect(framesTo(arrived, "p2")).toEqual([
      {
        v,
        type: "event",
        stream: { epoch: 1, gen: 1 },
        seq: 1,
        acked: 0,
        event: { kind: "join", user: alice, ts: 10 },
      },
    ]);
    expect(framesTo(arrived, "p1")).toEqual([
      {
        v,
        type: "event",
        stream: { epoch: 1, gen: 1 },
        seq: 1,
        acked: 1,
        event: { kind: "join", user: alice, ts: 10 },
      },
      { v, type: "event", stream: { epoch: 1, gen: 1 }, seq: 2, acked: 1, event: { kind: "admit", u: 1, count: 1 } },
    ]);
    const published = seq.receive(op("p1", 2, publish(alice, "hi", "c1")), 20);
    const message = { type: "message", id: 1, ts: 20, from: alice, text: "hi", nonce: "c1" };
    expect(framesTo(published, "p1")).toEqual([
      { v, type: "event", stream: { epoch: 1, gen: 1 }, seq: 3, acked: 2, event: { kind: "message", message } },
    ]);
    expect(framesTo(published, "p2")).toEqual([
      { v, type: "event", stream: { epoch: 1, gen: 1 }, seq: 2, acked: 0, event: { kind: "message", message } },
    ]);
    expect(store.hasOrigin(originOf("p1", "p1-i", 2))).toBe(true);
  });

  it("handles a repeated upstream frame once and answers it with a beat", () => {
    const { seq, store } = setup();
    seq.receive(attach("p1"), 0);
    seq.receive(op("p1", 1, publish(alice, "once")), 1);
    expect(seq.receive(op("p1", 1, publish(alice, "once")), 2)).toEqual([
      { part: "p1", frame: { v, type: "beat", stream: { epoch: 1, gen: 1 }, seq: 1, acked: 1 } },
    ]);
    expect(store.log.map((m) => m.text)).toEqual(["once"]);
  });

  it("holds an upstream frame that overtook another until the gap is filled", () => {
    const { seq, store } = setup();
    seq.receive(attach("p1"), 0);
    expect(seq.receive(op("p1", 2, publish(alice, "second")), 1)).toEqual([]);
    const sends = seq.receive(op("p1", 1, publish(alice, "first")), 2);
    expect(store.log.map((m) => m.text)).toEqual(["first", "second"]);
    expect(framesTo(sends, "p1").map((f) => (f.type === "event" ? [f.seq, f.acked] : null))).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });

  it("refills from its window, and beyond it starts a new stream with a sync", () => {
    const { seq } = setup(1, new MemoryStore(4), 3);
    seq.receive(attach("p1"), 0);
    const sent: Downstream[] = [];
    for (let u = 1; u <= 5; u++) sent.push(...framesTo(seq.receive(op("p1", u, publish(alice, `m${u}`)), u), "p1"));
    const refill = (from: number, gen = 1): Upstream => ({
      v,
      type: "refill",
      part: "p1",
      incarnation: "p1-i",
      stream: { epoch: 1, gen },
      from,
    });
    expect(framesTo(seq.receive(refill(4), 10), "p1")).toEqual(sent.slice(3));
    const resync = framesTo(seq.receive(refill(2), 11), "p1");
    expect(resync).toHaveLength(1);
    expect(resync[0]).toMatchObject({ type: "sync", stream: { epoch: 1, gen: 2 }, acked: 5, lastId: 5 });
    // A part still asking in the old stream missed that sync: another one.
    expect(framesTo(seq.receive(refill(6), 12), "p1")[0]).toMatchObject({ type: "sync", stream: { epoch: 1, gen: 3 } });
  });

  it("tells a part it does not know to attach", () => {
    const { seq } = setup(7);
    expect(seq.receive(op("p9", 1, { kind: "depart", userId: "u" }), 0)).toEqual([
      { part: "p9", frame: { v, type: "reattach", epoch: 7 } },
    ]);
  });

  it("after a restart stores a repeated publish only if it was not stored, and says when it cannot tell", () => {
    const store = new MemoryStore(3);
    const first = setup(1, store);
    first.seq.receive(attach("p1"), 0);
    first.seq.receive(op("p1", 1, publish(alice, "stored before the restart", "n1")), 1);
    const { seq } = setup(2, store);
    const pending: PendingPublish[] = [
      { u: 1, op: publish(alice, "stored before the restart", "n1"), floor: 0 },
      { u: 2, op: publish(alice, "never stored", "n2"), floor: 1 },
    ];
    const sends = seq.receive(attach("p1", { n: 2, upTo: 2, lastId: 1, pending }), 10);
    expect(store.log.map((m) => m.text)).toEqual(["stored before the restart", "never stored"]);
    expect(framesTo(sends, "p1")[0]).toMatchObject({
      type: "sync",
      stream: { epoch: 2, gen: 1 },
      acked: 2,
      unknown: [],
      answered: 1,
    });
    // Three more messages: the first one is no longer kept, so a publish
    // whose floor is that old cannot be told stored or not.
    for (const t of ["a", "b", "c"]) store.append(bob, t, undefined, 20, null);
    const late = setup(3, store).seq.receive(
      attach("p1", {
        n: 3,
        upTo: 3,
        lastId: 1,
        pending: [{ u: 1, op: publish(alice, "stored before the restart", "n1"), floor: 0 }],
      }),
      30,
    );
    expect(framesTo(late, "p1")).toEqual([expect.objectContaining({ type: "sync", unknown: [1], answered: 0 })]);
    expect(store.log).toHaveLength(5);
  });

  it("repeats a part's refusals in every sync and does not decide them again", () => {
    const { seq, store } = setup();
    seq.receive(attach("p1"), 0);
    const refused = seq.receive(op("p1", 1, publish(alice, "no!", "n1")), 1);
    expect(framesTo(refused, "p1")).toEqual([
      {
        v,
        type: "event",
        stream: { epoch: 1, gen: 1 },
        seq: 1,
        acked: 1,
        event: { kind: "reject", u: 1, code: "slow_mode", message: "wait" },
      },
    ]);
    const again = seq.receive(
      attach("p1", { n: 2, upTo: 1, lastId: 0, pending: [{ u: 1, op: publish(alice, "no!", "n1"), floor: 0 }] }),
      2,
    );
    expect(framesTo(again, "p1")).toEqual([
      expect.objectContaining({
        type: "sync",
        stream: { epoch: 1, gen: 2 },
        answered: 0,
        rejected: [{ u: 1, code: "slow_mode", message: "wait" }],
      }),
    ]);
    expect(store.log).toHaveLength(0);
  });

  it("tells an attaching part the bans that cover its sockets, and answers a banned sender with the ban before it decides anything", () => {
    const store = new MemoryStore(4);
    // Bans by user, and guest bans by address, as the room keeps them.
    const bans = new Map<string, BanNotice>();
    const banned = (user: User, address: string | undefined): BanNotice | null => {
      const own = bans.get(user.id);
      if (own !== undefined) return own;
      for (const ban of bans.values()) if (ban.address === address && user.verified !== true) return ban;
      return null;
    };
    const seq = new Sequencer(1, store, new Roster(10), refuseBang, { window: 4, beats: 2, slowMode: () => 0, banned });
    const carol: User = { id: "u_c", name: "carol" };
    seq.receive(attach("p1"), 0);
    seq.receive(op("p1", 1, { kind: "arrive", user: alice, address: "a1" }), 1);
    seq.receive(op("p1", 2, { kind: "arrive", user: bob, address: "a2" }), 1);
    // Made while p1 has no stream: no event reaches it.
    seq.detach("p1");
    bans.set(bob.id, { user: bob.id, address: "a2", reason: "banned" });
    const sync = framesTo(
      seq.receive(
        attach("p1", {
          n: 2,
          upTo: 3,
          users: [
            { user: alice, sockets: 1, addresses: [{ address: "a1", sockets: 1 }] },
            { user: bob, sockets: 1, addresses: [{ address: "a2", sockets: 1 }] },
            { user: carol, sockets: 1, addresses: [{ address: "a2", sockets: 1 }] },
          ],
          pending: [{ u: 3, op: publish(bob, "sent before the sync"), floor: 0 }],
        }),
        2,
      ),
      "p1",
    );
    expect(sync[0]).toMatchObject({ type: "sync", bans: [{ user: bob.id, address: "a2", reason: "banned" }] });
    // The waiting publish of the banned sender: the ban, then its refusal; nothing stored.
    expect(sync.slice(1).map((f) => f.type === "event" && f.event)).toEqual([
      { kind: "ban", user: bob.id, address: "a2", reason: "banned" },
      { kind: "reject", u: 3, code: "forbidden", message: "you are banned from this room" },
    ]);
    expect(store.lastId).toBe(0);
    // A guest from the banned address arriving, or moderating: the ban again, never an admit.
    const arrived = framesTo(seq.receive(op("p1", 4, { kind: "arrive", user: carol, address: "a2" }), 3), "p1");
    expect(arrived.map((f) => f.type === "event" && f.event.kind)).toEqual(["ban"]);
    const moderated = framesTo(
      seq.receive(op("p1", 5, { kind: "moderate", from: carol, frame: { type: "delete", id: 1 }, address: "a2" }), 4),
      "p1",
    );
    expect(moderated.map((f) => f.type === "event" && f.event.kind)).toEqual(["ban", "reject"]);
    // Alice is not covered: her publish is stored.
    seq.receive(op("p1", 6, publish(alice, "fine")), 5);
    expect(store.log.map((m) => m.text)).toEqual(["fine"]);
  });

  it("ignores a late copy of an older attach, and one older than frames handled since", () => {
    const { seq } = setup();
    seq.receive(attach("p1", { n: 2, users: [{ user: alice, sockets: 1 }] }), 0);
    expect(seq.receive(attach("p1", { n: 1 }), 1)).toEqual([]);
    seq.receive(op("p1", 1, { kind: "arrive", user: bob }), 2);
    expect(seq.receive(attach("p1", { n: 3, upTo: 0 }), 3)).toEqual([]);
    expect(seq.receive(attach("p1", { n: 3, upTo: 1, users: [{ user: bob, sockets: 1 }] }), 4)).toEqual([
      {
        part: "p1",
        frame: expect.objectContaining({
          type: "sync",
          stream: { epoch: 1, gen: 2 },
          presence: { count: 1, online: [bob] },
        }),
      },
    ]);
  });

  it("keeps a detached part's users until dropped, then tells the others", () => {
    const { seq } = setup();
    seq.receive(attach("p1", { users: [{ user: alice, sockets: 1 }] }), 0);
    seq.receive(attach("p2"), 0);
    seq.detach("p1");
    expect(seq.tick(1).filter((s) => s.frame.type !== "beat")).toEqual([]);
    expect(framesTo(seq.drop("p1", 5), "p2")).toEqual([
      expect.objectContaining({ type: "event", event: { kind: "leave", user: alice, ts: 5 } }),
    ]);
  });

  it("beats a few ticks after a stream changed, then falls quiet", () => {
    const { seq } = setup();
    seq.receive(attach("p1"), 0);
    seq.receive(op("p1", 1, publish(alice, "x")), 1);
    const beat = { part: "p1", frame: { v, type: "beat", stream: { epoch: 1, gen: 1 }, seq: 1, acked: 1 } };
    expect(seq.tick(2)).toEqual([beat]);
    expect(seq.tick(3)).toEqual([beat]);
    expect(seq.tick(4)).toEqual([]);
  });

  it("drops frames of a link version it does not know", () => {
    const { seq } = setup();
    expect(seq.receive({ ...attach("p1"), v: 2 } as unknown as Upstream, 0)).toEqual([]);
    expect(seq.attached).toEqual([]);
  });

  it("sends the effects of a part's moderation after the sync they follow, and refuses with the frame's number", () => {
    const store = new MemoryStore(4);
    const announced: string[] = [];
    let slowMode = 2;
    const seq: Sequencer = new Sequencer(1, store, new Roster(10), refuseBang, {
      window: 4,
      beats: 2,
      slowMode: () => slowMode,
      moderate: (op) => {
        if (op.frame.type !== "settings") return { ok: false, code: "forbidden", message: "no" };
        slowMode = op.frame.slowMode;
        announced.push(
          ...seq
            .announce({ kind: "frame", frame: { type: "settings", slowMode: op.frame.slowMode } })
            .map((s) => s.part),
        );
        return { ok: true };
      },
    });
    const settings = { kind: "moderate", from: alice, frame: { type: "settings", slowMode: 5 } } as const;
    const sends = seq.receive(attach("p1", { upTo: 1, lastId: 0, pending: [{ u: 1, op: settings, floor: 0 }] }), 0);
    expect(announced).toEqual([]);
    expect(framesTo(sends, "p1").map((f) => f.type)).toEqual(["sync", "event"]);
    // The sync tells the slow mode before the change the event after it carries.
    expect(framesTo(sends, "p1")[0]).toMatchObject({ type: "sync", answered: 1, slowMode: 2 });
    expect(framesTo(sends, "p1")[1]).toMatchObject({
      seq: 1,
      event: { kind: "frame", frame: { type: "settings", slowMode: 5 } },
    });
    const refused = seq.receive(op("p1", 2, { kind: "moderate", from: alice, frame: { type: "unban", user: "u" } }), 1);
    expect(framesTo(refused, "p1")).toEqual([
      {
        v,
        type: "event",
        stream: { epoch: 1, gen: 1 },
        seq: 2,
        acked: 2,
        event: { kind: "reject", u: 2, code: "forbidden", message: "no" },
      },
    ]);
    // Outside a part's frame, an announcement is sent by whoever made it.
    expect(seq.announce({ kind: "ban", user: "u", address: null, reason: "r" }).map((s) => s.part)).toEqual(["p1"]);
    // A part that attaches again learns the slow mode as it is now.
    expect(framesTo(seq.receive(attach("p1", { n: 2, upTo: 2 }), 3), "p1")[0]).toMatchObject({
      type: "sync",
      slowMode: 5,
    });
  });
});
