// The host JWT on the page's side (public/js/auth.js): the fragment syntax,
// what the page reads from a JWT without verifying it, and which postMessage
// it accepts.

import { describe, expect, it } from "vitest";
import {
  AUTH_MESSAGE,
  MAX_JWT_LENGTH,
  RENEW_BEFORE_MS,
  authFromMessage,
  isJwt,
  needsRenewal,
  parseAllowedOrigins,
  parseFragment,
  peekClaims,
} from "../../public/js/auth.js";
import { roomFromLocation } from "../../public/js/rules.js";

const base64url = (s: string) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(s)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const b64url = (v: unknown) => base64url(JSON.stringify(v));
const jwt = (claims: Record<string, unknown>) => `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}.c2ln`;
const token = jwt({ sub: "alice", exp: 2_000_000_000 });

describe("parseFragment", () => {
  it.each([
    ["", { room: null, auth: null, rest: "" }],
    ["#", { room: null, auth: null, rest: "" }],
    ["#ops", { room: "ops", auth: null, rest: "#ops" }],
    [`#auth=${token}`, { room: null, auth: token, rest: "" }],
    [`#ops&auth=${token}`, { room: "ops", auth: token, rest: "#ops" }],
    [`#auth=${token}&ops`, { room: "ops", auth: token, rest: "#ops" }],
    [`#ops&theme=dark&auth=${token}`, { room: "ops", auth: token, rest: "#ops&theme=dark" }],
    // v1 links: a broken escape is taken as written (and is then no valid room).
    ["#%E0%A4%A", { room: "%E0%A4%A", auth: null, rest: "#%E0%A4%A" }],
    ["#caf%C3%A9", { room: "café", auth: null, rest: "#caf%C3%A9" }],
    // Not a JWT's shape: dropped, and still out of the address bar.
    ["#ops&auth=<script>", { room: "ops", auth: null, rest: "#ops" }],
    ["#ops&auth=", { room: "ops", auth: null, rest: "#ops" }],
  ])("%j", (hash, want) => {
    expect(parseFragment(hash)).toEqual(want);
  });

  it("names the room as v1 did, with or without auth", () => {
    expect(roomFromLocation({ search: "", hash: "#Ops" })).toEqual({ room: "ops", invalid: null });
    expect(roomFromLocation({ search: "", hash: `#Ops&auth=${token}` })).toEqual({ room: "ops", invalid: null });
    expect(roomFromLocation({ search: "", hash: `#auth=${token}` })).toEqual({ room: "lobby", invalid: null });
    expect(roomFromLocation({ search: "?room=dev", hash: `#auth=${token}` })).toEqual({ room: "dev", invalid: null });
    expect(roomFromLocation({ search: "", hash: "#bad!room" })).toEqual({ room: "lobby", invalid: "bad!room" });
  });
});

describe("the JWT as the page sees it", () => {
  it("has a compact JWS shape, within a size", () => {
    expect(isJwt(token)).toBe(true);
    expect(isJwt("a.b.")).toBe(true);
    expect(isJwt("a.b")).toBe(false);
    expect(isJwt("a.b.c.d")).toBe(false);
    expect(isJwt("a+b.c.d")).toBe(false);
    expect(isJwt(42)).toBe(false);
    expect(isJwt(`${"a".repeat(MAX_JWT_LENGTH)}.b.c`)).toBe(false);
  });

  it("reads exp and sub, unverified, and nothing from garbage", () => {
    expect(peekClaims(token)).toEqual({ exp: 2_000_000_000_000, sub: "alice" });
    expect(peekClaims(jwt({ name: "x" }))).toEqual({ exp: null, sub: null });
    expect(peekClaims("a.%%%.c")).toEqual({ exp: null, sub: null });
    expect(peekClaims(`a.${base64url("[1]")}.c`)).toEqual({ exp: null, sub: null });
    // Unpadded base64url of every length.
    for (const sub of ["a", "ab", "abc", "abcd"]) expect(peekClaims(jwt({ sub })).sub).toBe(sub);
  });

  it("asks for a new one shortly before it expires", () => {
    const exp = 2_000_000_000_000;
    expect(needsRenewal(token, exp - RENEW_BEFORE_MS - 1)).toBe(false);
    expect(needsRenewal(token, exp - RENEW_BEFORE_MS + 1)).toBe(true);
    expect(needsRenewal(token, exp + 1)).toBe(true);
    expect(needsRenewal(jwt({ sub: "no exp" }), exp)).toBe(false);
  });
});

describe("postMessage", () => {
  const allowed = parseAllowedOrigins("https://host.example, https://other.example:8443");

  it("reads the allowed origins, leaving out what is not one", () => {
    expect(allowed).toEqual(["https://host.example", "https://other.example:8443"]);
    expect(parseAllowedOrigins("https://a.example/ https://b.example/path null file:///x nonsense *")).toEqual([
      "https://a.example",
      "*",
    ]);
    expect(parseAllowedOrigins("")).toEqual([]);
    expect(parseAllowedOrigins(null)).toEqual([]);
  });

  const data = { type: AUTH_MESSAGE, jwt: token };

  it("takes a JWT from the framing page of an allowed origin", () => {
    expect(authFromMessage({ data, origin: "https://host.example", fromParent: true }, allowed)).toBe(token);
    expect(authFromMessage({ data, origin: "https://anyone.example", fromParent: true }, ["*"])).toBe(token);
  });

  it.each([
    ["another origin", { data, origin: "https://evil.example", fromParent: true }],
    ["an allowed origin's look-alike", { data, origin: "https://host.example.evil.example", fromParent: true }],
    ["http instead of https", { data, origin: "http://host.example", fromParent: true }],
    [
      "a window other than the parent (a popup, a sibling frame)",
      { data, origin: "https://host.example", fromParent: false },
    ],
    [
      "another message type",
      { data: { type: "edge-chat:other", jwt: token }, origin: "https://host.example", fromParent: true },
    ],
    ["a string", { data: JSON.stringify(data), origin: "https://host.example", fromParent: true }],
    ["no JWT", { data: { type: AUTH_MESSAGE, jwt: "not a jwt" }, origin: "https://host.example", fromParent: true }],
    ["null", { data: null, origin: "https://host.example", fromParent: true }],
  ])("refuses %s", (_, ev) => {
    expect(authFromMessage(ev, allowed)).toBeNull();
  });

  it("takes nothing when no origin is allowed", () => {
    expect(authFromMessage({ data, origin: "https://host.example", fromParent: true }, [])).toBeNull();
  });
});
