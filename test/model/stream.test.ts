// A part's stream (src/stream.ts), driven by hand-made frames.

import { describe, expect, it } from "vitest";
import { LINK_VERSION, type Downstream, type StreamEvent, type StreamId } from "../../src/link.ts";
import type { Message, User } from "../../src/protocol.ts";
import { EARLY_LIMIT, PartStream, RESUME_CLOSE_CODE, type PartAction } from "../../src/stream.ts";

const v = LINK_VERSION;
const alice: User = { id: "u_a", name: "alice" };
const bob: User = { id: "u_b", name: "bob" };
const carol: User = { id: "u_c", name: "carol" };
const S1: StreamId = { epoch: 1, gen: 1 };
const S2: StreamId = { epoch: 1, gen: 2 };
const options = { historySize: 3, presenceLimit: 10, retryMs: 100, holdLimit: 8 };

const msg = (id: number, from: User = bob, nonce?: string): Message =>
  nonce === undefined
    ? { type: "message", id, ts: id, from, text: `m${id}` }
    : { type: "message", id, ts: id, from, text: `m${id}`, nonce };

function sync(over: Partial<Extract<Downstream, { type: "sync" }>> = {}): Downstream {
  return {
    v,
    type: "sync",
    stream: S1,
    acked: 0,
    ring: [],
    lastId: 0,
    presence: { count: 0, online: [] },
    slowMode: 0,
    unknown: [],
    answered: 0,
    rejected: [],
    ...over,
  };
}

const ev = (seq: number, event: StreamEvent, acked = 0, stream = S1): Downstream => ({
  v,
  type: "event",
  stream,
  seq,
  acked,
  event,
});

const kinds = (actions: PartAction[]) =>
  actions.map((a) =>
    a.kind === "up" ? `up:${a.frame.type}${a.frame.type === "op" ? `:${a.frame.op.kind}` : ""}` : a.kind,
  );

/** A part attached and synced to a room with `ring`. */
function synced(ring: Message[] = [], online: User[] = []): PartStream {
  const p = new PartStream("p1", "i1", options);
  p.attach(0);
  p.receive(sync({ ring, lastId: ring.at(-1)?.id ?? 0, presence: { count: online.length, online } }), 0);
  return p;
}

describe("PartStream", () => {
  it("attaches with its users and waiting publishes", () => {
    const p = new PartStream("p1", "i1", options);
    expect(p.attach(5)).toEqual([
      {
        kind: "up",
        frame: {
          v,
          type: "attach",
          part: "p1",
          incarnation: "i1",
          n: 1,
          upTo: 0,
          lastId: null,
          users: [],
          addresses: [],
          pending: [],
        },
      },
    ]);
    // Frames while attaching wait for the sync.
    expect(p.open(1, alice, null, 6)).toEqual([]);
  });

  it("reports a socket's address with its arrival and its departure, for the room's per-address count", () => {
    const p = synced([]);
    const op = (u: number, o: unknown) => [
      { kind: "up", frame: { v, type: "op", part: "p1", incarnation: "i1", u, op: o } },
    ];
    expect(p.open(1, alice, null, 0, "192.0.2.1")).toEqual(
      op(1, { kind: "arrive", user: alice, address: "192.0.2.1" }),
    );
    expect(p.close(1, 1)).toEqual(op(2, { kind: "depart", userId: alice.id, address: "192.0.2.1" }));
  });

  it("welcomes a socket only when the room admits it, with the history and presence as of then", () => {
    const p = synced([msg(1), msg(2)], [bob]);
    expect(p.open(7, alice, null, 1)).toEqual([
      {
        kind: "up",
        frame: { v, type: "op", part: "p1", incarnation: "i1", u: 1, op: { kind: "arrive", user: alice } },
      },
    ]);
    expect(p.receive(ev(1, { kind: "join", user: alice, ts: 2 }, 1), 2)).toEqual([
      { kind: "deliver", frame: { type: "join", user: alice, ts: 2 } },
    ]);
    expect(p.receive(ev(2, { kind: "message", message: msg(3) }, 1), 2)).toEqual([{ kind: "deliver", frame: msg(3) }]);
    expect(p.receive(ev(3, { kind: "admit", u: 1, count: 1 }, 1), 3)).toEqual([
      {
        kind: "welcome",
        socket: 7,
        history: [msg(1), msg(2), msg(3)],
        gap: false,
        online: [bob, alice],
        onlineCount: 2,
        slowMode: 0,
      },
    ]);
  });

  it("welcomes with the room's slow mode: from its sync, from settings events, and from a sync after a change it missed", () => {
    const p = new PartStream("p1", "i1", options);
    p.attach(0);
    p.open(1, alice, null, 0);
    // A part that starts after slow mode was set learns it from its sync.
    const first = p.receive(sync({ acked: 1, presence: { count: 1, online: [alice] }, slowMode: 30 }), 1);
    // (What it delivers first reaches no socket: none is welcomed yet.)
    expect(first.at(-1)).toEqual({
      kind: "welcome",
      socket: 1,
      history: [],
      gap: false,
      online: [alice],
      onlineCount: 1,
      slowMode: 30,
    });
    const settings = { type: "settings", slowMode: 0 } as const;
    expect(p.receive(ev(1, { kind: "frame", frame: settings }, 1), 2)).toEqual([{ kind: "deliver", frame: settings }]);
    p.open(2, bob, null, 3);
    p.receive(ev(2, { kind: "join", user: bob, ts: 3 }, 2), 3);
    expect(p.receive(ev(3, { kind: "admit", u: 2, count: 2 }, 2), 3)).toMatchObject([
      { kind: "welcome", socket: 2, slowMode: 0 },
    ]);
    // Set while the part had no stream: its welcomed sockets are told, once.
    const presence = { count: 2, online: [alice, bob] };
    expect(p.receive(sync({ stream: S2, acked: 2, presence, slowMode: 10 }), 4)).toEqual([
      { kind: "deliver", frame: { type: "settings", slowMode: 10 } },
    ]);
    expect(p.receive(sync({ stream: { epoch: 1, gen: 3 }, acked: 2, presence, slowMode: 10 }), 5)).toEqual([]);
    // A sync of older code says nothing of slow mode: the part keeps what it knew.
    const { slowMode: _, ...old } = sync({ stream: { epoch: 1, gen: 4 }, acked: 2, presence }) as Extract<
      Downstream,
      { type: "sync" }
    >;
    expect(p.receive(old, 6)).toEqual([]);
    p.open(3, carol, null, 7);
    p.receive(ev(1, { kind: "join", user: carol, ts: 7 }, 3, { epoch: 1, gen: 4 }), 7);
    expect(p.receive(ev(2, { kind: "admit", u: 3, count: 3 }, 3, { epoch: 1, gen: 4 }), 7)).toMatchObject([
      { kind: "welcome", socket: 3, slowMode: 10 },
    ]);
  });

  it("computes gap with the room's rule: only beyond the room's last id, or when kept history does not reach back", () => {
    const welcome = (after: number | null) => {
      const p = synced([msg(4), msg(5), msg(6)]);
      p.open(1, alice, after, 0);
      return p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0)[0];
    };
    expect(welcome(6)).toMatchObject({ history: [], gap: false });
    expect(welcome(4)).toMatchObject({ history: [msg(5), msg(6)], gap: false });
    expect(welcome(3)).toMatchObject({ history: [msg(4), msg(5), msg(6)], gap: false });
    expect(welcome(2)).toMatchObject({ history: [msg(4), msg(5), msg(6)], gap: true });
    expect(welcome(9)).toMatchObject({ history: [msg(4), msg(5), msg(6)], gap: true });
  });

  it("holds events that come early, asks for the missing ones once per retry, and drops repeats", () => {
    const p = synced();
    p.open(1, alice, null, 0);
    p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0);
    const early = p.receive(ev(3, { kind: "message", message: msg(2) }), 10);
    expect(early).toEqual([
      { kind: "up", frame: { v, type: "refill", part: "p1", incarnation: "i1", stream: S1, from: 2 } },
    ]);
    expect(p.receive(ev(4, { kind: "message", message: msg(3) }), 20)).toEqual([]);
    expect(p.tick(50)).toEqual([]);
    expect(kinds(p.tick(110))).toEqual(["up:refill"]);
    expect(p.receive(ev(2, { kind: "message", message: msg(1) }), 120)).toEqual([
      { kind: "deliver", frame: msg(1) },
      { kind: "deliver", frame: msg(2) },
      { kind: "deliver", frame: msg(3) },
    ]);
    expect(p.receive(ev(3, { kind: "message", message: msg(2) }), 130)).toEqual([]);
    expect(p.tick(500)).toEqual([]);
  });

  it("refills a lost tail from a beat, and takes the beat's acknowledgement only when it has everything", () => {
    const p = synced();
    p.open(1, alice, null, 0);
    expect(kinds(p.receive({ v, type: "beat", stream: S1, seq: 2, acked: 1 }, 10))).toEqual(["up:refill"]);
    // Not acknowledged yet (the beat was ahead): the arrive is sent again.
    expect(kinds(p.tick(110))).toEqual(["up:refill", "up:op:arrive"]);
    p.receive(ev(1, { kind: "join", user: alice, ts: 1 }, 1), 120);
    p.receive(ev(2, { kind: "admit", u: 1, count: 1 }, 1), 120);
    expect(p.receive({ v, type: "beat", stream: S1, seq: 2, acked: 1 }, 130)).toEqual([]);
    expect(p.tick(1000)).toEqual([]);
  });

  it("takes a newer stream's sync: what it missed, presence made right, waiting sockets welcomed", () => {
    const p = synced([msg(1)], [alice, bob]);
    p.open(1, alice, null, 0);
    p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0);
    p.open(2, carol, 1, 0);
    const actions = p.receive(
      sync({
        stream: S2,
        acked: 2,
        ring: [msg(1), msg(2), msg(3)],
        lastId: 3,
        presence: { count: 2, online: [alice, carol] },
      }),
      5,
    );
    expect(actions).toEqual([
      { kind: "deliver", frame: msg(2) },
      { kind: "deliver", frame: msg(3) },
      { kind: "deliver", frame: { type: "leave", user: bob, ts: 5 } },
      { kind: "deliver", frame: { type: "join", user: carol, ts: 5 } },
      {
        kind: "welcome",
        socket: 2,
        history: [msg(2), msg(3)],
        gap: false,
        online: [alice, carol],
        onlineCount: 2,
        slowMode: 0,
      },
    ]);
    // An older stream is over.
    expect(p.receive(ev(2, { kind: "message", message: msg(9) }, 0, S1), 6)).toEqual([]);
  });

  it("closes first what a sync's bans cover, welcomed or waiting, guests from a banned address too, and welcomes none of them", () => {
    const p = synced([msg(1)], [alice]);
    const dave: User = { id: "v_d", name: "dave", verified: true };
    p.open(1, alice, null, 0, "a1");
    p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0);
    p.open(2, carol, null, 0, "a2");
    p.open(3, bob, null, 0, "a2");
    // A verified user is never closed for sharing a guest's address.
    p.open(4, dave, null, 0, "a2");
    const actions = p.receive(
      sync({
        stream: S2,
        acked: 4,
        ring: [msg(1), msg(2)],
        lastId: 2,
        presence: { count: 2, online: [bob, dave] },
        bans: [
          { user: alice.id, address: null, reason: "banned: spam" },
          { user: carol.id, address: "a2", reason: "banned" },
        ],
      }),
      5,
    );
    expect(actions.slice(0, 3)).toEqual([
      { kind: "close", socket: 1, code: 4003, reason: "banned: spam" },
      { kind: "close", socket: 2, code: 4003, reason: "banned" },
      { kind: "close", socket: 3, code: 4003, reason: "banned" },
    ]);
    expect(actions.filter((a) => a.kind === "welcome").map((a) => a.kind === "welcome" && a.socket)).toEqual([4]);
    expect(p.connections).toBe(1);
    // Their departures go up on the new stream, with the addresses.
    expect(actions.flatMap((a) => (a.kind === "up" && a.frame.type === "op" ? [a.frame.op] : [])).slice(0, 3)).toEqual([
      { kind: "depart", userId: alice.id, address: "a1" },
      { kind: "depart", userId: carol.id, address: "a2" },
      { kind: "depart", userId: bob.id, address: "a2" },
    ]);
  });

  it("tells welcomed sockets once of a delete made while it had no stream; a message they never had comes as its tombstone", () => {
    const p = synced([msg(1), msg(2)]);
    p.open(1, alice, null, 0);
    p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0);
    const by = { id: "admin", name: "admin" };
    const tomb = (m: Message): Message => ({
      type: "message",
      id: m.id,
      ts: m.ts,
      from: m.from,
      text: "",
      deleted: true,
    });
    const deletes = [1, 3].map((id) => ({ type: "delete", id, by, ts: 9 }) as const);
    const ring = [tomb(msg(1)), msg(2), tomb(msg(3))];
    expect(p.receive(sync({ stream: S2, acked: 1, ring, lastId: 3, deletes }), 10)).toEqual([
      { kind: "deliver", frame: deletes[0] },
      { kind: "deliver", frame: tomb(msg(3)) },
    ]);
    // The next sync repeats them: nothing new for the sockets.
    expect(p.receive(sync({ stream: { epoch: 1, gen: 3 }, acked: 1, ring, lastId: 3, deletes }), 11)).toEqual([]);
  });

  it("closes welcomed sockets that missed messages the room no longer keeps", () => {
    const p = synced([msg(1)]);
    p.open(1, alice, null, 0);
    p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0);
    const actions = p.receive(sync({ stream: S2, acked: 1, ring: [msg(5), msg(6), msg(7)], lastId: 7 }), 5);
    expect(actions[0]).toEqual({
      kind: "close",
      socket: 1,
      code: RESUME_CLOSE_CODE,
      reason: "the room restarted: reconnect with after",
    });
    expect(kinds(actions)).toEqual(["close", "up:op:depart"]);
  });

  it("answers a refused publish once, with its nonce, even when the refusal is repeated", () => {
    const p = synced();
    p.open(1, alice, null, 0);
    p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0);
    expect(kinds(p.publish(1, "hi", "c1", 1))).toEqual(["up:op:publish"]);
    const refusal = { kind: "reject", u: 2, code: "slow_mode", message: "wait" } as const;
    expect(p.receive(ev(2, refusal, 2), 2)).toEqual([
      { kind: "error", socket: 1, code: "slow_mode", message: "wait", nonce: "c1" },
    ]);
    expect(
      p.receive(sync({ stream: S2, acked: 2, rejected: [{ u: 2, code: "slow_mode", message: "wait" }] }), 3),
    ).toEqual([]);
  });

  it("repeats waiting publishes in its next attach, with the floor they were sent at", () => {
    const p = synced([msg(1)]);
    p.open(1, alice, null, 0, "192.0.2.1");
    p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 0);
    p.publish(1, "hi", undefined, 1);
    expect(p.attach(2)).toEqual([
      {
        kind: "up",
        frame: {
          v,
          type: "attach",
          part: "p1",
          incarnation: "i1",
          n: 2,
          upTo: 2,
          lastId: 1,
          users: [{ user: alice, sockets: 1, addresses: [{ address: "192.0.2.1", sockets: 1 }] }],
          addresses: [{ address: "192.0.2.1", sockets: 1 }],
          pending: [{ u: 2, op: { kind: "publish", from: alice, text: "hi", address: "192.0.2.1" }, floor: 1 }],
        },
      },
    ]);
  });

  it("publishes what a socket sent before its welcome right after it, and refuses beyond the limit", () => {
    const p = synced();
    p.open(1, alice, null, 0);
    for (let i = 0; i < EARLY_LIMIT; i++) expect(p.publish(1, `t${i}`, undefined, 0)).toEqual([]);
    expect(p.publish(1, "one too many", "x", 0)).toEqual([
      {
        kind: "error",
        socket: 1,
        code: "rate_limited",
        message: "wait for the welcome; this frame was dropped",
        nonce: "x",
      },
    ]);
    const welcomed = p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 1);
    expect(kinds(welcomed)).toEqual(["welcome", ...Array<string>(EARLY_LIMIT).fill("up:op:publish")]);
  });

  it("refills a tail whose frames and beats all came before their stream's sync", () => {
    const p = synced();
    expect(kinds(p.attach(10))).toEqual(["up:attach"]);
    // The new stream's events and its beats overtake its sync: dropped while attaching.
    expect(p.receive(ev(1, { kind: "count", count: 3 }, 0, S2), 20)).toEqual([]);
    expect(p.receive({ v, type: "beat", stream: S2, seq: 2, acked: 0 }, 21)).toEqual([]);
    p.receive(sync({ stream: S2 }), 30);
    expect(p.tick(140)).toEqual([
      { kind: "up", frame: { v, type: "refill", part: "p1", incarnation: "i1", stream: S2, from: 1 } },
    ]);
  });

  it("holds a moderation frame sent before the welcome with the messages, and sends them up after it in order", () => {
    const p = synced([msg(1)]);
    p.open(1, alice, null, 0);
    expect(p.publish(1, "before", "n1", 0)).toEqual([]);
    expect(p.moderate(1, { type: "delete", id: 1, nonce: "d1" }, 0)).toEqual([]);
    expect(p.publish(1, "after", "n2", 0)).toEqual([]);
    const welcomed = p.receive(ev(1, { kind: "admit", u: 1, count: 1 }, 1), 1);
    expect(kinds(welcomed)).toEqual(["welcome", "up:op:publish", "up:op:moderate", "up:op:publish"]);
    const ops = welcomed.flatMap((a) => (a.kind === "up" && a.frame.type === "op" ? [a.frame.op] : []));
    expect(
      ops.map((op) => (op.kind === "publish" ? op.text : op.kind === "moderate" ? op.frame.type : op.kind)),
    ).toEqual(["before", "delete", "after"]);
  });

  it("attaches again when told to, or when a newer stream's frame comes without its sync", () => {
    const p = synced();
    expect(kinds(p.receive({ v, type: "reattach", epoch: 2 }, 1))).toEqual(["up:attach"]);
    // Attaching already: no second attach until the retry.
    expect(p.receive({ v, type: "reattach", epoch: 2 }, 2)).toEqual([]);
    const q = synced();
    expect(kinds(q.receive(ev(1, { kind: "count", count: 3 }, 0, S2), 1))).toEqual(["up:attach"]);
    expect(kinds(q.tick(101))).toEqual(["up:attach"]);
  });

  it("in counting mode welcomes with the room's count and its own users", () => {
    const p = synced();
    p.receive(ev(1, { kind: "count", count: 40 }), 0);
    p.open(1, alice, null, 0);
    // The count every part hears may lag a second behind; the admit's does not.
    expect(p.receive(ev(2, { kind: "admit", u: 1, count: 41 }, 1), 0)).toEqual([
      { kind: "welcome", socket: 1, history: [], gap: false, online: [alice], onlineCount: 41, slowMode: 0 },
    ]);
    expect(p.receive(ev(3, { kind: "list", count: 1, online: [alice] }, 1), 0)).toEqual([
      { kind: "deliver", frame: { type: "presence", count: 1, online: [alice] } },
    ]);
  });

  it("drops frames of a link version it does not know", () => {
    const p = synced();
    expect(p.receive({ ...ev(1, { kind: "count", count: 3 }), v: 2 } as unknown as Downstream, 0)).toEqual([]);
  });
});
