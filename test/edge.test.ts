// Hardening at the edge (issue 8): what a hostile client can do before or
// around the room.

import { runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { addressKey } from "../src/address.ts";
import { MAX_LOG_STRING, createLogger } from "../src/log.ts";
import { PUBLISH_FAILURES_PER_MIN, type HistoryPage } from "../src/protocol.ts";
import type { ChatRoom } from "../src/room.ts";
import { PUBLISH_TOKEN, freshIp, freshRoom, join, publish, request, roomStub, upgradeHeaders } from "./helpers.ts";

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

describe("token spelling", () => {
  it("refuses a token whose spare bits are set: a new id is issued", async () => {
    const room = freshRoom();
    const first = await join(room);
    const [id, sig = ""] = first.welcome.token.split(".");
    const last = BASE64URL.indexOf(sig.at(-1) ?? "");
    const respelled = `${id}.${sig.slice(0, -1)}${BASE64URL[last ^ 0b11]}`;
    const canonical = await join(room, { token: first.welcome.token });
    expect(canonical.welcome.you.id).toBe(first.welcome.you.id);
    const other = await join(room, { token: respelled });
    expect(other.welcome.you.id).toMatch(/^u_[0-9a-f]{24}$/);
    expect(other.welcome.you.id).not.toBe(first.welcome.you.id);
    for (const c of [first, canonical, other]) c.client.close();
    await Promise.all([first, canonical, other].map((c) => c.client.closed));
  });
});

/** The tables in a room's SQLite database, read without creating any. */
function tables(room: string): Promise<string[]> {
  return runInDurableObject(roomStub(room), (_: ChatRoom, state) =>
    state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .toArray()
      .map((row) => row.name),
  );
}

async function history(room: string, query = ""): Promise<unknown> {
  const res = await request(`/api/rooms/${room}/messages${query}`, { headers: { "CF-Connecting-IP": freshIp() } });
  expect(res.status).toBe(200);
  return res.json();
}

describe("a room nobody wrote to", () => {
  // workerd opens every SQLite-backed object's database file when the object
  // starts (the file is there even for one that never touches storage), so
  // the proof is the schema: the room must not have created its table.
  it("answers its empty history without creating storage", async () => {
    const room = freshRoom();
    const empty: HistoryPage = { room, messages: [], gap: false };
    expect(await history(room)).toEqual(empty);
    expect(await history(room, "?after=0")).toEqual(empty);
    // v1: `after` beyond the last id the room issued (none) is a gap.
    expect(await history(room, "?after=5")).toEqual({ ...empty, gap: true });
    expect(await tables(room)).toEqual([]);
  });

  it("creates its table with the first message, also after a read", async () => {
    const room = freshRoom();
    await history(room);
    const res = await publish(room, { text: "first" });
    expect(res.status).toBe(201);
    const message = await res.json();
    expect(message).toMatchObject({ id: 1, text: "first" });
    expect(await history(room)).toEqual({ room, messages: [message], gap: false });
    expect(await tables(room)).toContain("messages");
  });

  it("lets a socket that joined it before anyone wrote send the first message", async () => {
    const room = freshRoom();
    const { client, welcome } = await join(room);
    expect(welcome.history).toEqual([]);
    expect(await tables(room)).not.toContain("messages");
    client.say("hello");
    expect(await client.message()).toMatchObject({ id: 1, text: "hello" });
    client.close();
    await client.closed;
  });
});

describe("log lines", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("cut every string field, never splitting a character", () => {
    const lines = vi.spyOn(console, "log").mockImplementation(() => undefined);
    const log = createLogger("info", { component: "x".repeat(5000) });
    const emoji = `a${"😀".repeat(3000)}`;
    log.info("test", { origin: "o".repeat(12 * 1024), emoji, short: "kept", n: 7 });
    const line = String(lines.mock.calls[0]?.[0]);
    expect(line.length).toBeLessThan(4 * MAX_LOG_STRING);
    const entry = JSON.parse(line) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: "info", event: "test", short: "kept", n: 7 });
    expect(entry.origin).toBe(`${"o".repeat(MAX_LOG_STRING)}…[${12 * 1024} chars]`);
    expect(entry.component).toBe(`${"x".repeat(MAX_LOG_STRING)}…[5000 chars]`);
    // 200 code units would end inside a surrogate pair: the pair is dropped whole.
    expect(entry.emoji).toBe(`a${"😀".repeat(99)}…[${emoji.length} chars]`);
    expect(line).not.toMatch(/\\ud83d"|\\ud83d…/i);
  });

  it("stay small when a request carries a 12 KB Origin", async () => {
    const lines = vi.spyOn(console, "log");
    const origin = `https://${"a".repeat(12 * 1024)}.example`;
    const res = await request(`/chat/${freshRoom()}`, { headers: upgradeHeaders({ Origin: origin }) });
    expect(res.status).toBe(403);
    const refused = lines.mock.calls.map(([line]) => String(line)).find((line) => line.includes('"origin_refused"'));
    expect(refused).toBeDefined();
    expect(refused!.length).toBeLessThan(1024);
    expect(JSON.parse(refused!)).toMatchObject({
      origin: `${origin.slice(0, MAX_LOG_STRING)}…[${origin.length} chars]`,
    });
  });
});

describe("the bearer scheme", () => {
  it("is matched without regard to case (RFC 7235)", async () => {
    const room = freshRoom();
    for (const scheme of ["bearer", "BEARER", "Bearer"]) {
      const res = await request(`/api/rooms/${room}/messages`, {
        method: "POST",
        headers: { Authorization: `${scheme} ${PUBLISH_TOKEN}`, "CF-Connecting-IP": freshIp() },
        body: JSON.stringify({ text: scheme }),
      });
      expect(res.status, scheme).toBe(201);
    }
  });
});

describe("failed PUBLISH_TOKEN attempts", () => {
  function attempt(room: string, token: string, address: string): Promise<Response> {
    return request(`/api/rooms/${room}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "CF-Connecting-IP": address, "Content-Type": "application/json" },
      body: JSON.stringify({ text: "x" }),
    });
  }

  async function expectThrottled(res: Response): Promise<void> {
    expect(res.status).toBe(429);
    expect(await res.json()).toEqual({ error: "too_many_requests", message: expect.any(String) });
    const wait = Number(res.headers.get("Retry-After"));
    expect(Number.isInteger(wait) && wait >= 1 && wait <= 60, `Retry-After ${wait}`).toBe(true);
  }

  it(`are throttled per address: ${PUBLISH_FAILURES_PER_MIN} a minute, then 429 with Retry-After, the right token too`, async () => {
    const room = freshRoom();
    const address = freshIp();
    for (let i = 0; i < PUBLISH_FAILURES_PER_MIN; i++)
      expect((await attempt(room, `guess-${i}`, address)).status).toBe(401);
    await expectThrottled(await attempt(room, "one more", address));
    // A right guess must not stand out while the address is throttled.
    await expectThrottled(await attempt(room, PUBLISH_TOKEN, address));
    // Another address is not affected, and nothing was stored.
    expect((await attempt(room, PUBLISH_TOKEN, freshIp())).status).toBe(201);
    expect(await (await request(`/api/rooms/${room}/messages`)).json()).toMatchObject({ messages: [{ id: 1 }] });
  });

  it("count an IPv6 address by its /64", async () => {
    const room = freshRoom();
    const net = `2001:db8:${Array.from(crypto.getRandomValues(new Uint16Array(2)), (n) => n.toString(16)).join(":")}`;
    for (let i = 0; i < PUBLISH_FAILURES_PER_MIN; i++) {
      expect((await attempt(room, "wrong", `${net}::${(i + 1).toString(16)}`)).status).toBe(401);
    }
    await expectThrottled(await attempt(room, "wrong", `${net}:0:0:0:ffff`));
  });

  it("are the only ones counted: publishing with the right token is not throttled", async () => {
    const room = freshRoom();
    const address = freshIp();
    for (let i = 0; i < PUBLISH_FAILURES_PER_MIN + 2; i++)
      expect((await attempt(room, PUBLISH_TOKEN, address)).status).toBe(201);
    for (let i = 0; i < PUBLISH_FAILURES_PER_MIN; i++) expect((await attempt(room, "wrong", address)).status).toBe(401);
    await expectThrottled(await attempt(room, "wrong", address));
  });
});

describe("addressKey", () => {
  const key = (ip: string | null, host = "https://chat.example") =>
    addressKey(new Request(`${host}/api/rooms/a/messages`, { headers: ip === null ? {} : { "CF-Connecting-IP": ip } }));

  it.each([
    ["203.0.113.7", "203.0.113.7"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:0DB8:0001:0002::ffff", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["::ffff:198.51.100.1", "198.51.100.1"],
  ])("keys %s as %s", (ip, expected) => {
    expect(key(ip)).toBe(expected);
  });

  it("gives a request without an address a key only on a loopback host", () => {
    expect(key(null, "http://127.0.0.1:8787")).toBe("loopback");
    expect(key(null)).toBeNull();
  });
});
