// The per-user and per-address limits of a large room (SHARD_SIZE 3): they
// hold across the whole room, whether a socket is the room's own or a part's.
// Buckets of 4 messages per user and 6 per address that barely refill, and 3
// sockets per address, so a test reaches every limit.

import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ServerFrame } from "../../src/protocol.ts";
import { env } from "cloudflare:workers";
import { Client, freshIp, freshRoom, join, request, roomStub, upgradeHeaders } from "../helpers.ts";

/** Joins `count` clients from fresh addresses: the room holds the first three itself. */
async function crowd(room: string, count: number): Promise<Client[]> {
  const joined: Client[] = [];
  for (let i = 0; i < count; i++)
    joined.push((await join(room, { name: `c${i + 1}`, headers: { "CF-Connecting-IP": freshIp() } })).client);
  return joined;
}

/** What became of the `n` messages whose nonces start with `prefix`: "stored" or the error's code, by nonce. */
async function answers(client: Client, prefix: string, n: number): Promise<Map<string, string>> {
  const got = new Map<string, string>();
  while (got.size < n) {
    const frame: ServerFrame = await client.next(`answer ${got.size + 1} of ${n} for ${prefix}`);
    if (frame.type === "error" && frame.nonce?.startsWith(prefix) === true) got.set(frame.nonce, frame.code);
    if (frame.type === "message" && frame.nonce?.startsWith(prefix) === true) got.set(frame.nonce, "stored");
  }
  return got;
}

/** Waits until the room has dropped its parts and is one object again (PART_IDLE_MS after the last part socket closed). */
async function single(room: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!(await roomStub(room).shards()).sequencing) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`room ${room} never became one object again`);
}

/** An upgrade from `ip`: its status, and the error's code when refused. */
async function attempt(room: string, ip: string): Promise<{ status: number; error?: string }> {
  const res = await request(`/chat/${room}`, { headers: upgradeHeaders({ "CF-Connecting-IP": ip }) });
  if (res.status === 101) return { status: 101 };
  const body: { error: string } = await res.json();
  return { status: res.status, error: body.error };
}

/** Opens a socket from `ip` as soon as the room admits one (it learns of closes on parts a moment later). */
async function admitted(room: string, ip: string): Promise<Client> {
  for (let i = 0; i < 50; i++) {
    const res = await request(`/chat/${room}`, { headers: upgradeHeaders({ "CF-Connecting-IP": ip }) });
    if (res.status === 101 && res.webSocket !== null) {
      const client = new Client(res.webSocket);
      await client.welcome();
      return client;
    }
    expect(res.status).toBe(429);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the room never admitted another socket from ${ip}`);
}

const tally = (...maps: Map<string, string>[]) => {
  const all = maps.flatMap((m) => [...m.values()]);
  return { stored: all.filter((x) => x === "stored").length, limited: all.filter((x) => x === "rate_limited").length };
};

describe("the limits of a large room", () => {
  it("holds one user to one message bucket across the room's own sockets and its parts'", async () => {
    const room = freshRoom();
    await crowd(room, 2);
    const a = await join(room, { name: "u", headers: { "CF-Connecting-IP": freshIp() } });
    const b = await join(room, { name: "u", token: a.welcome.token, headers: { "CF-Connecting-IP": freshIp() } });
    expect(b.welcome.you).toEqual(a.welcome.you);
    expect((await roomStub(room).shards()).parts.map((p) => p.connections)).toEqual([3, 1]);
    for (let i = 1; i <= 3; i++) {
      a.client.say(`a${i}`, `a${i}`);
      b.client.say(`b${i}`, `b${i}`);
    }
    // Six messages from one user with a bucket of four: two refused, whichever socket sent them.
    expect(tally(await answers(a.client, "a", 3), await answers(b.client, "b", 3))).toEqual({ stored: 4, limited: 2 });
  });

  it("holds one address to one message bucket across the room's own sockets and its parts'", async () => {
    const room = freshRoom();
    await crowd(room, 2);
    const headers = { "CF-Connecting-IP": freshIp() };
    const a = await join(room, { name: "a", headers });
    const b = await join(room, { name: "b", headers });
    expect((await roomStub(room).shards()).parts.map((p) => p.connections)).toEqual([3, 1]);
    for (let i = 1; i <= 4; i++) {
      a.client.say(`a${i}`, `a${i}`);
      b.client.say(`b${i}`, `b${i}`);
    }
    // Eight messages, four per user, from one address with a bucket of six: two refused.
    expect(tally(await answers(a.client, "a", 4), await answers(b.client, "b", 4))).toEqual({ stored: 6, limited: 2 });
  });

  it("keeps what a part's sockets took from a user's bucket when the room shrinks and hibernates", async () => {
    const room = freshRoom();
    await crowd(room, 2);
    const a = await join(room, { name: "u", headers: { "CF-Connecting-IP": freshIp() } });
    const b = await join(room, { name: "u", token: a.welcome.token, headers: { "CF-Connecting-IP": freshIp() } });
    for (let i = 1; i <= 4; i++) b.client.say(`b${i}`, `b${i}`);
    expect(tally(await answers(b.client, "b", 4))).toEqual({ stored: 4, limited: 0 });
    b.client.close();
    await single(room);
    // Hibernation: memory goes, the room's own sockets stay open.
    await evictDurableObject(roomStub(room));
    a.client.say("a1", "a1");
    expect(tally(await answers(a.client, "a", 1))).toEqual({ stored: 0, limited: 1 });
  });

  it("counts an address's sockets on every part against ADDRESS_SOCKETS_PER_ROOM", async () => {
    const room = freshRoom();
    await crowd(room, 2);
    const ip = freshIp();
    const own = await join(room, { headers: { "CF-Connecting-IP": ip } });
    const onPart = await join(room, { headers: { "CF-Connecting-IP": ip } });
    await join(room, { headers: { "CF-Connecting-IP": ip } });
    expect((await roomStub(room).shards()).parts.map((p) => p.connections)).toEqual([3, 2]);
    expect(await attempt(room, ip)).toEqual({ status: 429, error: "too_many_connections" });
    // A socket on a part that closes gives its place back, and only one.
    onPart.client.close();
    await admitted(room, ip);
    expect(await attempt(room, ip)).toEqual({ status: 429, error: "too_many_connections" });
    own.client.close();
  });

  it("gives an evicted part's sockets back to their address", async () => {
    const room = freshRoom();
    await crowd(room, 3);
    const ip = freshIp();
    const first = await join(room, { headers: { "CF-Connecting-IP": ip } });
    await join(room, { headers: { "CF-Connecting-IP": ip } });
    await join(room, { headers: { "CF-Connecting-IP": ip } });
    expect((await roomStub(room).shards()).parts.map((p) => p.connections)).toEqual([3, 3]);
    expect(await attempt(room, ip)).toEqual({ status: 429, error: "too_many_connections" });
    // A crash of the part: its sockets close, and the address may open three again.
    await expect(
      runInDurableObject(env.PARTS.get(env.PARTS.idFromName(`${room}/1`)), (_: unknown, state: DurableObjectState) =>
        state.abort("restart"),
      ),
    ).rejects.toThrow();
    expect((await first.client.closed).code).toBe(1006);
    await admitted(room, ip);
    await join(room, { headers: { "CF-Connecting-IP": ip } });
    await join(room, { headers: { "CF-Connecting-IP": ip } });
    expect(await attempt(room, ip)).toEqual({ status: 429, error: "too_many_connections" });
  });
});
