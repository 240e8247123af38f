import { describe, expect, it } from "vitest";
import { bearerMatches, newUserId, signToken, verifyToken } from "../src/token.ts";

describe("tokens", () => {
  it("verify under the secret that signed them and carry the user id", async () => {
    const id = newUserId();
    expect(id).toMatch(/^u_[0-9a-f]{24}$/);
    const token = await signToken(id, "secret-a");
    expect(await verifyToken(token, "secret-a")).toBe(id);
  });

  it("fail under another secret", async () => {
    const token = await signToken(newUserId(), "secret-a");
    expect(await verifyToken(token, "secret-b")).toBeNull();
  });

  it("never yield another id when tampered with", async () => {
    const alice = newUserId();
    const bob = newUserId();
    const token = await signToken(alice, "s");
    const sig = token.split(".")[1] ?? "";
    const tampered = [
      `${bob}.${sig}`,
      `${alice}.${sig.slice(0, -1)}`,
      `${alice}.${sig}A`,
      `${alice}.`,
      alice,
      `${alice}.${sig}.${sig}`,
      `${alice.toUpperCase()}.${sig}`,
      `${alice}.${"!".repeat(43)}`,
      "",
      ".",
    ];
    for (const t of tampered) expect(await verifyToken(t, "s"), t).toBeNull();
  });

  it("are distinct per user", async () => {
    const ids = new Set(Array.from({ length: 100 }, newUserId));
    expect(ids.size).toBe(100);
  });
});

describe("bearerMatches", () => {
  it("matches only the exact bearer token, under any case of the scheme", async () => {
    for (const header of ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR  s3cret"]) {
      expect(await bearerMatches(header, "s3cret"), header).toBe(true);
    }
    for (const header of [
      null,
      "",
      "s3cret",
      "Bearer",
      "Bearer ",
      "Bearer s3cre",
      "Bearer s3cret ",
      "Bearer S3CRET",
      "Bearers3cret",
      "Bearer\ts3cret",
      "Basic s3cret",
    ]) {
      expect(await bearerMatches(header, "s3cret"), String(header)).toBe(false);
    }
  });
});

describe("token spelling", () => {
  const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

  it("has exactly one: setting the spare bits of the last character fails", async () => {
    const id = newUserId();
    const token = await signToken(id, "s");
    const sig = token.split(".")[1] ?? "";
    expect(sig).toHaveLength(43);
    const last = ALPHABET.indexOf(sig.at(-1) ?? "");
    // 43 characters carry 258 bits for a 256-bit MAC: the low 2 bits of the last one are spare.
    expect(last & 0b11).toBe(0);
    for (const spare of [1, 2, 3]) {
      const respelled = `${id}.${sig.slice(0, -1)}${ALPHABET[last | spare]}`;
      expect(await verifyToken(respelled, "s"), respelled).toBeNull();
    }
  });
});
