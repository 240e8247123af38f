// The roster (src/roster.ts): presence truth across parts and what clients are told.

import { describe, expect, it } from "vitest";
import type { User } from "../../src/protocol.ts";
import { Roster } from "../../src/roster.ts";

const u = (n: number): User => ({ id: `u${n}`, name: `user${n}` });

describe("Roster", () => {
  it("joins on a user's first socket anywhere and leaves on its last", () => {
    const r = new Roster(10);
    expect(r.arrive("p1", u(1), 5)).toEqual([{ kind: "join", user: u(1), ts: 5 }]);
    expect(r.arrive("p1", u(1), 6)).toEqual([]);
    expect(r.arrive("p2", u(1), 7)).toEqual([]);
    expect(r.sockets("p1")).toBe(2);
    expect(r.parts()).toEqual(
      new Map([
        ["p1", 2],
        ["p2", 1],
      ]),
    );
    expect(r.depart("p1", "u1", 8)).toEqual([]);
    expect(r.depart("p1", "u1", 9)).toEqual([]);
    expect(r.depart("p2", "u1", 10)).toEqual([{ kind: "leave", user: u(1), ts: 10 }]);
    expect(r.count).toBe(0);
    expect(r.parts()).toEqual(new Map());
  });

  it("knows where each user's sockets on a part come from, through arrivals, departures and attaches, until its last socket there", () => {
    const r = new Roster(10);
    r.arrive("p1", u(1), 0, "a1");
    r.arrive("p1", u(1), 0, "a1");
    r.arrive("p2", u(2), 0);
    expect(r.addressOf("u1")).toBe("a1");
    expect(r.addressOf("u2")).toBeNull();
    expect(r.on("p1")).toEqual([{ user: u(1), addresses: ["a1"] }]);
    expect(r.on("p2")).toEqual([{ user: u(2), addresses: [] }]);
    r.depart("p1", "u1", 1, "a1");
    expect(r.addressOf("u1")).toBe("a1");
    // An attach states the part's sockets and their addresses exactly.
    r.replace("p1", [{ user: u(1), sockets: 2, addresses: [{ address: "a2", sockets: 2 }] }], 2);
    expect(r.on("p1")).toEqual([{ user: u(1), addresses: ["a2"] }]);
    // A part gone past its grace period takes its addresses with it.
    r.drop("p1", 3);
    expect(r.addressOf("u1")).toBeNull();
    r.arrive("p1", u(1), 4, "a3");
    r.depart("p1", "u1", 5, "a3");
    expect(r.addressOf("u1")).toBeNull();
  });

  it("ignores a departure it never counted", () => {
    const r = new Roster(10);
    r.arrive("p1", u(1), 0);
    expect(r.depart("p2", "u1", 1)).toEqual([]);
    expect(r.depart("p1", "u9", 1)).toEqual([]);
    expect(r.count).toBe(1);
  });

  it("counts above the limit, at most once a second, and lists again when back at it", () => {
    const r = new Roster(2, 1000);
    r.arrive("p", u(1), 0);
    r.arrive("p", u(2), 0);
    // Crossing is told at once.
    expect(r.arrive("p", u(3), 100)).toEqual([{ kind: "count", count: 3 }]);
    expect(r.arrive("p", u(4), 200)).toEqual([]);
    expect(r.tick(1099)).toEqual([]);
    expect(r.tick(1100)).toEqual([{ kind: "count", count: 4 }]);
    expect(r.tick(5000)).toEqual([]);
    expect(r.depart("p", "u4", 5000)).toEqual([{ kind: "count", count: 3 }]);
    expect(r.snapshot()).toEqual({ count: 3, online: null });
    expect(r.depart("p", "u3", 5001)).toEqual([{ kind: "list", count: 2, online: [u(1), u(2)] }]);
    expect(r.depart("p", "u2", 5002)).toEqual([{ kind: "leave", user: u(2), ts: 5002 }]);
    expect(r.snapshot()).toEqual({ count: 1, online: [u(1)] });
  });

  it("sends the count again after a sync told one part a count the others may not know", () => {
    const r = new Roster(1, 1000);
    r.arrive("p", u(1), 0);
    expect(r.arrive("p", u(2), 0)).toEqual([{ kind: "count", count: 2 }]);
    expect(r.tick(2000)).toEqual([]);
    r.snapshot();
    expect(r.tick(2000)).toEqual([{ kind: "count", count: 2 }]);
  });

  it("sends the count again once a welcome told a newcomer a count the others were not told", () => {
    const r = new Roster(1, 1000);
    r.arrive("p", u(1), 0);
    expect(r.arrive("p", u(2), 0)).toEqual([{ kind: "count", count: 2 }]);
    expect(r.arrive("p", u(3), 10)).toEqual([]);
    expect(r.welcomeCount()).toBe(3);
    expect(r.depart("p", "u3", 20)).toEqual([]);
    // Back at 2, what the others were told; but the newcomer was told 3.
    expect(r.tick(1000)).toEqual([{ kind: "count", count: 2 }]);
  });

  it("replaces a part's share, telling only what changed", () => {
    const r = new Roster(10);
    r.arrive("p1", u(1), 0);
    r.arrive("p1", u(1), 0);
    r.arrive("p2", u(3), 0);
    expect(
      r.replace(
        "p1",
        [
          { user: u(1), sockets: 1 },
          { user: u(2), sockets: 1 },
        ],
        1,
      ),
    ).toEqual([{ kind: "join", user: u(2), ts: 1 }]);
    expect(r.sockets("p1")).toBe(2);
    expect(r.replace("p2", [{ user: u(1), sockets: 1 }], 2)).toEqual([{ kind: "leave", user: u(3), ts: 2 }]);
    expect(r.drop("p1", 3)).toEqual([{ kind: "leave", user: u(2), ts: 3 }]);
    expect(r.online()).toEqual([u(1)]);
    expect(r.drop("p2", 4)).toEqual([{ kind: "leave", user: u(1), ts: 4 }]);
  });
});
