// The production side of the large-room model (bench/model.ts measures the
// costs it starts from): every object on its own thread, so the room (the
// sequencer) and each part saturate separately. Capacity, cost per million
// messages at Durable Object prices, and the p99 delivery latency that
// queueing at the room and at a part imply. Assumption throughout: an
// operation costs in production the CPU it costs in local workerd.

/** µs of CPU per operation, as bench/model.ts derives them. */
export interface Costs {
  /** A socket's message on a one-object room, before its deliveries. */
  clientSend: number;
  /** One socket's delivery (a plain frame) on the room and on a part. */
  dRoom: number;
  dPart: number;
  /** One socket's batch frame (`batch=1`, what the web client asks for), per flush. */
  perFlush: number;
  /** One event to one part over its link, both ends; `eventRoom` is the room's side. */
  event: number;
  eventRoom: number;
  /** A part's socket's message, both ends, before any event or delivery; and the part's side of it. */
  partPublish: number;
  partPublishPartSide: number;
}

/** Durable Objects pricing (Workers Paid, beyond the included amounts), from shared/LARGE-ROOMS.md. */
const PRICE = {
  requestsPerM: 0.15,
  /** Incoming WebSocket messages are billed as requests at 20:1. */
  wsPerRequest: 20,
  gbSecondsPerM: 12.5,
  gb: 0.125,
  rowsWrittenPerM: 1,
};
/** The room beats every linked part once per tick (250 ms) while messages flow. */
const BEATS_PER_SEC = 4;
/** batch=1 sockets get one frame per BATCH_MS (25 ms) window that has events. */
const WINDOWS_PER_SEC = 40;
export const MEMBERS = [1_000, 10_000, 100_000];
export const PART_SIZES = [100, 250, 500, 1_000, 2_000];
/** Soft limit of one object: about 1,000 requests (here: incoming messages) a second. */
const SOFT_LIMIT = 1_000;

export type Clients = "plain" | "batch";

export interface Shape {
  members: number;
  size: number;
  clients: Clients;
  /** Parts besides the room (0: one object). */
  parts: number;
  roomSockets: number;
  perPart: number;
}

export function shape(members: number, size: number, clients: Clients): Shape {
  const roomSockets = Math.min(members, size);
  const parts = Math.ceil(Math.max(0, members - size) / size);
  return { members, size, clients, parts, roomSockets, perPart: parts === 0 ? 0 : (members - roomSockets) / parts };
}

/** µs a second one socket costs at `rate` messages a second: a frame per message, or per window with events (Poisson). */
function socketUsPerSec(c: Costs, clients: Clients, rate: number, d: number): number {
  return clients === "plain" ? rate * d : WINDOWS_PER_SEC * (1 - Math.exp(-rate / WINDOWS_PER_SEC)) * c.perFlush;
}

/** Shares of a second the room's thread and one part's thread are busy at `rate` (sender on a part). */
export function load(c: Costs, s: Shape, rate: number): { room: number; part: number } {
  if (s.parts === 0) {
    return { room: (rate * c.clientSend + s.roomSockets * socketUsPerSec(c, s.clients, rate, c.dRoom)) / 1e6, part: 0 };
  }
  const room =
    rate * (c.partPublish - c.partPublishPartSide + s.parts * c.eventRoom) +
    s.roomSockets * socketUsPerSec(c, s.clients, rate, c.dRoom) +
    BEATS_PER_SEC * s.parts * c.eventRoom;
  const part =
    rate * (c.event - c.eventRoom + c.partPublishPartSide / s.parts) +
    s.perPart * socketUsPerSec(c, s.clients, rate, c.dPart) +
    BEATS_PER_SEC * (c.event - c.eventRoom);
  return { room: room / 1e6, part: part / 1e6 };
}

/** The highest rate where neither thread is saturated (bisection), and what limits it. */
export function capacity(c: Costs, s: Shape): { max: number; limit: "room" | "part" | "soft limit" } {
  let lo = 0;
  let hi = 100_000;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    const l = load(c, s, mid);
    if (Math.max(l.room, l.part) < 1) lo = mid;
    else hi = mid;
  }
  const l = load(c, s, lo * 0.999);
  // A part's incoming link frames (one per event) and the room's (one per publish) against the soft limit.
  if (lo > SOFT_LIMIT) return { max: SOFT_LIMIT, limit: "soft limit" };
  return { max: lo, limit: l.room >= l.part ? "room" : "part" };
}

/** Dollars per million messages at `rate` messages a second, by item. */
export function costPerMillion(
  s: Shape,
  rate: number,
): { requests: number; rows: number; duration: number; total: number } {
  // Incoming WebSocket messages per message: the client's frame, the part's
  // publish to the room, one event per part; and the beats, per second.
  const incoming = s.parts === 0 ? 1 : 2 + s.parts + (BEATS_PER_SEC * s.parts) / rate;
  const requests = (incoming / PRICE.wsPerRequest) * PRICE.requestsPerM;
  const rows = PRICE.rowsWrittenPerM;
  // A sharded room and its parts never hibernate: every object is billed all the time.
  const seconds = 1e6 / rate;
  const duration = ((s.parts + 1) * PRICE.gb * seconds * PRICE.gbSecondsPerM) / 1e6;
  return { requests, rows, duration, total: requests + rows + duration };
}

/**
 * The p-quantile of the wait in an M/D/1 queue (Poisson arrivals, service
 * `s`), by the exponential tail of heavy-traffic theory: P(W > t) ≈ ρ·e^(−2(1−ρ)t/s).
 */
export function waitQuantile(s: number, rho: number, p: number): number {
  if (rho >= 1) return Number.POSITIVE_INFINITY;
  if (rho <= 1 - p) return 0;
  return (s / (2 * (1 - rho))) * Math.log(rho / (1 - p));
}

/**
 * p99 of a delivery, ms: the wait and the work at the room, then at a part
 * (its whole loop: the last socket), for plain clients; a batch client adds
 * up to one window. Service times are the busy share per message.
 */
export function p99Ms(c: Costs, s: Shape, rate: number): number {
  const l = load(c, s, rate);
  const roomS = (l.room * 1e6) / rate;
  const room = waitQuantile(roomS, l.room, 0.99) + roomS;
  if (s.parts === 0) return room / 1000;
  const partS = (l.part * 1e6) / rate;
  return (room + waitQuantile(partS, l.part, 0.99) + partS) / 1000;
}

function money(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}
function num(n: number): string {
  return !Number.isFinite(n) ? "∞" : n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

/** The tables for BENCHMARKS.md: capacity, cost, p99. */
export function productionTables(c: Costs): string {
  const out: string[] = [];
  const header = [
    `| members | ${PART_SIZES.map((s) => `SHARD_SIZE ${s}`).join(" | ")} |`,
    `| --- | ${PART_SIZES.map(() => "---").join(" | ")} |`,
  ];
  for (const clients of ["plain", "batch"] as const) {
    out.push(
      `Capacity in production, ${clients} clients (max messages/s of the room: every object on its own thread, the sender on a part; what saturates first; parts besides the room):`,
      "",
      ...header,
    );
    for (const m of MEMBERS) {
      const cells = PART_SIZES.map((size) => {
        const s = shape(m, size, clients);
        const k = capacity(c, s);
        return `${num(k.max)} (${k.limit}; ${s.parts} parts)`;
      });
      out.push(`| ${m.toLocaleString("en")} | ${cells.join(" | ")} |`);
    }
    out.push("");
  }
  for (const rate of [10, 100]) {
    out.push(
      `Cost per million messages at ${rate} msg/s ($: requests + rows written + duration; "over": beyond the batch clients' capacity above):`,
      "",
      ...header,
    );
    for (const m of MEMBERS) {
      const cells = PART_SIZES.map((size) => {
        const s = shape(m, size, "batch");
        const k = costPerMillion(s, rate);
        const over = rate > capacity(c, s).max ? " over" : "";
        return `${money(k.total)} (${money(k.requests)} + ${money(k.rows)} + ${money(k.duration)})${over}`;
      });
      out.push(`| ${m.toLocaleString("en")} | ${cells.join(" | ")} |`);
    }
    out.push("");
  }
  const rates = [10, 25, 50, 100];
  out.push(
    "p99 delivery latency implied by queueing (ms; M/D/1 waits and work at the room and at a part, the part's whole loop; no network, no batch window):",
    "",
    `| members, SHARD_SIZE, clients | ${rates.map((r) => `${r} msg/s`).join(" | ")} |`,
    `| --- | ${rates.map(() => "---").join(" | ")} |`,
  );
  for (const m of MEMBERS) {
    for (const size of [250, 500, 1_000]) {
      for (const clients of ["plain", "batch"] as const) {
        const s = shape(m, size, clients);
        const cells = rates.map((rate) => {
          const l = load(c, s, rate);
          return Math.max(l.room, l.part) >= 1 ? "saturated" : num(p99Ms(c, s, rate));
        });
        out.push(`| ${m.toLocaleString("en")}, ${size}, ${clients} | ${cells.join(" | ")} |`);
      }
    }
  }
  return out.join("\n");
}
