// A large room (issue 11) for the benchmark: edge-chat with a given
// SHARD_SIZE and an ADMIN_TOKEN, so the room's stats (`GET
// /api/rooms/{room}/stats`) can say which objects hold its connections.
// Reusable by any bench tool: startSharded() starts the server, roomStats()
// reads the room, waitForParts() waits until the parts' reports add up.
import { performance } from "node:perf_hooks";
import { sleep } from "../tools/harness/wait.ts";
import { randomBytes, randomUUID } from "node:crypto";
import { fanout } from "./scenarios.ts";
import type { FanoutOptions, FanoutResult, Progress } from "./scenarios.ts";
import { startServer } from "./servers.ts";
import type { BenchServer, HostName, StartOptions } from "./servers.ts";

/** One object: SHARD_SIZE far above any count the benchmark opens. */
export const ONE_OBJECT = 100_000;

export interface ShardedServer extends BenchServer {
  shardSize: number;
  adminToken: string;
}

/** edge-chat (plain or batch clients) with SHARD_SIZE `shardSize` and a random ADMIN_TOKEN for the stats route. */
export async function startSharded(
  host: Exclude<HostName, "node">,
  shardSize: number,
  batch: boolean,
  options: StartOptions = {},
): Promise<ShardedServer> {
  const adminToken = randomBytes(24).toString("hex");
  const server = await startServer(
    { server: batch ? "edge-chat+batch" : "edge-chat", host },
    {
      ...options,
      name: options.name ?? `edge-chat-shard${shardSize}-${host}`,
      vars: { ...options.vars, SHARD_SIZE: String(shardSize), ADMIN_TOKEN: adminToken },
    },
  );
  return { ...server, shardSize, adminToken };
}

/** The part of the stats answer the benchmark reads (docs/PROTOCOL.md, "Moderation"). */
export interface RoomShape {
  connections: number;
  users: number;
  lastId: number;
  shards: number;
  /** The room's own object first; absent while the room is one object. */
  parts: { part: string; connections: number }[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The room's stats, validated; throws on any other answer. */
export async function roomStats(server: ShardedServer, room: string): Promise<RoomShape> {
  const res = await fetch(`${server.dev.url}/api/rooms/${encodeURIComponent(room)}/stats`, {
    headers: { Authorization: `Bearer ${server.adminToken}` },
    signal: AbortSignal.timeout(10_000),
  });
  const body: unknown = await res.json();
  if (!res.ok || !isRecord(body)) throw new Error(`stats of ${room}: ${res.status} ${JSON.stringify(body)}`);
  const { connections, users, lastId, shards, parts } = body;
  if (
    typeof connections !== "number" ||
    typeof users !== "number" ||
    typeof lastId !== "number" ||
    typeof shards !== "number"
  )
    throw new Error(`stats of ${room}: unexpected ${JSON.stringify(body)}`);
  const list: RoomShape["parts"] = [];
  if (Array.isArray(parts)) {
    for (const p of parts) {
      if (!isRecord(p) || typeof p.part !== "string" || typeof p.connections !== "number")
        throw new Error(`stats of ${room}: unexpected part ${JSON.stringify(p)}`);
      list.push({ part: p.part, connections: p.connections });
    }
  }
  return { connections, users, lastId, shards, parts: list };
}

/**
 * Polls the stats until they count `connections` sockets (the parts report
 * theirs to the room asynchronously) or `timeoutMs` passes; the last answer
 * either way.
 */
export async function waitForParts(
  server: ShardedServer,
  room: string,
  connections: number,
  timeoutMs = 15_000,
): Promise<RoomShape> {
  const deadline = performance.now() + timeoutMs;
  let shape = await roomStats(server, room);
  while (shape.connections !== connections && performance.now() < deadline) {
    await sleep(200);
    shape = await roomStats(server, room);
  }
  return shape;
}

/** Objects a room of `clients` connections needs at `shardSize` each: the room's own, then full parts. */
export function expectedShards(clients: number, shardSize: number): number {
  return Math.max(1, Math.ceil(clients / shardSize));
}

// ---- the large-room fan-out ---------------------------------------------------

export interface LargeResult extends Omit<FanoutResult, "scenario"> {
  scenario: "large";
  shardSize: number;
  /** The room as its stats showed it once every client had its welcome. */
  shape: RoomShape | null;
  /** Objects the room should have used: 1 when SHARD_SIZE exceeds the clients. */
  expectedShards: number;
  /** Empty when the stats showed the expected objects holding every client; else what was wrong. */
  shapeFault: string;
}

/** What is wrong with the room's shape, or "" (every client counted, as many objects as expected, none over SHARD_SIZE). */
function shapeFault(shape: RoomShape, clients: number, shardSize: number): string {
  const expected = expectedShards(clients, shardSize);
  if (shape.connections !== clients) return `stats count ${shape.connections} connections, not ${clients}`;
  if (shape.shards !== expected) return `${shape.shards} objects, not ${expected}`;
  if (expected > 1) {
    const sum = shape.parts.reduce((a, p) => a + p.connections, 0);
    if (shape.parts.length !== expected || sum !== clients)
      return `parts ${JSON.stringify(shape.parts)} do not add up to ${clients} in ${expected}`;
    const over = shape.parts.find((p) => p.connections > shardSize);
    if (over !== undefined) return `${over.part} holds ${over.connections} > SHARD_SIZE ${shardSize}`;
  }
  return "";
}

/**
 * The fan-out scenario in one room of `opts.clients` on a server started by
 * startSharded, with the senders spread over the room's objects; the room's
 * stats are read once every client is in (and checked: the room must have
 * split as SHARD_SIZE says), and what is missing after a long final drain
 * counts as lost.
 */
export async function largeFanout(
  server: ShardedServer,
  opts: Omit<FanoutOptions, "room" | "onConnected" | "spreadSenders">,
  progress: Progress,
): Promise<LargeResult> {
  const room = `large-${randomUUID().slice(0, 8)}`;
  let shape: RoomShape | null = null;
  let fault = "stats never read";
  const r = await fanout(
    server,
    {
      ...opts,
      room,
      spreadSenders: true,
      onConnected: async (fleet) => {
        const welcomed = fleet.clients.filter((c) => c.welcomeAt >= 0).length;
        try {
          shape = await waitForParts(server, room, welcomed);
          fault = shapeFault(shape, opts.clients, server.shardSize);
        } catch (err) {
          fault = err instanceof Error ? err.message : String(err);
        }
      },
    },
    progress,
  );
  return {
    ...r,
    scenario: "large",
    shardSize: server.shardSize,
    shape,
    expectedShards: expectedShards(opts.clients, server.shardSize),
    shapeFault: fault,
  };
}

/** Every correctness fault of a fan-out (large or not): 0 means nothing lost, duplicated, reordered, refused or closed. */
export function fanoutFaults(r: FanoutResult | LargeResult): number {
  return (
    r.lost +
    r.duplicates +
    r.outOfOrder +
    r.idErrors +
    r.verifyMismatches +
    r.unexpectedCloses +
    r.errorFrames +
    r.connectFailures
  );
}
