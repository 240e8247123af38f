// Identity from the host application: the JWT a site signs for its logged-in
// user, checked here before the user is trusted, and the settings that say
// which keys, issuer and audience to trust and which rooms are private.
//
// The signature and the registered claims are checked by `jose` (see the
// README's dependency note): a JWT verifier is where key-confusion bugs live,
// and a small, widely reviewed library that refuses a key of the wrong type for the
// `alg` is worth more than the bytes we would save. What jose cannot know is
// ours: which `alg` may use which key (HS256 only ever the secret; RS256 and
// ES256 only ever a public key from the JWKS, never a key named in the token's
// own header), how keys are cached and refetched, and the contract's claims.

import { errors, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { createLogger, describeError } from "./log.ts";
import { codePointLength, isWellFormed, MAX_ROOM_LENGTH, normalizeName } from "./protocol.ts";

/** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. */
export const LEEWAY_SEC = 60;
/** A JWKS is refetched at most this often when a token names a `kid` it lacks. */
export const JWKS_REFETCH_MS = 60_000;
/** Fetched keys are trusted this long; after it the next token refetches, so a key the host removed stops working. */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
export const MAX_SUB_LENGTH = 128;
/** Longer than any JWT a host needs for these claims; checked before anything is decoded. */
export const MAX_JWT_LENGTH = 8192;
export const MAX_ROLES = 32;
export const MAX_ROLE_LENGTH = 64;
export const MAX_ROOM_PATTERNS = 100;
/** RFC 7518 §3.2: an HS256 key is at least as long as the hash, 256 bits. */
export const MIN_SECRET_BYTES = 32;
const MAX_JWKS_BYTES = 65_536;
const JWKS_FETCH_TIMEOUT_MS = 5000;
export const MODERATOR = "moderator";

export type Alg = "HS256" | "RS256" | "ES256";
export type GuestMode = "on" | "read" | "off";

/** The auth settings from `[vars]` and secrets, checked once. */
export interface AuthSettings {
  /** AUTH_JWT_SECRET as bytes; null turns HS256 off. */
  secret: Uint8Array | null;
  /** AUTH_JWKS, the text as given (it names its cache entry); null when unset or invalid. */
  jwks: string | null;
  /** AUTH_JWKS_URL; null when unset or invalid. */
  jwksUrl: string | null;
  issuer: string | null;
  audience: string | null;
  guests: GuestMode;
  /** PRIVATE_ROOMS as patterns: a room name, or a prefix ending in `*`. */
  privateRooms: string[];
}

export interface AuthVars {
  AUTH_JWT_SECRET?: string;
  AUTH_JWKS?: string;
  AUTH_JWKS_URL?: string;
  AUTH_ISSUER?: string;
  AUTH_AUDIENCE?: string;
  GUESTS?: string;
  PRIVATE_ROOMS?: string;
}

/**
 * Settings, plus what was wrong with them for the caller to log. Unlike the
 * numeric vars (a typo falls back to the default), every mistake here fails
 * closed: a bad key turns its algorithms off, a bad `GUESTS` means `off`, a bad
 * private-room pattern is reported (the rest still apply).
 */
export function readAuthSettings(vars: AuthVars): { settings: AuthSettings; problems: string[] } {
  const problems: string[] = [];
  const text = (raw: string | undefined) => (raw === undefined || raw.trim() === "" ? null : raw.trim());

  let secret: Uint8Array | null = null;
  const rawSecret = vars.AUTH_JWT_SECRET;
  if (rawSecret !== undefined && rawSecret !== "") {
    const bytes = new TextEncoder().encode(rawSecret);
    if (bytes.length >= MIN_SECRET_BYTES) secret = bytes;
    else problems.push(`AUTH_JWT_SECRET is shorter than ${MIN_SECRET_BYTES} bytes; HS256 is off`);
  }

  let jwks = text(vars.AUTH_JWKS);
  if (jwks !== null && parseJwks(jwks) === null) {
    problems.push('AUTH_JWKS is not a JSON object with a "keys" array; RS256/ES256 with it are off');
    jwks = null;
  }

  let jwksUrl = text(vars.AUTH_JWKS_URL);
  if (jwksUrl !== null && !isJwksUrl(jwksUrl)) {
    problems.push("AUTH_JWKS_URL is not an https URL (http only for localhost); it is off");
    jwksUrl = null;
  }

  const rawGuests = text(vars.GUESTS)?.toLowerCase() ?? "on";
  let guests: GuestMode = "off";
  if (rawGuests === "on" || rawGuests === "read" || rawGuests === "off") guests = rawGuests;
  else problems.push(`GUESTS must be on, read or off; "${rawGuests}" counts as off`);

  const { patterns, invalid } = parsePrivateRooms(vars.PRIVATE_ROOMS ?? "");
  for (const bad of invalid) problems.push(`PRIVATE_ROOMS entry "${bad}" is not a room name or prefix*; ignored`);

  return {
    settings: {
      secret,
      jwks,
      jwksUrl,
      issuer: text(vars.AUTH_ISSUER),
      audience: text(vars.AUTH_AUDIENCE),
      guests,
      privateRooms: patterns,
    },
    problems,
  };
}

function isJwksUrl(raw: string): boolean {
  if (!URL.canParse(raw)) return false;
  const url = new URL(raw);
  if (url.protocol === "https:") return true;
  return url.protocol === "http:" && ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
}

/** True when any host JWT could verify, i.e. a JWT in a request is meaningful. */
export function authConfigured(settings: AuthSettings): boolean {
  return settings.secret !== null || settings.jwks !== null || settings.jwksUrl !== null;
}

// ---------------------------------------------------------------------------
// Room patterns: PRIVATE_ROOMS and the `rooms` claim use the same language.

const ROOM_PREFIX = /^(?:[a-z0-9][a-z0-9_-]*)?$/;
const ROOM_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/**
 * A room pattern in the canonical (lower-case) spelling, or null: a room name
 * (`ops`), or a prefix ending in `*` (`team-*`; `*` alone is every room).
 * Room names are case-folded by the Worker, so patterns are too.
 */
export function normalizeRoomPattern(raw: string): string | null {
  const lower = raw.toLowerCase();
  if (lower.endsWith("*")) {
    const prefix = lower.slice(0, -1);
    return prefix.length <= MAX_ROOM_LENGTH && ROOM_PREFIX.test(prefix) ? lower : null;
  }
  return lower.length <= MAX_ROOM_LENGTH && ROOM_NAME.test(lower) ? lower : null;
}

/** PRIVATE_ROOMS: comma-separated patterns; blanks are skipped, invalid entries returned for logging. */
export function parsePrivateRooms(raw: string): { patterns: string[]; invalid: string[] } {
  const patterns: string[] = [];
  const invalid: string[] = [];
  for (const item of raw.split(",")) {
    const entry = item.trim();
    if (entry === "") continue;
    const pattern = normalizeRoomPattern(entry);
    if (pattern === null) invalid.push(entry);
    else if (!patterns.includes(pattern)) patterns.push(pattern);
  }
  return { patterns, invalid };
}

/** `room` is a normalized room name (as `normalizeRoom` returns it). */
export function matchesRoom(pattern: string, room: string): boolean {
  return pattern.endsWith("*") ? room.startsWith(pattern.slice(0, -1)) : room === pattern;
}

export function isPrivateRoom(room: string, privatePatterns: readonly string[]): boolean {
  return privatePatterns.some((p) => matchesRoom(p, room));
}

/**
 * Whether this user may join (or read) `room`: any room that no private
 * pattern matches; a private one with a `rooms` claim that matches it or the
 * `moderator` role. A guest (null) never gets into a private room.
 */
export function roomAllowed(
  identity: Pick<Identity, "roles" | "rooms"> | null,
  room: string,
  privatePatterns: readonly string[],
): boolean {
  if (!isPrivateRoom(room, privatePatterns)) return true;
  if (identity === null) return false;
  return identity.roles.includes(MODERATOR) || identity.rooms.some((p) => matchesRoom(p, room));
}

// ---------------------------------------------------------------------------
// Verified user ids.

const VERIFIED_ID = /^v_[0-9a-f]{32}$/;

/**
 * `v_` and the first 128 bits of SHA-256(UTF-8 `sub`) in hex. From `sub`
 * alone, so a host can compute its user's id (to ban it over HTTP) and the id
 * is the same in every room and on every connection. Guest ids are `u_` and
 * 24 hex digits, so the two can never be equal; 128 bits make two subs
 * sharing an id as likely as a SHA-256 collision. `sub` is well-formed UTF-16
 * by then: a lone surrogate would encode as U+FFFD and two subs would share one.
 */
export async function verifiedUserId(sub: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(sub)));
  let hex = "";
  for (const byte of digest.subarray(0, 16)) hex += byte.toString(16).padStart(2, "0");
  return `v_${hex}`;
}

export function isVerifiedUserId(id: string): boolean {
  return VERIFIED_ID.test(id);
}

// ---------------------------------------------------------------------------
// Verification.

export interface Identity {
  sub: string;
  /** `v_…`, see verifiedUserId. */
  id: string;
  /** The `name` claim when it is a valid display name; absent otherwise. */
  name?: string;
  roles: string[];
  /** Canonical room patterns from the `rooms` claim. */
  rooms: string[];
}

export type AuthFailure =
  | "malformed" // not a compact JWS, or a header or payload that is not JSON
  | "alg_not_allowed" // none, HS512, PS256…, or an algorithm with no key configured
  | "unknown_key" // no key with that kid, even after a refetch
  | "jwks_unavailable" // the JWKS URL could not be fetched and no key is cached
  | "bad_signature"
  | "expired"
  | "not_yet_valid" // nbf, or iat, later than now + leeway
  | "wrong_issuer"
  | "wrong_audience"
  | "bad_claims"; // exp or sub missing or malformed, or a malformed roles/rooms

/** `message` is for the 401 body and logs: fixed text, never an echo of the token. */
export type VerifyResult = { ok: true; identity: Identity } | { ok: false; reason: AuthFailure; message: string };

class Refusal extends Error {
  readonly reason: AuthFailure;
  constructor(reason: AuthFailure, message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * Verifies a host JWT and returns who it names. Never throws: every failure is
 * a reason the caller turns into `401`. `now` (ms) is the clock for `exp`,
 * `nbf`, `iat` and the JWKS cache; `keys` the cache of public keys.
 */
export async function verifyHostJwt(
  jwt: string,
  settings: AuthSettings,
  now: number = Date.now(),
  keys: KeyCache = sharedKeys,
): Promise<VerifyResult> {
  try {
    return { ok: true, identity: await verify(jwt, settings, now, keys) };
  } catch (err) {
    const refusal = toRefusal(err);
    return { ok: false, reason: refusal.reason, message: refusal.message };
  }
}

async function verify(jwt: string, settings: AuthSettings, now: number, keys: KeyCache): Promise<Identity> {
  if (jwt.length > MAX_JWT_LENGTH) throw new Refusal("malformed", "the JWT is too long");
  const algorithms: Alg[] = [];
  if (settings.secret !== null) algorithms.push("HS256");
  if (settings.jwks !== null || settings.jwksUrl !== null) algorithms.push("RS256", "ES256");

  const { payload } = await jwtVerify(
    jwt,
    // Called with the header only after jose has checked `alg` against
    // `algorithms`. The key comes from our configuration and the `alg` alone;
    // `jwk`, `jku`, `x5u` or `x5c` in the header are never looked at.
    async (header) => {
      if (header.alg === "HS256" && settings.secret !== null) return settings.secret;
      const publicAlg = header.alg === "RS256" ? "RS256" : header.alg === "ES256" ? "ES256" : null;
      if (publicAlg !== null) return keys.key(settings, publicAlg, header.kid, now);
      throw new Refusal("alg_not_allowed", "this alg is not allowed");
    },
    {
      algorithms,
      requiredClaims: ["exp", "sub"],
      clockTolerance: LEEWAY_SEC,
      currentDate: new Date(now),
      ...(settings.issuer !== null && { issuer: settings.issuer }),
      ...(settings.audience !== null && { audience: settings.audience }),
    },
  );
  return identityFrom(payload, now);
}

async function identityFrom(payload: JWTPayload, now: number): Promise<Identity> {
  // jose checks iat only when asked for a maximum age; the contract wants a
  // token issued in the future refused like one not yet valid.
  if (payload.iat !== undefined && payload.iat > now / 1000 + LEEWAY_SEC) {
    throw new Refusal("not_yet_valid", "iat is in the future");
  }
  const sub = payload.sub;
  if (
    typeof sub !== "string" ||
    !isWellFormed(sub) ||
    codePointLength(sub) < 1 ||
    codePointLength(sub) > MAX_SUB_LENGTH
  ) {
    throw new Refusal("bad_claims", `sub must be a string of 1 to ${MAX_SUB_LENGTH} characters`);
  }
  // A name is cosmetic and the contract has a fallback for it, so a bad one
  // is dropped. roles and rooms decide what the user may do: a malformed one
  // means the host's token builder is broken, and guessing what it meant
  // could grant more than intended, so the token is refused.
  const name = typeof payload.name === "string" ? normalizeName(payload.name) : null;
  const roles = stringList(payload.roles, MAX_ROLES, (r) =>
    isWellFormed(r) && codePointLength(r) >= 1 && codePointLength(r) <= MAX_ROLE_LENGTH ? r : null,
  );
  if (roles === null) throw new Refusal("bad_claims", `roles must be an array of at most ${MAX_ROLES} short strings`);
  const rooms = stringList(payload.rooms, MAX_ROOM_PATTERNS, normalizeRoomPattern);
  if (rooms === null)
    throw new Refusal("bad_claims", `rooms must be an array of at most ${MAX_ROOM_PATTERNS} room names or prefix*`);
  return { sub, id: await verifiedUserId(sub), ...(name !== null && { name }), roles, rooms };
}

/** Absent is empty; anything but an array of valid strings is null. Duplicates are dropped. */
function stringList(raw: unknown, max: number, valid: (s: string) => string | null): string[] | null {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || raw.length > max) return null;
  const out: string[] = [];
  for (const item of raw) {
    const value = typeof item === "string" ? valid(item) : null;
    if (value === null) return null;
    if (!out.includes(value)) out.push(value);
  }
  return out;
}

function toRefusal(err: unknown): Refusal {
  if (err instanceof Refusal) return err;
  if (err instanceof errors.JWTExpired) return new Refusal("expired", "the JWT has expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "nbf") return new Refusal("not_yet_valid", "the JWT is not valid yet");
    if (err.claim === "iss" && err.reason === "check_failed")
      return new Refusal("wrong_issuer", "iss is not the expected issuer");
    if (err.claim === "aud" && err.reason === "check_failed")
      return new Refusal("wrong_audience", "aud does not name this chat");
    return new Refusal("bad_claims", `${err.claim} is missing or malformed`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return new Refusal("alg_not_allowed", "this alg is not allowed");
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return new Refusal("bad_signature", "the signature does not verify");
  // JWSInvalid, JWTInvalid, JOSENotSupported (crit, b64) and the TypeErrors
  // jose throws for a key that fails its own checks (an RSA key under 2048 bits).
  return new Refusal("malformed", "the JWT is malformed");
}

// ---------------------------------------------------------------------------
// Public keys: inline AUTH_JWKS and fetched AUTH_JWKS_URL.

interface PublicKey {
  kid: string | undefined;
  alg: "RS256" | "ES256";
  key: CryptoKey;
}

interface KeySet {
  keys: PublicKey[];
  /** When the keys were fetched; null before the first success (inline sets: never refetched). */
  fetchedAt: number | null;
  /** The last fetch started; the once-a-minute rule counts from it, failed fetches too. */
  lastFetch: number | null;
  inflight: Promise<void> | null;
}

export type Fetcher = (url: string, init: RequestInit) => Promise<Response>;

/**
 * Imported public keys, one set per key source (the inline text or the URL)
 * and issuer, so a key fetched for one issuer never verifies another's
 * tokens, whichever `kid` they share. The issuer is AUTH_ISSUER (empty when
 * unset): the setting, not the token's unverified `iss`, so a token cannot
 * pick its own cache entry or grow the cache.
 */
export class KeyCache {
  private readonly sets = new Map<string, KeySet>();
  private readonly fetcher: Fetcher;

  constructor(fetcher: Fetcher) {
    this.fetcher = fetcher;
  }

  async key(settings: AuthSettings, alg: "RS256" | "ES256", kid: string | undefined, now: number): Promise<CryptoKey> {
    const issuer = settings.issuer ?? "";
    if (settings.jwks !== null) {
      const set = await this.inline(settings.jwks, issuer);
      const found = pick(set.keys, alg, kid);
      if (found !== null) return found;
    }
    if (settings.jwksUrl !== null) return this.fetched(settings.jwksUrl, issuer, alg, kid, now);
    throw new Refusal("unknown_key", "no key for this kid and alg");
  }

  private async inline(text: string, issuer: string): Promise<KeySet> {
    const id = `inline\n${issuer}\n${text}`;
    let set = this.sets.get(id);
    if (set === undefined) {
      set = { keys: await importKeys(parseJwks(text) ?? []), fetchedAt: null, lastFetch: null, inflight: null };
      this.sets.set(id, set);
    }
    return set;
  }

  private async fetched(
    url: string,
    issuer: string,
    alg: "RS256" | "ES256",
    kid: string | undefined,
    now: number,
  ): Promise<CryptoKey> {
    const id = `url\n${issuer}\n${url}`;
    let set = this.sets.get(id);
    if (set === undefined) {
      set = { keys: [], fetchedAt: null, lastFetch: null, inflight: null };
      this.sets.set(id, set);
    }
    const fresh = set.fetchedAt !== null && now - set.fetchedAt < JWKS_MAX_AGE_MS;
    const cached = fresh ? pick(set.keys, alg, kid) : null;
    if (cached !== null) return cached;
    // Unknown kid, or keys too old: refetch, but at most once a minute, so a
    // stream of tokens with made-up kids costs the host one request a minute.
    // Concurrent connects share the fetch in flight.
    if (set.lastFetch === null || now - set.lastFetch >= JWKS_REFETCH_MS) {
      set.lastFetch = now;
      // A failed fetch keeps the keys we had: the host's endpoint being down
      // is no reason to lock out users whose keys we already know.
      set.inflight = this.load(url, set, now)
        .catch((err: unknown) => jwksLog.warn("jwks_fetch_failed", { url, error: describeError(err) }))
        .finally(() => {
          set.inflight = null;
        });
    }
    if (set.inflight !== null) await set.inflight;
    const found = pick(set.keys, alg, kid);
    if (found !== null) return found;
    if (set.fetchedAt === null) throw new Refusal("jwks_unavailable", "the JWKS could not be fetched");
    throw new Refusal("unknown_key", "no key for this kid and alg");
  }

  private async load(url: string, set: KeySet, now: number): Promise<void> {
    const response = await this.fetcher(url, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`JWKS fetch answered ${response.status}`);
    const text = await response.text();
    const jwks = text.length <= MAX_JWKS_BYTES ? parseJwks(text) : null;
    if (jwks === null) throw new Error("JWKS response is not a key set");
    set.keys = await importKeys(jwks);
    set.fetchedAt = now;
  }
}

// jose refuses an RSA key under 2048 bits when it verifies; skipping it here
// makes that an unknown key rather than a malformed token.
function strongEnough(key: CryptoKey): boolean {
  const algorithm: { name: string; modulusLength?: number } = key.algorithm;
  return algorithm.name !== "RSASSA-PKCS1-v1_5" || (algorithm.modulusLength ?? 0) >= 2048;
}

// The cache outlives any one request, so it logs on its own; a failed fetch is
// an operator's problem (a wrong URL, the host's endpoint down) worth a warning.
const jwksLog = createLogger("warn", { component: "auth" });
const sharedKeys = new KeyCache((url, init) => fetch(url, init));

/** With a kid: the key with that kid and alg. Without: the only key for the alg, if exactly one. */
function pick(keys: readonly PublicKey[], alg: string, kid: string | undefined): CryptoKey | null {
  const candidates = keys.filter((k) => k.alg === alg && (kid === undefined || k.kid === kid));
  if (kid === undefined && candidates.length !== 1) return null;
  return candidates[0]?.key ?? null;
}

function parseJwks(text: string): Record<string, unknown>[] | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const keys: unknown = (value as Record<string, unknown>).keys;
  if (!Array.isArray(keys)) return null;
  return keys.filter((k): k is Record<string, unknown> => typeof k === "object" && k !== null && !Array.isArray(k));
}

/**
 * The keys of a set that can verify RS256 or ES256; others are skipped, so a
 * host may publish encryption keys or other algorithms beside them. The
 * algorithm follows from the key's type (RSA → RS256, EC P-256 → ES256), and
 * a key that names another `alg`, another `use` or holds a private part is
 * skipped rather than trusted for an algorithm it was not meant for. No `oct`
 * key is ever taken from a JWKS: HS256 has exactly one key, AUTH_JWT_SECRET.
 */
async function importKeys(jwks: readonly Record<string, unknown>[]): Promise<PublicKey[]> {
  const out: PublicKey[] = [];
  for (const jwk of jwks) {
    const alg = jwk.kty === "RSA" ? "RS256" : jwk.kty === "EC" && jwk.crv === "P-256" ? "ES256" : null;
    if (alg === null) continue;
    if (jwk.alg !== undefined && jwk.alg !== alg) continue;
    if (jwk.use !== undefined && jwk.use !== "sig") continue;
    if (jwk.d !== undefined) continue;
    const kid = jwk.kid;
    if (kid !== undefined && typeof kid !== "string") continue;
    try {
      const key = await importJWK(jwk as JWK, alg);
      if (key instanceof Uint8Array || !strongEnough(key)) continue;
      out.push({ kid, alg, key });
    } catch {
      // A malformed member (bad base64, wrong sizes) is skipped like a foreign one.
    }
  }
  return out;
}
