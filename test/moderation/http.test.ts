// The moderation HTTP API through the Worker: who may call it, each route's
// answers, and that reading a room nobody wrote to creates no storage.

import { describe, expect, it } from "vitest";
import { MODERATION_FAILURES_PER_MIN } from "../../src/protocol.ts";
import type { RoomStats } from "../../src/room.ts";
import { freshIp, freshRoom, join, publish, request, seed, type Client } from "../helpers.ts";
import { ADMIN, ADMIN_TOKEN, api, hostJwt, tables, usage, verifiedUser } from "./support.ts";

async function frameOf(client: Client, type: string): Promise<unknown> {
  for (;;) {
    const frame = await client.next(`a ${type} frame`);
    if (frame.type === type) return frame;
    if (frame.type !== "join" && frame.type !== "leave")
      throw new Error(`expected ${type}, got ${JSON.stringify(frame)}`);
  }
}

const unauthorized = {
  error: "unauthorized",
  message: "ADMIN_TOKEN or a moderator's JWT is required as a bearer token",
};

describe("who may call the moderation API", () => {
  it("answers 401 without a bearer, with a wrong one and with a JWT that does not verify", async () => {
    const room = freshRoom();
    for (const bearer of [null, "wrong", `${await hostJwt("mod", ["moderator"])}x`]) {
      const res = await api(room, "/bans", { bearer });
      expect(res.status).toBe(401);
      expect(res.headers.get("WWW-Authenticate")).toBe("Bearer");
      expect(await res.json()).toEqual(unauthorized);
    }
    const lower = await request(`/api/rooms/${room}/bans`, { headers: { Authorization: "bearer test-admin-token" } });
    expect(lower.status).toBe(200);
  });

  it("answers 403 to a verified user without the moderator role, and takes a moderator's JWT", async () => {
    const room = freshRoom();
    await seed(room, 1);
    const plain = await api(room, "/messages/1", { method: "DELETE", bearer: await hostJwt("eve") });
    expect(plain.status).toBe(403);
    expect(await plain.json()).toEqual({ error: "forbidden", message: "this JWT does not carry the moderator role" });
    const { client } = await join(room);
    const res = await api(room, "/messages/1", { method: "DELETE", bearer: await hostJwt("mod", ["moderator"]) });
    expect(res.status).toBe(204);
    expect(await frameOf(client, "delete")).toEqual({
      type: "delete",
      id: 1,
      by: await verifiedUser("mod"),
      ts: expect.any(Number),
    });
  });

  it("answers 405 with Allow for a method a route does not take, and 404 for paths it does not know", async () => {
    const room = freshRoom();
    const res = await api(room, "/stats", { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("GET");
    for (const path of ["/nope", "/bans/a/b", "/messages/1/x", "/settings/x", "/stats/"]) {
      const missing = await api(room, path);
      expect(missing.status, path).toBe(404);
      expect(await missing.json()).toEqual({ error: "not_found", message: "no such endpoint" });
    }
  });
});

describe("failed bearer attempts on the moderation API", () => {
  const call = (room: string, bearer: string, ip: string) =>
    api(room, "/bans", { bearer, headers: { "CF-Connecting-IP": ip } });

  async function expectThrottled(res: Response): Promise<void> {
    expect(res.status).toBe(429);
    expect(await res.json()).toEqual({
      error: "too_many_requests",
      message: `too many failed attempts; at most ${MODERATION_FAILURES_PER_MIN} a minute`,
    });
    const wait = Number(res.headers.get("Retry-After"));
    expect(Number.isInteger(wait) && wait >= 1 && wait <= 60, `Retry-After ${wait}`).toBe(true);
  }

  it(`are throttled per address: ${MODERATION_FAILURES_PER_MIN} a minute (wrong ADMIN_TOKEN or a JWT that does not verify), then 429 for every bearer`, async () => {
    const room = freshRoom();
    const ip = freshIp();
    const forged = `${await hostJwt("mod", ["moderator"])}x`;
    for (let i = 0; i < MODERATION_FAILURES_PER_MIN; i++)
      expect((await call(room, i % 2 === 0 ? `guess-${i}` : forged, ip)).status).toBe(401);
    await expectThrottled(await call(room, "one more", ip));
    // A right guess must not stand out while the address is throttled.
    await expectThrottled(await call(room, ADMIN_TOKEN, ip));
    await expectThrottled(await call(room, await hostJwt("mod", ["moderator"]), ip));
    expect((await call(room, ADMIN_TOKEN, freshIp())).status).toBe(200);
  });

  it("count only guesses: good bearers and a verified user without the role (403) are not counted", async () => {
    const room = freshRoom();
    const ip = freshIp();
    const eve = await hostJwt("eve");
    for (let i = 0; i < MODERATION_FAILURES_PER_MIN + 2; i++) {
      expect((await call(room, ADMIN_TOKEN, ip)).status).toBe(200);
      expect((await call(room, eve, ip)).status).toBe(403);
    }
    for (let i = 0; i < MODERATION_FAILURES_PER_MIN; i++) expect((await call(room, "wrong", ip)).status).toBe(401);
    await expectThrottled(await call(room, "wrong", ip));
  });
});

describe("DELETE /api/rooms/{room}/messages/{id}", () => {
  it("tombstones the message (204), tells every socket, shows it in HTTP history; 404 for an id not kept", async () => {
    const room = freshRoom();
    const { client } = await join(room);
    const posted = await (await publish(room, { text: "bad", nonce: "p" })).json();
    const res = await api(room, "/messages/1", { method: "DELETE" });
    expect(res.status).toBe(204);
    expect(await frameOf(client, "message")).toEqual(posted);
    expect(await frameOf(client, "delete")).toEqual({ type: "delete", id: 1, by: ADMIN, ts: expect.any(Number) });
    const page = await (await request(`/api/rooms/${room}/messages`)).json();
    expect(page).toEqual({
      room,
      gap: false,
      messages: [
        { type: "message", id: 1, ts: expect.any(Number), from: { id: "bot", name: "bot" }, text: "", deleted: true },
      ],
    });
    // Again: the tombstone is kept, so 204 and nothing new.
    expect((await api(room, "/messages/1", { method: "DELETE" })).status).toBe(204);
    for (const id of ["2", "0", "abc"]) {
      const missing = await api(room, `/messages/${id}`, { method: "DELETE" });
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: "not_found", message: "this room keeps no message with that id" });
    }
  });
});

describe("bans over HTTP", () => {
  it("PUT bans and closes the user's sockets, GET lists it, DELETE lifts it", async () => {
    const room = freshRoom();
    const target = await join(room);
    const id = target.welcome.you.id;
    const put = await api(room, `/bans/${id}`, { method: "PUT", body: JSON.stringify({ minutes: 5, reason: "rude" }) });
    expect(put.status).toBe(204);
    const closed = await target.client.closed;
    expect(closed.code).toBe(4003);
    expect(closed.reason).toMatch(/^banned until .*Z: rude$/);
    const listed = (await (await api(room, "/bans")).json()) as { bans: { until: number }[] };
    expect(listed).toEqual({ bans: [{ user: id, until: expect.any(Number), reason: "rude" }] });
    expect(listed.bans[0]!.until - Date.now()).toBeGreaterThan(4 * 60_000);
    // An empty body bans until unbanned; a verified user's id needs no escaping but any id is percent-decoded.
    const verified = await verifiedUser("x");
    expect((await api(room, `/bans/${encodeURIComponent(verified.id)}`, { method: "PUT" })).status).toBe(204);
    expect(((await (await api(room, "/bans")).json()) as { bans: unknown[] }).bans).toEqual([
      { user: id, until: expect.any(Number), reason: "rude" },
      { user: verified.id, until: null },
    ]);
    expect((await api(room, `/bans/${id}`, { method: "DELETE" })).status).toBe(204);
    expect((await api(room, `/bans/${id}`, { method: "DELETE" })).status).toBe(204);
    expect(await (await api(room, "/bans")).json()).toEqual({ bans: [{ user: verified.id, until: null }] });
    expect((await join(room, { token: target.welcome.token })).welcome.you.id).toBe(id);
  });

  it("purges with the ban", async () => {
    const room = freshRoom();
    const target = await join(room);
    const watcher = await join(room);
    target.client.say("x");
    await frameOf(watcher.client, "message");
    const put = await api(room, `/bans/${target.welcome.you.id}`, {
      method: "PUT",
      body: JSON.stringify({ purge: true }),
    });
    expect(put.status).toBe(204);
    expect(await frameOf(watcher.client, "delete")).toEqual({
      type: "delete",
      id: 1,
      by: ADMIN,
      ts: expect.any(Number),
    });
  });

  it("refuses bad bodies and ids with 400 and an error body", async () => {
    const room = freshRoom();
    const cases: [string, string, number, string][] = [
      ["/bans/u_1", "{", 400, "bad_json"],
      ["/bans/u_1", "[]", 400, "bad_json"],
      ["/bans/u_1", JSON.stringify({ minutes: 0 }), 400, "invalid_message"],
      ["/bans/u_1", JSON.stringify({ reason: 5 }), 400, "invalid_message"],
      ["/bans/u_1", "x".repeat(20_000), 413, "too_large"],
      ["/bans/%ZZ", "{}", 400, "invalid_user"],
    ];
    for (const [path, body, status, code] of cases) {
      const res = await api(room, path, { method: "PUT", body });
      expect(res.status, `${path} ${body.slice(0, 20)}`).toBe(status);
      expect(await res.json()).toMatchObject({ error: code, message: expect.any(String) });
    }
  });
});

describe("PATCH /api/rooms/{room}/settings", () => {
  it("answers the settings, tells every socket and puts slow mode in welcome.limits", async () => {
    const room = freshRoom();
    const { client } = await join(room);
    const res = await api(room, "/settings", { method: "PATCH", body: JSON.stringify({ slowMode: 15 }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ slowMode: 15 });
    expect(await frameOf(client, "settings")).toEqual({ type: "settings", slowMode: 15 });
    expect((await join(room)).welcome.limits.slowMode).toBe(15);
    const bad = await api(room, "/settings", { method: "PATCH", body: JSON.stringify({ slowMode: 3601 }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: "invalid_message",
      message: "slowMode must be a whole number of seconds from 0 to 3600",
    });
  });
});

describe("GET /api/rooms/{room}/stats", () => {
  it("shows the room from memory, at no row once warm", async () => {
    const room = freshRoom();
    await seed(room, 3);
    await api(room, "/messages/2", { method: "DELETE" });
    await join(room);
    await join(room, { batch: true });
    await api(room, "/bans/u_0123456789abcdef01234567", { method: "PUT" });
    await api(room, "/settings", { method: "PATCH", body: JSON.stringify({ slowMode: 10 }) });
    const before = await usage(room);
    const res = await api(room, "/stats");
    expect(res.status).toBe(200);
    const stats = (await res.json()) as RoomStats;
    expect(stats).toEqual({
      room,
      connections: 2,
      users: 2,
      lastId: 3,
      shards: 1,
      messages: 3,
      deleted: 1,
      oldestId: 1,
      bans: 1,
      slowMode: 10,
      batching: 1,
      usage: expect.objectContaining({ messages: 3, connects: 2 }),
    });
    const after = await usage(room);
    expect([after.rowsRead - before.rowsRead, after.rowsWritten - before.rowsWritten]).toEqual([0, 0]);
  });

  it("reads bans and stats of a room nobody wrote to without creating storage", async () => {
    const room = freshRoom();
    expect(await (await api(room, "/bans")).json()).toEqual({ bans: [] });
    expect(await (await api(room, "/stats")).json()).toMatchObject({
      room,
      connections: 0,
      lastId: 0,
      messages: 0,
      oldestId: null,
      bans: 0,
      slowMode: 0,
    });
    expect(await tables(room)).toEqual([]);
  });
});
