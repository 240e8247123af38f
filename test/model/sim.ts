// A large room at model level: the real sequencer, roster and part streams
// (src/sequencer.ts, src/roster.ts, src/stream.ts), wired through a simulated
// network that loses, repeats, delays and reorders internal frames, with
// parts and the sequencer evicted at random. Simulated clients check every
// frame they get against the contract as they get it.

import type { Downstream, Upstream } from "../../src/link.ts";
import {
  tombstone,
  type BroadcastFrame,
  type DeleteFrame,
  type Message,
  type PresenceCountFrame,
  type User,
} from "../../src/protocol.ts";
import { Roster } from "../../src/roster.ts";
import { Sequencer, type Decide, type Store } from "../../src/sequencer.ts";
import { PartStream, type PartAction } from "../../src/stream.ts";
import { StrikeGate } from "../../src/strikes.ts";
import { seeded as random } from "../../tools/harness/random.ts";

export class MemoryStore implements Store {
  readonly #size: number;
  /** Every message ever stored, as it was stored: the truth clients are checked against. */
  readonly log: Message[] = [];
  /** The `delete` frames of the messages that became tombstones, by id. */
  readonly deleted = new Map<number, DeleteFrame>();
  readonly #origins = new Map<number, string>();

  constructor(size: number) {
    this.#size = size;
  }

  get lastId(): number {
    return this.log.length;
  }

  ring(): Message[] {
    return this.log.slice(-this.#size).map((m) => (this.deleted.has(m.id) ? tombstone(m) : m));
  }

  deletes(): DeleteFrame[] {
    return this.log
      .slice(-this.#size)
      .flatMap((m) => this.deleted.get(m.id) ?? [])
      .map((d) => ({ ...d }));
  }

  /** Tombstones kept message `id` (as History.erase does); null when it is not kept or already one. */
  erase(id: number, by: User, ts: number): DeleteFrame | null {
    if (id <= this.lastId - this.#size || id > this.lastId || this.deleted.has(id)) return null;
    const frame: DeleteFrame = { type: "delete", id, by, ts };
    this.deleted.set(id, frame);
    return frame;
  }

  hasOrigin(origin: string): boolean {
    for (const m of this.ring()) if (this.#origins.get(m.id) === origin) return true;
    return false;
  }

  append(from: User, text: string, nonce: string | undefined, ts: number, origin: string | null): Message {
    const message: Message = { type: "message", id: this.log.length + 1, ts, from, text };
    if (nonce !== undefined) message.nonce = nonce;
    this.log.push(message);
    if (origin !== null) this.#origins.set(message.id, origin);
    return message;
  }
}

export interface SimOptions {
  parts: number;
  users: number;
  historySize: number;
  presenceLimit: number;
  window: number;
  steps: number;
  /** Chances per internal frame. */
  drop: number;
  duplicate: number;
  /** Chances per step. */
  evictPart: number;
  evictRoom: number;
  /** A socket sends a burst of messages the room mostly refuses, usually enough to close it with 1008. */
  flood: number;
  /** A moderator changes the room's slow mode. */
  settings: number;
  /** A moderator deletes a kept message. */
  deletes: number;
  /** A moderator bans a user (for good: the schedule never unbans). */
  bans: number;
  /**
   * Sees every internal frame as it is delivered, and every eviction: to
   * debug a failing seed, run it alone with a trace that prints (FULL=1 in
   * the environment keeps whole frames).
   */
  trace?: (line: string) => void;
}

type Frame = BroadcastFrame | PresenceCountFrame;

/** One client socket, from its upgrade to its close, and what it saw. */
class Session {
  readonly id: number;
  readonly user: User;
  readonly after: number | null;
  readonly part: string;
  open = true;
  welcomed = false;
  /** The id the next live message must have; null until the welcome. */
  next: number | null = null;
  listed = true;
  online = new Map<string, User>();
  count = 0;
  /** Slow mode as its welcome and the settings frames since told it. */
  slowMode = 0;
  /** The ids it was shown, and whether it knows each one is deleted (a tombstone, or a `delete` frame). */
  readonly shown = new Map<number, boolean>();
  /** Set by a welcome with `gap`: the first id it had; earlier ones are missed for good. */
  gapFrom: number | null = null;
  /** Nonces this socket sent, and how many answers (echo or error) each got. */
  readonly answers = new Map<string, number>();
  /** As the part keeps them: its strikes, and what waits for the room's answers (strikes.ts). */
  readonly gate = new StrikeGate<{ text: string; nonce: string }>();
  /** Closed by its 20th error: nothing it had not seen answered by then may ever be stored. */
  struckOut = false;

  constructor(id: number, user: User, after: number | null, part: string) {
    this.id = id;
    this.user = user;
    this.after = after;
    this.part = part;
  }
}

interface Packet {
  at: number;
  to: "room" | string;
  /**
   * The link: the room's epoch for frames to the room, the part's
   * incarnation and the room's epoch for frames to a part. A packet of a link
   * that was replaced is lost with it (RoomPart drops what an old link still
   * delivers once the new room has dialled it).
   */
  link: string;
  /** For frames to the room: the part instance that sent it, lost with it when it is evicted. */
  from?: { part: string; incarnation: string };
  frame: Upstream | Downstream;
}

interface Part {
  stream: PartStream;
  sockets: Map<number, Session>;
  welcomed: Set<number>;
}

export class Sim {
  readonly #rnd: () => number;
  readonly #o: SimOptions;
  readonly store: MemoryStore;
  readonly violations: string[] = [];
  now = 1_000_000;
  #epoch = 1;
  /** The room's slow mode, stored: it survives the room's evictions. */
  #slowMode = 0;
  /** Banned users and the last id stored before their ban, stored: they survive the room's evictions. */
  readonly #banned = new Map<string, number>();
  #roster!: Roster;
  #seq!: Sequencer;
  readonly #detached = new Map<string, number>();
  readonly #parts = new Map<string, Part>();
  #incarnations = 0;
  #net: Packet[] = [];
  #lossy = true;
  #nextSocket = 1;
  #nextText = 1;
  readonly sessions: Session[] = [];
  /** Each user's last seen id, for its next connect's `after`. */
  readonly #seen = new Map<string, number>();
  readonly stats = {
    published: 0,
    rejected: 0,
    welcomes: 0,
    gaps: 0,
    partEvictions: 0,
    roomEvictions: 0,
    struckOut: 0,
    settings: 0,
    deletes: 0,
    bans: 0,
    dropped: 0,
    duplicated: 0,
  };

  constructor(seed: number, options: SimOptions) {
    this.#rnd = random(seed);
    this.#o = options;
    this.store = new MemoryStore(options.historySize);
    this.#startRoom();
  }

  #pick<T>(list: readonly T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(this.#rnd() * list.length)];
  }

  #fail(what: string): void {
    if (this.violations.length < 20) this.violations.push(`t=${this.now}: ${what}`);
  }

  #startRoom(): void {
    this.#roster = new Roster(this.#o.presenceLimit, 1000);
    // Texts with "!" stand for whatever the room refuses (rate limits, slow mode, bans).
    const decide: Decide = (op) =>
      op.text.includes("!") ? { ok: false, code: "rate_limited", message: "too many" } : { ok: true };
    this.#seq = new Sequencer(this.#epoch, this.store, this.#roster, decide, {
      window: this.#o.window,
      beats: 3,
      slowMode: () => this.#slowMode,
      banned: (user) => (this.#banned.has(user.id) ? { user: user.id, address: null, reason: "banned" } : null),
    });
    this.#detached.clear();
  }

  // ---- the network -------------------------------------------------------

  #post(to: string, link: string, frame: Upstream | Downstream, from?: Packet["from"]): void {
    // Frames are copied as a socket would: no object is shared between ends.
    const copy = () => JSON.parse(JSON.stringify(frame)) as Upstream | Downstream;
    if (this.#lossy && this.#rnd() < this.#o.drop) {
      this.stats.dropped++;
      return;
    }
    const delay = () => 1 + Math.floor(this.#rnd() * (this.#lossy ? 40 : 5));
    this.#net.push({ at: this.now + delay(), to, link, frame: copy(), from });
    if (this.#lossy && this.#rnd() < this.#o.duplicate) {
      this.stats.duplicated++;
      this.#net.push({ at: this.now + delay(), to, link, frame: copy(), from });
    }
  }

  #deliverDue(): void {
    // Reordering comes from the random delays; within the lossless settle
    // phase a link keeps its order, as a WebSocket does.
    const due = this.#net.filter((p) => p.at <= this.now).sort((a, b) => a.at - b.at);
    this.#net = this.#net.filter((p) => p.at > this.now);
    for (const p of due) {
      this.#o.trace?.(
        `t=${this.now} ${p.from?.part ?? "room"}(${p.from?.incarnation ?? p.link})->${p.to}(${p.link}) ${JSON.stringify(
          p.frame,
        )
          .replace(/"ring":\[[^\]]*\]/, '"ring":[…]')
          .slice(0, process.env.FULL ? 100000 : 400)}`,
      );
      if (p.to === "room") {
        if (p.link !== String(this.#epoch)) continue;
        if (p.from !== undefined && this.#parts.get(p.from.part)?.stream.incarnation !== p.from.incarnation) continue;
        for (const s of this.#seq.receive(p.frame as Upstream, this.now)) this.#toPart(s.part, s.frame);
      } else {
        const part = this.#parts.get(p.to);
        if (part === undefined || this.#linkOf(part) !== p.link) continue;
        this.#act(p.to, part, part.stream.receive(p.frame as Downstream, this.now));
        this.#release(p.to, part);
      }
    }
  }

  #toPart(name: string, frame: Downstream): void {
    const part = this.#parts.get(name);
    if (part !== undefined) this.#post(name, this.#linkOf(part), frame);
  }

  #linkOf(part: Part): string {
    return `${part.stream.incarnation}@${this.#epoch}`;
  }

  // ---- parts ---------------------------------------------------------------

  #part(name: string): Part {
    const existing = this.#parts.get(name);
    if (existing !== undefined) return existing;
    const stream = new PartStream(name, `i${++this.#incarnations}`, {
      historySize: this.#o.historySize,
      presenceLimit: this.#o.presenceLimit,
      retryMs: 100,
      holdLimit: this.#o.window,
    });
    const part: Part = { stream, sockets: new Map(), welcomed: new Set() };
    this.#parts.set(name, part);
    this.#act(name, part, stream.attach(this.now));
    return part;
  }

  #act(name: string, part: Part, actions: PartAction[]): void {
    for (const a of actions) {
      switch (a.kind) {
        case "up":
          this.#post("room", String(this.#epoch), a.frame, { part: name, incarnation: part.stream.incarnation });
          break;
        case "welcome": {
          const s = part.sockets.get(a.socket);
          if (s === undefined) break;
          part.welcomed.add(a.socket);
          this.#welcome(s, a.history, a.gap, a.online, a.onlineCount);
          s.slowMode = a.slowMode;
          break;
        }
        case "deliver":
          for (const id of part.welcomed) {
            const s = part.sockets.get(id);
            if (s !== undefined) this.#frame(s, a.frame);
          }
          break;
        case "error": {
          const s = part.sockets.get(a.socket);
          if (s === undefined) break;
          if (a.nonce === undefined || !s.answers.has(a.nonce))
            this.#fail(`socket ${s.id}: error for a nonce it never sent`);
          else s.answers.set(a.nonce, (s.answers.get(a.nonce) ?? 0) + 1);
          this.stats.rejected++;
          if (!s.gate.strike(this.now)) break;
          // The 20th error: the part closes the socket, as RoomPart does.
          s.struckOut = true;
          this.stats.struckOut++;
          this.#ended(part, s);
          this.#act(name, part, part.stream.close(s.id, this.now));
          break;
        }
        case "close": {
          const s = part.sockets.get(a.socket);
          if (s !== undefined) this.#ended(part, s);
          break;
        }
        case "ban":
          // As RoomPart does: every socket the ban covers closes, and departs.
          for (const s of Array.from(part.sockets.values())) {
            if (s.user.id !== a.user) continue;
            this.#ended(part, s);
            this.#act(name, part, part.stream.close(s.id, this.now));
          }
          break;
      }
    }
  }

  /** A frame from a client, through its gate as the part reads it. */
  #read(name: string, part: Part, s: Session, text: string, nonce: string): void {
    const frame = s.gate.arrive({ text, nonce }, nonce, part.stream.owed(s.id), this.now);
    if (frame !== null) this.#act(name, part, part.stream.publish(s.id, frame.text, frame.nonce, this.now));
  }

  /** Reads the frames that waited for the room's answers, as RoomPart does after each frame from its room. */
  #release(name: string, part: Part): void {
    for (const s of part.sockets.values()) {
      for (let next = s.gate.next(part.stream.owed(s.id), this.now); next !== undefined && s.open; ) {
        if (next.kind === "frame")
          this.#act(name, part, part.stream.publish(s.id, next.frame.text, next.frame.nonce, this.now));
        else
          this.#act(name, part, [
            { kind: "error", socket: s.id, code: "rate_limited", message: "dropped", nonce: next.nonce ?? "" },
          ]);
        next = s.open ? s.gate.next(part.stream.owed(s.id), this.now) : undefined;
      }
    }
  }

  #ended(part: Part, s: Session): void {
    s.open = false;
    part.sockets.delete(s.id);
    part.welcomed.delete(s.id);
  }

  // ---- clients -------------------------------------------------------------

  #welcome(s: Session, history: Message[], gap: boolean, online: User[], onlineCount: number): void {
    this.stats.welcomes++;
    if (gap) this.stats.gaps++;
    if (s.welcomed) this.#fail(`socket ${s.id}: a second welcome`);
    s.welcomed = true;
    for (let i = 1; i < history.length; i++) {
      if (history[i]!.id !== history[i - 1]!.id + 1) this.#fail(`socket ${s.id}: history not consecutive`);
    }
    for (const m of history) this.#check(s, m);
    const first = history[0]?.id;
    if (s.after !== null) {
      const seamless = first === undefined || first === s.after + 1;
      if (!gap && !seamless && first > s.after + 1)
        this.#fail(`socket ${s.id}: history after ${s.after} starts at ${first} without gap`);
      if (gap && first !== undefined && first <= s.after + 1)
        this.#fail(`socket ${s.id}: false gap after ${s.after} (history from ${first})`);
      if (gap && first === undefined && s.after <= this.store.lastId)
        this.#fail(`socket ${s.id}: false gap with empty history`);
    }
    if (gap) s.gapFrom = first ?? this.store.lastId + 1;
    const last = history.at(-1)?.id;
    s.next = last !== undefined ? last + 1 : s.after === null || gap ? 1 : s.after + 1;
    if (history.length > 0 && s.after !== null && !gap) {
      // Resumed exactly: the ids go on from `after`.
      if (first !== s.after + 1) this.#fail(`socket ${s.id}: resume after ${s.after} starts at ${first}`);
    }
    s.count = onlineCount;
    s.listed = onlineCount <= this.#o.presenceLimit;
    s.online = new Map(online.map((u) => [u.id, u] as const));
    if (!s.online.has(s.user.id)) this.#fail(`socket ${s.id}: welcome.online lacks its own user`);
    if (s.listed && online.length !== onlineCount)
      this.#fail(`socket ${s.id}: welcome lists ${online.length} of ${onlineCount}`);
    if (online.length > this.#o.presenceLimit)
      this.#fail(`socket ${s.id}: welcome lists ${online.length} above the limit`);
  }

  #check(s: Session, m: Message): void {
    const stored = this.store.log[m.id - 1];
    // Shown as stored, or as its tombstone once it is one.
    const truth =
      m.deleted === true && this.store.deleted.has(m.id) && stored !== undefined ? tombstone(stored) : stored;
    if (
      truth === undefined ||
      truth.text !== m.text ||
      truth.from.id !== m.from.id ||
      truth.nonce !== m.nonce ||
      truth.deleted !== m.deleted
    ) {
      this.#fail(`socket ${s.id}: message ${m.id} differs from what was stored`);
    }
    s.shown.set(m.id, m.deleted === true);
    this.#seen.set(s.user.id, Math.max(this.#seen.get(s.user.id) ?? 0, m.id));
    // A tombstone has no nonce. A sender whose message was deleted while its
    // part had no stream, before the echo reached it, is answered by the
    // tombstone, as a client resuming on one object would be (known
    // difference: one object's socket always sees the echo first; see
    // docs/LARGE-ROOMS.md).
    const nonce = m.deleted === true ? stored?.nonce : m.nonce;
    if (nonce !== undefined && s.answers.has(nonce)) s.answers.set(nonce, (s.answers.get(nonce) ?? 0) + 1);
  }

  #frame(s: Session, f: Frame): void {
    switch (f.type) {
      case "message":
        if (f.id !== s.next) this.#fail(`socket ${s.id}: got message ${f.id}, expected ${s.next}`);
        s.next = f.id + 1;
        this.#check(s, f);
        break;
      case "join":
        if (!s.listed) this.#fail(`socket ${s.id}: join while counting`);
        if (s.online.has(f.user.id)) this.#fail(`socket ${s.id}: join for ${f.user.id}, already present`);
        s.online.set(f.user.id, f.user);
        s.count = s.online.size;
        break;
      case "leave":
        if (!s.listed) this.#fail(`socket ${s.id}: leave while counting`);
        if (!s.online.has(f.user.id)) this.#fail(`socket ${s.id}: leave for ${f.user.id}, not present`);
        if (f.user.id === s.user.id) this.#fail(`socket ${s.id}: told that its own user left`);
        s.online.delete(f.user.id);
        s.count = s.online.size;
        break;
      case "presence":
        if (f.online !== undefined) {
          if (f.count > this.#o.presenceLimit) this.#fail(`socket ${s.id}: a list above the limit`);
          s.listed = true;
          s.online = new Map(f.online.map((u) => [u.id, u] as const));
        } else {
          if (f.count <= this.#o.presenceLimit) this.#fail(`socket ${s.id}: a bare count at or below the limit`);
          s.listed = false;
        }
        s.count = f.count;
        break;
      case "settings":
        s.slowMode = f.slowMode;
        break;
      case "delete": {
        const truth = this.store.deleted.get(f.id);
        if (truth === undefined || truth.by.id !== f.by.id || truth.ts !== f.ts)
          this.#fail(`socket ${s.id}: delete ${f.id} that was not made`);
        if (s.shown.get(f.id) === true) this.#fail(`socket ${s.id}: told twice that ${f.id} is deleted`);
        s.shown.set(f.id, true);
        break;
      }
      default: {
        const unexpected: never = f;
        this.#fail(`socket ${s.id}: unexpected ${JSON.stringify(unexpected)}`);
      }
    }
  }

  // ---- the schedule ----------------------------------------------------------

  #connect(): void {
    const u = Math.floor(this.#rnd() * this.#o.users);
    const user: User = { id: `u${u}`, name: `user${u}` };
    // The room refuses a banned user's upgrade before any part sees it.
    if (this.#banned.has(user.id)) return;
    const name = `p${Math.floor(this.#rnd() * this.#o.parts)}`;
    const part = this.#part(name);
    const seen = this.#seen.get(user.id);
    // Most reconnects resume; some start over.
    const after = seen !== undefined && this.#rnd() < 0.8 ? seen : null;
    const s = new Session(this.#nextSocket++, user, after, name);
    this.sessions.push(s);
    part.sockets.set(s.id, s);
    this.#act(name, part, part.stream.open(s.id, user, after, this.now));
  }

  #close(): void {
    const open = this.sessions.filter((s) => s.open);
    const s = this.#pick(open);
    if (s === undefined) return;
    const part = this.#parts.get(s.part);
    if (part === undefined) return;
    this.#ended(part, s);
    this.#act(s.part, part, part.stream.close(s.id, this.now));
  }

  #publish(): void {
    const s = this.#pick(this.sessions.filter((x) => x.open));
    if (s === undefined) return;
    const part = this.#parts.get(s.part);
    if (part === undefined) return;
    this.#say(part, s, this.#rnd() < 0.1);
  }

  #say(part: Part, s: Session, refused: boolean): void {
    const n = this.#nextText++;
    const text = refused ? `refuse ${n}!` : `text ${n}`;
    const nonce = `n${n}`;
    s.answers.set(nonce, 0);
    this.stats.published++;
    this.#read(s.part, part, s, text, nonce);
  }

  /** A burst at once from one welcomed socket, mostly refused: often past its 20th error, with more behind it. */
  #flood(): void {
    const s = this.#pick(this.sessions.filter((x) => x.open && x.welcomed));
    const part = s === undefined ? undefined : this.#parts.get(s.part);
    if (s === undefined || part === undefined) return;
    const n = 16 + Math.floor(this.#rnd() * 16);
    for (let i = 0; i < n && s.open; i++) this.#say(part, s, this.#rnd() < 0.85);
  }

  /** A moderator sets slow mode (sometimes to what it was): the room stores it and tells every part in order. */
  #settings(): void {
    this.stats.settings++;
    this.#slowMode = this.#pick([0, 5, 30]) ?? 0;
    const sends = this.#seq.announce({ kind: "frame", frame: { type: "settings", slowMode: this.#slowMode } });
    for (const s of sends) this.#toPart(s.part, s.frame);
  }

  /** A moderator deletes a kept message (sometimes one already deleted: nothing happens): every part hears of it in order. */
  #delete(): void {
    const id = this.store.lastId - Math.floor(this.#rnd() * this.#o.historySize);
    const frame = this.store.erase(id, { id: "mod", name: "mod" }, this.now);
    if (frame === null) return;
    this.stats.deletes++;
    for (const s of this.#seq.announce({ kind: "frame", frame })) this.#toPart(s.part, s.frame);
  }

  /** A moderator bans a user: the room stores it and tells every linked part in order; a part without a link learns it from its sync. */
  #ban(): void {
    const u = Math.floor(this.#rnd() * this.#o.users);
    if (this.#banned.has(`u${u}`)) return;
    this.stats.bans++;
    this.#banned.set(`u${u}`, this.store.lastId);
    for (const s of this.#seq.announce({ kind: "ban", user: `u${u}`, address: null, reason: "banned" }))
      this.#toPart(s.part, s.frame);
  }

  #evictPart(): void {
    const name = this.#pick(Array.from(this.#parts.keys()));
    if (name === undefined) return;
    this.#o.trace?.(`t=${this.now} EVICT ${name}`);
    const part = this.#parts.get(name)!;
    this.stats.partEvictions++;
    for (const s of part.sockets.values()) s.open = false;
    this.#parts.delete(name);
    // The room sees its link close.
    this.#seq.detach(name);
    this.#detached.set(name, this.now);
  }

  #evictRoom(): void {
    this.stats.roomEvictions++;
    this.#o.trace?.(`t=${this.now} EVICT ROOM`);
    this.#epoch++;
    this.#startRoom();
    // Every part sees its link close and the room dial again.
    for (const [name, part] of this.#parts) this.#act(name, part, part.stream.attach(this.now));
  }

  #tick(): void {
    for (const [name, at] of this.#detached) {
      if (this.now - at < 300) continue;
      this.#detached.delete(name);
      for (const s of this.#seq.drop(name, this.now)) this.#toPart(s.part, s.frame);
    }
    for (const s of this.#seq.tick(this.now)) this.#toPart(s.part, s.frame);
    for (const [name, part] of this.#parts) this.#act(name, part, part.stream.tick(this.now));
  }

  #step(): void {
    this.now += 1 + Math.floor(this.#rnd() * 20);
    const r = this.#rnd();
    if (r < 0.25) this.#connect();
    else if (r < 0.4) this.#close();
    else if (r < 0.8) this.#publish();
    else if (r < 0.8 + this.#o.evictPart) this.#evictPart();
    else if (r < 0.8 + this.#o.evictPart + this.#o.evictRoom) this.#evictRoom();
    else if (r < 0.8 + this.#o.evictPart + this.#o.evictRoom + this.#o.flood) this.#flood();
    else if (r < 0.8 + this.#o.evictPart + this.#o.evictRoom + this.#o.flood + this.#o.settings) this.#settings();
    else if (r < 0.8 + this.#o.evictPart + this.#o.evictRoom + this.#o.flood + this.#o.settings + this.#o.deletes)
      this.#delete();
    else if (
      r <
      0.8 + this.#o.evictPart + this.#o.evictRoom + this.#o.flood + this.#o.settings + this.#o.deletes + this.#o.bans
    )
      this.#ban();
    this.#deliverDue();
    this.#tick();
  }

  /** Runs the random schedule, then lets the network settle without loss and checks the end state. */
  run(): void {
    for (let i = 0; i < this.#o.steps; i++) this.#step();
    this.#lossy = false;
    // Long enough for every retry, grace period and held-back count.
    const end = this.now + 5_000;
    while (this.now < end) {
      this.now += 10;
      this.#deliverDue();
      this.#tick();
    }
    if (this.#net.length > 0) this.#fail(`${this.#net.length} frames still in flight after settling`);
    this.#checkSettled();
  }

  #checkSettled(): void {
    for (const s of this.sessions) {
      if (!s.struckOut) continue;
      for (const [nonce, n] of s.answers) {
        const stored = n === 0 ? this.store.log.find((m) => m.nonce === nonce) : undefined;
        if (stored !== undefined)
          this.#fail(
            `socket ${s.id}: message ${stored.id} (${nonce}) stored after the socket was closed at its 20th error`,
          );
      }
    }
    // Nothing a banned user sent is stored after its ban, and none of its sockets is open.
    for (const m of this.store.log) {
      const floor = this.#banned.get(m.from.id);
      if (floor !== undefined && m.id > floor) this.#fail(`message ${m.id} of ${m.from.id} stored after its ban`);
    }
    for (const s of this.sessions)
      if (s.open && this.#banned.has(s.user.id)) this.#fail(`socket ${s.id} of banned ${s.user.id} still open`);
    const open = this.sessions.filter((s) => s.open);
    const truth = new Map<string, User>();
    for (const s of open) {
      truth.set(s.user.id, s.user);
      if (!s.welcomed) this.#fail(`socket ${s.id}: never welcomed`);
      if (s.next !== this.store.lastId + 1)
        this.#fail(`socket ${s.id}: saw up to ${(s.next ?? 1) - 1} of ${this.store.lastId}`);
      for (const [nonce, n] of s.answers) {
        if (n === 1) continue;
        // Its own message among those a welcome said were gone for good.
        const stored = this.store.log.find((m) => m.nonce === nonce);
        if (n === 0 && stored !== undefined && s.gapFrom !== null && stored.id < s.gapFrom) continue;
        this.#fail(`socket ${s.id}: ${n} answers to ${nonce}`);
      }
    }
    if (this.#roster.count !== truth.size) this.#fail(`roster counts ${this.#roster.count}, truly ${truth.size}`);
    const listed = truth.size <= this.#o.presenceLimit;
    for (const s of open) {
      if (s.count !== truth.size) this.#fail(`socket ${s.id}: count ${s.count}, truly ${truth.size}`);
      if (s.slowMode !== this.#slowMode) this.#fail(`socket ${s.id}: slow mode ${s.slowMode}, truly ${this.#slowMode}`);
      // Every kept tombstone of a message it was shown, it knows. (One that
      // left the history before its part re-attached cannot be told: see
      // docs/LARGE-ROOMS.md.)
      for (const { id } of this.store.deletes())
        if (s.shown.get(id) === false) this.#fail(`socket ${s.id}: never told that ${id} is deleted`);
      if (s.listed !== listed) this.#fail(`socket ${s.id}: listed ${s.listed} with ${truth.size} online`);
      if (listed) {
        const ids = Array.from(s.online.keys()).sort().join(",");
        const want = Array.from(truth.keys()).sort().join(",");
        if (ids !== want) this.#fail(`socket ${s.id}: online ${ids}, truly ${want}`);
      }
    }
  }
}
