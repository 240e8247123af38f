// Host identity through the Worker and the room, in a runtime configured with
// every key source (HS256 secret, inline RS256/ES256 JWKS), an issuer and an
// audience, GUESTS=read and PRIVATE_ROOMS=team-*,ops (vitest.config.ts).

import { evictDurableObject } from "cloudflare:test";
import { SignJWT, importJWK, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { verifiedUserId } from "../../src/auth.ts";
import { parseSession } from "../../src/session.ts";
import { signToken } from "../../src/token.ts";
import { Client, freshRoom, join, publish, request, roomStub, upgradeHeaders } from "../helpers.ts";
import { AUDIENCE, ES256_PRIVATE, ISSUER, JWT_SECRET, PUBLIC_JWKS, RS256_PRIVATE } from "./keys.ts";

const GUEST_ID = /^u_[0-9a-f]{24}$/;
// vitest.config.ts
const SESSION_SECRET = "test-session-secret";
const now = () => Math.floor(Date.now() / 1000);

interface Claims {
  sub?: string;
  name?: string;
  roles?: string[];
  rooms?: string[];
  exp?: number;
  iss?: string;
  aud?: string;
}

function claims(c: Claims): SignJWT {
  const { sub = "alice", exp = now() + 600, iss = ISSUER, aud = AUDIENCE, ...rest } = c;
  return new SignJWT({ ...rest })
    .setSubject(sub)
    .setIssuedAt(now() - 5)
    .setExpirationTime(exp)
    .setIssuer(iss)
    .setAudience(aud);
}

function hs256(c: Claims = {}, secret = JWT_SECRET): Promise<string> {
  return claims(c).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(secret));
}

async function rs256(c: Claims = {}): Promise<string> {
  const key = await importJWK(RS256_PRIVATE as JWK, "RS256");
  return claims(c).setProtectedHeader({ alg: "RS256", kid: RS256_PRIVATE.kid }).sign(key);
}

async function es256(c: Claims = {}): Promise<string> {
  const key = await importJWK(ES256_PRIVATE as JWK, "ES256");
  return claims(c).setProtectedHeader({ alg: "ES256", kid: ES256_PRIVATE.kid }).sign(key);
}

const b64url = (data: Uint8Array | string) =>
  btoa(String.fromCharCode(...(typeof data === "string" ? new TextEncoder().encode(data) : data)))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");

/** A compact JWS built by hand, for the tokens jose refuses to make. */
async function forge(header: object, payload: object, hmacKey: Uint8Array | null): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  if (hmacKey === null) return `${input}.`;
  const key = await crypto.subtle.importKey("raw", hmacKey, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `${input}.${b64url(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(input))))}`;
}

const payload = (extra: object = {}) => ({
  sub: "mallory",
  iss: ISSUER,
  aud: AUDIENCE,
  iat: now(),
  exp: now() + 600,
  ...extra,
});

interface Connect {
  auth?: string;
  bearer?: string;
  name?: string;
  token?: string;
}

function upgrade(room: string, o: Connect = {}): Promise<Response> {
  const q = new URLSearchParams();
  if (o.auth !== undefined) q.set("auth", o.auth);
  if (o.name !== undefined) q.set("name", o.name);
  if (o.token !== undefined) q.set("token", o.token);
  const headers = upgradeHeaders(o.bearer === undefined ? {} : { Authorization: o.bearer });
  return request(`/chat/${room}${q.size > 0 ? `?${q}` : ""}`, { headers });
}

async function enter(room: string, o: Connect = {}) {
  const res = await upgrade(room, o);
  if (res.status !== 101 || res.webSocket === null)
    throw new Error(`expected 101, got ${res.status}: ${await res.text()}`);
  const client = new Client(res.webSocket);
  return { client, welcome: await client.welcome() };
}

async function refused(res: Promise<Response>): Promise<{ status: number; body: unknown }> {
  const r = await res;
  return { status: r.status, body: await r.json() };
}

const unauthorized = (message: string) => ({ status: 401, body: { error: "unauthorized", message } });
const FORBIDDEN_ROOM = {
  status: 403,
  body: { error: "forbidden_room", message: "this room is private; it needs a JWT that grants it" },
};

describe("verified users through the upgrade", () => {
  it("HS256 in the auth parameter: you carries verified and the JWT's roles; the token is empty", async () => {
    const { welcome } = await enter(freshRoom(), {
      auth: await hs256({ name: "Alice", roles: ["moderator", "staff"] }),
      name: "ignored",
    });
    expect(welcome.you).toEqual({
      id: await verifiedUserId("alice"),
      name: "Alice",
      verified: true,
      roles: ["moderator", "staff"],
    });
    expect(welcome.token).toBe("");
    expect(welcome.online).toEqual([{ id: welcome.you.id, name: "Alice", verified: true }]);
  });

  it("RS256 in Authorization: Bearer (any case of the scheme); without a name claim the name parameter is used", async () => {
    const { welcome } = await enter(freshRoom(), {
      bearer: `bEaReR ${await rs256({ sub: "rsa-user" })}`,
      name: "Rosa",
    });
    expect(welcome.you).toEqual({ id: await verifiedUserId("rsa-user"), name: "Rosa", verified: true, roles: [] });
  });

  it("ES256 in the auth parameter; with no name at all a guest-style name", async () => {
    const { welcome } = await enter(freshRoom(), { auth: await es256({ sub: "ec-user" }) });
    expect(welcome.you).toEqual({
      id: await verifiedUserId("ec-user"),
      name: expect.stringMatching(/^guest-[a-z0-9]{4}$/),
      verified: true,
      roles: [],
    });
  });

  it("the same sub has the same id in every room and on every connection; another sub another id", async () => {
    const a1 = await enter(freshRoom(), { auth: await hs256({ sub: "same" }) });
    const a2 = await enter(freshRoom(), { auth: await es256({ sub: "same" }) });
    const b = await enter(freshRoom(), { auth: await hs256({ sub: "other" }) });
    expect(a2.welcome.you.id).toBe(a1.welcome.you.id);
    expect(b.welcome.you.id).not.toBe(a1.welcome.you.id);
  });

  it("a guest never gets a verified id, even with a token, and carries no verified mark", async () => {
    const first = await enter(freshRoom(), { name: "gus" });
    expect(first.welcome.you).toEqual({ id: expect.stringMatching(GUEST_ID), name: "gus" });
    const again = await enter(freshRoom(), { name: "gus", token: first.welcome.token });
    expect(again.welcome.you).toEqual(first.welcome.you);
    // Even a correctly signed session token cannot name a verified id: tokens carry guest ids only.
    const forged = await signToken(await verifiedUserId("alice"), SESSION_SECRET);
    const impostor = await enter(freshRoom(), { name: "alice", token: forged });
    expect(impostor.welcome.you).toEqual({ id: expect.stringMatching(GUEST_ID), name: "alice" });
  });
});

describe("a JWT that does not verify gets 401, never a guest", () => {
  it.each([
    ["expired", async () => hs256({ exp: now() - 3600 }), "the JWT has expired"],
    ["wrong audience", async () => hs256({ aud: "someone-else" }), "aud does not name this chat"],
    ["wrong issuer", async () => rs256({ iss: "https://evil.example" }), "iss is not the expected issuer"],
    ["bad signature", async () => hs256({}, "another-secret-that-is-long-enough!!"), "the signature does not verify"],
    ["alg none", async () => forge({ alg: "none", typ: "JWT" }, payload(), null), "this alg is not allowed"],
    [
      "key confusion: HS256 signed with the RSA public key",
      async () => {
        // The public key as a PEM, the bytes a naive verifier would take as the HMAC secret.
        const rsa = await crypto.subtle.importKey(
          "jwk",
          PUBLIC_JWKS.keys[0] as JsonWebKey,
          { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
          true,
          ["verify"],
        );
        const der = new Uint8Array((await crypto.subtle.exportKey("spki", rsa)) as ArrayBuffer);
        const pem = `-----BEGIN PUBLIC KEY-----\n${btoa(String.fromCharCode(...der))}\n-----END PUBLIC KEY-----\n`;
        return forge({ alg: "HS256", typ: "JWT", kid: RS256_PRIVATE.kid }, payload(), new TextEncoder().encode(pem));
      },
      "the signature does not verify",
    ],
    ["garbage", async () => "not.a.jwt", "the JWT is malformed"],
  ])("%s, in the auth parameter and in the header", async (_, make, message) => {
    const jwt = await make();
    expect(await refused(upgrade(freshRoom(), { auth: jwt }))).toEqual(unauthorized(message));
    expect(await refused(upgrade(freshRoom(), { bearer: `Bearer ${jwt}` }))).toEqual(unauthorized(message));
  });
});

describe("verified user objects everywhere", () => {
  it("online, join, message.from, HTTP history and leave carry verified: true and no roles; a guest's carry neither", async () => {
    const room = freshRoom();
    const alice = await enter(room, { auth: await hs256({ name: "Alice", roles: ["moderator"] }) });
    const aliceSeen = { id: alice.welcome.you.id, name: "Alice", verified: true };
    const bob = await enter(room, { auth: await hs256({ sub: "bob", name: "Bob" }) });
    const bobSeen = { id: await verifiedUserId("bob"), name: "Bob", verified: true };
    expect(bob.welcome.online).toEqual([aliceSeen, bobSeen]);
    expect(await alice.client.next("bob's join")).toEqual({ type: "join", user: bobSeen, ts: expect.any(Number) });

    alice.client.say("hello", "n1");
    const live = { type: "message", id: 1, ts: expect.any(Number), from: aliceSeen, text: "hello", nonce: "n1" };
    expect(await alice.client.message()).toEqual(live);
    expect(await bob.client.message()).toEqual(live);
    expect(await publish(room, { text: "from the bot" })).toHaveProperty("status", 201);
    await bob.client.message("the bot's message");
    await alice.client.message("the bot's message");

    const res = await request(`/api/rooms/${room}/messages`);
    expect(await res.json()).toEqual({
      room,
      gap: false,
      messages: [
        live,
        { type: "message", id: 2, ts: expect.any(Number), from: { id: "bot", name: "bot" }, text: "from the bot" },
      ],
    });
    const carol = await enter(room, { auth: await es256({ sub: "carol" }), name: "Carol" });
    expect(carol.welcome.history[0]).toEqual(live);

    bob.client.close();
    await alice.client.next("carol's join");
    expect(await alice.client.next("bob's leave")).toEqual({ type: "leave", user: bobSeen, ts: expect.any(Number) });
  });

  it("after hibernation the verified mark survives in presence, message.from and leave", async () => {
    const room = freshRoom();
    const alice = await enter(room, { auth: await hs256({ name: "Alice", roles: ["moderator", "staff"] }) });
    const aliceSeen = { id: alice.welcome.you.id, name: "Alice", verified: true };
    const bob = await enter(room, { auth: await rs256({ sub: "bob" }), name: "Bob" });
    const bobSeen = { id: await verifiedUserId("bob"), name: "Bob", verified: true };
    await alice.client.next("bob's join");
    await evictDurableObject(roomStub(room));
    alice.client.say("after the wake", "w1");
    expect(await bob.client.message()).toEqual({
      type: "message",
      id: 1,
      ts: expect.any(Number),
      from: aliceSeen,
      text: "after the wake",
      nonce: "w1",
    });
    await evictDurableObject(roomStub(room));
    const carol = await enter(room, { auth: await es256({ sub: "carol" }), name: "Carol" });
    // History read back from storage after the wake keeps the mark too.
    expect(carol.welcome.history).toEqual([
      { type: "message", id: 1, ts: expect.any(Number), from: aliceSeen, text: "after the wake", nonce: "w1" },
    ]);
    // A wake rebuilds presence in the runtime's order of sockets.
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    expect(carol.welcome.online.toSorted(byId)).toEqual(
      [aliceSeen, bobSeen, { id: carol.welcome.you.id, name: "Carol", verified: true }].toSorted(byId),
    );
    await evictDurableObject(roomStub(room));
    bob.client.close();
    await alice.client.message();
    await alice.client.next("carol's join");
    expect(await alice.client.next("bob's leave")).toEqual({ type: "leave", user: bobSeen, ts: expect.any(Number) });
  });

  it("the attachment keeps verified and the roles the room acts on, and refuses a malformed one", () => {
    const base = {
      room: "r",
      address: "a",
      bucket: { tokens: 1, at: 0 },
      addressBucket: { tokens: 1, at: 0 },
      strikes: [],
      seen: 0,
    };
    const user = { id: "v_00", name: "A", verified: true, roles: ["staff", "moderator"] };
    expect(parseSession({ ...base, user })?.user).toEqual({
      id: "v_00",
      name: "A",
      verified: true,
      roles: ["moderator"],
    });
    expect(parseSession({ ...base, user: { id: "u_1", name: "g", roles: ["moderator"] } })?.user).toEqual({
      id: "u_1",
      name: "g",
    });
    expect(parseSession({ ...base, user: { ...user, verified: "yes" } })).toBeNull();
    expect(parseSession({ ...base, user: { ...user, roles: [1] } })).toBeNull();
  });
});

describe("GUESTS=read", () => {
  it("a guest joins and reads; its messages get forbidden with the nonce; malformed ones still get their own error", async () => {
    const room = freshRoom();
    const guest = await join(room, { name: "gus" });
    const alice = await enter(room, { auth: await hs256({ name: "Alice" }) });
    await guest.client.next("alice's join");
    guest.client.say("may I?", "g1");
    expect(await guest.client.next("the refusal")).toEqual({
      type: "error",
      code: "forbidden",
      message: "guests may read but not post here; sign in to post",
      nonce: "g1",
    });
    await guest.client.quiet();
    alice.client.say("you may read this");
    expect((await guest.client.message()).text).toBe("you may read this");
  });

  it("each refusal is a strike: the 20th closes the guest with 1008", async () => {
    const guest = await join(freshRoom(), { name: "gus" });
    for (let i = 0; i < 20; i++) guest.client.say(`try ${i}`);
    for (let i = 0; i < 20; i++) await guest.client.error("forbidden");
    expect(await guest.client.closed).toEqual({ code: 1008, reason: "too many errors" });
  });
});

describe("private rooms", () => {
  it("over WebSocket: a guest, a JWT without the room and a bad JWT are refused; a rooms claim or the moderator role admits", async () => {
    const team = `team-${crypto.randomUUID()}`;
    expect(await refused(upgrade(team, { name: "gus" }))).toEqual(FORBIDDEN_ROOM);
    expect(await refused(upgrade(team, { auth: await hs256({ rooms: ["ops", "other-*"] }) }))).toEqual(FORBIDDEN_ROOM);
    expect(await refused(upgrade(team, { auth: await hs256({ exp: now() - 3600, rooms: ["team-*"] }) }))).toEqual(
      unauthorized("the JWT has expired"),
    );
    expect(await refused(upgrade("ops", { auth: await hs256({ rooms: ["team-*"] }) }))).toEqual(FORBIDDEN_ROOM);
    expect((await enter(team, { auth: await hs256({ rooms: ["team-*"] }) })).welcome.room).toBe(team);
    expect((await enter(team, { auth: await rs256({ sub: "mod", roles: ["moderator"] }) })).welcome.room).toBe(team);
    expect((await enter("ops", { auth: await es256({ rooms: ["OPS"] }) })).welcome.room).toBe("ops");
  });

  it("over HTTP: history needs a bearer JWT that grants the room; publishing with PUBLISH_TOKEN does not", async () => {
    const team = `team-${crypto.randomUUID()}`;
    const history = (authorization?: string) =>
      refused(
        request(
          `/api/rooms/${team}/messages`,
          authorization === undefined ? {} : { headers: { Authorization: authorization } },
        ),
      );
    expect(await publish(team, { text: "ops note" })).toHaveProperty("status", 201);
    expect(await history()).toEqual(FORBIDDEN_ROOM);
    expect(await history(`Bearer ${await hs256({ rooms: ["ops"] })}`)).toEqual(FORBIDDEN_ROOM);
    expect(
      await history(`Bearer ${await hs256({ rooms: ["team-*"] }, "another-secret-that-is-long-enough!!")}`),
    ).toEqual(unauthorized("the signature does not verify"));
    const granted = await history(`bearer ${await es256({ rooms: ["team-*"] })}`);
    expect(granted).toEqual({
      status: 200,
      body: {
        room: team,
        gap: false,
        messages: [
          { type: "message", id: 1, ts: expect.any(Number), from: { id: "bot", name: "bot" }, text: "ops note" },
        ],
      },
    });
    expect((await history(`Bearer ${await hs256({ roles: ["moderator"] })}`)).status).toBe(200);
    expect((await request(`/api/rooms/${freshRoom()}/messages`)).status).toBe(200);
  });
});
