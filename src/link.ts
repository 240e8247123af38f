// The internal protocol between a large room's sequencer (the ChatRoom named
// after the room) and its parts (the objects that hold the room's sockets
// once it outgrows one object). See docs/LARGE-ROOMS.md for the design.
//
// One ordered channel per part carries both directions. Neither direction is
// trusted to be lossless: a frame may be lost, repeated or (between two
// generations of a link) overtaken, and old and new code may talk during a
// deploy. So every frame says its version; every frame the room sends a part
// carries that part's own sequence number and stream identity, and every
// frame a part sends carries its own sequence number, so each side can drop
// repeats, hold what came early and ask again for what never came.
//
// No Workers APIs here: the sequencer, the part's stream and the model test
// that drives them through a lossy network all run in plain Node.

import type {
  ClientBan,
  ClientDelete,
  ClientSettings,
  ClientUnban,
  DeleteFrame,
  Message,
  SettingsFrame,
  User,
} from "./protocol.ts";

/** A moderation frame a part's socket sent, for the room to decide. */
export type ModerationRequest = ClientDelete | ClientBan | ClientUnban | ClientSettings;

/**
 * The version of these frames. A receiver drops frames of a version it does
 * not know and logs it; a sender of a newer version must keep understanding
 * the older one until every object runs the new code (see the deploy section
 * of docs/LARGE-ROOMS.md).
 */
export const LINK_VERSION = 1;

/**
 * Which stream of a part a frame belongs to. `epoch` counts the sequencer's
 * incarnations (stored, so it only grows); `gen` counts the streams the
 * sequencer started for this part within one epoch (a new one for every
 * attach). Sequence numbers start again at 1 in every stream.
 */
export interface StreamId {
  epoch: number;
  gen: number;
}

export function compareStreams(a: StreamId, b: StreamId): number {
  return a.epoch !== b.epoch ? a.epoch - b.epoch : a.gen - b.gen;
}

/** What the room says about presence now: the whole list while it is short, else only the count. */
export type PresenceSnapshot = { count: number; online: User[] } | { count: number; online: null };

/**
 * Events in a part's stream. `message`, `join`, `leave`, `count`, `list`
 * and `frame` (a delete or settings) go to every part in the same order;
 * `admit` and `reject` only to the part they answer, and `ban` to every part
 * or, in place of an `admit` or with a banned sender's refusal, to one.
 */
export type StreamEvent =
  | { kind: "message"; message: Message }
  | { kind: "join"; user: User; ts: number }
  | { kind: "leave"; user: User; ts: number }
  /** Above PRESENCE_LIMIT: the number of users online. */
  | { kind: "count"; count: number }
  /** Back at or below PRESENCE_LIMIT: the whole list again. */
  | { kind: "list"; count: number; online: User[] }
  /**
   * The part's upstream frame `u` (an `arrive`) is admitted: welcome that
   * socket now. `count` is the users online now: above the limit, the
   * counts every part hears may lag by up to a second, a welcome need not.
   */
  | { kind: "admit"; u: number; count: number }
  /** The part's upstream `publish` number `u` was refused. */
  | { kind: "reject"; u: number; code: RejectCode; message: string }
  /** A moderation broadcast: a tombstone (the part's history keeps it too) or new settings. */
  | { kind: "frame"; frame: DeleteFrame | SettingsFrame }
  /** A ban: close the user's sockets (and, for a guest, the guest sockets from `address`) with 4003. */
  | ({ kind: "ban" } & BanNotice);

/**
 * A ban as a part applies it: every socket of `user` and, when `address` is
 * set (a guest's ban), every guest socket from that address closes with
 * 4003 and `reason` (moderation.ts's `covers`, `banCloseReason`).
 */
export interface BanNotice {
  user: string;
  address: string | null;
  reason: string;
}

export type RejectCode = "rate_limited" | "slow_mode" | "forbidden" | "not_found";

export interface Rejection {
  u: number;
  code: RejectCode;
  message: string;
}

/** Room to part. */
export type Downstream =
  | {
      v: typeof LINK_VERSION;
      type: "sync";
      stream: StreamId;
      /** The last upstream number of this part the room has handled. */
      acked: number;
      /** The room's whole kept history (the part's ring becomes exactly this) and its last id. */
      ring: Message[];
      lastId: number;
      presence: PresenceSnapshot;
      /**
       * The room's slow mode now, in seconds (0: off). A part that attaches
       * after the last `settings` event (it restarted, or the room did) has
       * no other way to know it, and its welcomes must carry it. Absent from
       * older code: the part keeps what it knew.
       */
      slowMode?: number;
      /**
       * The bans in force that cover a socket the room knows this part
       * holds. A ban made while the part had no stream (the room restarted,
       * or the link broke) went out to the parts linked then; the part closes
       * what these cover before anything else. Absent from older code.
       */
      bans?: BanNotice[];
      /**
       * The `delete` frames the room sent for the tombstones in `ring`. The
       * part tells its welcomed sockets those it missed, once: a message it
       * delivered live that is a tombstone now. Absent from older code.
       */
      deletes?: DeleteFrame[];
      /**
       * Repeated publishes the room can no longer tell stored or not (their
       * floor is older than the kept history): their sockets must resume
       * with `after` and look for their nonce.
       */
      unknown: number[];
      /**
       * The other repeated publishes are answered by this stream's first
       * `answered` events (a message, or a reject); the part keeps their
       * nonces until then.
       */
      answered: number;
      /**
       * The part's latest refused publishes (at most the sequencer's window):
       * a refusal sent on a stream the part lost is repeated here; the part
       * answers each socket once, so one it already answered is skipped.
       */
      rejected: Rejection[];
    }
  | { v: typeof LINK_VERSION; type: "event"; stream: StreamId; seq: number; acked: number; event: StreamEvent }
  /** The last `seq` sent in this stream: catches a lost tail. */
  | { v: typeof LINK_VERSION; type: "beat"; stream: StreamId; seq: number; acked: number }
  /** The sequencer (of this epoch) does not know this part's incarnation: attach. */
  | { v: typeof LINK_VERSION; type: "reattach"; epoch: number };

/** What a part asks of the room, numbered `u` in the part's upstream order. */
export type UpstreamOp =
  /** `address`: the socket's address key, for the room's per-address socket limit; absent from older code. */
  | { kind: "arrive"; user: User; address?: string }
  | { kind: "depart"; userId: string; address?: string }
  /** No time: a message's `ts` is the sequencer's clock, so it never goes backwards in id order. */
  /** `address`: the sender's address key, for the room's per-address bucket. */
  | { kind: "publish"; from: User; text: string; nonce?: string; address?: string }
  /**
   * `from` carries its roles: the room decides whether it may. `address`:
   * the sender's address key, for a ban of its address; absent from older code.
   */
  | { kind: "moderate"; from: User; frame: ModerationRequest; address?: string };

/**
 * A publish an attach repeats. `floor` is the part's last delivered id when
 * the publish was first sent (null before its first sync): if the room
 * stored it, its id is above `floor`, so the room can tell for sure whether
 * it did while `floor` is still within the kept history.
 */
export interface PendingPublish {
  u: number;
  op: Extract<UpstreamOp, { kind: "publish" | "moderate" }>;
  floor: number | null;
}

/** How many of a part's open sockets come from one address, as an attach reports it. */
export interface PartAddress {
  address: string;
  sockets: number;
}

/** A part's own user count, as an attach reports it. */
export interface PartUser {
  user: User;
  sockets: number;
  /**
   * Where those sockets come from, with counts: the room bans a guest's
   * address with it, as it does for its own sockets. Absent from older code.
   */
  addresses?: PartAddress[];
}

/** Part to room. */
export type Upstream =
  | {
      v: typeof LINK_VERSION;
      type: "attach";
      part: string;
      /** This instance of the part: a new one after an eviction, so numbers from an old instance never match. */
      incarnation: string;
      /** Counts this incarnation's attaches: a late copy of an older one is ignored. */
      n: number;
      /** Everything up to this upstream number is in this attach: the room handles none of them again. */
      upTo: number;
      /** The last message id the part delivered to its sockets; null before its first sync. */
      lastId: number | null;
      /** The users of every open socket of the part, welcomed or waiting. */
      users: PartUser[];
      /** The addresses of every open socket of the part with counts; absent from older code. */
      addresses?: PartAddress[];
      /** Publishes not yet acknowledged, with their numbers: the room drops those it already stored. */
      pending: PendingPublish[];
    }
  | { v: typeof LINK_VERSION; type: "op"; part: string; incarnation: string; u: number; op: UpstreamOp }
  /** The part is missing `seq` and on in `stream`. */
  | { v: typeof LINK_VERSION; type: "refill"; part: string; incarnation: string; stream: StreamId; from: number };

/** The key stored with a message so a publish repeated after a sequencer restart is recognised. */
export function originOf(part: string, incarnation: string, u: number): string {
  return `${part}/${incarnation}/${u}`;
}
