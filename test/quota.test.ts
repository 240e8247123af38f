// The shared buckets of a room as plain data, and the settings that shape them.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { readConfig } from "../src/config.ts";
import { RoomQuota, type QuotaSettings } from "../src/quota.ts";
import type { Session } from "../src/session.ts";

const T = 1_000_000;
const settings: QuotaSettings = {
  rateBurst: 3,
  ratePerSec: 1,
  addressRateBurst: 5,
  addressRatePerSec: 1,
  addressSocketsPerRoom: 2,
};

function session(quota: RoomQuota, userId: string, address: string, now = T): Session {
  return {
    room: "r",
    user: { id: userId, name: userId },
    address,
    ...quota.snapshots(userId, address, now),
    lastPost: null,
    strikes: [],
    seen: now,
    batch: false,
    acked: null,
    departed: false,
  };
}

function takes(quota: RoomQuota, s: Session, count: number, now = T): boolean[] {
  return Array.from({ length: count }, () => quota.take(s, now));
}

describe("RoomQuota", () => {
  it("shares one bucket among a user's sockets and one among an address's users", () => {
    const quota = new RoomQuota(settings);
    const a = session(quota, "u1", "x");
    const b = session(quota, "u1", "y");
    expect([...takes(quota, a, 2), ...takes(quota, b, 2)]).toEqual([true, true, true, false]);
    const c = session(quota, "u2", "y");
    const d = session(quota, "u3", "y");
    // Address y has given one message (b's) of its 5.
    expect([...takes(quota, c, 3), ...takes(quota, d, 2)]).toEqual([true, true, true, true, false]);
  });

  it("charges neither bucket for a message one of them refuses", () => {
    const quota = new RoomQuota(settings);
    const first = session(quota, "u1", "x");
    const second = session(quota, "u2", "x");
    expect([...takes(quota, first, 3), ...takes(quota, second, 3)]).toEqual([true, true, true, true, true, false]);
    expect(second.bucket).toEqual({ tokens: 1, at: T });
  });

  it("rebuilds each shared bucket from the latest snapshot among its sockets", () => {
    const before = new RoomQuota(settings);
    const a = session(before, "u1", "x");
    const b = session(before, "u1", "y");
    takes(before, a, 2, T);
    takes(before, b, 1, T + 1);
    const c = session(before, "u2", "x", T + 2);
    // A wake: a new instance that knows only the attachments.
    for (const order of [
      [a, b, c],
      [c, b, a],
    ]) {
      const after = new RoomQuota(settings);
      for (const s of order) after.restore(structuredClone(s));
      const [a2, c2] = [structuredClone(a), structuredClone(c)];
      expect(after.take(a2, T + 3)).toBe(false);
      // Address x: a took 2 of 5 at T; c's snapshot (taken at its connect) agrees.
      expect(takes(after, c2, 3, T + 4)).toEqual([true, true, true]);
      expect(after.take(session(after, "u3", "x", T + 5), T + 5)).toBe(false);
    }
  });

  it("prefers the lower count when two snapshots have the same time", () => {
    const quota = new RoomQuota(settings);
    const a = session(quota, "u1", "x");
    const b = session(quota, "u1", "y");
    quota.take(a, T);
    quota.take(b, T);
    quota.take(b, T);
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const after = new RoomQuota(settings);
      for (const s of order) after.restore(structuredClone(s));
      expect(takes(after, structuredClone(a), 2, T)).toEqual([false, false]);
    }
  });

  it("counts an address's sockets, restored ones included, and 0 turns the limit off", () => {
    const quota = new RoomQuota(settings);
    quota.restore(session(quota, "u1", "x"));
    expect(quota.admits("x")).toBe(true);
    quota.opened("x");
    expect(quota.admits("x")).toBe(false);
    expect(quota.admits("y")).toBe(true);
    quota.closed("x");
    expect(quota.admits("x")).toBe(true);
    const off = new RoomQuota({ ...settings, addressSocketsPerRoom: 0 });
    for (let i = 0; i < 1000; i++) off.opened("x");
    expect(off.admits("x")).toBe(true);
  });

  it.each([
    ["ADDRESS_RATE_BURST", { addressRateBurst: 0 }],
    ["ADDRESS_RATE_PER_SEC", { addressRatePerSec: 0 }],
  ])("has no per-address bucket when %s is 0", (_, change) => {
    const quota = new RoomQuota({ ...settings, ...change });
    const results = Array.from({ length: 10 }, (_, i) => takes(quota, session(quota, `u${i}`, "x"), 3)).flat();
    expect(results).toEqual(new Array(30).fill(true));
  });

  it("forgets a bucket once it has refilled, and only then", () => {
    const quota = new RoomQuota(settings);
    const a = session(quota, "u1", "x");
    takes(quota, a, 3, T);
    quota.prune(T + 2999);
    expect(session(quota, "u1", "z", T + 2999).bucket).toEqual({ tokens: 0, at: T });
    quota.prune(T + 5000);
    expect(session(quota, "u1", "z", T + 5000).bucket).toEqual({ tokens: 3, at: T + 5000 });
    expect(session(quota, "u9", "x", T + 5000).addressBucket).toEqual({ tokens: 5, at: T + 5000 });
  });
});

describe("abuse limit settings", () => {
  it("has the documented defaults", () => {
    expect(readConfig({})).toMatchObject({
      rateBurst: 10,
      ratePerSec: 5,
      addressRateBurst: 30,
      addressRatePerSec: 15,
      addressSocketsPerRoom: 100,
      ipConnectPerMin: 300,
      apiPerMin: 120,
    });
  });

  it("lets a room hold 100000 connections over all of its parts, 500 in each object, in the code and in wrangler.toml", () => {
    expect(readConfig({})).toMatchObject({ maxConnections: 100_000, shardSize: 500 });
    expect(readConfig(env)).toMatchObject({ maxConnections: 100_000, shardSize: 500 });
  });

  it("reads 0 as off, not as a malformed value", () => {
    const vars = {
      ADDRESS_RATE_BURST: "0",
      ADDRESS_RATE_PER_SEC: "0",
      ADDRESS_SOCKETS_PER_ROOM: "0",
      IP_CONNECT_PER_MIN: "0",
      API_PER_MIN: "0",
    };
    expect(readConfig(vars)).toMatchObject({
      addressRateBurst: 0,
      addressRatePerSec: 0,
      addressSocketsPerRoom: 0,
      ipConnectPerMin: 0,
      apiPerMin: 0,
    });
  });

  it("falls back to the default for a malformed value", () => {
    const vars = {
      ADDRESS_RATE_BURST: "-1",
      ADDRESS_RATE_PER_SEC: "x",
      ADDRESS_SOCKETS_PER_ROOM: "1.5",
      API_PER_MIN: "lots",
    };
    expect(readConfig(vars)).toMatchObject({
      addressRateBurst: 30,
      addressRatePerSec: 15,
      addressSocketsPerRoom: 100,
      apiPerMin: 120,
    });
  });
});
