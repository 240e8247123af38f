// The wire protocol (docs/PROTOCOL.md): frame types, limits, close codes and
// the validation of everything a client sends. No Workers APIs here, so the
// same module runs in the Worker, in the tests and in the browser client.

export const MAX_FRAME_BYTES = 16_384;
export const MAX_TEXT_LENGTH = 2000;
export const MAX_NAME_LENGTH = 32;
export const MAX_NONCE_LENGTH = 64;
export const MAX_ROOM_LENGTH = 64;
export const DEFAULT_ROOM = "lobby";
export const DEFAULT_HISTORY_SIZE = 100;
export const DEFAULT_RATE_BURST = 10;
export const DEFAULT_RATE_PER_SEC = 5;
/** Failed PUBLISH_TOKEN attempts one address may make in a minute; then `429` until the oldest is a minute old. */
export const PUBLISH_FAILURES_PER_MIN = 10;
/** The same for the moderation API's bearer (ADMIN_TOKEN or a moderator's JWT), counted apart. */
export const MODERATION_FAILURES_PER_MIN = 10;

// Moderation (v1.1). User ids are opaque to clients (guest `u_…`, verified
// ids derived from `sub`), so the bound is generous rather than a pattern.
export const MAX_USER_ID_LENGTH = 256;
/** A timed ban lasts at most a year; longer means "until unbanned" (omit `minutes`). */
export const MAX_BAN_MINUTES = 525_600;
export const MAX_REASON_LENGTH = 200;
/** Slow mode of more than an hour is a closed room, which PRIVATE_ROOMS or bans express better. */
export const MAX_SLOW_MODE_SECONDS = 3600;
export const MODERATOR_ROLE = "moderator";

/** A connection that draws this many `error` frames within the window is closed with 1008. */
export const MAX_ERRORS_PER_WINDOW = 20;
export const ERROR_WINDOW_MS = 60_000;

/** A socket that sent nothing, `ping` included, for this long is closed as dead (clients ping every 30 s). */
export const IDLE_TIMEOUT_MS = 60_000;
export const PING = "ping";
export const PONG = "pong";

export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  tooBig: 1009,
  serverError: 1011,
  /** v1.1: banned from this room. */
  banned: 4003,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Codes an endpoint may put in a close frame (RFC 6455 7.4): 1004-1006 and
 * 1015 are reserved and others below 3000 unassigned.
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

export type ErrorCode =
  | "bad_json"
  | "unknown_type"
  | "invalid_message"
  | "unsupported"
  | "rate_limited"
  // v1.1: not allowed to do that; no kept message with that id; posted within the slow-mode interval.
  | "forbidden"
  | "not_found"
  | "slow_mode";

export interface User {
  id: string;
  name: string;
  /** v1.1: present (and true) only for users identified by the host's JWT. */
  verified?: true;
  /** v1.1: the JWT's `roles`, on verified users only. */
  roles?: string[];
}

export interface Limits {
  history: number;
  text: number;
  name: number;
  burst: number;
  perSec: number;
  /** v1.1: seconds a non-moderator waits between messages; absent or 0 when slow mode is off. */
  slowMode?: number;
}

export interface Message {
  type: "message";
  id: number;
  ts: number;
  from: User;
  text: string;
  nonce?: string;
  /** v1.1: a tombstone. It keeps `id`, `ts` and `from`; `text` is "" and there is no `nonce`. */
  deleted?: true;
}

/**
 * A user as everyone else sees it: id, name and the verified mark. The
 * `roles` a host puts in its JWT are the user's own business (`welcome.you`),
 * not the room's: a host's roles may say more than it meant to publish.
 */
export function publicUser(user: User): User {
  return user.verified === true ? { id: user.id, name: user.name, verified: true } : { id: user.id, name: user.name };
}

/** Moderators are verified users with the `moderator` role; a guest can never be one. */
export function isModerator(user: User): boolean {
  return user.verified === true && user.roles !== undefined && user.roles.includes(MODERATOR_ROLE);
}

/** Who may delete a message: its author or a moderator. */
export function mayDelete(user: User, message: Message): boolean {
  return message.from.id === user.id || isModerator(user);
}

/**
 * The tombstone of a message: it keeps its place (`id`, `ts`, `from`) and
 * loses what was said. A stored message's text is never empty (a blank one
 * is refused), so storage can mark a tombstone with `text = ''` alone.
 */
export function tombstone(message: Message): Message {
  return { type: "message", id: message.id, ts: message.ts, from: message.from, text: "", deleted: true };
}

export interface WelcomeFrame {
  type: "welcome";
  room: string;
  you: User;
  token: string;
  online: User[];
  /**
   * v1.1: users online. This server always sends it (room.ts and part.ts
   * build it as a required field); optional here because the web client
   * reads welcomes of v1 servers too.
   */
  onlineCount?: number;
  history: Message[];
  gap: boolean;
  limits: Limits;
}

export interface PresenceFrame {
  type: "join" | "leave";
  user: User;
  ts: number;
}

export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
  /** Extension: the refused frame's `nonce`, when it had a valid one. */
  nonce?: string;
}

/** v1.1: message `id` became a tombstone; `by` is who deleted it. */
export interface DeleteFrame {
  type: "delete";
  id: number;
  by: User;
  ts: number;
}

/** v1.1: the room's settings changed (a moderator's `settings` frame or the HTTP API). */
export interface SettingsFrame {
  type: "settings";
  slowMode: number;
}

/**
 * v1.1, large rooms: above PRESENCE_LIMIT users online, the count instead of
 * `join`/`leave`, at most once a second; with `online`, the whole list once
 * the count is back at the limit or below, and `join`/`leave` resume.
 */
export interface PresenceCountFrame {
  type: "presence";
  count: number;
  online?: User[];
}

/** Frames sent to every connection of the room, and so the ones a batch may hold. */
export type BroadcastFrame = Message | PresenceFrame | DeleteFrame | SettingsFrame | PresenceCountFrame;

/** Extension: broadcasts gathered for a socket that connected with `batch=1`. */
export interface BatchFrame {
  type: "batch";
  frames: BroadcastFrame[];
}

export type ServerFrame =
  | WelcomeFrame
  | Message
  | PresenceFrame
  | ErrorFrame
  | BatchFrame
  | DeleteFrame
  | SettingsFrame
  | PresenceCountFrame;

export interface ClientMessage {
  type: "message";
  text: string;
  nonce?: string;
}

/**
 * Extension: "I have received every message up to `id`". A socket that acks
 * is closed with 1008 once it falls more than HISTORY_SIZE messages behind,
 * so a reader that stalls cannot make the room queue frames for it without
 * bound; it reconnects with `after` and catches up from history.
 */
export interface ClientAck {
  type: "ack";
  id: number;
}

/** v1.1: turn message `id` into a tombstone (its author or a moderator). */
export interface ClientDelete {
  type: "delete";
  id: number;
  nonce?: string;
}

/** What a ban says, from a `ban` frame or the body of `PUT /api/rooms/{room}/bans/{user}`. */
export interface BanRequest {
  /** Whole minutes, 1 to MAX_BAN_MINUTES; absent: until unbanned. */
  minutes?: number;
  reason?: string;
  /** Also tombstone every kept message of the user. */
  purge?: boolean;
}

/** v1.1, moderators only. */
export interface ClientBan extends BanRequest {
  type: "ban";
  user: string;
  nonce?: string;
}

/** v1.1, moderators only. */
export interface ClientUnban {
  type: "unban";
  user: string;
  nonce?: string;
}

/** A room's settings, as `PATCH /api/rooms/{room}/settings` takes and answers them. */
export interface RoomSettings {
  /** Seconds, 0 (off) to MAX_SLOW_MODE_SECONDS. */
  slowMode: number;
}

/** v1.1, moderators only. */
export interface ClientSettings extends RoomSettings {
  type: "settings";
  nonce?: string;
}

export type ClientFrame = ClientMessage | ClientAck | ClientDelete | ClientBan | ClientUnban | ClientSettings;

/** The answer of the HTTP history endpoint. */
export interface HistoryPage {
  room: string;
  messages: Message[];
  gap: boolean;
}

/** Every HTTP error body. */
export interface HttpError {
  error: string;
  message: string;
}

/** One entry of `GET /api/rooms/{room}/bans`. */
export interface BanEntry {
  user: string;
  /** Milliseconds since the epoch; null: until unbanned. */
  until: number | null;
  reason?: string;
}

/**
 * The `403` answer to a banned user's upgrade. `until` and `reason` are
 * optional additions to the `{"error":"banned"}` of the contract, so the
 * client can say why and for how long.
 */
export interface BannedError extends HttpError {
  error: "banned";
  until: number | null;
  reason?: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; code: ErrorCode; message: string; nonce?: string };

const CONTROL = /\p{Cc}/u;
// With the `u` flag a lone surrogate is one code point of category Cs; a
// well-formed pair is a single astral code point and does not match.
const LONE_SURROGATE = /\p{Cs}/u;
// v1.1 "Display names": characters that reorder or hide what is drawn next
// to a name (a U+202E in a name reversed the timestamp beside it) or make
// two different names look alike. Joiners (U+200C, U+200D) and variation
// selectors are not here: emoji sequences need them.
const BIDI_CONTROL = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const INVISIBLE = /[\u00ad\u200b\u2060\ufeff\u115f\u1160\u3164\uffa0]/u;
/** The name the HTTP publish API posts under; no one connecting may take it. */
const BOT_NAME = "bot";
const ROOM = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const DECIMAL = /^[0-9]+$/;

/** Length in Unicode code points, the unit every text limit is counted in. */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** True when a text frame's payload is over the 16 KiB frame limit. */
export function isOversized(s: string): boolean {
  if (s.length > MAX_FRAME_BYTES) return true;
  if (s.length * 3 <= MAX_FRAME_BYTES) return false;
  return new TextEncoder().encode(s).length > MAX_FRAME_BYTES;
}

/**
 * A room name as the server addresses it, or null when it is not valid:
 * 1 to 64 of `a-z 0-9 _ -`, starting with a letter or digit. Only ASCII
 * upper case is folded, so no other character can turn into a valid name.
 */
export function normalizeRoom(raw: string): string | null {
  if (raw.length < 1 || raw.length > MAX_ROOM_LENGTH || !ROOM.test(raw)) return null;
  return raw.toLowerCase();
}

/**
 * A display name after trimming, or null when it breaks a rule (the caller
 * then picks a guest name): 1 to 32 code points, well-formed, no control,
 * bidirectional formatting or invisible characters, and not `bot` in any
 * letter case.
 */
export function normalizeName(raw: string | null | undefined): string | null {
  if (typeof raw !== "string") return null;
  // Checked before trimming: trim() also strips U+FEFF, and a name that came
  // with one is refused whole rather than quietly repaired.
  if (BIDI_CONTROL.test(raw) || INVISIBLE.test(raw)) return null;
  const name = raw.trim();
  const length = codePointLength(name);
  if (length < 1 || length > MAX_NAME_LENGTH) return null;
  if (!isWellFormed(name) || CONTROL.test(name)) return null;
  if (name.toLowerCase() === BOT_NAME) return null;
  return name;
}

/** The `after` query parameter: decimal digits alone, else ignored (null). */
export function parseAfter(raw: string | null | undefined): number | null {
  if (typeof raw !== "string" || !DECIMAL.test(raw)) return null;
  return Number(raw);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// Own properties only: a key inherited from Object.prototype is not input.
function field(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function invalid(message: string): Parsed<never> {
  return { ok: false, code: "invalid_message", message };
}

function isNonce(value: unknown): value is string {
  return typeof value === "string" && codePointLength(value) <= MAX_NONCE_LENGTH;
}

/** Checks `text` and `nonce` of a message, from a socket or from the HTTP API. */
export function validateMessageFields(obj: Record<string, unknown>): Parsed<{ text: string; nonce?: string }> {
  const text = field(obj, "text");
  if (typeof text !== "string") return invalid("text must be a string");
  if (!isWellFormed(text)) return invalid("text is not well-formed Unicode");
  if (text.trim().length === 0) return invalid("text is empty");
  if (codePointLength(text) > MAX_TEXT_LENGTH) return invalid(`text is over ${MAX_TEXT_LENGTH} characters`);
  const nonce = field(obj, "nonce");
  if (nonce === undefined) return { ok: true, value: { text } };
  if (!isNonce(nonce)) return invalid(`nonce must be a string of at most ${MAX_NONCE_LENGTH} characters`);
  return { ok: true, value: { text, nonce } };
}

function isUserId(value: unknown): value is string {
  if (typeof value !== "string") return false;
  const length = codePointLength(value);
  return length >= 1 && length <= MAX_USER_ID_LENGTH && isWellFormed(value) && !CONTROL.test(value);
}

/** A user id from a URL path (`/bans/{userId}`, already percent-decoded), or null when it cannot be one. */
export function parseUserId(raw: string): string | null {
  return isUserId(raw) ? raw : null;
}

const isWholeNumber = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value);

/**
 * Checks `minutes`, `reason` and `purge` of a ban, from a `ban` frame or an
 * HTTP body. The reason is trimmed; it must then hold 1 to 200 code points,
 * well-formed, no control characters (it is shown to the banned user and
 * goes into a close frame). `purge: false` is the same as no `purge`.
 */
export function validateBanFields(obj: Record<string, unknown>): Parsed<BanRequest> {
  const value: BanRequest = {};
  const minutes = field(obj, "minutes");
  if (minutes !== undefined) {
    if (!isWholeNumber(minutes) || minutes < 1 || minutes > MAX_BAN_MINUTES) {
      return invalid(`minutes must be a whole number from 1 to ${MAX_BAN_MINUTES}; leave it out to ban until unbanned`);
    }
    value.minutes = minutes;
  }
  const reason = field(obj, "reason");
  if (reason !== undefined) {
    const trimmed = typeof reason === "string" ? reason.trim() : "";
    const length = codePointLength(trimmed);
    if (length < 1 || length > MAX_REASON_LENGTH || !isWellFormed(trimmed) || CONTROL.test(trimmed)) {
      return invalid(`reason must be text of 1 to ${MAX_REASON_LENGTH} characters without control characters`);
    }
    value.reason = trimmed;
  }
  const purge = field(obj, "purge");
  if (purge !== undefined && typeof purge !== "boolean") return invalid("purge must be true or false");
  if (purge === true) value.purge = true;
  return { ok: true, value };
}

/** Checks the body of a settings change, from a `settings` frame or `PATCH /api/rooms/{room}/settings`. */
export function validateSettingsFields(obj: Record<string, unknown>): Parsed<RoomSettings> {
  const slowMode = field(obj, "slowMode");
  if (!isWholeNumber(slowMode) || slowMode < 0 || slowMode > MAX_SLOW_MODE_SECONDS) {
    return invalid(`slowMode must be a whole number of seconds from 0 to ${MAX_SLOW_MODE_SECONDS}`);
  }
  return { ok: true, value: { slowMode } };
}

type ModerationFrame = ClientDelete | ClientBan | ClientUnban | ClientSettings;

function moderationFields(type: ModerationFrame["type"], obj: Record<string, unknown>): Parsed<ModerationFrame> {
  switch (type) {
    case "delete": {
      const id = field(obj, "id");
      if (!isWholeNumber(id) || id < 1) return invalid("delete needs an id: a whole number of 1 or more");
      return { ok: true, value: { type, id } };
    }
    case "unban":
    case "ban": {
      const user = field(obj, "user");
      if (!isUserId(user)) return invalid(`user must be a user id of 1 to ${MAX_USER_ID_LENGTH} characters`);
      if (type === "unban") return { ok: true, value: { type, user } };
      const ban = validateBanFields(obj);
      return ban.ok ? { ok: true, value: { type, user, ...ban.value } } : ban;
    }
    case "settings": {
      const settings = validateSettingsFields(obj);
      return settings.ok ? { ok: true, value: { type, ...settings.value } } : settings;
    }
  }
}

const MODERATION_TYPES: ReadonlySet<unknown> = new Set(["delete", "ban", "unban", "settings"]);

const isModerationType = (type: unknown): type is ModerationFrame["type"] => MODERATION_TYPES.has(type);

/** Parses JSON that must be an object; never throws. */
export function parseJsonObject(raw: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  return isRecord(value) ? value : null;
}

/**
 * Narrows one text frame from a client. The caller has already checked the
 * size (isOversized) and answered `ping`; everything else is decided here.
 */
export function parseClientFrame(raw: string): Parsed<ClientFrame> {
  const obj = parseJsonObject(raw);
  if (obj === null) return { ok: false, code: "bad_json", message: "a frame must be a JSON object" };
  const type = field(obj, "type");
  if (type === "ack") {
    const id = field(obj, "id");
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      return { ok: false, code: "invalid_message", message: "ack needs an id: a whole number of 0 or more" };
    }
    return { ok: true, value: { type: "ack", id } };
  }
  if (isModerationType(type)) {
    // The nonce is checked first: a refusal echoes it only when it is valid.
    const nonce = field(obj, "nonce");
    if (nonce !== undefined && !isNonce(nonce))
      return invalid(`nonce must be a string of at most ${MAX_NONCE_LENGTH} characters`);
    const parsed = moderationFields(type, obj);
    if (nonce === undefined) return parsed;
    return parsed.ok ? { ok: true, value: { ...parsed.value, nonce } } : { ...parsed, nonce };
  }
  if (type !== "message") {
    return { ok: false, code: "unknown_type", message: type === undefined ? "type is missing" : "unknown type" };
  }
  const fields = validateMessageFields(obj);
  if (fields.ok) return { ok: true, value: { type: "message", ...fields.value } };
  // A valid nonce goes back with the error, so the sender knows which of its
  // pending messages was refused.
  const nonce = field(obj, "nonce");
  return isNonce(nonce) ? { ...fields, nonce } : fields;
}

/**
 * One frame as a socket handler receives it: `"too_big"` when it is over the
 * frame limit (the socket is closed with 1009), else parsed as
 * parseClientFrame does, a binary frame being `unsupported`. The room and its
 * parts both read client frames through this one function.
 */
export function readClientFrame(data: string | ArrayBuffer): Parsed<ClientFrame> | "too_big" {
  if (typeof data === "string" ? isOversized(data) : data.byteLength > MAX_FRAME_BYTES) return "too_big";
  if (typeof data !== "string") return { ok: false, code: "unsupported", message: "binary frames are not supported" };
  return parseClientFrame(data);
}

/**
 * Why an ack is refused (an `invalid_message` error), or null when it is
 * taken: it must tell something new (above the socket's last ack) and name a
 * message the room has issued (at most `lastId`).
 */
export function ackRefusal(acked: number | null, id: number, lastId: number): string | null {
  if (acked !== null && id <= acked) return `ack ${id} is not above the last ack, ${acked}`;
  if (id > lastId) return `ack ${id} is beyond the last message, ${lastId}`;
  return null;
}
