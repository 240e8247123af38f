// Identity without accounts: a user id is random, and the `token` handed out
// in `welcome` is that id signed with HMAC-SHA256 under SESSION_SECRET. The
// id is not bound to a room, so one token keeps one id in every room.

const encoder = new TextEncoder();
const ID_BYTES = 12;
const ID = /^u_[0-9a-f]{24}$/;
// A domain label, so a signature made for anything else never verifies here.
const LABEL = "edge-chat/token/v1:";

/** Signs tokens when SESSION_SECRET is not set, so `wrangler dev` needs no setup. Never for production. */
export const DEVELOPMENT_SECRET = "edge-chat-development-secret-do-not-deploy";

const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    keys.set(secret, key);
  }
  return key;
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * Decodes unpadded base64url, accepting only the canonical spelling. 43
 * characters carry 258 bits for a 256-bit MAC, and atob ignores the 2 spare
 * bits of the last character, so without the round trip every token would
 * have four spellings that all verify.
 */
function fromBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  let bytes: Uint8Array;
  try {
    const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
  return toBase64Url(bytes) === text ? bytes : null;
}

export function newUserId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(ID_BYTES));
  return `u_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export async function signToken(userId: string, secret: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(LABEL + userId));
  return `${userId}.${toBase64Url(new Uint8Array(mac))}`;
}

/** The user id a token carries, or null when it does not verify under `secret`. */
export async function verifyToken(token: string, secret: string): Promise<string | null> {
  const dot = token.indexOf(".");
  if (dot < 0) return null;
  const userId = token.slice(0, dot);
  if (!ID.test(userId)) return null;
  const mac = fromBase64Url(token.slice(dot + 1));
  if (mac === null) return null;
  // subtle.verify compares in constant time.
  const ok = await crypto.subtle.verify("HMAC", await hmacKey(secret), mac, encoder.encode(LABEL + userId));
  return ok ? userId : null;
}

/**
 * Compares a request's `Authorization` header with the expected bearer token
 * in constant time: both sides are hashed first, so neither the content nor
 * the length of the secret leaks through timing.
 */
export async function bearerMatches(header: string | null, expected: string): Promise<boolean> {
  // RFC 7235: the scheme is case-insensitive and one or more spaces end it.
  const scheme = header === null ? null : /^bearer +/i.exec(header);
  if (header === null || scheme === null) return false;
  const given = header.slice(scheme[0].length);
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}
