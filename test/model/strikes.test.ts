// The 1008 rule on a part (src/strikes.ts): a socket's frame is read only
// while the answers the room owes it could not close it; the rest wait, in
// order. And what the part's stream says is owed (src/stream.ts).

import { describe, expect, it } from "vitest";
import { LINK_VERSION, type Downstream } from "../../src/link.ts";
import { ERROR_WINDOW_MS, MAX_ERRORS_PER_WINDOW, type User } from "../../src/protocol.ts";
import { PartStream } from "../../src/stream.ts";
import { HOLD_LIMIT, StrikeGate } from "../../src/strikes.ts";

describe("StrikeGate", () => {
  it("reads a frame at once while strikes and owed answers stay under the limit", () => {
    const gate = new StrikeGate<string>();
    expect(gate.arrive("a", undefined, MAX_ERRORS_PER_WINDOW - 1, 0)).toBe("a");
    for (let i = 0; i < 5; i++) gate.strike(0);
    expect(gate.arrive("b", undefined, MAX_ERRORS_PER_WINDOW - 6, 0)).toBe("b");
    expect(gate.holding).toBe(false);
  });

  it("holds frames while the owed answers could close the socket, and hands them back in order", () => {
    const gate = new StrikeGate<string>();
    for (let i = 0; i < 3; i++) gate.strike(0);
    expect(gate.arrive("a", "na", MAX_ERRORS_PER_WINDOW - 3, 0)).toBeNull();
    // Once one frame waits, every later one waits behind it.
    expect(gate.arrive("b", "nb", 0, 0)).toBeNull();
    expect(gate.holding).toBe(true);
    expect(gate.next(MAX_ERRORS_PER_WINDOW - 3, 1)).toBeUndefined();
    expect(gate.next(MAX_ERRORS_PER_WINDOW - 4, 1)).toEqual({ kind: "frame", frame: "a" });
    expect(gate.next(MAX_ERRORS_PER_WINDOW - 4, 1)).toEqual({ kind: "frame", frame: "b" });
    expect(gate.next(0, 1)).toBeUndefined();
    expect(gate.holding).toBe(false);
  });

  it("says which strike closes the socket, counting only the last window", () => {
    const gate = new StrikeGate<string>();
    for (let i = 1; i < MAX_ERRORS_PER_WINDOW; i++) expect(gate.strike(0)).toBe(false);
    // A minute on, those 19 have left the window.
    expect(gate.strike(ERROR_WINDOW_MS)).toBe(false);
    expect(gate.arrive("a", undefined, MAX_ERRORS_PER_WINDOW - 2, ERROR_WINDOW_MS)).toBe("a");
    for (let i = 2; i < MAX_ERRORS_PER_WINDOW; i++) expect(gate.strike(ERROR_WINDOW_MS)).toBe(false);
    expect(gate.strike(ERROR_WINDOW_MS)).toBe(true);
  });

  it("refuses in their place the frames beyond HOLD_LIMIT, when their turn comes, and at most enough to close", () => {
    const gate = new StrikeGate<string>();
    const owed = MAX_ERRORS_PER_WINDOW;
    const sent = HOLD_LIMIT + MAX_ERRORS_PER_WINDOW + 5;
    for (let i = 0; i < sent; i++) expect(gate.arrive(`f${i}`, `n${i}`, owed, 0)).toBeNull();
    const out: string[] = [];
    for (let next = gate.next(0, 1); next !== undefined; next = gate.next(0, 1))
      out.push(next.kind === "frame" ? next.frame : `refused ${next.nonce}`);
    expect(out).toEqual([
      ...Array.from({ length: HOLD_LIMIT }, (_, i) => `f${i}`),
      ...Array.from({ length: MAX_ERRORS_PER_WINDOW }, (_, i) => `refused n${HOLD_LIMIT + i}`),
    ]);
  });
});

describe("PartStream.owed", () => {
  const alice: User = { id: "u_a", name: "alice" };
  const v = LINK_VERSION;
  const stream = { epoch: 1, gen: 1 };

  it("counts a socket's messages held for its welcome and its publishes until each is answered", () => {
    const p = new PartStream("p1", "i1", { historySize: 3, presenceLimit: 10, retryMs: 100, holdLimit: 8 });
    p.attach(0);
    const sync: Downstream = {
      v,
      type: "sync",
      stream,
      acked: 0,
      ring: [],
      lastId: 0,
      presence: { count: 0, online: [] },
      unknown: [],
      answered: 0,
      rejected: [],
    };
    p.receive(sync, 0);
    p.open(1, alice, null, 1);
    p.publish(1, "early", "e", 1);
    expect(p.owed(1)).toBe(1);
    p.receive({ v, type: "event", stream, seq: 1, acked: 1, event: { kind: "admit", u: 1, count: 1 } }, 2);
    // Published at the welcome: still owed, now as upstream op 2.
    expect(p.owed(1)).toBe(1);
    p.publish(1, "refused", "r", 3);
    p.moderate(1, { type: "delete", id: 9, nonce: "d" }, 3);
    expect(p.owed(1)).toBe(3);
    const message = { type: "message" as const, id: 1, ts: 4, from: alice, text: "early", nonce: "e" };
    p.receive({ v, type: "event", stream, seq: 2, acked: 2, event: { kind: "message", message } }, 4);
    expect(p.owed(1)).toBe(2);
    const reject = { kind: "reject" as const, code: "rate_limited" as const, message: "no" };
    p.receive({ v, type: "event", stream, seq: 3, acked: 3, event: { ...reject, u: 3 } }, 5);
    p.receive({ v, type: "event", stream, seq: 4, acked: 4, event: { ...reject, u: 4, code: "not_found" } }, 5);
    expect(p.owed(1)).toBe(0);
    expect(p.owed(2)).toBe(0);
  });
});
