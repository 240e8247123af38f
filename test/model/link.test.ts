// The link's grouping of downstream frames (src/link.ts): the room's
// LinkBatch and the part's ungrouping, in plain Node.

import { describe, expect, it } from "vitest";
import {
  LINK_GROUP_CHARS,
  LINK_VERSION,
  LinkBatch,
  groupFrames,
  ungroupFrames,
  type Downstream,
} from "../../src/link.ts";
import { PartStream } from "../../src/stream.ts";

const beat = (seq: number): Downstream => ({
  v: LINK_VERSION,
  type: "beat",
  stream: { epoch: 1, gen: 1 },
  seq,
  acked: 0,
});
const text = (seq: number) => JSON.stringify(beat(seq));

describe("grouped link frames", () => {
  it("sends a group of one as the frame itself and ungroups both forms in order", () => {
    expect(groupFrames([text(1)])).toBe(text(1));
    expect(groupFrames([text(1), text(2), text(3)])).toBe(`[${text(1)},${text(2)},${text(3)}]`);
    expect(ungroupFrames(text(1))).toEqual([beat(1)]);
    expect(ungroupFrames(groupFrames([text(1), text(2), text(3)]))).toEqual([beat(1), beat(2), beat(3)]);
  });

  it("sends the first frame at once and groups those that follow within the window", () => {
    const batch = new LinkBatch(10);
    expect(batch.due).toBe(null);
    expect(batch.push(text(1), 100)).toBe(text(1));
    expect(batch.push(text(2), 100)).toBe(null);
    expect(batch.push(text(3), 105)).toBe(null);
    expect(batch.due).toBe(110);
    expect(batch.flush(110)).toEqual([`[${text(2)},${text(3)}]`]);
    expect(batch.due).toBe(null);
    expect(batch.flush(110)).toEqual([]);
    // The window starts again at the flush: a frame within it waits, alone.
    expect(batch.push(text(4), 115)).toBe(null);
    expect(batch.due).toBe(120);
    expect(batch.flush(120)).toEqual([text(4)]);
    // Idle for a window: no wait.
    expect(batch.push(text(5), 130)).toBe(text(5));
    expect(batch.due).toBe(null);
  });

  it("keeps a frame behind those waiting even when the window is over", () => {
    const batch = new LinkBatch(10);
    expect(batch.push(text(1), 0)).toBe(text(1));
    expect(batch.push(text(2), 5)).toBe(null);
    // The flush timer is late: the next frame joins the waiting ones, not overtakes them.
    expect(batch.push(text(3), 30)).toBe(null);
    expect(batch.flush(31).flatMap(ungroupFrames)).toEqual([beat(2), beat(3)]);
  });

  it("splits a burst into groups of at most LINK_GROUP_CHARS", () => {
    const batch = new LinkBatch(10);
    const big = (seq: number) => JSON.stringify({ ...beat(seq), pad: "x".repeat(LINK_GROUP_CHARS / 3) });
    batch.push(big(1), 0);
    for (let seq = 2; seq <= 8; seq++) expect(batch.push(big(seq), 0)).toBe(null);
    const sent = batch.flush(10);
    expect(sent.map((m) => ungroupFrames(m).map((f) => (f.type === "beat" ? f.seq : 0)))).toEqual([
      [2, 3],
      [4, 5],
      [6, 7],
      [8],
    ]);
    for (const m of sent) expect(m.length).toBeLessThanOrEqual(LINK_GROUP_CHARS + 8);
  });

  it("has a part say in its attach that it reads groups only when its transport does", () => {
    const options = { historySize: 3, presenceLimit: 10, retryMs: 100, holdLimit: 8 };
    const grouped = new PartStream("p1", "i1", { ...options, grouped: true }).attach(0);
    const single = new PartStream("p1", "i1", options).attach(0);
    expect(grouped.map((a) => (a.kind === "up" && a.frame.type === "attach" ? a.frame.grouped : "?"))).toEqual([true]);
    expect(single.map((a) => (a.kind === "up" && a.frame.type === "attach" ? "grouped" in a.frame : "?"))).toEqual([
      false,
    ]);
  });
});
