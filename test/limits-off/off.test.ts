// Every per-address limit switched off with 0 (the "limits-off" project in
// vitest.config.ts: ADDRESS_RATE_BURST, ADDRESS_SOCKETS_PER_ROOM, API_PER_MIN
// and IP_CONNECT_PER_MIN are 0). Each test would fail if 0 fell back to the
// default: it goes past the default, or past an allowance already used up.

import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Purpose } from "../../src/limiter.ts";
import { ORIGIN, freshIp, freshRoom, join, request, upgradeHeaders } from "../helpers.ts";

/** Uses up the address's allowance for `purpose` in the limiter, so any consultation of it would refuse. */
async function exhaust(ip: string, purpose: Purpose): Promise<void> {
  const limiter = env.CONNECT_LIMITER.get(env.CONNECT_LIMITER.idFromName(ip));
  expect(await limiter.allow(1, purpose)).toBe(true);
  expect(await limiter.allow(1, purpose)).toBe(false);
}

describe("limits set to 0", () => {
  it("IP_CONNECT_PER_MIN: the connect limiter is never consulted", async () => {
    const ip = freshIp();
    await exhaust(ip, "connect");
    const res = await request(`/chat/${freshRoom()}`, { headers: upgradeHeaders({ "CF-Connecting-IP": ip }) });
    expect(res.status).toBe(101);
  });

  it("API_PER_MIN: the API limiter is never consulted", async () => {
    const ip = freshIp();
    await exhaust(ip, "api");
    const res = await request(`/api/rooms/${freshRoom()}/messages`, { headers: { "CF-Connecting-IP": ip } });
    expect(res.status).toBe(200);
  });

  it("ADDRESS_SOCKETS_PER_ROOM: one address holds more sockets in a room than the default 100", async () => {
    const room = freshRoom();
    const headers = { "CF-Connecting-IP": freshIp() };
    // One user, so no socket after the first announces a join to the others.
    const first = await join(room, { headers });
    for (let i = 1; i <= 100; i++) await join(room, { headers, token: first.welcome.token });
    expect((await join(room, { headers })).welcome.online).toHaveLength(2);
  });

  it("ADDRESS_RATE_BURST: one address sends more messages at once than the default 30", async () => {
    const room = freshRoom();
    const headers = { "CF-Connecting-IP": freshIp() };
    const users = [];
    for (let i = 0; i < 4; i++) users.push((await join(room, { headers, name: `u${i}` })).client);
    const watcher = await join(room, { name: "watcher" });
    // Ten each: the per-user burst (RATE_BURST 10) still holds.
    for (const [u, client] of users.entries()) for (let i = 0; i < 10; i++) client.say(`u${u}-${i}`);
    const seen = [];
    for (let i = 0; i < 40; i++) seen.push((await watcher.client.message(`message ${i + 1} of 40`)).text);
    expect(seen.sort()).toEqual(users.flatMap((_, u) => Array.from({ length: 10 }, (_, i) => `u${u}-${i}`)).sort());
  });
});

describe("a request without CF-Connecting-IP, with the limits off", () => {
  it("is still refused with 400 on a public host: what it means does not depend on the limits", async () => {
    const upgrade = new Request(`${ORIGIN}/chat/${freshRoom()}`, { headers: { Upgrade: "websocket" } });
    const api = new Request(`${ORIGIN}/api/rooms/${freshRoom()}/messages`);
    for (const req of [upgrade, api]) {
      const res = await exports.default.fetch(req);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: "no_client_address", message: expect.any(String) });
    }
  });
});
