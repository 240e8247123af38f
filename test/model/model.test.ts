// The seeded random-schedule test of a large room (issue 11, item 8) at model
// level: connects, closes, publishes, refusals, lost, repeated and reordered
// internal frames, parts and the sequencer evicted, slow mode changed, messages
// deleted, users banned. After each run every
// client's ids must run without holes from history into live frames, every
// message must be what was stored, every publish of a socket still open must
// have had exactly one answer, and once settled the online set, the slow
// mode and the deletes of kept messages every client knows must be the
// truth, no banned user's socket open and nothing it sent stored after its
// ban; join, leave and delete are checked as they arrive.

import { describe, expect, it } from "vitest";
import { Sim, type SimOptions } from "./sim.ts";

const base: SimOptions = {
  parts: 3,
  users: 8,
  historySize: 6,
  presenceLimit: 4,
  window: 8,
  steps: 400,
  drop: 0.05,
  duplicate: 0.05,
  evictPart: 0.01,
  evictRoom: 0.005,
  flood: 0.01,
  settings: 0.01,
  deletes: 0.02,
  bans: 0.004,
};

const SEEDS = Number(process.env.MODEL_SEEDS ?? 200);

function runSeeds(options: SimOptions, seeds: number) {
  const failures: string[] = [];
  const totals = {
    published: 0,
    welcomes: 0,
    gaps: 0,
    partEvictions: 0,
    roomEvictions: 0,
    dropped: 0,
    rejected: 0,
    struckOut: 0,
    settings: 0,
    deletes: 0,
    bans: 0,
  };
  for (let seed = 1; seed <= seeds; seed++) {
    const sim = new Sim(seed, options);
    sim.run();
    for (const [k, v] of Object.entries(sim.stats)) if (k in totals) totals[k as keyof typeof totals] += v;
    if (sim.violations.length > 0) failures.push(`seed ${seed}:\n  ${sim.violations.join("\n  ")}`);
  }
  return { failures, totals };
}

describe("large room, random schedules", () => {
  it("keeps order, exactly-once and presence through loss, repeats, reordering and evictions", () => {
    const { failures, totals } = runSeeds(base, SEEDS);
    expect(failures.slice(0, 3)).toEqual([]);
    // The schedules did exercise what they claim to.
    expect(totals.partEvictions).toBeGreaterThan(SEEDS);
    expect(totals.roomEvictions).toBeGreaterThan(SEEDS / 2);
    expect(totals.dropped).toBeGreaterThan(SEEDS * 10);
    expect(totals.rejected).toBeGreaterThan(0);
    expect(totals.gaps).toBeGreaterThan(0);
    expect(totals.struckOut).toBeGreaterThan(SEEDS / 4);
    expect(totals.settings).toBeGreaterThan(SEEDS);
    expect(totals.deletes).toBeGreaterThan(SEEDS);
    expect(totals.bans).toBeGreaterThan(SEEDS);
  });

  it("crosses the presence limit both ways", () => {
    const { failures } = runSeeds({ ...base, users: 12, presenceLimit: 5, steps: 600 }, Math.ceil(SEEDS / 4));
    expect(failures.slice(0, 3)).toEqual([]);
  });

  it("survives a heavy loss rate with a small refill window", () => {
    const { failures } = runSeeds({ ...base, drop: 0.25, duplicate: 0.2, window: 3 }, Math.ceil(SEEDS / 4));
    expect(failures.slice(0, 3)).toEqual([]);
  });

  it("holds with many parts and no evictions", () => {
    const { failures } = runSeeds(
      { ...base, parts: 8, users: 20, presenceLimit: 50, evictPart: 0, evictRoom: 0 },
      Math.ceil(SEEDS / 4),
    );
    expect(failures.slice(0, 3)).toEqual([]);
  });
});
