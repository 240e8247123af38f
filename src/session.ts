import { MAX_ERRORS_PER_WINDOW, MODERATOR_ROLE, type User } from "./protocol.ts";
import type { Bucket } from "./ratelimit.ts";

/**
 * What a connection must keep across hibernation, stored with
 * `serializeAttachment` (which the runtime keeps beside the socket, at most
 * 2 KiB). The room's memory holds only a cache of it.
 */
export interface Session {
  room: string;
  /**
   * For a verified user, `roles` holds only the roles this chat acts on
   * (sessionRoles): the attachment has 2 KiB, and a JWT may carry 32 roles
   * of 64 characters. `welcome.you` shows the JWT's roles in full.
   */
  user: User;
  /** The key of the client's address (see address.ts), for the per-address limits. */
  address: string;
  /** The user's message bucket as of this socket's last frame: shared by the user's sockets (see quota.ts). */
  bucket: Bucket;
  /** The address's message bucket as of this socket's last frame. */
  addressBucket: Bucket;
  /**
   * When this socket's user last posted through it, for slow mode: with the
   * history ring, what rebuilds the room's PostClock after a wake (see
   * moderation.ts). Null until it posts.
   */
  lastPost: number | null;
  /** Times of the `error` frames drawn in the last minute, for the 1008 rule. */
  strikes: number[];
  /** When the client last sent a frame other than `ping` (or connected). */
  seen: number;
  /** The client asked for batched broadcasts (`batch=1`). */
  batch: boolean;
  /** The last message id the client acknowledged; null until its first `ack` (v1 clients never send one). */
  acked: number | null;
  /**
   * The room has handled this socket's departure. A socket the room closes
   * can still report its close (or an error) later, after a wake that
   * forgot everything in memory; this keeps its user from leaving twice.
   */
  departed: boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** The roles the room decides anything by; see Session.user. */
export function sessionRoles(roles: readonly string[]): string[] {
  return roles.filter((role) => role === MODERATOR_ROLE);
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");

const isBucket = (v: unknown): v is Bucket => isRecord(v) && isNumber(v.tokens) && isNumber(v.at);

/** Checks an attachment read back after a wake; null means it cannot be trusted. */
export function parseSession(value: unknown): Session | null {
  if (!isRecord(value)) return null;
  const { room, user, address, bucket, addressBucket, lastPost, strikes, seen, batch, acked, departed } = value;
  if (typeof room !== "string" || !isRecord(user) || typeof address !== "string" || !Array.isArray(strikes))
    return null;
  if (typeof user.id !== "string" || typeof user.name !== "string") return null;
  const roles: unknown = user.roles ?? [];
  if (!isStrings(roles)) return null;
  if (user.verified !== undefined && user.verified !== true) return null;
  if (!isBucket(bucket) || !isBucket(addressBucket)) return null;
  if (strikes.length > MAX_ERRORS_PER_WINDOW || !strikes.every(isNumber) || !isNumber(seen)) return null;
  return {
    room,
    user:
      user.verified === true
        ? { id: user.id, name: user.name, verified: true, roles: sessionRoles(roles) }
        : { id: user.id, name: user.name },
    address,
    bucket: { tokens: bucket.tokens, at: bucket.at },
    addressBucket: { tokens: addressBucket.tokens, at: addressBucket.at },
    lastPost: isNumber(lastPost) ? lastPost : null,
    strikes: strikes.slice(),
    seen,
    batch: batch === true,
    acked: isNumber(acked) ? acked : null,
    departed: departed === true,
  };
}
