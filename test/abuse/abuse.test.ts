// Per-user and per-address limits through real sockets, under the settings
// of the "abuse" project (vitest.config.ts): RATE_BURST 3, ADDRESS_RATE_BURST
// 5 (both refilling at 0.01 a second, so nothing refills during a test),
// ADDRESS_SOCKETS_PER_ROOM 3, API_PER_MIN 4.

import { evictDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Client } from "../helpers.ts";
import { ORIGIN, freshIp, freshRoom, join, publish, request, roomStub, upgradeHeaders } from "../helpers.ts";

const RATE_LIMITED = { type: "error", code: "rate_limited", message: expect.any(String) };

/** Reads `count` messages sent by others. */
async function reads(client: Client, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await client.message(`message ${i + 1} of ${count}`);
}

/** Sends `texts` and reads each echo, so the next sender goes after them. */
async function says(client: Client, ...texts: string[]): Promise<void> {
  for (const text of texts) client.say(text);
  for (const text of texts) expect((await client.message(`the echo of ${text}`)).text).toBe(text);
}

describe("the message limit per user", () => {
  it("is shared by all of a user's sockets, from any address", async () => {
    const room = freshRoom();
    const a = await join(room, { name: "alice" });
    const b = await join(room, { name: "alice", token: a.welcome.token });
    await says(a.client, "a1", "a2");
    await reads(b.client, 2);
    b.client.say("b1");
    b.client.say("b2", "n2");
    expect((await b.client.message()).text).toBe("b1");
    expect(await b.client.next("rate_limited")).toEqual({ ...RATE_LIMITED, nonce: "n2" });
  });

  it("survives a hibernation: the wake rebuilds it from the socket that sent last", async () => {
    const room = freshRoom();
    const a = await join(room, { name: "alice" });
    const b = await join(room, { name: "alice", token: a.welcome.token });
    const c = await join(room, { name: "alice", token: a.welcome.token });
    // The socket that sends last is neither the first nor the last one opened,
    // so a wake that took either end's snapshot would be caught.
    await says(a.client, "a1");
    await reads(c.client, 1);
    await says(c.client, "c1");
    await reads(b.client, 2);
    await says(b.client, "b1");
    await reads(a.client, 2);
    await evictDurableObject(roomStub(room));
    // a's snapshot still says 2 tokens left and c's 1; b's, the latest, says none.
    a.client.say("after the wake", "n");
    expect(await a.client.next("rate_limited")).toEqual({ ...RATE_LIMITED, nonce: "n" });
  });
});

describe("the message limit per address", () => {
  it("is shared by every user of an address in a room, and a refused message costs the user nothing", async () => {
    const room = freshRoom();
    const ip = freshIp();
    const headers = { "CF-Connecting-IP": ip };
    const u1 = await join(room, { name: "one", headers });
    const u2 = await join(room, { name: "two", headers });
    const u3 = await join(room, { name: "three", headers });
    await u1.client.next("two's join");
    await u1.client.next("three's join");
    await u2.client.next("three's join");
    await says(u1.client, "1a", "1b");
    await reads(u2.client, 2);
    await says(u2.client, "2a", "2b");
    await reads(u3.client, 4);
    u3.client.say("3a");
    u3.client.say("3b", "n");
    expect((await u3.client.message()).text).toBe("3a");
    expect(await u3.client.next("rate_limited")).toEqual({ ...RATE_LIMITED, nonce: "n" });
    // Another address in the same room is not affected, nor the same address in another room.
    const other = await join(room, { name: "other" });
    other.client.say("o1");
    expect((await other.client.message()).text).toBe("o1");
    const elsewhere = await join(freshRoom(), { name: "one", headers });
    elsewhere.client.say("e1");
    expect((await elsewhere.client.message()).text).toBe("e1");
    // User three spent 1 of its 3: the refused 3b took nothing from it.
    const away = await join(room, { name: "three", token: u3.welcome.token });
    await says(away.client, "3c", "3d");
  });

  it("survives a hibernation", async () => {
    const room = freshRoom();
    const headers = { "CF-Connecting-IP": freshIp() };
    const u1 = await join(room, { name: "one", headers });
    const u2 = await join(room, { name: "two", headers });
    await u1.client.next("two's join");
    await says(u1.client, "1a", "1b", "1c");
    await reads(u2.client, 3);
    await says(u2.client, "2a", "2b");
    await evictDurableObject(roomStub(room));
    const u3 = await join(room, { name: "three", headers });
    u3.client.say("3a", "n");
    expect(await u3.client.next("rate_limited")).toEqual({ ...RATE_LIMITED, nonce: "n" });
  });
});

describe("the socket limit per address and room", () => {
  async function refused(room: string, headers: Record<string, string>): Promise<void> {
    const res = await request(`/chat/${room}`, { headers: upgradeHeaders(headers) });
    expect(res.status).toBe(429);
    expect(await res.json()).toEqual({ error: "too_many_connections", message: expect.any(String) });
  }

  it("refuses the upgrade beyond ADDRESS_SOCKETS_PER_ROOM with 429, and admits again once one leaves", async () => {
    const room = freshRoom();
    const headers = { "CF-Connecting-IP": freshIp() };
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push((await join(room, { headers })).client);
    await refused(room, headers);
    await join(room);
    await join(freshRoom(), { headers });
    clients[0]!.close();
    await clients[0]!.closed;
    await join(room, { headers });
    await refused(room, headers);
  });

  it("counts an IPv6 address by its /64", async () => {
    const room = freshRoom();
    const b = crypto.getRandomValues(new Uint16Array(2));
    const prefix = `2001:db8:${b[0]!.toString(16)}:${b[1]!.toString(16)}`;
    for (const ip of [`${prefix}::1`, `${prefix}:0:0:0:2`, `${prefix.toUpperCase()}:ffff::3`]) {
      await join(room, { headers: { "CF-Connecting-IP": ip } });
    }
    await refused(room, { "CF-Connecting-IP": `${prefix}:1234:5678:9abc:def0` });
    await join(room, {
      headers: { "CF-Connecting-IP": `2001:db8:${b[0]!.toString(16)}:${(b[1]! ^ 1).toString(16)}::1` },
    });
  });

  it("keeps its count across a hibernation, and a socket closed after the wake counts once", async () => {
    const room = freshRoom();
    const headers = { "CF-Connecting-IP": freshIp() };
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push((await join(room, { headers })).client);
    await evictDurableObject(roomStub(room));
    await refused(room, headers);
    await evictDurableObject(roomStub(room));
    // The close is the first event after this wake.
    clients[0]!.close();
    await clients[0]!.closed;
    await join(room, { headers });
    await refused(room, headers);
  });
});

describe("the HTTP API limit per address", () => {
  async function limited(res: Response): Promise<void> {
    expect(res.status).toBe(429);
    expect(res.headers.get("Retry-After")).toBe("15");
    expect(await res.json()).toEqual({ error: "too_many_requests", message: expect.any(String) });
  }

  it("allows API_PER_MIN GETs and POSTs a minute, then answers 429 with Retry-After", async () => {
    const room = freshRoom();
    const ip = freshIp();
    const headers = { "CF-Connecting-IP": ip };
    expect((await request(`/api/rooms/${room}/messages`, { method: "PUT", headers })).status).toBe(405);
    expect((await request(`/api/rooms/${room}/messages`, { headers })).status).toBe(200);
    expect((await request(`/api/rooms/${room}/messages`, { headers })).status).toBe(200);
    const post = (init: RequestInit) =>
      request(`/api/rooms/${room}/messages`, { method: "POST", body: '{"text":"x"}', ...init });
    expect((await post({ headers: { ...headers, Authorization: "Bearer test-publish-token" } })).status).toBe(201);
    expect((await post({ headers: { ...headers, Authorization: "Bearer wrong" } })).status).toBe(401);
    await limited(await request(`/api/rooms/${room}/messages`, { headers }));
    await limited(await post({ headers: { ...headers, Authorization: "Bearer test-publish-token" } }));
    expect((await request(`/api/rooms/${freshRoom()}/messages`)).status).toBe(200);
    expect((await publish(room, { text: "from another address" })).status).toBe(201);
  });

  it("counts an IPv6 address by its /64 and an IPv4-mapped address as the IPv4 one", async () => {
    const b = crypto.getRandomValues(new Uint16Array(2));
    const prefix = `2001:db8:${b[0]!.toString(16)}:${b[1]!.toString(16)}`;
    const path = `/api/rooms/${freshRoom()}/messages`;
    for (const ip of [`${prefix}::1`, `${prefix}::2`, `${prefix}:0:0:0:3`, `${prefix.toUpperCase()}:ffff::4`]) {
      expect((await request(path, { headers: { "CF-Connecting-IP": ip } })).status).toBe(200);
    }
    await limited(await request(path, { headers: { "CF-Connecting-IP": `${prefix}:1:2:3:4` } }));
    const v4 = freshIp();
    for (const ip of [v4, `::ffff:${v4}`, v4, `::FFFF:${v4}`]) {
      expect((await request(path, { headers: { "CF-Connecting-IP": ip } })).status).toBe(200);
    }
    await limited(await request(path, { headers: { "CF-Connecting-IP": v4 } }));
  });
});

describe("a request without CF-Connecting-IP", () => {
  const bare = (url: string, headers: Record<string, string> = {}) =>
    exports.default.fetch(new Request(url, { headers }));

  it("is refused with 400 on a public host, for upgrades and the API", async () => {
    for (const res of [
      await bare(`${ORIGIN}/chat/${freshRoom()}`, { Upgrade: "websocket" }),
      await bare(`${ORIGIN}/api/rooms/${freshRoom()}/messages`),
    ]) {
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: "no_client_address", message: expect.any(String) });
    }
  });

  it("counts as the one address loopback on a loopback host", async () => {
    const hosts = ["http://localhost:8787", "http://127.0.0.1:8787", "http://[::1]:8787"];
    for (const host of [...hosts, hosts[0]!])
      expect((await bare(`${host}/api/rooms/${freshRoom()}/messages`)).status).toBe(200);
    expect((await bare(`${hosts[1]!}/api/rooms/${freshRoom()}/messages`)).status).toBe(429);
    const room = freshRoom();
    const statuses = [];
    for (const host of [...hosts, hosts[2]!]) {
      const res = await bare(`${host}/chat/${room}`, { Upgrade: "websocket" });
      statuses.push(res.status);
      res.webSocket?.accept();
    }
    expect(statuses).toEqual([101, 101, 101, 429]);
  });
});
