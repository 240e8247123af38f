// The stateless edge. It answers everything that can be decided without a
// room (bad paths, bad room names, missing upgrades, foreign origins, too many
// connections or API calls from one address, bad publish requests) before any
// room's Durable Object is billed, decides who the user is, and forwards to
// the room.

import { addressKey } from "./address.ts";
import {
  authConfigured,
  readAuthSettings,
  roomAllowed,
  verifyHostJwt,
  type AuthSettings,
  type Identity,
} from "./auth.ts";
import { readConfig, type Config } from "./config.ts";
import type { BearerKind, Purpose } from "./limiter.ts";
import { createLogger, describeError, type Logger } from "./log.ts";
import { servePage } from "./page.ts";
import {
  DEFAULT_ROOM,
  MAX_FRAME_BYTES,
  MODERATION_FAILURES_PER_MIN,
  PUBLISH_FAILURES_PER_MIN,
  normalizeName,
  normalizeRoom,
  parseAfter,
  isModerator,
  parseJsonObject,
  parseUserId,
  validateBanFields,
  validateMessageFields,
  validateSettingsFields,
  type HistoryPage,
  type HttpError,
  type User,
} from "./protocol.ts";
import { admissionRequest } from "./admission.ts";
import type { ChatRoom } from "./room.ts";
import { DEVELOPMENT_SECRET, bearerMatches, newUserId, signToken, verifyToken } from "./token.ts";

export { ChatRoom } from "./room.ts";
export { ConnectLimiter } from "./limiter.ts";
export { RoomPart } from "./part.ts";

type Route =
  | { kind: "chat"; room: string }
  | { kind: "messages"; room: string }
  | { kind: "moderation"; room: string; target: ModerationTarget }
  | { kind: "not_found" }
  | { kind: "page" }
  | { kind: "asset" };

/** The moderation API's resources under `/api/rooms/{room}/`. */
type ModerationTarget =
  | { kind: "message"; id: string }
  | { kind: "bans" }
  | { kind: "ban"; user: string }
  | { kind: "settings" }
  | { kind: "stats" };

const MESSAGES = /^\/api\/rooms\/([^/]+)\/messages$/;
const MODERATION = /^\/api\/rooms\/([^/]+)\/(?:messages\/([^/]+)|bans\/([^/]+)|(bans|settings|stats))$/;

function moderationRoute(pathname: string): Route {
  const [, room, id, user, resource] = MODERATION.exec(pathname) ?? [];
  if (room === undefined) return { kind: "not_found" };
  if (id !== undefined) return { kind: "moderation", room, target: { kind: "message", id } };
  if (user !== undefined) return { kind: "moderation", room, target: { kind: "ban", user } };
  if (resource === "bans" || resource === "settings" || resource === "stats") {
    return { kind: "moderation", room, target: { kind: resource } };
  }
  return { kind: "not_found" };
}

function route(pathname: string): Route {
  if (pathname === "/chat" || pathname === "/chat/") return { kind: "chat", room: DEFAULT_ROOM };
  if (pathname.startsWith("/chat/")) {
    const room = pathname.slice("/chat/".length);
    return room.includes("/") ? { kind: "not_found" } : { kind: "chat", room };
  }
  if (pathname === "/api" || pathname.startsWith("/api/")) {
    const match = MESSAGES.exec(pathname);
    return match?.[1] === undefined ? moderationRoute(pathname) : { kind: "messages", room: match[1] };
  }
  if (pathname === "/" || pathname === "/index.html") return { kind: "page" };
  return { kind: "asset" };
}

function error(status: number, code: string, message: string, headers?: HeadersInit): Response {
  const body: HttpError = { error: code, message };
  return Response.json(body, { status, headers });
}

function isAllowedOrigin(request: Request, url: URL, config: Config): boolean {
  const origin = request.headers.get("Origin");
  // Browsers always send Origin on a WebSocket handshake; other clients
  // (bots, CLIs) are not the cross-site hijacking this check is about.
  if (origin === null) return true;
  if (config.allowedOrigins === "*") return true;
  if (origin === "null") return false;
  return origin === url.origin || config.allowedOrigins.has(origin);
}

function roomStub(env: Env, room: string): DurableObjectStub<ChatRoom> {
  return env.ROOMS.get(env.ROOMS.idFromName(room));
}

// The hosts of the developer's own machine, as URL.hostname spells them.
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(["localhost", "127.0.0.1", "[::1]"]);

let warnedAboutSecret = false;

/**
 * The key that signs tokens, or null when there is none to use. Without
 * SESSION_SECRET the public development key signs tokens only for requests
 * to a loopback host, so `wrangler dev` needs no setup while a deployment
 * that forgot the secret fails closed: with a public key anyone could mint
 * any user's token, and user ids are public (`online`, `from`). Cloudflare
 * routes a request to a Worker by its host, so a deployed Worker never sees
 * a loopback one.
 */
function sessionSecret(env: Env, url: URL, log: Logger): string | null {
  if (env.SESSION_SECRET !== undefined && env.SESSION_SECRET !== "") return env.SESSION_SECRET;
  if (!LOOPBACK_HOSTS.has(url.hostname)) {
    log.error("not_configured", {
      host: url.hostname,
      message:
        "SESSION_SECRET is not set, so WebSocket upgrades are refused with 503. Set it: `wrangler secret put SESSION_SECRET`.",
    });
    return null;
  }
  if (!warnedAboutSecret) {
    warnedAboutSecret = true;
    log.warn("development_secret", {
      message:
        "SESSION_SECRET is not set: tokens on this loopback host are signed with a public development key. Run `wrangler secret put SESSION_SECRET` before deploying.",
    });
  }
  return DEVELOPMENT_SECRET;
}

function noAddress(room: string, log: Logger): Response {
  log.warn("no_client_address", { room });
  return error(400, "no_client_address", "the request has no CF-Connecting-IP and is not to a loopback host");
}

/** Takes one from the allowance of `address` for `purpose` (per minute, across rooms); false when it is used up. */
function allowAddress(env: Env, address: string, purpose: Purpose, perMinute: number): Promise<boolean> {
  return env.CONNECT_LIMITER.get(env.CONNECT_LIMITER.idFromName(address)).allow(perMinute, purpose);
}

/** The per-address limit of the HTTP API; null when the request may go on. */
async function limitApi(
  request: Request,
  room: string,
  env: Env,
  config: Config,
  log: Logger,
): Promise<Response | null> {
  const address = addressKey(request);
  if (address === null) return noAddress(room, log);
  if (config.apiPerMin === 0) return null;
  if (await allowAddress(env, address, "api", config.apiPerMin)) return null;
  log.info("api_limited", { room });
  // The bucket refills one request every 60 / API_PER_MIN seconds.
  return error(429, "too_many_requests", `at most ${config.apiPerMin} API requests a minute`, {
    "Retry-After": String(Math.ceil(60 / config.apiPerMin)),
  });
}

let loggedAuthProblems = false;

/** The auth settings; what is wrong with them is logged once per isolate, not once per request. */
function authSettings(env: Env, log: Logger): AuthSettings {
  const { settings, problems } = readAuthSettings(env);
  if (!loggedAuthProblems) {
    loggedAuthProblems = true;
    for (const problem of problems) log.error("auth_misconfigured", { message: problem });
  }
  return settings;
}

const BEARER = /^bearer\s+(\S+)\s*$/i;

/** The JWT of an `Authorization: Bearer` header; null without one (another scheme counts as none). */
function bearerJwt(request: Request): string | null {
  return BEARER.exec(request.headers.get("Authorization") ?? "")?.[1] ?? null;
}

type Who = { ok: true; identity: Identity | null } | { ok: false; response: Response };

/**
 * Who presents `jwt`: nobody (a guest) without one, a verified identity, or a
 * `401` for a JWT that does not verify. A bad JWT never falls back to a
 * guest: a host that sent one meant a signed-in user, and a guest in their
 * place would post under a name the user did not choose.
 */
async function identify(jwt: string | null, settings: AuthSettings, room: string, log: Logger): Promise<Who> {
  if (jwt === null) return { ok: true, identity: null };
  const result = await verifyHostJwt(jwt, settings);
  if (result.ok) return { ok: true, identity: result.identity };
  log.info("jwt_refused", { room, reason: result.reason });
  return { ok: false, response: error(401, "unauthorized", result.message, { "WWW-Authenticate": "Bearer" }) };
}

function forbiddenRoom(room: string, log: Logger): Response {
  log.info("room_refused", { room });
  return error(403, "forbidden_room", "this room is private; it needs a JWT that grants it");
}

function guestName(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `guest-${Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("")}`;
}

async function connect(
  request: Request,
  url: URL,
  room: string,
  env: Env,
  config: Config,
  log: Logger,
): Promise<Response> {
  if (request.method !== "GET")
    return error(405, "method_not_allowed", "use GET with Upgrade: websocket", { Allow: "GET" });
  if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
    return error(426, "upgrade_required", "this endpoint speaks WebSocket only", { Upgrade: "websocket" });
  }
  if (!isAllowedOrigin(request, url, config)) {
    log.info("origin_refused", { room, origin: request.headers.get("Origin") });
    return error(403, "forbidden_origin", "this origin may not open a chat connection");
  }
  const secret = sessionSecret(env, url, log);
  if (secret === null) return error(503, "not_configured", "this chat server is not configured yet; try again later");
  const address = addressKey(request);
  if (address === null) return noAddress(room, log);
  if (config.ipConnectPerMin > 0 && !(await allowAddress(env, address, "connect", config.ipConnectPerMin))) {
    log.info("connect_limited", { room });
    return error(429, "too_many_connections", `at most ${config.ipConnectPerMin} new connections a minute`, {
      "Retry-After": "60",
    });
  }
  const q = url.searchParams;
  const settings = authSettings(env, log);
  const who = await identify(q.get("auth") ?? bearerJwt(request), settings, room, log);
  if (!who.ok) return who.response;
  const identity = who.identity;
  if (identity === null && settings.guests === "off") {
    log.info("guest_refused", { room });
    return error(401, "unauthorized", "this chat admits signed-in users only", { "WWW-Authenticate": "Bearer" });
  }
  if (!roomAllowed(identity, room, settings.privateRooms)) return forbiddenRoom(room, log);
  let user: User;
  let token: string;
  if (identity !== null) {
    user = {
      id: identity.id,
      name: identity.name ?? normalizeName(q.get("name")) ?? guestName(),
      verified: true,
      roles: identity.roles,
    };
    // A verified user's identity is the JWT; a session token would name a
    // guest id on the next connect without one. The field stays (its shape
    // is the contract's), empty: reconnect with a fresh JWT.
    token = "";
  } else {
    const claimed = q.get("token");
    const userId = (claimed !== null ? await verifyToken(claimed, secret) : null) ?? newUserId();
    user = { id: userId, name: normalizeName(q.get("name")) ?? guestName() };
    token = await signToken(userId, secret);
  }
  const admission = { room, user, address, token, after: parseAfter(q.get("after")), batch: q.get("batch") === "1" };
  return roomStub(env, room).fetch(admissionRequest(admission));
}

/** Reads at most `limit` bytes of a body; null when there are more. */
async function readCapped(request: Request, limit: number): Promise<string | null> {
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > limit) return null;
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

const FAILURES_PER_MIN: Record<BearerKind, number> = {
  publish: PUBLISH_FAILURES_PER_MIN,
  moderation: MODERATION_FAILURES_PER_MIN,
};

/**
 * Counts a bearer attempt for `kind` against the address's failures (see
 * ConnectLimiter.bearerAttempt); a 429 while the address is throttled, null
 * to go on. Requests without an address come from no edge (a test, a local
 * proxy) and share one count.
 */
async function throttleGuesses(
  request: Request,
  env: Env,
  room: string,
  kind: BearerKind,
  failed: boolean,
  log: Logger,
): Promise<Response | null> {
  const address = addressKey(request) ?? "none";
  const perMinute = FAILURES_PER_MIN[kind];
  const wait = await env.CONNECT_LIMITER.get(env.CONNECT_LIMITER.idFromName(address)).bearerAttempt(
    kind,
    failed,
    perMinute,
  );
  if (wait === 0) return null;
  log.info("bearer_throttled", { room, kind, wait });
  return error(429, "too_many_requests", `too many failed attempts; at most ${perMinute} a minute`, {
    "Retry-After": String(wait),
  });
}

async function messages(request: Request, url: URL, room: string, env: Env, log: Logger): Promise<Response> {
  if (request.method === "GET") {
    const settings = authSettings(env, log);
    if (!roomAllowed(null, room, settings.privateRooms)) {
      const who = await identify(bearerJwt(request), settings, room, log);
      if (!who.ok) return who.response;
      if (!roomAllowed(who.identity, room, settings.privateRooms)) return forbiddenRoom(room, log);
    }
    const slice = await roomStub(env, room).history(parseAfter(url.searchParams.get("after")));
    const page: HistoryPage = { room, messages: slice.messages, gap: slice.gap };
    return Response.json(page);
  }
  if (request.method !== "POST") return error(405, "method_not_allowed", "use GET or POST", { Allow: "GET, POST" });
  if (env.PUBLISH_TOKEN === undefined || env.PUBLISH_TOKEN === "") {
    return error(404, "not_found", "publishing over HTTP is not enabled");
  }
  const authorized = await bearerMatches(request.headers.get("Authorization"), env.PUBLISH_TOKEN);
  const throttled = await throttleGuesses(request, env, room, "publish", !authorized, log);
  if (throttled !== null) return throttled;
  if (!authorized) {
    log.info("publish_unauthorized", { room });
    return error(401, "unauthorized", "a valid bearer token is required", { "WWW-Authenticate": "Bearer" });
  }
  const raw = await readCapped(request, MAX_FRAME_BYTES);
  if (raw === null) return error(400, "invalid_message", `the body is over ${MAX_FRAME_BYTES} bytes`);
  const body = parseJsonObject(raw);
  if (body === null) return error(400, "bad_json", "the body must be a JSON object");
  const fields = validateMessageFields(body);
  if (!fields.ok) return error(400, fields.code, fields.message);
  const nameField = Object.hasOwn(body, "name") ? body.name : undefined;
  const name = normalizeName(typeof nameField === "string" ? nameField : null) ?? "bot";
  const message = await roomStub(env, room).post({ room, name, ...fields.value });
  log.info("published", { room, id: message.id });
  return Response.json(message, { status: 201 });
}

/** Who acts when ADMIN_TOKEN is presented: a fixed user, so `delete` frames can still say `by`. */
const ADMIN: User = { id: "admin", name: "admin" };

const ALLOW: Record<ModerationTarget["kind"], string> = {
  message: "DELETE",
  bans: "GET",
  ban: "PUT, DELETE",
  settings: "PATCH",
  stats: "GET",
};

/**
 * The moderator behind a moderation API request: ADMIN_TOKEN (compared in
 * constant time) or a host JWT with the `moderator` role, both as
 * `Authorization: Bearer`. A Response when there is none.
 */
async function moderatorOf(request: Request, env: Env, room: string, log: Logger): Promise<User | Response> {
  const header = request.headers.get("Authorization");
  if (env.ADMIN_TOKEN !== undefined && env.ADMIN_TOKEN !== "" && (await bearerMatches(header, env.ADMIN_TOKEN)))
    return ADMIN;
  const settings = authSettings(env, log);
  const bearer = bearerJwt(request);
  if (authConfigured(settings) && bearer !== null) {
    const verified = await verifyHostJwt(bearer, settings);
    if (verified.ok) {
      const { id, name, roles } = verified.identity;
      const user: User = { id, name: name ?? id, verified: true, roles };
      if (isModerator(user)) return user;
      log.info("moderation_forbidden", { room, user: id });
      return error(403, "forbidden", "this JWT does not carry the moderator role");
    }
  }
  log.info("moderation_unauthorized", { room });
  return error(401, "unauthorized", "ADMIN_TOKEN or a moderator's JWT is required as a bearer token", {
    "WWW-Authenticate": "Bearer",
  });
}

/** A JSON object body of at most MAX_FRAME_BYTES (an empty body is `{}`), or the error to answer. */
async function readObject(request: Request): Promise<Record<string, unknown> | Response> {
  const raw = await readCapped(request, MAX_FRAME_BYTES);
  if (raw === null) return error(413, "too_large", `the body is over ${MAX_FRAME_BYTES} bytes`);
  if (raw.trim() === "") return {};
  return parseJsonObject(raw) ?? error(400, "bad_json", "the body must be a JSON object");
}

async function moderation(
  request: Request,
  room: string,
  target: ModerationTarget,
  env: Env,
  config: Config,
  log: Logger,
): Promise<Response> {
  const adminToken = env.ADMIN_TOKEN !== undefined && env.ADMIN_TOKEN !== "";
  if (!adminToken && !authConfigured(authSettings(env, log))) {
    return error(404, "not_found", "moderation over HTTP is not enabled: set ADMIN_TOKEN or a JWT key");
  }
  const limited = await limitApi(request, room, env, config, log);
  if (limited !== null) return limited;
  const allow = ALLOW[target.kind];
  if (!allow.split(", ").includes(request.method)) {
    return error(405, "method_not_allowed", `use ${allow}`, { Allow: allow });
  }
  const by = await moderatorOf(request, env, room, log);
  // Only a 401 is a guess: a verified user without the role (403) knew the key.
  const throttled = await throttleGuesses(
    request,
    env,
    room,
    "moderation",
    by instanceof Response && by.status === 401,
    log,
  );
  if (throttled !== null) return throttled;
  if (by instanceof Response) return by;
  const stub = roomStub(env, room);
  switch (target.kind) {
    case "message": {
      const id = parseAfter(target.id);
      if (id === null || id < 1 || (await stub.deleteMessage(room, id, by)) === "not_found") {
        return error(404, "not_found", "this room keeps no message with that id");
      }
      return new Response(null, { status: 204 });
    }
    case "bans":
      return Response.json({ bans: await stub.bans() });
    case "ban": {
      const user = parseUserId(decodePath(target.user) ?? "");
      if (user === null) return error(400, "invalid_user", "not a user id");
      if (request.method === "DELETE") {
        await stub.unbanUser(room, user, by);
        return new Response(null, { status: 204 });
      }
      const body = await readObject(request);
      if (body instanceof Response) return body;
      const fields = validateBanFields(body);
      if (!fields.ok) return error(400, fields.code, fields.message);
      if (!(await stub.banUser(room, user, fields.value, by))) {
        return error(409, "too_many_bans", "this room holds as many bans as it can; unban someone first");
      }
      return new Response(null, { status: 204 });
    }
    case "settings": {
      const body = await readObject(request);
      if (body instanceof Response) return body;
      const fields = validateSettingsFields(body);
      if (!fields.ok) return error(400, fields.code, fields.message);
      return Response.json(await stub.updateSettings(room, fields.value));
    }
    case "stats":
      return Response.json(await stub.stats(room));
  }
}

function decodePath(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const target = route(url.pathname);
    if (target.kind === "asset") return env.ASSETS.fetch(request);
    if (target.kind === "page") return servePage(request, env.ASSETS, readConfig(env));
    if (target.kind === "not_found") return error(404, "not_found", "no such endpoint");
    const room = normalizeRoom(target.room);
    if (room === null) {
      return error(400, "invalid_room", "a room name is 1 to 64 of a-z 0-9 _ -, starting with a letter or digit");
    }
    const config = readConfig(env);
    const log = createLogger(config.logLevel, { component: "worker" });
    try {
      if (target.kind === "chat") return await connect(request, url, room, env, config, log);
      if (target.kind === "moderation") return await moderation(request, room, target.target, env, config, log);
      if (request.method === "GET" || request.method === "POST") {
        const limited = await limitApi(request, room, env, config, log);
        if (limited !== null) return limited;
      }
      return await messages(request, url, room, env, log);
    } catch (err) {
      log.error("fault", { room, path: url.pathname, error: describeError(err) });
      return error(500, "internal", "something went wrong; try again");
    }
  },
} satisfies ExportedHandler<Env>;
