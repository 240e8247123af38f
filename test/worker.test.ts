// The Worker's routing, checks and HTTP API.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Message } from "../src/protocol.ts";
import worker from "../src/worker.ts";
import {
  Client,
  ORIGIN,
  PUBLISH_TOKEN,
  edgeRequest,
  freshIp,
  freshRoom,
  join,
  publish,
  request,
  upgradeHeaders,
} from "./helpers.ts";

/** Calls the Worker with some settings changed, as a deployment with other vars would. */
function withEnv(overrides: Partial<Env>, path: string, init: RequestInit = {}): Promise<Response> {
  const req = edgeRequest(path, init) as Parameters<typeof worker.fetch>[0];
  return worker.fetch(req, { ...env, ...overrides });
}

async function expectError(res: Response, status: number, error: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toContain("application/json");
  expect(await res.json()).toEqual({ error, message: expect.any(String) });
}

describe("routing", () => {
  it("answers /chat without an upgrade with 426", async () => {
    for (const path of ["/chat", "/chat/", "/chat/lobby"]) {
      const res = await request(path);
      await expectError(res, 426, "upgrade_required");
      expect(res.headers.get("Upgrade")).toBe("websocket");
    }
  });

  it("puts /chat and /chat/ in the lobby", async () => {
    for (const path of ["/chat", "/chat/"]) {
      const res = await request(path, { headers: upgradeHeaders() });
      expect(res.status).toBe(101);
      const client = new Client(res.webSocket!);
      expect((await client.welcome()).room).toBe("lobby");
      client.close();
    }
  });

  it("folds upper case in room names", async () => {
    const res = await request("/chat/Ops-Team", { headers: upgradeHeaders() });
    const client = new Client(res.webSocket!);
    expect((await client.welcome()).room).toBe("ops-team");
    client.close();
  });

  it.each(["-x", "_x", "a%20b", "caf%C3%A9", "r".repeat(65), "a.b", "%E2%84%AA"])(
    "refuses the room name %s with 400",
    async (room) => {
      await expectError(await request(`/chat/${room}`, { headers: upgradeHeaders() }), 400, "invalid_room");
      await expectError(await request(`/api/rooms/${room}/messages`), 400, "invalid_room");
    },
  );

  it.each([
    "/chat/a/b",
    "/chat//",
    "/api",
    "/api/",
    "/api/rooms",
    "/api/rooms/a",
    "/api/rooms/a/other",
    "/api/rooms/a/messages/1",
  ])("answers the unknown path %s with 404", async (path) => {
    await expectError(await request(path, { headers: upgradeHeaders() }), 404, "not_found");
  });

  it("checks in order: path, room name, upgrade, origin", async () => {
    const foreign = { Origin: "https://evil.example" };
    await expectError(await request("/chat/-bad/x", { headers: foreign }), 404, "not_found");
    await expectError(await request("/chat/-bad", { headers: foreign }), 400, "invalid_room");
    await expectError(await request("/chat/ok", { headers: foreign }), 426, "upgrade_required");
    await expectError(await request("/chat/ok", { headers: upgradeHeaders(foreign) }), 403, "forbidden_origin");
  });

  it("serves the web client as a static asset", async () => {
    const res = await request("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toContain("text/html");
    expect(await res.text()).toContain("<html");
  });
});

describe("origin check", () => {
  const room = () => `/chat/${freshRoom()}`;

  it("lets the page's own origin and clients without Origin connect", async () => {
    expect((await request(room(), { headers: upgradeHeaders({ Origin: ORIGIN }) })).status).toBe(101);
    expect((await request(room(), { headers: upgradeHeaders() })).status).toBe(101);
  });

  it("refuses a foreign origin and the null origin with 403", async () => {
    for (const origin of ["https://evil.example", "http://chat.example", "https://chat.example:8443", "null"]) {
      await expectError(
        await request(room(), { headers: upgradeHeaders({ Origin: origin }) }),
        403,
        "forbidden_origin",
      );
    }
  });

  it("lets the origins in ALLOWED_ORIGINS connect, and only those", async () => {
    const vars = { ALLOWED_ORIGINS: "https://a.example, https://b.example" };
    const ok = await withEnv(vars, room(), { headers: upgradeHeaders({ Origin: "https://b.example" }) });
    expect(ok.status).toBe(101);
    const no = await withEnv(vars, room(), { headers: upgradeHeaders({ Origin: "https://c.example" }) });
    await expectError(no, 403, "forbidden_origin");
  });

  it("lets any origin, null included, connect when ALLOWED_ORIGINS is *", async () => {
    for (const origin of ["https://evil.example", "null"]) {
      const res = await withEnv({ ALLOWED_ORIGINS: "*" }, room(), { headers: upgradeHeaders({ Origin: origin }) });
      expect(res.status).toBe(101);
    }
  });

  it("does not guard the HTTP API", async () => {
    const res = await request(`/api/rooms/${freshRoom()}/messages`, { headers: { Origin: "https://evil.example" } });
    expect(res.status).toBe(200);
  });
});

describe("per-IP connect limit", () => {
  it("refuses the connection after IP_CONNECT_PER_MIN from one IP with 429, in every room", async () => {
    const ip = freshIp();
    const headers = upgradeHeaders({ "CF-Connecting-IP": ip });
    const vars = { IP_CONNECT_PER_MIN: "3" };
    for (let i = 0; i < 3; i++) expect((await withEnv(vars, `/chat/${freshRoom()}`, { headers })).status).toBe(101);
    const refused = await withEnv(vars, `/chat/${freshRoom()}`, { headers });
    await expectError(refused, 429, "too_many_connections");
    expect(refused.headers.get("Retry-After")).toBe("60");
    // Another IP is not affected.
    expect((await withEnv(vars, `/chat/${freshRoom()}`, { headers: upgradeHeaders() })).status).toBe(101);
  });

  it("counts an IPv6 address by its /64", async () => {
    const b = crypto.getRandomValues(new Uint16Array(2));
    const prefix = `2001:db8:${b[0]!.toString(16)}:${b[1]!.toString(16)}`;
    const vars = { IP_CONNECT_PER_MIN: "3" };
    const from = (ip: string) =>
      withEnv(vars, `/chat/${freshRoom()}`, { headers: upgradeHeaders({ "CF-Connecting-IP": ip }) });
    for (const ip of [`${prefix}::1`, `${prefix}:aaaa:bbbb:cccc:dddd`, `${prefix.toUpperCase()}:0:0:0:3`])
      expect((await from(ip)).status).toBe(101);
    await expectError(await from(`${prefix}::4`), 429, "too_many_connections");
    expect((await from(`2001:db8:${b[0]!.toString(16)}:${(b[1]! ^ 1).toString(16)}::1`)).status).toBe(101);
  });

  it("is off when IP_CONNECT_PER_MIN is 0: the limiter is not consulted", async () => {
    const ip = freshIp();
    const headers = upgradeHeaders({ "CF-Connecting-IP": ip });
    const limiter = env.CONNECT_LIMITER.get(env.CONNECT_LIMITER.idFromName(ip));
    expect(await limiter.allow(1)).toBe(true);
    // This address's allowance is used up: with the default limit it is refused...
    await expectError(await withEnv({}, `/chat/${freshRoom()}`, { headers }), 429, "too_many_connections");
    // ...and with the limit off it is not asked.
    expect((await withEnv({ IP_CONNECT_PER_MIN: "0" }, `/chat/${freshRoom()}`, { headers })).status).toBe(101);
  });
});

describe("GET /api/rooms/{room}/messages", () => {
  it("gives the history with the same rules as welcome", async () => {
    const room = freshRoom();
    const { client, welcome } = await join(room, { name: "alice" });
    client.say("one", "n1");
    client.say("two");
    await client.message();
    await client.message();
    const res = await request(`/api/rooms/${room.toUpperCase()}/messages`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      room,
      messages: [
        { type: "message", id: 1, ts: expect.any(Number), from: welcome.you, text: "one", nonce: "n1" },
        { type: "message", id: 2, ts: expect.any(Number), from: welcome.you, text: "two" },
      ],
      gap: false,
    });
    const after = await (await request(`/api/rooms/${room}/messages?after=1`)).json();
    expect(after).toMatchObject({ room, gap: false, messages: [{ id: 2 }] });
    const beyond = await (await request(`/api/rooms/${room}/messages?after=9`)).json();
    expect(beyond).toMatchObject({ gap: true, messages: [{ id: 1 }, { id: 2 }] });
    const ignored = await (await request(`/api/rooms/${room}/messages?after=x`)).json();
    expect(ignored).toMatchObject({ gap: false, messages: [{ id: 1 }, { id: 2 }] });
  });
});

describe("POST /api/rooms/{room}/messages", () => {
  it("stores and broadcasts a message from the bot", async () => {
    const room = freshRoom();
    const { client } = await join(room);
    const res = await publish(room, { text: "deployed v2", name: "ci", nonce: "d1" });
    expect(res.status).toBe(201);
    const message = await res.json();
    expect(message).toEqual({
      type: "message",
      id: 1,
      ts: expect.any(Number),
      from: { id: "bot", name: "ci" },
      text: "deployed v2",
      nonce: "d1",
    });
    expect(await client.message()).toEqual(message);
    const history = await (await request(`/api/rooms/${room}/messages`)).json();
    expect(history).toMatchObject({ messages: [message] });
  });

  it("names the bot `bot` when the name is absent or not valid, and ignores a forged from", async () => {
    const room = freshRoom();
    for (const body of [
      { text: "a" },
      { text: "b", name: "" },
      { text: "c", name: "x".repeat(33) },
      { text: "d", name: 5 },
    ]) {
      const res = await publish(room, { ...body, from: { id: "u_admin", name: "admin" } });
      expect(res.status).toBe(201);
      expect(((await res.json()) as Message).from).toEqual({ id: "bot", name: "bot" });
    }
  });

  it("answers 401 without the right bearer token, and stores nothing", async () => {
    const room = freshRoom();
    await expectError(await publish(room, { text: "x" }, "wrong"), 401, "unauthorized");
    const bare = await request(`/api/rooms/${room}/messages`, { method: "POST", body: JSON.stringify({ text: "x" }) });
    await expectError(bare, 401, "unauthorized");
    expect(bare.headers.get("WWW-Authenticate")).toBe("Bearer");
    const history = await (await request(`/api/rooms/${room}/messages`)).json();
    expect(history).toMatchObject({ messages: [] });
  });

  it("answers 404 when no PUBLISH_TOKEN is configured, before looking at the token", async () => {
    const init = { method: "POST", headers: { Authorization: `Bearer ${PUBLISH_TOKEN}` }, body: '{"text":"x"}' };
    await expectError(
      await withEnv({ PUBLISH_TOKEN: undefined }, `/api/rooms/${freshRoom()}/messages`, init),
      404,
      "not_found",
    );
    await expectError(
      await withEnv({ PUBLISH_TOKEN: "" }, `/api/rooms/${freshRoom()}/messages`, init),
      404,
      "not_found",
    );
  });

  it.each([
    ["{", "bad_json"],
    ["[]", "bad_json"],
    ["null", "bad_json"],
    ['{"name":"x"}', "invalid_message"],
    ['{"text":"   "}', "invalid_message"],
    ['{"text":"\\udc00"}', "invalid_message"],
    [JSON.stringify({ text: "x".repeat(2001) }), "invalid_message"],
    ['{"text":"x","nonce":1}', "invalid_message"],
    [JSON.stringify({ text: "x", pad: "p".repeat(20_000) }), "invalid_message"],
  ])("answers the body %s with 400 %s", async (body, code) => {
    const room = freshRoom();
    await expectError(await publish(room, body), 400, code);
    expect(await (await request(`/api/rooms/${room}/messages`)).json()).toMatchObject({ messages: [] });
  });

  it("checks in order: configured, token, body", async () => {
    await expectError(await publish(freshRoom(), "{", "wrong"), 401, "unauthorized");
  });
});

describe("identity", () => {
  it("signs with a development key when SESSION_SECRET is unset, and tokens from one secret fail under another", async () => {
    const room = freshRoom();
    // The development key signs only on a loopback host (test/unconfigured covers the rest).
    const local = (path: string) =>
      worker.fetch(
        new Request(`http://localhost:8787${path}`, { headers: upgradeHeaders() }) as Parameters<
          typeof worker.fetch
        >[0],
        {
          ...env,
          SESSION_SECRET: undefined,
        },
      );
    const devRes = await local(`/chat/${room}?name=dev`);
    const dev = new Client(devRes.webSocket!);
    const devWelcome = await dev.welcome();
    // The same token works again under the development key...
    const againRes = await local(`/chat/${room}?token=${encodeURIComponent(devWelcome.token)}`);
    const again = new Client(againRes.webSocket!);
    expect((await again.welcome()).you.id).toBe(devWelcome.you.id);
    // ...but not under the configured secret.
    const other = await join(room, { token: devWelcome.token });
    expect(other.welcome.you.id).not.toBe(devWelcome.you.id);
  });
});
