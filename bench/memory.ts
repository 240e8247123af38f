// `npm run bench -- --memory`: what an idle connection costs a Worker isolate
// (the room's Durable Object included), split into the isolate's JS heap (V8,
// read through workerd's inspector: Runtime.getHeapUsage after a forced GC)
// and the runtime's resident memory (RSS of workerd, which also holds each
// socket's native state, its attachment and its send queue). The platform's
// 128 MB limit is on the isolate; RSS is what this machine pays.
//
// - idle: N clients connected in batches of 100 (not a storm), every join
//   delivered, then GC and a reading, for N in --memory-steps; the cost per
//   connection is the least-squares slope over the steps. One heap snapshot
//   at the first and the last step of edge-chat (plain) gives what the extra
//   bytes are (by constructor, strings and arrays apart).
// - worst: edge-chat's worst case for one object: a full history of
//   HISTORY_MESSAGES messages of MAX_TEXT characters (every welcome carries
//   all of it) and a storm of --memory-storm clients at once (each welcome
//   also carries an `online` list of everyone already there), sampling the
//   heap and RSS throughout; the peak is what a part must fit in 128 MB.
//
// Bare Miniflare only (one workerd, no dev proxy), on loopback; each server
// is stopped by its process group before the next one starts.
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Cdp } from "./cdp.ts";
import { HISTORY_MESSAGES, TEXT_PREFIX } from "./fixture.ts";
import { Fleet } from "./load.ts";
import type { Target } from "./load.ts";
import { isEdgeChat, startServer } from "./servers.ts";
import type { BenchServer, ServerName } from "./servers.ts";
import type { Progress } from "./scenarios.ts";
import { freePort } from "../tools/harness/devserver.ts";
import { RssSampler, rssKiB } from "../tools/harness/proc.ts";
import { sleep, waitUntil } from "../tools/harness/wait.ts";

/** The longest text the protocol accepts (MAX_TEXT_LENGTH): the worst case's history. */
export const MAX_TEXT = 2000;
const CONNECT_BATCH = 100;

export interface MemoryPoint {
  clients: number;
  heapUsedKiB: number;
  heapTotalKiB: number;
  /** The runtime's C++ objects on V8's heap (cppgc): the API objects behind sockets, requests, … */
  embedderKiB: number;
  rssKiB: number;
  anonKiB: number;
}

export interface HeapGroup {
  name: string;
  count: number;
  bytes: number;
}

export interface MemoryResult {
  scenario: "memory";
  server: ServerName;
  points: MemoryPoint[];
  heapKiBPerConnection: number;
  embedderKiBPerConnection: number;
  rssKiBPerConnection: number;
  /** Heap snapshot difference between the first and the last step, largest first (edge-chat plain only). */
  breakdown: HeapGroup[];
}

export interface WorstResult {
  scenario: "memory-worst";
  server: ServerName;
  clients: number;
  textLength: number;
  welcomed: number;
  stormMs: number;
  baseline: MemoryPoint;
  peakHeapUsedKiB: number;
  peakHeapTotalKiB: number;
  peakRssKiB: number;
  /** After the storm, every join in, GC'd. */
  idle: MemoryPoint;
}

function targetOf(server: BenchServer): Target {
  const edge = isEdgeChat(server.spec.server);
  return { base: server.dev.wsUrl, hasIds: edge, batch: server.spec.server === "edge-chat+batch", keepAlive: edge };
}

function isHeapUsage(v: unknown): v is { usedSize: number; totalSize: number } {
  return (
    typeof v === "object" &&
    v !== null &&
    "usedSize" in v &&
    typeof v.usedSize === "number" &&
    "totalSize" in v &&
    typeof v.totalSize === "number"
  );
}

async function heapUsage(cdp: Cdp): Promise<{ usedKiB: number; totalKiB: number; embedderKiB: number }> {
  const usage = await cdp.call("Runtime.getHeapUsage");
  if (!isHeapUsage(usage)) throw new Error(`Runtime.getHeapUsage answered ${JSON.stringify(usage)}`);
  const embedder =
    "embedderHeapUsedSize" in usage && typeof usage.embedderHeapUsedSize === "number" ? usage.embedderHeapUsedSize : 0;
  return { usedKiB: usage.usedSize / 1024, totalKiB: usage.totalSize / 1024, embedderKiB: embedder / 1024 };
}

/**
 * A full GC. workerd's inspector never answers HeapProfiler.collectGarbage,
 * but a heap snapshot starts with a full GC, so one is taken and dropped.
 */
async function collectGarbage(cdp: Cdp): Promise<void> {
  cdp.on("HeapProfiler.addHeapSnapshotChunk", () => undefined);
  await cdp.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
}

/** RSS first: the snapshot behind the GC takes native memory of its own. */
async function reading(server: BenchServer, cdp: Cdp, clients: number): Promise<MemoryPoint> {
  let rss = 0;
  let anon = 0;
  for (const pid of server.dev.runtimePids()) {
    const r = rssKiB(pid);
    rss += r.total;
    anon += r.anon;
  }
  await collectGarbage(cdp);
  const heap = await heapUsage(cdp);
  return {
    clients,
    heapUsedKiB: heap.usedKiB,
    heapTotalKiB: heap.totalKiB,
    embedderKiB: heap.embedderKiB,
    rssKiB: rss,
    anonKiB: anon,
  };
}

/** Least-squares slope of `y` over clients. */
function slope(points: readonly MemoryPoint[], y: (p: MemoryPoint) => number): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.clients, 0) / n;
  const my = points.reduce((a, p) => a + y(p), 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.clients - mx) * (y(p) - my);
    den += (p.clients - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

// ---- heap snapshots ------------------------------------------------------------

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: unknown[] } };
  nodes: number[];
  strings: string[];
}

async function heapSnapshot(cdp: Cdp): Promise<Snapshot> {
  const chunks: string[] = [];
  cdp.on("HeapProfiler.addHeapSnapshotChunk", (params) => {
    if (typeof params === "object" && params !== null && "chunk" in params && typeof params.chunk === "string")
      chunks.push(params.chunk);
  });
  await cdp.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  return JSON.parse(chunks.join("")) as Snapshot;
}

/** Self sizes by what a node is: objects and closures by constructor, strings, arrays and V8's internals by kind. */
function groups(s: Snapshot): Map<string, { count: number; bytes: number }> {
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const typeNames = Array.isArray(types) ? types.map(String) : [];
  const width = fields.length;
  const at = (f: string) => fields.indexOf(f);
  const [iType, iName, iSize] = [at("type"), at("name"), at("self_size")];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = typeNames[s.nodes[i + iType] ?? 0] ?? "?";
    const name = s.strings[s.nodes[i + iName] ?? 0] ?? "?";
    const key =
      type === "object" || type === "closure"
        ? `${name} (${type})`
        : type === "string" || type === "concatenated string" || type === "sliced string"
          ? "(strings)"
          : type === "array" || type === "hidden"
            ? `(${type}: ${name.replace(/\d+/g, "#").slice(0, 40)})`
            : `(${type})`;
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += s.nodes[i + iSize] ?? 0;
    out.set(key, g);
  }
  return out;
}

function diff(before: Snapshot, after: Snapshot): HeapGroup[] {
  const a = groups(before);
  const b = groups(after);
  const out: HeapGroup[] = [];
  for (const [name, g] of b) {
    const old = a.get(name) ?? { count: 0, bytes: 0 };
    if (g.bytes !== old.bytes) out.push({ name, count: g.count - old.count, bytes: g.bytes - old.bytes });
  }
  return out.sort((x, y) => y.bytes - x.bytes).slice(0, 20);
}

// ---- scenarios -----------------------------------------------------------------

async function withInspected<T>(server: ServerName, run: (s: BenchServer, cdp: Cdp) => Promise<T>): Promise<T> {
  const inspectorPort = await freePort();
  // One object holds every connection: what is measured is the cost of one
  // part, not of a room spread over several.
  const s = await startServer({ server, host: "miniflare" }, { inspectorPort, vars: { SHARD_SIZE: "100000" } });
  let cdp: Cdp | null = null;
  try {
    cdp = (await Cdp.openWorker(inspectorPort)).cdp;
    return await run(s, cdp);
  } finally {
    cdp?.close();
    await s.dev.dispose();
  }
}

/** Joins every client of `fleet` must have had once `total` users arrived one after another (edge-chat). */
function joinsFor(fleet: Fleet, users: number): number {
  return fleet.target.hasIds ? (users * (users - 1)) / 2 : 0;
}

/** A full history from one writer: `count` messages of `length` characters, in the load generator's text format. */
async function writeHistory(fleet: Fleet, length: number, label: string): Promise<void> {
  const [writer] = await fleet.connect(1);
  if (writer === undefined || writer.welcomeAt < 0) throw new Error(`${label}: the history writer could not connect`);
  for (let seq = 0; seq < HISTORY_MESSAGES; seq++) {
    fleet.sent[0] = seq + 1;
    const head = `${TEXT_PREFIX}0 ${seq} ${performance.now().toFixed(3)} `;
    writer.ws.send(
      JSON.stringify({
        type: "message",
        text: head + "x".repeat(Math.max(0, length - head.length)),
        nonce: `0-${seq}`,
      }),
    );
  }
  await waitUntil(() => fleet.tally.deliveries >= HISTORY_MESSAGES, 20_000, 5);
}

export async function idleMemory(
  server: ServerName,
  steps: readonly number[],
  textLength: number,
  progress: Progress,
): Promise<MemoryResult> {
  const label = `${server} memory`;
  return withInspected(server, async (s, cdp) => {
    const fleet = new Fleet(targetOf(s), `mem-${randomUUID().slice(0, 8)}`, 1);
    await writeHistory(fleet, textLength, label);
    const points: MemoryPoint[] = [];
    const snapshots = server === "edge-chat";
    let first: Snapshot | null = null;
    let last: Snapshot | null = null;
    for (const [i, target] of steps.entries()) {
      while (fleet.clients.length - 1 < target) {
        const opened = await fleet.connect(Math.min(CONNECT_BATCH, target - (fleet.clients.length - 1)));
        if (opened.some((c) => c.welcomeAt < 0)) throw new Error(`${label}: a client was not welcomed`);
        progress(`${label}: ${fleet.clients.length - 1}/${target} connected`);
      }
      await waitUntil(() => fleet.tally.joins >= joinsFor(fleet, fleet.clients.length), 60_000, 20);
      // Let the batch window and the sockets' queues drain before the reading.
      await sleep(1_000);
      points.push(await reading(s, cdp, target));
      if (snapshots && i === 0) first = await heapSnapshot(cdp);
      if (snapshots && i === steps.length - 1) last = await heapSnapshot(cdp);
    }
    await fleet.closeAll();
    return {
      scenario: "memory",
      server,
      points,
      heapKiBPerConnection: slope(points, (p) => p.heapUsedKiB),
      embedderKiBPerConnection: slope(points, (p) => p.embedderKiB),
      rssKiBPerConnection: slope(points, (p) => p.rssKiB),
      breakdown: first !== null && last !== null ? diff(first, last) : [],
    };
  });
}

export async function worstCase(server: ServerName, clients: number, progress: Progress): Promise<WorstResult> {
  const label = `${server} worst case N=${clients}`;
  return withInspected(server, async (s, cdp) => {
    const fleet = new Fleet(targetOf(s), `worst-${randomUUID().slice(0, 8)}`, 1);
    await writeHistory(fleet, MAX_TEXT, label);
    await sleep(500);
    const baseline = await reading(s, cdp, 0);
    const sampler = new RssSampler(s.dev.runtimePids());
    sampler.peak = 0;
    let peakUsed = baseline.heapUsedKiB;
    let peakTotal = baseline.heapTotalKiB;
    let storming = true;
    // The inspector answers between the isolate's events, so this sees the
    // heap at most every few events; the peak is a lower bound, RSS's is not.
    const poll = (async () => {
      while (storming) {
        const h = await heapUsage(cdp);
        peakUsed = Math.max(peakUsed, h.usedKiB);
        peakTotal = Math.max(peakTotal, h.totalKiB);
        await sleep(20);
      }
    })();
    progress(`${label}: opening ${clients} sockets at once`);
    const t0 = performance.now();
    const opened = await fleet.connect(clients);
    const stormMs = performance.now() - t0;
    await waitUntil(() => fleet.tally.joins >= joinsFor(fleet, clients + 1), 60_000, 20);
    await sleep(1_000);
    storming = false;
    await poll;
    sampler.stop();
    const idle = await reading(s, cdp, clients);
    await fleet.closeAll();
    return {
      scenario: "memory-worst",
      server,
      clients,
      textLength: MAX_TEXT,
      welcomed: opened.filter((c) => c.welcomeAt >= 0 && c.historyLength === HISTORY_MESSAGES && c.historyConsecutive)
        .length,
      stormMs,
      baseline,
      peakHeapUsedKiB: peakUsed,
      peakHeapTotalKiB: peakTotal,
      peakRssKiB: sampler.peak * 1024,
      idle,
    };
  });
}
