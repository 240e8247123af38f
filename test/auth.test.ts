import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import {
  authConfigured,
  JWKS_MAX_AGE_MS,
  JWKS_REFETCH_MS,
  KeyCache,
  isVerifiedUserId,
  parsePrivateRooms,
  readAuthSettings,
  roomAllowed,
  verifiedUserId,
  verifyHostJwt,
  type AuthSettings,
  type Fetcher,
  type VerifyResult,
} from "../src/auth.ts";
import { newUserId } from "../src/token.ts";
import { mintToken } from "../scripts/mint.ts";

const SECRET = "test-host-secret-0123456789abcdef-0123456789";
const SECRET_BYTES = new TextEncoder().encode(SECRET);
// A fixed clock on a whole second: every time check below is exact.
const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const NOW = T0 / 1000;
const URL_A = "https://host.example/.well-known/jwks.json";

const encoder = new TextEncoder();

function b64url(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** A JWT signed with HMAC-SHA256 under any bytes and any header: what an attacker can make. */
async function forgeHs256(header: object, payload: object, key: Uint8Array): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const hmac = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `${input}.${b64url(new Uint8Array(await crypto.subtle.sign("HMAC", hmac, encoder.encode(input))))}`;
}

function settings(overrides: Partial<AuthSettings> = {}): AuthSettings {
  return {
    secret: SECRET_BYTES,
    jwks: null,
    jwksUrl: null,
    issuer: null,
    audience: null,
    guests: "on",
    privateRooms: [],
    ...overrides,
  };
}

const claims = (extra: Record<string, unknown> = {}) => ({ sub: "alice", exp: NOW + 600, ...extra });

async function hs256(payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: "HS256", ...header }).sign(SECRET_BYTES);
}

interface Pair {
  kid: string;
  alg: "RS256" | "ES256";
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function pair(alg: "RS256" | "ES256", kid: string): Promise<Pair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid } };
}

function signWith(p: Pair, payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: p.alg, kid: p.kid, ...header }).sign(p.privateKey);
}

const jwksText = (...pairs: Pair[]) => JSON.stringify({ keys: pairs.map((p) => p.jwk) });

/** The host's JWKS endpoint: serves whatever `body` is now and counts requests. */
function endpoint(initial: string | Response) {
  const state = { body: initial, fetches: 0, urls: [] as string[] };
  const fetcher: Fetcher = async (url) => {
    state.fetches++;
    state.urls.push(url);
    const body = state.body;
    return typeof body === "string"
      ? new Response(body, { headers: { "content-type": "application/json" } })
      : body.clone();
  };
  return { state, keys: new KeyCache(fetcher) };
}

const noFetch = () => new KeyCache(() => Promise.reject(new Error("no JWKS URL is configured in this test")));

function refusal(result: VerifyResult): string {
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result.identity)}`);
  return result.reason;
}

// Each test gets its own key pairs; generating RSA keys is the slow part, so a few are shared.
const rsa = pair("RS256", "rsa-1");
const ec = pair("ES256", "ec-1");

describe("host JWTs: each algorithm", () => {
  it("HS256 with AUTH_JWT_SECRET gives the identity", async () => {
    const jwt = await hs256(
      claims({ name: " Alice ", roles: ["moderator", "editor"], rooms: ["team-*", "Ops"], iat: NOW }),
    );
    expect(await verifyHostJwt(jwt, settings(), T0, noFetch())).toEqual({
      ok: true,
      identity: {
        sub: "alice",
        id: "v_2bd806c97f0e00af1a1fc3328fa763a9",
        name: "Alice",
        roles: ["moderator", "editor"],
        rooms: ["team-*", "ops"],
      },
    });
  });

  it("RS256 and ES256 with an inline AUTH_JWKS", async () => {
    const [r, e] = [await rsa, await ec];
    const s = settings({ secret: null, jwks: jwksText(r, e) });
    for (const p of [r, e]) {
      const result = await verifyHostJwt(await signWith(p, claims({ sub: `user-${p.alg}` })), s, T0, noFetch());
      expect(result).toEqual({
        ok: true,
        identity: { sub: `user-${p.alg}`, id: await verifiedUserId(`user-${p.alg}`), roles: [], rooms: [] },
      });
    }
  });

  it("RS256 and ES256 with AUTH_JWKS_URL: fetched once, then cached", async () => {
    const [r, e] = [await rsa, await ec];
    const { state, keys } = endpoint(jwksText(r, e));
    const s = settings({ secret: null, jwksUrl: URL_A });
    for (const p of [r, e, r, e]) {
      const result = await verifyHostJwt(await signWith(p, claims()), s, T0, keys);
      expect(result.ok).toBe(true);
    }
    expect(state).toMatchObject({ fetches: 1, urls: [URL_A] });
  });

  it("a token without kid verifies when the set has exactly one key for its alg", async () => {
    const [r, e] = [await rsa, await ec];
    const s = settings({ secret: null, jwks: jwksText(r, e) });
    const jwt = await new SignJWT(claims()).setProtectedHeader({ alg: "RS256" }).sign(r.privateKey);
    expect((await verifyHostJwt(jwt, s, T0, noFetch())).ok).toBe(true);
    const other = await pair("RS256", "rsa-2");
    const two = settings({ secret: null, jwks: jwksText(r, other) });
    expect(refusal(await verifyHostJwt(jwt, two, T0, noFetch()))).toBe("unknown_key");
  });
});

describe("host JWTs: refusals", () => {
  it("expired, not yet valid, issued in the future", async () => {
    const s = settings();
    const cases: [Record<string, unknown>, string][] = [
      [claims({ exp: NOW - 3600 }), "expired"],
      [claims({ nbf: NOW + 3600 }), "not_yet_valid"],
      [claims({ iat: NOW + 3600 }), "not_yet_valid"],
    ];
    for (const [payload, reason] of cases)
      expect(refusal(await verifyHostJwt(await hs256(payload), s, T0)), reason).toBe(reason);
  });

  it("60 seconds of leeway on exp, nbf and iat, and not one more", async () => {
    const s = settings();
    const at = async (payload: Record<string, unknown>) => (await verifyHostJwt(await hs256(payload), s, T0)).ok;
    expect(await at(claims({ exp: NOW - 59 }))).toBe(true);
    expect(await at(claims({ exp: NOW - 60 }))).toBe(false);
    expect(await at(claims({ nbf: NOW + 60 }))).toBe(true);
    expect(await at(claims({ nbf: NOW + 61 }))).toBe(false);
    expect(await at(claims({ iat: NOW + 60 }))).toBe(true);
    expect(await at(claims({ iat: NOW + 61 }))).toBe(false);
  });

  it("iss must equal AUTH_ISSUER and aud contain AUTH_AUDIENCE when set", async () => {
    const s = settings({ issuer: "https://host.example", audience: "chat" });
    const ok = claims({ iss: "https://host.example", aud: ["other", "chat"] });
    expect((await verifyHostJwt(await hs256(ok), s, T0)).ok).toBe(true);
    expect((await verifyHostJwt(await hs256({ ...ok, aud: "chat" }), s, T0)).ok).toBe(true);
    const cases: [Record<string, unknown>, string][] = [
      [{ ...ok, iss: "https://evil.example" }, "wrong_issuer"],
      [{ ...ok, aud: ["other"] }, "wrong_audience"],
      [{ ...ok, aud: "chat2" }, "wrong_audience"],
      [claims({ aud: "chat" }), "bad_claims"],
      [claims({ iss: "https://host.example" }), "bad_claims"],
    ];
    for (const [payload, reason] of cases) {
      expect(refusal(await verifyHostJwt(await hs256(payload), s, T0)), JSON.stringify(payload)).toBe(reason);
    }
    // Unset, neither is looked at.
    expect((await verifyHostJwt(await hs256(claims({ iss: "x", aud: "y" })), settings(), T0)).ok).toBe(true);
  });

  it("a bad signature: another secret, or a payload changed after signing", async () => {
    const other = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS256" })
      .sign(encoder.encode(`${SECRET}-other`));
    expect(refusal(await verifyHostJwt(other, settings(), T0))).toBe("bad_signature");
    const [header, , signature] = (await hs256(claims())).split(".");
    const tampered = `${header}.${b64url(JSON.stringify(claims({ sub: "mallory" })))}.${signature}`;
    expect(refusal(await verifyHostJwt(tampered, settings(), T0))).toBe("bad_signature");
    const r = await rsa;
    const [h, , s] = (await signWith(r, claims())).split(".");
    const tamperedRsa = `${h}.${b64url(JSON.stringify(claims({ roles: ["moderator"] })))}.${s}`;
    expect(refusal(await verifyHostJwt(tamperedRsa, settings({ jwks: jwksText(r) }), T0))).toBe("bad_signature");
  });

  it("alg none, with or without a signature", async () => {
    const body = `${b64url(JSON.stringify({ alg: "none" }))}.${b64url(JSON.stringify(claims()))}`;
    for (const jwt of [`${body}.`, `${body}.${b64url("x")}`]) {
      expect(refusal(await verifyHostJwt(jwt, settings({ jwks: jwksText(await rsa) }), T0))).toBe("alg_not_allowed");
    }
  });

  it("key confusion: HS256 'signed' with the RSA or EC public key as the HMAC secret", async () => {
    const [r, e] = [await rsa, await ec];
    const spki = await exportSPKI(r.publicKey);
    const spkiDer = Uint8Array.from(atob(spki.replace(/-----[A-Z ]+-----|\s/g, "")), (c) => c.charCodeAt(0));
    const forgedSecrets = [
      encoder.encode(spki),
      encoder.encode(spki.trim()),
      spkiDer,
      encoder.encode(JSON.stringify(r.jwk)),
      encoder.encode(jwksText(r)),
      encoder.encode(JSON.stringify(e.jwk)),
      Uint8Array.from(atob((r.jwk.n ?? "").replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0)),
    ];
    const payload = claims({ roles: ["moderator"] });
    // Only public keys configured: HS256 has no key at all.
    const publicOnly = settings({ secret: null, jwks: jwksText(r, e) });
    forgedSecrets.push(encoder.encode(jwksText(r, e)));
    // Both configured: HS256 is checked against AUTH_JWT_SECRET, never the JWKS.
    const both = settings({ jwks: jwksText(r, e) });
    const url = settings({ secret: null, jwksUrl: URL_A });
    for (const key of forgedSecrets) {
      for (const kid of [r.kid, e.kid, undefined]) {
        const header = kid === undefined ? { alg: "HS256", typ: "JWT" } : { alg: "HS256", typ: "JWT", kid };
        const jwt = await forgeHs256(header, payload, key);
        expect(refusal(await verifyHostJwt(jwt, publicOnly, T0, noFetch()))).toBe("alg_not_allowed");
        expect(refusal(await verifyHostJwt(jwt, both, T0, noFetch()))).toBe("bad_signature");
        expect(refusal(await verifyHostJwt(jwt, url, T0, endpoint(jwksText(r, e)).keys))).toBe("alg_not_allowed");
      }
    }
  });

  it("a key carried in the token's own header (jwk, jku, x5u) is never used", async () => {
    const r = await rsa;
    const attacker = await pair("RS256", r.kid);
    const header = { jwk: attacker.jwk, jku: "https://evil.example/jwks", x5u: "https://evil.example/cert" };
    const jwt = await signWith(attacker, claims({ roles: ["moderator"] }), header);
    const { state, keys } = endpoint(jwksText(r));
    expect(refusal(await verifyHostJwt(jwt, settings({ jwks: jwksText(r) }), T0, noFetch()))).toBe("bad_signature");
    expect(refusal(await verifyHostJwt(jwt, settings({ jwksUrl: URL_A }), T0, keys))).toBe("bad_signature");
    expect(state.urls).toEqual([URL_A]);
  });

  it("an algorithm other than HS256, RS256, ES256", async () => {
    const r = await rsa;
    const s = settings({ jwks: jwksText(r) });
    const hs512 = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS512" })
      .sign(encoder.encode(SECRET.repeat(2)));
    const hs384 = await new SignJWT(claims()).setProtectedHeader({ alg: "HS384" }).sign(SECRET_BYTES);
    const { privateKey: psKey } = await generateKeyPair("PS256");
    const ps256 = await new SignJWT(claims()).setProtectedHeader({ alg: "PS256", kid: r.kid }).sign(psKey);
    const { privateKey: rs384Key } = await generateKeyPair("RS384");
    const rs384 = await new SignJWT(claims()).setProtectedHeader({ alg: "RS384", kid: r.kid }).sign(rs384Key);
    const { privateKey: es384Key } = await generateKeyPair("ES384");
    const es384 = await new SignJWT(claims()).setProtectedHeader({ alg: "ES384" }).sign(es384Key);
    const { privateKey: edKey } = await generateKeyPair("EdDSA");
    const eddsa = await new SignJWT(claims()).setProtectedHeader({ alg: "EdDSA" }).sign(edKey);
    for (const jwt of [hs512, hs384, ps256, rs384, es384, eddsa]) {
      expect(refusal(await verifyHostJwt(jwt, s, T0, noFetch()))).toBe("alg_not_allowed");
    }
  });

  it("an RS256 token against an EC key with its kid, and ES256 against an RSA one", async () => {
    const [r, e] = [await rsa, await ec];
    const s = settings({ secret: null, jwks: jwksText(r, e) });
    const rsUnderEcKid = await signWith(r, claims(), { kid: e.kid });
    const esUnderRsaKid = await signWith(e, claims(), { kid: r.kid });
    expect(refusal(await verifyHostJwt(rsUnderEcKid, s, T0, noFetch()))).toBe("unknown_key");
    expect(refusal(await verifyHostJwt(esUnderRsaKid, s, T0, noFetch()))).toBe("unknown_key");
  });

  it("JWKS members that are not RS256/ES256 signing keys are not trusted", async () => {
    const r = await rsa;
    const jwt = await signWith(r, claims());
    const variants: JWK[] = [
      { ...r.jwk, alg: "PS256" },
      { ...r.jwk, use: "enc" },
      { kty: "oct", k: b64url(SECRET_BYTES), kid: r.kid },
    ];
    for (const jwk of variants) {
      const s = settings({ secret: null, jwks: JSON.stringify({ keys: [jwk] }) });
      expect(refusal(await verifyHostJwt(jwt, s, T0, noFetch())), JSON.stringify(jwk)).toBe("unknown_key");
    }
    const octHs = await forgeHs256({ alg: "HS256", kid: r.kid }, claims(), SECRET_BYTES);
    const octOnly = settings({
      secret: null,
      jwks: JSON.stringify({ keys: [{ kty: "oct", k: b64url(SECRET_BYTES), kid: r.kid }] }),
    });
    expect(refusal(await verifyHostJwt(octHs, octOnly, T0, noFetch()))).toBe("alg_not_allowed");
  });

  it("an RSA key under 2048 bits is not trusted", async () => {
    // jose will not make one; WebCrypto will.
    const { privateKey, publicKey } = (await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const weak = { ...(await exportJWK(publicKey)), kid: "weak" };
    const input = `${b64url(JSON.stringify({ alg: "RS256", kid: "weak" }))}.${b64url(JSON.stringify(claims()))}`;
    const sig = new Uint8Array(await crypto.subtle.sign("RSASSA-PKCS1-v1_5", privateKey, encoder.encode(input)));
    const s = settings({ secret: null, jwks: JSON.stringify({ keys: [weak] }) });
    expect(refusal(await verifyHostJwt(`${input}.${b64url(sig)}`, s, T0, noFetch()))).toBe("unknown_key");
  });

  it("malformed tokens", async () => {
    const good = await hs256(claims());
    const [h, p, sig] = good.split(".");
    const malformed = [
      "",
      "abc",
      "a.b",
      `${h}.${p}`,
      `${h}.${p}.${sig}.x`,
      `!!.${p}.${sig}`,
      `${b64url("not json")}.${p}.${sig}`,
      `${b64url("[]")}.${p}.${sig}`,
      `${good}${"A".repeat(9000)}`,
    ];
    for (const jwt of malformed)
      expect(refusal(await verifyHostJwt(jwt, settings(), T0)), jwt.slice(0, 40)).toBe("malformed");
    const payloadNotJson = await forgeHs256({ alg: "HS256" }, {}, SECRET_BYTES).then((t) => {
      const [hh, , ss] = t.split(".");
      return `${hh}.${b64url("nope")}.${ss}`;
    });
    expect(["malformed", "bad_signature"]).toContain(refusal(await verifyHostJwt(payloadNotJson, settings(), T0)));
    const critical = await forgeHs256({ alg: "HS256", crit: ["x-unknown"], "x-unknown": 1 }, claims(), SECRET_BYTES);
    expect(refusal(await verifyHostJwt(critical, settings(), T0))).toBe("malformed");
  });

  it("sub: required, a well-formed string of 1 to 128 characters", async () => {
    const s = settings();
    const ok = async (sub: unknown) => (await verifyHostJwt(await hs256({ exp: NOW + 60, sub }), s, T0)).ok;
    expect(await ok("a")).toBe(true);
    expect(await ok("x".repeat(128))).toBe(true);
    expect(await ok("😀".repeat(128))).toBe(true);
    expect(await ok("x".repeat(129))).toBe(false);
    expect(await ok("😀".repeat(129))).toBe(false);
    expect(await ok("")).toBe(false);
    expect(await ok(42)).toBe(false);
    expect(await ok(["alice"])).toBe(false);
    expect(await ok(null)).toBe(false);
    // Both would encode as U+FFFD and share an id: refused.
    expect(await ok("\ud800")).toBe(false);
    expect(await ok("a\udc00")).toBe(false);
    expect(refusal(await verifyHostJwt(await hs256({ exp: NOW + 60 }), s, T0))).toBe("bad_claims");
    expect(refusal(await verifyHostJwt(await hs256({ sub: "alice" }), s, T0))).toBe("bad_claims");
    expect(refusal(await verifyHostJwt(await hs256(claims({ exp: "tomorrow" })), s, T0))).toBe("bad_claims");
  });

  it("an invalid name claim is dropped; malformed roles or rooms refuse the token", async () => {
    const s = settings();
    for (const name of ["", "   ", "x".repeat(33), "a\u0000b", 42, ["Alice"], null]) {
      const result = await verifyHostJwt(await hs256(claims({ name })), s, T0);
      expect(result, JSON.stringify(name)).toEqual({
        ok: true,
        identity: { sub: "alice", id: await verifiedUserId("alice"), roles: [], rooms: [] },
      });
    }
    const bad: Record<string, unknown>[] = [
      { roles: "moderator" },
      { roles: [1] },
      { roles: [""] },
      { roles: ["x".repeat(65)] },
      { roles: Array.from({ length: 33 }, (_, i) => `r${i}`) },
      { roles: null },
      { rooms: "team-*" },
      { rooms: ["team *"] },
      { rooms: ["-x"] },
      { rooms: ["a*b"] },
      { rooms: ["x".repeat(65)] },
      { rooms: [null] },
      { rooms: Array.from({ length: 101 }, (_, i) => `r${i}`) },
    ];
    for (const extra of bad) {
      expect(refusal(await verifyHostJwt(await hs256(claims(extra)), s, T0)), JSON.stringify(extra)).toBe("bad_claims");
    }
    const dup = await verifyHostJwt(await hs256(claims({ roles: ["a", "a"], rooms: ["*", "X", "x"] })), s, T0);
    expect(dup.ok && dup.identity).toMatchObject({ roles: ["a"], rooms: ["*", "x"] });
  });

  it("nothing configured: every token is refused", async () => {
    const none = settings({ secret: null });
    expect(refusal(await verifyHostJwt(await hs256(claims()), none, T0, noFetch()))).toBe("alg_not_allowed");
    expect(refusal(await verifyHostJwt(await signWith(await rsa, claims()), none, T0, noFetch()))).toBe(
      "alg_not_allowed",
    );
  });
});

describe("verified user ids", () => {
  it("are v_ and 32 hex digits of SHA-256(sub): stable, distinct, never a guest id", async () => {
    // SHA-256("alice") = 2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90
    expect(await verifiedUserId("alice")).toBe("v_2bd806c97f0e00af1a1fc3328fa763a9");
    const [r, e] = [await rsa, await ec];
    const s = settings({ jwks: jwksText(r, e) });
    const ids = new Set<string>();
    for (const jwt of [
      await hs256(claims()),
      await signWith(r, claims()),
      await signWith(e, claims({ name: "Other" })),
    ]) {
      const result = await verifyHostJwt(jwt, s, T0, noFetch());
      if (result.ok) ids.add(result.identity.id);
    }
    expect([...ids]).toEqual(["v_2bd806c97f0e00af1a1fc3328fa763a9"]);

    const subs = [
      "alice",
      "Alice",
      "alice ",
      "bob",
      "u_0123456789abcdef01234567",
      "v_2bd806c97f0e00af1a1fc3328fa763a9",
    ];
    const verified = await Promise.all(subs.map(verifiedUserId));
    expect(new Set(verified).size).toBe(subs.length);
    for (const id of verified) {
      expect(id).toMatch(/^v_[0-9a-f]{32}$/);
      expect(isVerifiedUserId(id)).toBe(true);
      expect(id).not.toMatch(/^u_[0-9a-f]{24}$/);
    }
    for (let i = 0; i < 100; i++) expect(isVerifiedUserId(newUserId())).toBe(false);
  });
});

describe("the JWKS URL cache", () => {
  it("refetches on an unknown kid at most once a minute, and concurrent connects share one fetch", async () => {
    const [r, e] = [await rsa, await ec];
    const late = await pair("RS256", "rsa-late");
    const { state, keys } = endpoint(jwksText(r));
    const s = settings({ secret: null, jwksUrl: URL_A });
    const at = async (p: Pair, t: number) => verifyHostJwt(await signWith(p, claims()), s, t, keys);

    expect((await at(r, T0)).ok).toBe(true);
    expect(state.fetches).toBe(1);
    // The host publishes a new key; tokens using it are refused until the next allowed fetch.
    state.body = jwksText(r, late);
    expect(refusal(await at(late, T0 + 1000))).toBe("unknown_key");
    expect(refusal(await at(late, T0 + JWKS_REFETCH_MS - 1))).toBe("unknown_key");
    expect(state.fetches).toBe(1);
    // Made-up kids in bulk cost nothing either.
    const bogus = await Promise.all(
      Array.from({ length: 5 }, async (_, i) =>
        verifyHostJwt(await signWith(e, claims(), { kid: `bogus-${i}` }), s, T0 + 2000, keys),
      ),
    );
    expect(bogus.map(refusal)).toEqual(Array(5).fill("unknown_key"));
    expect(state.fetches).toBe(1);

    const concurrent = await Promise.all(Array.from({ length: 5 }, () => at(late, T0 + JWKS_REFETCH_MS)));
    expect(concurrent.map((v) => v.ok)).toEqual(Array(5).fill(true));
    expect(state.fetches).toBe(2);
    // Known keys need no fetch.
    expect((await at(r, T0 + JWKS_REFETCH_MS + 1)).ok).toBe(true);
    expect(state.fetches).toBe(2);
    // The next unknown kid waits for the next minute, counted from the last fetch.
    expect(refusal(await at(e, T0 + 2 * JWKS_REFETCH_MS - 1))).toBe("unknown_key");
    expect(state.fetches).toBe(2);
  });

  it("drops a key the host removed once the fetched set is older than its max age", async () => {
    const r = await rsa;
    const next = await pair("RS256", "rsa-next");
    const { state, keys } = endpoint(jwksText(r));
    const s = settings({ secret: null, jwksUrl: URL_A });
    expect((await verifyHostJwt(await signWith(r, claims()), s, T0, keys)).ok).toBe(true);
    state.body = jwksText(next);
    const later = T0 + JWKS_MAX_AGE_MS - 1;
    expect((await verifyHostJwt(await signWith(r, claims({ exp: NOW + 3600 })), s, later, keys)).ok).toBe(true);
    expect(state.fetches).toBe(1);
    const stale = T0 + JWKS_MAX_AGE_MS;
    expect(refusal(await verifyHostJwt(await signWith(r, claims({ exp: NOW + 3600 })), s, stale, keys))).toBe(
      "unknown_key",
    );
    expect((await verifyHostJwt(await signWith(next, claims({ exp: NOW + 3600 })), s, stale + 1, keys)).ok).toBe(true);
    expect(state.fetches).toBe(2);
  });

  it("an endpoint that fails: jwks_unavailable, retried after a minute, known keys kept", async () => {
    const r = await rsa;
    const { state, keys } = endpoint(new Response("down", { status: 503 }));
    const s = settings({ secret: null, jwksUrl: URL_A });
    const jwt = await signWith(r, claims({ exp: NOW + 7200 }));
    expect(refusal(await verifyHostJwt(jwt, s, T0, keys))).toBe("jwks_unavailable");
    expect(refusal(await verifyHostJwt(jwt, s, T0 + JWKS_REFETCH_MS - 1, keys))).toBe("jwks_unavailable");
    expect(state.fetches).toBe(1);
    state.body = '{"keys": "not a list"}';
    expect(refusal(await verifyHostJwt(jwt, s, T0 + JWKS_REFETCH_MS, keys))).toBe("jwks_unavailable");
    state.body = jwksText(r);
    expect((await verifyHostJwt(jwt, s, T0 + 2 * JWKS_REFETCH_MS, keys)).ok).toBe(true);
    expect(state.fetches).toBe(3);
    // Past the max age the endpoint is down again: the keys we had still verify.
    state.body = new Response("down", { status: 500 });
    expect((await verifyHostJwt(jwt, s, T0 + 2 * JWKS_REFETCH_MS + JWKS_MAX_AGE_MS, keys)).ok).toBe(true);
    expect(state.fetches).toBe(4);
  });

  it("keys are cached by issuer and kid together", async () => {
    // One endpoint, two deployments' issuers; the endpoint's key under kid
    // "k" changes between their fetches. Cached by kid alone, issuer B would
    // be checked against issuer A's key.
    const keyA = await pair("ES256", "k");
    const keyB = await pair("ES256", "k");
    const { state, keys } = endpoint(jwksText(keyA));
    const a = settings({ secret: null, jwksUrl: URL_A, issuer: "https://a.example" });
    const b = settings({ secret: null, jwksUrl: URL_A, issuer: "https://b.example" });
    const tokenA = await signWith(keyA, claims({ iss: "https://a.example" }));
    expect((await verifyHostJwt(tokenA, a, T0, keys)).ok).toBe(true);
    state.body = jwksText(keyB);
    const tokenB = await signWith(keyB, claims({ iss: "https://b.example" }));
    expect((await verifyHostJwt(tokenB, b, T0, keys)).ok).toBe(true);
    const aKeyClaimingB = await signWith(keyA, claims({ iss: "https://b.example" }));
    expect(refusal(await verifyHostJwt(aKeyClaimingB, b, T0, keys))).toBe("bad_signature");
    // Issuer A's entry still holds its own key.
    expect((await verifyHostJwt(tokenA, a, T0 + 1, keys)).ok).toBe(true);
    expect(state.fetches).toBe(2);
  });
});

describe("settings", () => {
  it("read and fail closed", () => {
    expect(readAuthSettings({})).toEqual({
      settings: {
        secret: null,
        jwks: null,
        jwksUrl: null,
        issuer: null,
        audience: null,
        guests: "on",
        privateRooms: [],
      },
      problems: [],
    });
    const full = readAuthSettings({
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWKS: ' {"keys":[]} ',
      AUTH_JWKS_URL: URL_A,
      AUTH_ISSUER: " https://host.example ",
      AUTH_AUDIENCE: "chat",
      GUESTS: "READ",
      PRIVATE_ROOMS: "team-*, Ops,,ops",
    });
    expect(full).toEqual({
      settings: {
        secret: SECRET_BYTES,
        jwks: '{"keys":[]}',
        jwksUrl: URL_A,
        issuer: "https://host.example",
        audience: "chat",
        guests: "read",
        privateRooms: ["team-*", "ops"],
      },
      problems: [],
    });
    const bad = readAuthSettings({
      AUTH_JWT_SECRET: "short",
      AUTH_JWKS: "[1]",
      AUTH_JWKS_URL: "http://host.example/jwks",
      GUESTS: "of",
      PRIVATE_ROOMS: "team *,ok",
    });
    expect(bad.settings).toMatchObject({
      secret: null,
      jwks: null,
      jwksUrl: null,
      guests: "off",
      privateRooms: ["ok"],
    });
    expect(bad.problems).toHaveLength(5);
    expect(readAuthSettings({ AUTH_JWKS_URL: "http://localhost:8788/jwks" }).settings.jwksUrl).toBe(
      "http://localhost:8788/jwks",
    );
    expect(authConfigured(full.settings)).toBe(true);
    expect(authConfigured(bad.settings)).toBe(false);
    expect(authConfigured(readAuthSettings({ AUTH_JWKS: '{"keys":[]}' }).settings)).toBe(true);
  });
});

describe("private rooms", () => {
  it("parses PRIVATE_ROOMS patterns", () => {
    expect(parsePrivateRooms("")).toEqual({ patterns: [], invalid: [] });
    expect(parsePrivateRooms(" team-* , OPS, *, a_b*, bad room, x**, -x, *x")).toEqual({
      patterns: ["team-*", "ops", "*", "a_b*"],
      invalid: ["bad room", "x**", "-x", "*x"],
    });
  });

  it("roomAllowed: public rooms for all; a private one by exact name, prefix or the moderator role", () => {
    const privateRooms = ["team-*", "ops"];
    type Who = { roles: string[]; rooms: string[] } | null;
    const member = { roles: [], rooms: ["team-red", "ops-*"] };
    const moderator = { roles: ["moderator"], rooms: [] };
    const everything = { roles: [], rooms: ["*"] };
    const table: [Who, string, boolean][] = [
      [null, "lobby", true],
      [null, "team-red", false],
      [null, "ops", false],
      [member, "lobby", true],
      [member, "team-red", true],
      [member, "team-blue", false],
      [member, "ops", false],
      [member, "ops-1", true],
      [moderator, "team-blue", true],
      [moderator, "ops", true],
      [everything, "ops", true],
      [{ roles: ["Moderator"], rooms: [] }, "ops", false],
    ];
    for (const [who, room, allowed] of table)
      expect(roomAllowed(who, room, privateRooms), `${JSON.stringify(who)} ${room}`).toBe(allowed);
    expect(roomAllowed(null, "anything", ["*"])).toBe(false);
  });
});

describe("npm run token", () => {
  it("mints an HS256 JWT that verifies with the same secret", async () => {
    const jwt = await mintToken(
      SECRET,
      { sub: "alice", name: "Alice", roles: ["moderator"], rooms: ["team-*"], minutes: 60 },
      T0,
    );
    expect(await verifyHostJwt(jwt, settings(), T0 + 59 * 60_000)).toEqual({
      ok: true,
      identity: {
        sub: "alice",
        id: await verifiedUserId("alice"),
        name: "Alice",
        roles: ["moderator"],
        rooms: ["team-*"],
      },
    });
    expect(refusal(await verifyHostJwt(jwt, settings(), T0 + 61 * 60_000))).toBe("expired");
    const scoped = await mintToken(
      SECRET,
      { sub: "bob", roles: [], rooms: [], minutes: 5, issuer: "iss", audience: "aud" },
      T0,
    );
    expect((await verifyHostJwt(scoped, settings({ issuer: "iss", audience: "aud" }), T0)).ok).toBe(true);
  });
});
