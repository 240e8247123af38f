// Large rooms: CPU per operation, measured from /proc, and the capacity and
// cost model built from it (issue 11, item 10; BENCHMARKS.md, "Large rooms:
// CPU per operation and capacity model"; bench/MODEL.md says how to rerun).
//
//   npm run bench:model [-- --repeats 7] [--out FILE.jsonl]
//   npm run bench:model -- --from FILE.jsonl     (the report again, no servers)
//
// Local workerd runs every Durable Object on one thread, so a sharded room
// cannot show its parallel speed-up here. Instead: real sockets from this
// Node process against a bare Miniflare (one workerd), small SHARD_SIZE
// values for many parts, and the CPU time of workerd's JavaScript thread
// (/proc/<pid>/task/<tid>/schedstat, ns) per operation, the idle share of
// that thread (timers) subtracted. Each cost is the difference of two
// configurations that differ in one thing (the sockets of a room, the parts
// of a sharded room, where the sender is). The configurations live side by
// side as rooms of one server and their repeats are interleaved, so a change
// in the shared machine's load hits both sides of a difference alike; repeat
// i of one is paired with repeat i of the other for the spread. The model then
// predicts the single-thread maximum of two other configurations, measured
// saturated in the same rounds (so under the same load), and, every object on
// its own thread, production capacity, cost and latency (model-tables.ts).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cpus, loadavg } from "node:os";
import { execFileSync } from "node:child_process";
import { Cdp } from "./cdp.ts";
import { Fleet, type Client } from "./load.ts";
import { startServer, type BenchServer } from "./servers.ts";
import { cpuBetween, readThreads, spreadOf, threadBetween, type Spread } from "./cpu.ts";
import { productionTables, type Costs } from "./model-tables.ts";
import { numberFlag, parseCli, stringFlags } from "../tools/harness/cli.ts";
import { ROOT, freePort, stopServersOnExit } from "../tools/harness/devserver.ts";
import { sleep, waitUntil } from "../tools/harness/wait.ts";

const USAGE = "npm run bench:model [-- --repeats N] [--out FILE.jsonl] [--from FILE.jsonl]";
const flags = parseCli({ ...stringFlags("repeats", "out", "from") }, USAGE);
const REPEATS = numberFlag(flags.repeats, 7, "repeats", 2);
/** CPU of the JavaScript thread one repeat of a message run aims at. */
const TARGET_CPU_S = 0.4;
/** Every run is bounded in count and time. */
const MAX_MESSAGES = 2_000;
const RUN_TIMEOUT_MS = 60_000;
const HISTORY = 100;
const SENDERS = 2;
/**
 * Messages in flight that keep the thread saturated, as at the checks: the
 * model prices a busy thread. With one message at a time the thread idles
 * between messages and each one also pays for waking it up; those figures
 * are kept too ("W=1"). At most HOLD_LIMIT (src/strikes.ts): a part refuses
 * a socket's frames beyond that many waiting for the room's answers.
 */
const SATURATED = 16;
/** The sharded rooms of the per-operation runs: SHARD_SIZE 10, presence as counts. */
const SIZE = 10;

/** One repeat: µs of the JavaScript thread per operation, idle share subtracted; and of every thread of workerd. */
interface Rep {
  us: number;
  usAll: number;
  count: number;
  wallS: number;
  /** Batch frames each socket got per message (batch clients only). */
  flushesPerMessage?: number;
}

interface Point {
  name: string;
  reps: Rep[];
}

interface CheckRun {
  /** Messages a second the thread reaches saturated (its timers taking their idle share). */
  perCpuS: number;
  wallRate: number;
  util: number;
  lost: number;
  messages: number;
}

interface Check {
  config: string;
  roomSockets: number;
  parts: number;
  perPart: number;
  idleShare: number;
  runs: CheckRun[];
}

interface Saved {
  date: string;
  commit: string;
  machine: string;
  repeats: number;
  points: Point[];
  checks: Check[];
  /** Share of the JavaScript thread's busy samples spent in the room (the sequencer) in the profiled run. */
  profile: { roomShare: number; partShare: number; unattributed: number; parts: number; perMessageUs: number } | null;
}

// ---- a server and its rooms ---------------------------------------------------------

interface Rig {
  server: BenchServer;
  pids: number[];
  /** "pid/tid" of workerd's JavaScript thread, found under load. */
  main: string;
  idleShare: number;
  port?: number;
}

let roomCounter = 0;

async function rig(vars: Record<string, string>, inspectorPort?: number): Promise<Rig> {
  const server = await startServer(
    { server: "edge-chat", host: "miniflare" },
    inspectorPort === undefined ? { vars } : { vars, inspectorPort },
  );
  const pids = server.dev.runtimePids();
  if (pids.length === 0) throw new Error("no workerd process");
  return inspectorPort === undefined
    ? { server, pids, main: "", idleShare: 0 }
    : { server, pids, main: "", idleShare: 0, port: inspectorPort };
}

function fleetOf(r: Rig, batch = false): Fleet {
  return new Fleet(
    { base: r.server.dev.wsUrl, hasIds: true, batch, keepAlive: true },
    `model-${process.pid}-${roomCounter++}`,
    SENDERS,
  );
}

function say(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

/** Opens `n` more clients, `chunk` at a time; every one must be welcomed. */
async function connect(fleet: Fleet, n: number, chunk = 50): Promise<void> {
  for (let done = 0; done < n; done += chunk) {
    const opened = await fleet.connect(Math.min(chunk, n - done));
    if (opened.some((c) => c.welcomeAt < 0))
      throw new Error(`a connect failed: ${fleet.firstError ?? JSON.stringify(fleet.tally.closeCodes)}`);
  }
}

/** Deliveries every message makes: one per open client. */
function receivers(fleet: Fleet): number {
  return fleet.clients.filter((c) => c.welcomeAt >= 0 && c.ws.readyState === c.ws.OPEN).length;
}

/**
 * Publishes `count` messages from `sender`, at most `window` of them not yet
 * delivered to every client; resolves when all are delivered.
 */
async function publish(
  fleet: Fleet,
  sender: Client,
  senderIndex: number,
  count: number,
  window: number,
): Promise<void> {
  const per = receivers(fleet);
  const start = fleet.tally.deliveries;
  const end = performance.now() + RUN_TIMEOUT_MS;
  let sent = 0;
  while (sent < count) {
    const done = Math.floor((fleet.tally.deliveries - start) / per);
    for (; sent < count && sent - done < window; sent++) fleet.send(sender, senderIndex);
    if (performance.now() > end)
      throw new Error(
        `publish in ${fleet.room}: ${done}/${count} messages delivered in ${RUN_TIMEOUT_MS} ms; closes ${JSON.stringify(fleet.tally.closeCodes)}, errors ${fleet.tally.errorFrames} (${fleet.firstError ?? "none"})`,
      );
    await sleep(1);
  }
  const all = await waitUntil(() => fleet.tally.deliveries - start >= count * per, RUN_TIMEOUT_MS, 1);
  if (!all) throw new Error(`publish: ${fleet.tally.deliveries - start} of ${count * per} deliveries`);
}

/** The share of the JavaScript thread its timers take while nothing happens, over `ms`. */
async function idle(r: Rig, ms = 2_000): Promise<number> {
  const a = readThreads(r.pids);
  await sleep(ms);
  const b = readThreads(r.pids);
  return threadBetween(a, b, r.main) / cpuBetween(a, b).wallS;
}

/** Runs `work` (which does `count` operations) and prices one operation, the idle share subtracted. */
async function priced(r: Rig, count: number, work: () => Promise<unknown>): Promise<Rep> {
  const a = readThreads(r.pids);
  await work();
  const b = readThreads(r.pids);
  const d = cpuBetween(a, b);
  const main = threadBetween(a, b, r.main);
  return {
    us: ((main - r.idleShare * d.wallS) / count) * 1e6,
    usAll: ((d.totalS - r.idleShare * d.wallS) / count) * 1e6,
    count,
    wallS: d.wallS,
  };
}

/** Finds the JavaScript thread: the busiest one while messages flow. */
async function findMain(r: Rig, fleet: Fleet): Promise<void> {
  const a = readThreads(r.pids);
  await publish(fleet, fleet.clients[0] as Client, 0, 30, 4);
  r.main = cpuBetween(a, readThreads(r.pids)).mainThread;
}

async function stop(r: Rig, fleets: readonly Fleet[]): Promise<void> {
  for (const fleet of fleets) await fleet.closeAll();
  await r.server.dev.dispose();
}

/** A message run to repeat: which room, which sender, how many in flight. */
interface Series {
  name: string;
  fleet: Fleet;
  sender: Client;
  senderIndex: number;
  window: number;
  count: number;
  reps: Rep[];
}

function series(name: string, fleet: Fleet, senderAt: number, window = 1): Series {
  const sender = fleet.clients[senderAt];
  if (sender === undefined) throw new Error(`${name}: no client ${senderAt}`);
  return { name, fleet, sender, senderIndex: senderAt === 0 ? 0 : 1, window, count: 0, reps: [] };
}

/** Sizes a rig's series by a pilot each: a repeat uses about TARGET_CPU_S of the thread. */
async function sizeSeries(r: Rig, all: Series[]): Promise<void> {
  for (const s of all) {
    const pilot = await priced(r, 20, () => publish(s.fleet, s.sender, s.senderIndex, 20, s.window));
    s.count = Math.round(Math.min(MAX_MESSAGES, Math.max(30, TARGET_CPU_S / Math.max(pilot.us * 1e-6, 1e-6))));
  }
}

async function repeatSeries(r: Rig, s: Series): Promise<void> {
  const per = receivers(s.fleet);
  const flushes = s.fleet.tally.batchFrames;
  const rep = await priced(r, s.count, () =>
    publish(s.fleet, s.sender, s.senderIndex, s.count, s.window).catch((err: unknown) => {
      throw new Error(`${s.name}: ${err instanceof Error ? err.message : String(err)}`);
    }),
  );
  if (s.fleet.target.batch) rep.flushesPerMessage = (s.fleet.tally.batchFrames - flushes) / (s.count * per);
  s.reps.push(rep);
}

function pointsOf(all: Series[]): Point[] {
  for (const s of all) {
    const sp = spreadOf(s.reps.map((x) => x.us));
    say(
      `${s.name}: ${sp.median.toFixed(1)} µs/message (${sp.min.toFixed(1)}–${sp.max.toFixed(1)}), ${s.count} messages × ${s.reps.length}`,
    );
  }
  return all.map((s) => ({ name: s.name, reps: s.reps }));
}

// ---- the runs -------------------------------------------------------------------

const points: Point[] = [];
const checks: Check[] = [];

/** A server, its rooms and the message series measured on it each round. */
interface Stage {
  r: Rig;
  fleets: Fleet[];
  series: Series[];
}

/** One object (never sharded), K sockets, plain and batch: client send and per-socket delivery on a room. */
async function buildSingle(stages: Stage[]): Promise<void> {
  const r = await rig({ SHARD_SIZE: "100000" });
  const stage: Stage = { r, fleets: [], series: [] };
  stages.push(stage);
  for (const [name, k, batch] of [
    ["single K=1", 1, false],
    ["single K=101", 101, false],
    ["single K=301", 301, false],
    ["single batch K=101", 101, true],
    ["single batch K=301", 301, true],
  ] as const) {
    const fleet = fleetOf(r, batch);
    stage.fleets.push(fleet);
    await connect(fleet, k);
    if (r.main === "") await findMain(r, fleet);
    stage.series.push(series(`${name} sat`, fleet, 0, SATURATED));
    if (k === 1) stage.series.push(series(`${name} W=1`, fleet, 0, 1));
  }
  await sizeSeries(r, stage.series);
  say("one-object rooms built");
}

/**
 * Sharded rooms side by side in one server (SHARD_SIZE 10, PRESENCE_LIMIT 1:
 * a connect makes no join for everyone, only a count once a second). Each
 * room: 10 sockets of its own, a history of 100 messages, then its parts
 * filled one connect at a time (each connect priced: the first of every ten
 * dials a new part), then, for the rooms of one socket per part, 9 of every
 * 10 closed (priced: presence reports). Then interleaved message runs with
 * the sender on the room (client 0) or on the first part (client 10).
 */
async function buildSharded(stages: Stage[]): Promise<Stage> {
  const port = await freePort();
  const r = await rig({ SHARD_SIZE: String(SIZE), PRESENCE_LIMIT: "1" }, port);
  const stage: Stage = { r, fleets: [], series: [] };
  stages.push(stage);
  const fleets = stage.fleets;
  const toRoom: Rep[] = [];
  const toNewPart: Rep[] = [];
  const toPart: Rep[] = [];
  const closes: Rep[] = [];
  {
    const rooms = new Map<string, Fleet>();
    for (const [name, parts, keep] of [
      ["P=1 ×1", 1, 1],
      ["P=10 ×1", 10, 1],
      ["P=100 ×1", 100, 1],
      ["P=5 ×10", 5, 10],
      ["P=50 ×10", 50, 10],
    ] as const) {
      const fleet = fleetOf(r);
      fleets.push(fleet);
      rooms.set(name, fleet);
      for (let i = 0; i < SIZE; i++) {
        const rep = await priced(r, 1, () => connect(fleet, 1, 1));
        if (r.main !== "") toRoom.push(rep);
      }
      if (r.main === "") {
        await findMain(r, fleet);
        r.idleShare = await idle(r);
      }
      await publish(fleet, fleet.clients[0] as Client, 0, HISTORY, 8);
      for (let i = 0; i < parts * SIZE; i++) {
        const rep = await priced(r, 1, () => connect(fleet, 1, 1));
        (i % SIZE === 0 ? toNewPart : toPart).push(rep);
      }
      if (keep < SIZE) {
        // Keep client 0 (the room's sender) and the first of every part.
        const closing = fleet.clients.filter((_, i) => i % SIZE !== 0);
        for (let i = 0; i < closing.length; i += 50) {
          const chunk = closing.slice(i, i + 50);
          closes.push(
            await priced(r, chunk.length, async () => {
              const closed = chunk.map((c) => new Promise<void>((resolve) => c.ws.once("close", () => resolve())));
              for (const c of chunk) c.close();
              await Promise.all(closed);
              // The part sends its depart after the close; let it reach the room.
              await sleep(200);
            }),
          );
        }
      }
      say(`${name}: built (${receivers(fleet)} sockets); idle share ${((await idle(r, 1_000)) * 100).toFixed(1)} %`);
    }
    for (const [name, reps] of [
      ["connect to the room itself", toRoom],
      ["connect to an existing part", toPart],
      ["connect that dials a new part", toNewPart],
      ["close on a part", closes],
    ] as const) {
      const s = spreadOf(reps.map((x) => x.us));
      say(`${name}: ${s.median.toFixed(0)} µs (${s.min.toFixed(0)}–${s.max.toFixed(0)}), ${reps.length} samples`);
      points.push({ name, reps });
    }
    const room = (name: string): Fleet => rooms.get(name) as Fleet;
    stage.series = [
      series("P=1 ×1 room-sender sat", room("P=1 ×1"), 0, SATURATED),
      series("P=1 ×1 part-sender sat", room("P=1 ×1"), SIZE, SATURATED),
      series("P=10 ×1 part-sender sat", room("P=10 ×1"), SIZE, SATURATED),
      series("P=100 ×1 part-sender sat", room("P=100 ×1"), SIZE, SATURATED),
      series("P=100 ×1 room-sender sat", room("P=100 ×1"), 0, SATURATED),
      series("P=10 ×1 part-sender W=1", room("P=10 ×1"), SIZE, 1),
      series("P=100 ×1 part-sender W=1", room("P=100 ×1"), SIZE, 1),
      series("P=5 ×10 part-sender sat", room("P=5 ×10"), SIZE, SATURATED),
      series("P=50 ×10 part-sender sat", room("P=50 ×10"), SIZE, SATURATED),
    ];
    await sizeSeries(r, stage.series);
  }
  return stage;
}

let profile: Saved["profile"] = null;

/**
 * Which object the JavaScript thread works for, in one sharded room's
 * message run (the sender on a part): a CPU profile whose samples are
 * attributed by the outermost frame of our own code on their stack.
 */
async function profileSplit(r: Rig, fleet: Fleet, parts: number): Promise<Saved["profile"]> {
  if (r.port === undefined) return null;
  const files = sourceRanges(r);
  const { cdp } = await Cdp.openWorker(r.port);
  await cdp.call("Profiler.enable");
  await cdp.call("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.call("Profiler.start");
  const count = 100;
  const rep = await priced(r, count, () => publish(fleet, fleet.clients[SIZE] as Client, 1, count, 1));
  const result = await cdp.call("Profiler.stop");
  cdp.close();
  const split = attribute(result, files);
  say(
    `profile P=${parts}: room ${(split.room * 100).toFixed(1)} %, parts ${(split.part * 100).toFixed(1)} %, unattributed ${(split.none * 100).toFixed(1)} %, ${rep.us.toFixed(0)} µs/message (profiler on)`,
  );
  const attributed = split.room + split.part;
  return {
    roomShare: split.room / attributed,
    partShare: split.part / attributed,
    unattributed: split.none,
    parts,
    perMessageUs: rep.us,
  };
}

type Side = "room" | "part";
const ROOM_FILES = new Set([
  "room.ts",
  "shards.ts",
  "sequencer.ts",
  "history.ts",
  "roster.ts",
  "quota.ts",
  "moderation.ts",
]);
const PART_FILES = new Set(["part.ts", "stream.ts"]);

/** Line ranges of the bundle (esbuild marks each source file with a `// src/x.ts` comment). */
function sourceRanges(r: Rig): Array<{ from: number; side: Side | null }> {
  const bundleDir = readdirSync(r.server.dev.persistTo).find((d) => d.startsWith("bundle-"));
  if (bundleDir === undefined) throw new Error("no bundle in the Miniflare state folder");
  const lines = readFileSync(join(r.server.dev.persistTo, bundleDir, "worker.mjs"), "utf8").split("\n");
  const out: Array<{ from: number; side: Side | null }> = [];
  for (const [i, line] of lines.entries()) {
    const m = /^\/\/ (?:.*\/)?src\/([\w.-]+\.ts)$/.exec(line);
    if (m?.[1] === undefined) continue;
    out.push({ from: i, side: ROOM_FILES.has(m[1]) ? "room" : PART_FILES.has(m[1]) ? "part" : null });
  }
  return out;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

function attribute(
  result: unknown,
  files: Array<{ from: number; side: Side | null }>,
): { room: number; part: number; none: number } {
  if (typeof result !== "object" || result === null || !("profile" in result)) throw new Error("no profile");
  const profile = result.profile as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const sideOfLine = (line: number): Side | null => {
    let side: Side | null = null;
    for (const f of files) {
      if (f.from > line) break;
      side = f.side;
    }
    return side;
  };
  // The outermost frame of room or part code on the stack decides: the
  // handler that the runtime called (a socket's message, a link's, a timer).
  const sideOf = new Map<number, Side | null>();
  const resolve = (id: number): Side | null => {
    const known = sideOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    const up = parent.get(id);
    const outer = up === undefined ? null : resolve(up);
    const own = node?.callFrame.url.endsWith("worker.mjs") ? sideOfLine(node.callFrame.lineNumber) : null;
    const side = outer ?? own;
    sideOf.set(id, side);
    return side;
  };
  const totals = { room: 0, part: 0, none: 0 };
  for (const [i, id] of profile.samples.entries()) {
    if (byId.get(id)?.callFrame.functionName === "(idle)") continue;
    totals[resolve(id) ?? "none"] += profile.timeDeltas[i] ?? 0;
  }
  const sum = totals.room + totals.part + totals.none;
  return { room: totals.room / sum, part: totals.part / sum, none: totals.none / sum };
}

/** A saturated check: room `size` + `parts` parts × `size`, the sender on a part, SATURATED messages in flight. */
interface CheckStage {
  r: Rig;
  fleet: Fleet;
  check: Check;
}

async function buildCheck(size: number, parts: number, all: CheckStage[]): Promise<void> {
  const r = await rig({ SHARD_SIZE: String(size), PRESENCE_LIMIT: "1" });
  const fleet = fleetOf(r);
  all.push({
    r,
    fleet,
    check: {
      config: `room ${size} + ${parts} parts × ${size}`,
      roomSockets: size,
      parts,
      perPart: size,
      idleShare: 0,
      runs: [],
    },
  });
  await connect(fleet, size);
  await findMain(r, fleet);
  await connect(fleet, size * parts, 50);
  await publish(fleet, fleet.clients[size] as Client, 1, 20, 4);
  say(`check room ${size} + ${parts} × ${size} built`);
}

const CHECK_MESSAGES = 200;

async function repeatCheck({ r, fleet, check }: CheckStage): Promise<void> {
  const missingBefore = fleet.lost(fleet.clients);
  const a = readThreads(r.pids);
  await publish(fleet, fleet.clients[check.roomSockets] as Client, 1, CHECK_MESSAGES, SATURATED);
  const b = readThreads(r.pids);
  const main = threadBetween(a, b, r.main);
  const wall = cpuBetween(a, b).wallS;
  // The rate the thread reaches saturated, its timers taking their idle
  // share: when it is saturated (main = wall), the wall rate itself.
  const run: CheckRun = {
    perCpuS: (CHECK_MESSAGES * (1 - r.idleShare)) / (main - r.idleShare * wall),
    wallRate: CHECK_MESSAGES / wall,
    util: main / wall,
    lost: fleet.lost(fleet.clients) - missingBefore,
    messages: CHECK_MESSAGES,
  };
  check.runs.push(run);
  say(
    `check ${check.config}: ${run.perCpuS.toFixed(1)} msg per CPU-s, ${run.wallRate.toFixed(1)} msg/s wall, thread ${(run.util * 100).toFixed(0)} %`,
  );
}

/**
 * Every server is built first and stays up; then each round runs one repeat
 * of every message series and of every check, so the per-operation costs
 * and the saturated checks they predict see the same load of the shared
 * machine.
 */
async function measureAll(): Promise<void> {
  const stages: Stage[] = [];
  const checkStages: CheckStage[] = [];
  try {
    await buildSingle(stages);
    const shardStage = await buildSharded(stages);
    await buildCheck(250, 4, checkStages);
    await buildCheck(100, 8, checkStages);
    for (const st of stages) st.r.idleShare = await idle(st.r);
    for (const c of checkStages) c.check.idleShare = c.r.idleShare = await idle(c.r);
    say(
      `idle shares: ${[...stages.map((st) => st.r), ...checkStages.map((c) => c.r)].map((r) => `${(r.idleShare * 100).toFixed(1)} %`).join(", ")}`,
    );
    for (let i = 0; i < REPEATS; i++) {
      for (const st of stages) for (const x of st.series) await repeatSeries(st.r, x);
      for (const c of checkStages) await repeatCheck(c);
      say(`round ${i + 1}/${REPEATS} done`);
    }
    for (const st of stages) points.push(...pointsOf(st.series));
    for (const c of checkStages) checks.push(c.check);
    const hundred = shardStage.fleets[2];
    if (hundred !== undefined) profile = await profileSplit(shardStage.r, hundred, 100);
  } finally {
    for (const st of stages) await stop(st.r, st.fleets);
    for (const c of checkStages) await stop(c.r, [c.fleet]);
  }
}

// ---- per-operation costs from the points -------------------------------------------

function repsOf(saved: Saved, name: string): Rep[] {
  const p = saved.points.find((x) => x.name === name);
  if (p === undefined) throw new Error(`no point ${name}`);
  return p.reps;
}

/** f over repeat i of each named point (repeats of one round were measured side by side). */
function paired(saved: Saved, names: string[], f: (us: number[]) => number): Spread {
  const lists = names.map((n) => repsOf(saved, n));
  const n = Math.min(...lists.map((l) => l.length));
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(f(lists.map((l) => l[i]?.us ?? Number.NaN)));
  return spreadOf(out);
}

function measured(saved: Saved, name: string): Spread {
  return spreadOf(repsOf(saved, name).map((x) => x.us));
}

interface Derived {
  costs: Costs;
  table: Array<{ op: string; how: string; s: Spread }>;
  /** Events per batch frame and batch frames per socket per message, batch clients. */
  batch: { flushesPerMessage: number; perFlushUs: Spread };
}

function derive(saved: Saved): Derived {
  // Runs before the saturated series (bench/profiles/model-run-a, -b) named them without " sat".
  const sat = (base: string): string => (saved.points.some((p) => p.name === `${base} sat`) ? `${base} sat` : base);
  const dRoom = paired(saved, [sat("single K=301"), sat("single K=101")], ([a = 0, b = 0]) => (a - b) / 200);
  const dr = dRoom.median;
  const clientSend = paired(
    saved,
    [sat("single K=1"), sat("single K=101"), sat("single K=301")],
    ([a = 0, b = 0, c = 0]) => a - (c - b) / 200,
  );
  const flushes = spreadOf(
    [...repsOf(saved, sat("single batch K=101")), ...repsOf(saved, sat("single batch K=301"))].map(
      (x) => x.flushesPerMessage ?? Number.NaN,
    ),
  ).median;
  const perFlush = paired(
    saved,
    [sat("single batch K=301"), sat("single batch K=101")],
    ([a = 0, b = 0]) => (a - b) / 200 / flushes,
  );
  // e + d_part per part (one socket each) and e + 10·d_part (ten each).
  const slope1 = (a: number, b: number) => (a - b) / 90;
  const slope10 = (a: number, b: number) => (a - b) / 45;
  const one = [sat("P=100 ×1 part-sender"), sat("P=10 ×1 part-sender")];
  const ten = [sat("P=50 ×10 part-sender"), sat("P=5 ×10 part-sender")];
  const dPart = paired(saved, [...ten, ...one], ([a = 0, b = 0, c = 0, d = 0]) => (slope10(a, b) - slope1(c, d)) / 9);
  // The model prices a delivery on a part as on the room: the same loop of
  // sends. The two slopes give it too, but the rooms behind them differ in
  // parts (100 against 50), and with the parts the sequencer's kept frames
  // and their garbage collection: that difference lands in d_part.
  const dp = dr;
  const event = paired(saved, one, ([a = 0, b = 0]) => slope1(a, b) - dp);
  const ev = event.median;
  // The other rate: one message in flight (runs A and B: 8 in flight against 1).
  const w1 = saved.points.some((p) => p.name === "P=10 ×1 part-sender W=1");
  const eventOther = paired(
    saved,
    w1
      ? ["P=100 ×1 part-sender W=1", "P=10 ×1 part-sender W=1"]
      : ["P=100 ×1 part-sender W=8", "P=10 ×1 part-sender W=8"],
    ([a = 0, b = 0]) => slope1(a, b) - dp,
  );
  const clientSendW1 = saved.points.some((p) => p.name === "single K=1 W=1")
    ? paired(saved, ["single K=1 W=1"], ([a = 0]) => a - dr)
    : null;
  // The fixed part of a publish in a sharded room: one part of one socket, its event and delivery and the room's one socket taken off.
  const partPub = paired(saved, [sat("P=1 ×1 part-sender")], ([a = 0]) => a - (ev + dp) - dr);
  const roomPub = paired(saved, [sat("P=1 ×1 room-sender")], ([a = 0]) => a - (ev + dp) - dr);
  const partSide = paired(saved, [sat("P=1 ×1 part-sender"), sat("P=1 ×1 room-sender")], ([a = 0, b = 0]) => a - b);
  const partSide100 = paired(
    saved,
    [sat("P=100 ×1 part-sender"), sat("P=100 ×1 room-sender")],
    ([a = 0, b = 0]) => a - b,
  );
  const toRoom = measured(saved, "connect to the room itself");
  const toPart = measured(saved, "connect to an existing part");
  const toNew = measured(saved, "connect that dials a new part");
  const snapshot = spreadOf([toNew.min - toPart.median, toNew.median - toPart.median, toNew.max - toPart.median]);
  const closes = measured(saved, "close on a part");
  const table: Derived["table"] = [
    {
      op: "client send: a socket's message on a one-object room, before its deliveries",
      how: "single K=1 − d_room",
      s: clientSend,
    },
    { op: "per-socket delivery on the room, plain (d_room)", how: "(single K=301 − K=101) / 200", s: dRoom },
    {
      op: "per-socket delivery of a batch frame (batch=1), per flush",
      how: `(batch K=301 − K=101) / 200 / ${flushes.toFixed(2)} flushes per message`,
      s: perFlush,
    },
    {
      op: "per-socket delivery on a part from the parts' slopes (cross-check; the model uses d_room)",
      how: "(slope per part at 10 sockets − at 1 socket) / 9",
      s: dPart,
    },
    {
      op: `room-to-part event, both ends, 1 event per link frame (e), ${w1 ? `${SATURATED}` : "1"} in flight`,
      how: "(P=100×1 − P=10×1) / 90 − d_part",
      s: event,
    },
    {
      op: `room-to-part event, ${w1 ? "1" : "8"} in flight`,
      how: w1 ? "same, W=1" : "same, W=8",
      s: eventOther,
    },
    ...(clientSendW1 === null
      ? []
      : [{ op: "client send, 1 message in flight", how: "single K=1 W=1 − d_room", s: clientSendW1 }]),
    {
      op: "part-to-room publish: a part's socket's message, before events and deliveries",
      how: "P=1×1 part-sender − e − d_part − d_room",
      s: partPub,
    },
    {
      op: "publish from the room's own socket in a sharded room, likewise",
      how: "P=1×1 room-sender − e − d_part − d_room",
      s: roomPub,
    },
    { op: "… the part's side: part-sender − room-sender, 1 part", how: "paired", s: partSide },
    { op: "… the same difference with 100 parts", how: "paired", s: partSide100 },
    { op: "connect to the room itself (one object, 100 messages of history)", how: "each connect priced", s: toRoom },
    { op: "connect: admission through the room to an existing part", how: "each connect priced", s: toPart },
    { op: "connect that dials a new part (link, attach, sync)", how: "each connect priced", s: toNew },
    {
      op: "snapshot: a part's attach and sync with 100 messages (the dial's extra)",
      how: "new-part connect − existing-part connect (min, median, max of the former)",
      s: snapshot,
    },
    {
      op: "presence report: a socket on a part closes (close, depart, roster)",
      how: "priced in chunks of 50",
      s: closes,
    },
  ];
  for (const p of saved.points)
    if (!p.name.startsWith("connect") && !p.name.startsWith("close"))
      table.push({ op: `message, ${p.name}`, how: "measured, per message", s: spreadOf(p.reps.map((x) => x.us)) });
  const prof = saved.profile;
  // The room's share of the profiled run, less its fixed part of the
  // publish and its own socket's delivery, is its side of each event.
  let eRoom = ev / 2;
  if (prof !== null) {
    const t = partPub.median + prof.parts * (ev + dp) + dr;
    eRoom = Math.min(ev, Math.max(0, (prof.roomShare * t - (partPub.median - partSide.median) - dr) / prof.parts));
  }
  const costs: Costs = {
    clientSend: clientSend.median,
    dRoom: dr,
    dPart: dp,
    perFlush: perFlush.median,
    event: ev,
    eventRoom: eRoom,
    partPublish: partPub.median,
    partPublishPartSide: Math.max(0, partSide.median),
  };
  return { costs, table, batch: { flushesPerMessage: flushes, perFlushUs: perFlush } };
}

/** T for a configuration on one thread, the sender on a part. */
function predictUs(c: Costs, roomSockets: number, parts: number, perPart: number): number {
  return c.partPublish + parts * (c.event + perPart * c.dPart) + roomSockets * c.dRoom;
}

// ---- output ------------------------------------------------------------------------

function f(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}
function sp(s: Spread, digits = 1): string {
  return `${f(s.median, digits)} (${f(s.min, digits)} – ${f(s.max, digits)})`;
}

function report(saved: Saved): string {
  const { costs, table, batch } = derive(saved);
  const out: string[] = [];
  out.push(`machine: ${saved.machine}; ${saved.date}; commit ${saved.commit}; ${saved.repeats} repeats per point`);
  out.push("", "| operation | derived from | µs of the JS thread: median (min – max) |", "| --- | --- | --- |");
  for (const row of table) out.push(`| ${row.op} | ${row.how} | ${sp(row.s)} |`);
  out.push(
    "",
    `batch clients: ${f(batch.flushesPerMessage, 3)} batch frames per socket per message (the batch series ran with ${saved.points.some((p) => p.name.endsWith(" sat")) ? SATURATED : 8} in flight)`,
  );
  if (saved.profile !== null) {
    const p = saved.profile;
    out.push(
      "",
      `profile (${p.parts} parts of one socket, sender on a part): room ${f(p.roomShare * 100)} % / parts ${f(p.partShare * 100)} % of the attributed samples (${f(p.unattributed * 100)} % unattributed: GC, runtime); so e_room (the room's side of one event) = ${f(costs.eventRoom)} µs and the part's side ${f(costs.event - costs.eventRoom)} µs`,
    );
  }
  out.push(
    "",
    "| configuration (sender on a part) | model T µs/msg | idle share | predicted max msg/s | measured msg per CPU-s: median (min – max) | error | wall msg/s (thread busy) | lost |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const c of saved.checks) {
    const t = predictUs(costs, c.roomSockets, c.parts, c.perPart);
    const predicted = (1 - c.idleShare) / (t * 1e-6);
    const got = spreadOf(c.runs.map((x) => x.perCpuS));
    const wall = spreadOf(c.runs.map((x) => x.wallRate));
    const util = spreadOf(c.runs.map((x) => x.util));
    const err = (predicted - got.median) / got.median;
    out.push(
      `| ${c.config} | ${f(t, 0)} | ${f(c.idleShare * 100)} % | ${f(predicted)} | ${sp(got)} | ${err >= 0 ? "+" : ""}${f(err * 100)} % ${Math.abs(err) <= 0.15 ? "(within ±15 %)" : "(OUTSIDE ±15 %)"} | ${f(wall.median)} (${f(util.median * 100, 0)} %) | ${c.runs.reduce((a, x) => a + x.lost, 0)} |`,
    );
  }
  out.push(
    "",
    `costs used: ${JSON.stringify(Object.fromEntries(Object.entries(costs).map(([k, v]) => [k, Number(v.toFixed(1))])))}`,
  );
  out.push("", productionTables(costs));
  return out.join("\n");
}

function machine(): string {
  const model = cpus()[0]?.model ?? "?";
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
  let workerd = "";
  try {
    workerd = execFileSync(join(ROOT, "node_modules", ".bin", "workerd"), ["--version"], { encoding: "utf8" }).trim();
  } catch {
    // Only informative.
  }
  return `${model}, ${cpus().length} cores, load average ${load}, node ${process.version}, ${workerd}`;
}

function commit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return "?";
  }
}

async function main(): Promise<void> {
  if (flags.from !== undefined) {
    process.stdout.write(`${report(JSON.parse(readFileSync(flags.from, "utf8")) as Saved)}\n`);
    return;
  }
  const started = Date.now();
  const machineAtStart = machine();
  say(`bench:model: ${machineAtStart}; ${REPEATS} repeats`);
  await measureAll();
  const saved: Saved = {
    date: new Date().toISOString(),
    commit: commit(),
    machine: `${machineAtStart}; at the end: load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
    repeats: REPEATS,
    points,
    checks,
    profile,
  };
  const out =
    flags.out ?? join(ROOT, "bench", "profiles", `model-${saved.date.slice(0, 16).replace(/[-:T]/g, "")}.jsonl`);
  writeFileSync(out, `${JSON.stringify(saved)}\n`);
  say(`raw figures in ${out}; ${Math.round((Date.now() - started) / 1000)} s`);
  process.stdout.write(`${report(saved)}\n`);
}

stopServersOnExit();
await main();
