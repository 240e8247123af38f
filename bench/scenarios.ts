// The scenarios of issue 4: fan-out, connect storm with idle memory, and the
// storage cost of edge-chat read from its debug log.
import { performance } from "node:perf_hooks";
import { randomUUID } from "node:crypto";
import { HISTORY_MESSAGES } from "./fixture.ts";
import { Fleet } from "./load.ts";
import { sleep, waitUntil } from "../tools/harness/wait.ts";
import type { Client, Target } from "./load.ts";
import type { BenchServer } from "./servers.ts";
import { isEdgeChat, startServer } from "./servers.ts";
import { quantileOf } from "./stats.ts";
import { RssSampler, cpuSeconds, machineBusySeconds } from "../tools/harness/proc.ts";
import type { LatencySummary } from "./stats.ts";

export const P99_LIMIT_MS = 250;
export const SENDERS = 10;

export type Progress = (line: string) => void;

function targetOf(server: BenchServer): Target {
  return {
    base: server.dev.wsUrl,
    hasIds: isEdgeChat(server.spec.server),
    batch: server.spec.server === "edge-chat+batch",
    keepAlive: isEdgeChat(server.spec.server),
  };
}

function roomName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** CPU of this process (the load generator) as a share of one core. */
class CpuMeter {
  readonly #t0 = performance.now();
  readonly #cpu0 = process.cpuUsage();
  readonly #pids: readonly number[];
  readonly #server0: number;
  readonly #busy0 = machineBusySeconds();

  constructor(serverPids: readonly number[]) {
    this.#pids = serverPids;
    this.#server0 = cpuSeconds(serverPids);
  }

  /** Shares of one core; `others` is what the rest of the (shared) machine used meanwhile. */
  read(): { loadgen: number; server: number; others: number; serverSeconds: number } {
    const wall = (performance.now() - this.#t0) / 1000;
    const used = process.cpuUsage(this.#cpu0);
    const loadgen = (used.user + used.system) / 1e6 / wall;
    const serverSeconds = cpuSeconds(this.#pids) - this.#server0;
    const busy = (machineBusySeconds() - this.#busy0) / wall;
    return {
      loadgen,
      server: serverSeconds / wall,
      others: Math.max(0, busy - loadgen - serverSeconds / wall),
      serverSeconds,
    };
  }
}

/** A figure is bound by the load generator when it used most of a core. */
export const LOADGEN_BOUND = 0.9;

// ---- fan-out ----------------------------------------------------------------

export interface FanoutStep {
  rate: number;
  sent: number;
  expected: number;
  delivered: number;
  deliveriesPerSec: number;
  latency: LatencySummary;
  loadgenCpu: number;
  serverCpu: number;
  /** CPU used by everything else on the shared machine during the step (cores). */
  othersCpu: number;
  /** Server CPU milliseconds per message sent (all runtime processes). */
  serverCpuMsPerMessage: number;
  sendLagging: boolean;
  /** WebSocket frames the clients received per delivery (1 for plain frames, less with batches). */
  framesPerDelivery: number;
  clean: boolean;
  why: string;
}

export interface FanoutResult {
  scenario: "fanout";
  clients: number;
  senders: number;
  best: FanoutStep | null;
  failedAt: FanoutStep | null;
  /** A step at half the best clean rate, run after the search (issue 4: p99 there < 50 ms). */
  half: FanoutStep | null;
  steps: FanoutStep[];
  lost: number;
  duplicates: number;
  outOfOrder: number;
  idErrors: number;
  errorFrames: number;
  firstError: string | null;
  unexpectedCloses: number;
  closeCodes: Record<string, number>;
  connectFailures: number;
  connectMs: number;
  loadgenBound: boolean;
  /** Wire frames received, batch frames among them and the frames they held. */
  wireFrames: number;
  batchFrames: number;
  innerFrames: number;
  /** Frames also JSON.parsed to check the byte-level reading, and disagreements. */
  verified: number;
  verifyMismatches: number;
  firstMismatch: string | null;
}

export interface FanoutOptions {
  clients: number;
  startRate: number;
  factor: number;
  stepSeconds: number;
  maxSteps: number;
  /** Steps between the last clean rate and the first failing one, after the first failure. */
  refine: number;
  drainSeconds: number;
  /** The room to use (default a fresh `fanC-…`). */
  room?: string;
  /** Called once every client has its welcome, before the first step (e.g. to read the room's stats). */
  onConnected?: (fleet: Fleet) => Promise<void>;
  /** Senders spread evenly over the clients (one per part of a large room) instead of the first ten. */
  spreadSenders?: boolean;
  /** How long the last drain waits before what is missing counts as lost (default 3 × drainSeconds). */
  finalDrainSeconds?: number;
}

export async function fanout(server: BenchServer, opts: FanoutOptions, progress: Progress): Promise<FanoutResult> {
  const fleet = new Fleet(targetOf(server), opts.room ?? roomName(`fan${opts.clients}`), SENDERS);
  const label = `${server.spec.server}/${server.spec.host} fan-out C=${opts.clients}`;
  const t0 = performance.now();
  // In batches, so the connect phase stays a setup step and not a storm.
  for (let n = 0; n < opts.clients; n += 100) {
    await fleet.connect(Math.min(100, opts.clients - n));
    progress(`${label}: connected ${fleet.clients.length}/${opts.clients}`);
  }
  const connectMs = performance.now() - t0;
  await opts.onConnected?.(fleet);
  const receivers = fleet.clients.filter((c) => c.welcomeAt >= 0);
  const stride = opts.spreadSenders === true ? Math.max(1, Math.floor(receivers.length / SENDERS)) : 1;
  const senders: Client[] = receivers.filter((_, i) => i % stride === 0).slice(0, SENDERS);
  const steps: FanoutStep[] = [];
  let best: FanoutStep | null = null;
  let failedAt: FanoutStep | null = null;
  const pids = server.dev.runtimePids();
  let rate = opts.startRate;
  // A discarded first step warms the JITs on both sides and the room's caches.
  if (senders.length === SENDERS)
    await fanoutStep(
      fleet,
      senders,
      receivers.length,
      rate,
      { ...opts, stepSeconds: Math.min(1, opts.stepSeconds) },
      pids,
      (s) => progress(`${label}: warm-up ${s}`),
    );

  const runStep = async (r: number, name: string) => {
    const step = await fanoutStep(fleet, senders, receivers.length, r, opts, pids, (s) =>
      progress(`${label}: ${name} ${s}`),
    );
    steps.push(step);
    return step;
  };
  const settle = () => {
    const expected = fleet.totalSent() * receivers.length;
    return waitUntil(() => fleet.tally.deliveries >= expected, opts.drainSeconds * 3000, 20);
  };
  // On a shared machine one stall of a few hundred ms fails a short step, so
  // a failed step is repeated once (after the room has caught up) before it
  // counts: a rate fails when it fails twice in a row.
  const confirm = async (step: FanoutStep, name: string): Promise<FanoutStep> => {
    if (step.clean || !(await settle())) return step;
    return runStep(step.rate, `${name} (again)`);
  };
  for (let i = 0; i < opts.maxSteps && failedAt === null && senders.length === SENDERS; i++) {
    const step = await confirm(await runStep(rate, `step ${i + 1}`), `step ${i + 1}`);
    if (step.clean) best = step;
    else failedAt = step;
    rate = Math.round(rate * opts.factor);
  }
  // Narrow the bracket geometrically, if the failed step left nothing behind.
  for (let i = 0; i < opts.refine && best !== null && failedAt !== null; i++) {
    if (!(await settle())) break;
    const r = Math.round(Math.sqrt(best.rate * failedAt.rate));
    if (r <= best.rate || r >= failedAt.rate) break;
    const step = await confirm(await runStep(r, `refine ${i + 1}`), `refine ${i + 1}`);
    if (step.clean) best = step;
    else failedAt = step;
  }
  // Latency at half the highest clean rate, once the room has caught up.
  let half: FanoutStep | null = null;
  if (best !== null && (await settle())) {
    const r = Math.max(1, Math.round(best.rate / 2));
    half = await fanoutStep(fleet, senders, receivers.length, r, opts, pids, (s) =>
      progress(`${label}: half rate ${s}`),
    );
  }
  // Whatever is still in flight after a failed step gets a last chance, so
  // that "lost" means never delivered, not late.
  const expectedTotal = fleet.totalSent() * receivers.length;
  await waitUntil(
    () => fleet.tally.deliveries >= expectedTotal,
    (opts.finalDrainSeconds ?? opts.drainSeconds * 3) * 1000,
    20,
  );
  const lost = fleet.lost(receivers);
  const t = fleet.tally;
  await fleet.closeAll();
  return {
    scenario: "fanout",
    clients: receivers.length,
    senders: senders.length,
    best,
    failedAt,
    half,
    steps,
    lost,
    duplicates: t.duplicates,
    outOfOrder: t.outOfOrder,
    idErrors: t.idErrors,
    errorFrames: t.errorFrames,
    firstError: fleet.firstError,
    unexpectedCloses: t.unexpectedCloses,
    closeCodes: { ...t.closeCodes },
    connectFailures: t.connectFailures + (opts.clients - receivers.length),
    connectMs,
    loadgenBound: best !== null && best.loadgenCpu >= LOADGEN_BOUND,
    wireFrames: t.wireFrames,
    batchFrames: t.batchFrames,
    innerFrames: t.innerFrames,
    verified: t.verified,
    verifyMismatches: t.verifyMismatches,
    firstMismatch: t.firstMismatch,
  };
}

async function fanoutStep(
  fleet: Fleet,
  senders: readonly Client[],
  receivers: number,
  rate: number,
  opts: FanoutOptions,
  pids: readonly number[],
  progress: Progress,
): Promise<FanoutStep> {
  fleet.latency.reset();
  const tally = fleet.tally;
  const delivered0 = tally.deliveries;
  const frames0 = tally.wireFrames;
  const errors0 = tally.errorFrames + tally.unexpectedCloses;
  const total = Math.max(1, Math.round(rate * opts.stepSeconds));
  const meter = new CpuMeter(pids);
  const t0 = performance.now();
  let sent = 0;
  const ticker = setInterval(() => {
    const got = tally.deliveries - delivered0;
    const wall = (performance.now() - t0) / 1000;
    progress(
      `rate ${rate} msg/s (${rate * receivers} deliveries/s offered): sent ${sent}/${total}, ` +
        `delivered ${got}/${sent * receivers} (${Math.round(got / wall)}/s), p99 ${fleet.latency.quantile(0.99).toFixed(1)} ms, ` +
        `load generator CPU ${Math.round(meter.read().loadgen * 100)}%`,
    );
  }, 500);
  // Open loop: the schedule says how many messages are due by now; a late
  // timer sends the backlog at once, and each frame is stamped when it leaves.
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      for (; sent < due; sent++) fleet.send(senders[sent % SENDERS] as Client, sent % SENDERS);
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const sendSeconds = (performance.now() - t0) / 1000;
  const expected = total * receivers;
  const complete = await waitUntil(() => tally.deliveries - delivered0 >= expected, opts.drainSeconds * 1000, 5);
  clearInterval(ticker);
  const cpu = meter.read();
  const delivered = tally.deliveries - delivered0;
  const seconds = ((complete ? tally.lastDeliveryAt : performance.now()) - t0) / 1000;
  const latency = fleet.latency.summary();
  const errors = tally.errorFrames + tally.unexpectedCloses - errors0;
  let why = "";
  if (!complete) why = `${expected - delivered} deliveries missing after ${opts.drainSeconds} s`;
  else if (latency.p99 > P99_LIMIT_MS) why = `p99 ${latency.p99.toFixed(0)} ms > ${P99_LIMIT_MS} ms`;
  else if (errors > 0) why = `${errors} error frames or closes`;
  else if (tally.verifyMismatches > 0)
    why = `byte-level reading disagreed with JSON.parse: ${tally.firstMismatch ?? ""}`;
  return {
    rate,
    sent: total,
    expected,
    delivered,
    deliveriesPerSec: delivered / seconds,
    latency,
    loadgenCpu: cpu.loadgen,
    serverCpu: cpu.server,
    othersCpu: cpu.others,
    serverCpuMsPerMessage: (cpu.serverSeconds * 1000) / total,
    sendLagging: sendSeconds > opts.stepSeconds * 1.1 + 0.05,
    framesPerDelivery: delivered > 0 ? (tally.wireFrames - frames0) / delivered : Number.NaN,
    clean: why === "",
    why,
  };
}

// ---- connect storm and idle memory ------------------------------------------

export interface StormResult {
  scenario: "storm";
  clients: number;
  welcomed: number;
  failures: number;
  totalMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  historyOk: number;
  baselineRssMiB: number;
  peakRssMiB: number;
  idleRssMiB: number;
  idleKiBPerConnection: number;
  runtimeProcesses: number;
  presenceFrames: number;
  /** edge-chat: joins every client must get (each user's arrival, to everyone already there); 0 for the raw servers. */
  joinsExpected: number;
  /** Frames on the wire after the welcomes (joins, plain or in batches), per client. */
  framesPerClient: number;
  verifyMismatches: number;
  loadgenCpu: number;
  serverCpu: number;
  othersCpu: number;
  loadgenBound: boolean;
}

export async function storm(
  server: BenchServer,
  clients: number,
  idleSeconds: number,
  progress: Progress,
): Promise<StormResult> {
  const label = `${server.spec.server}/${server.spec.host} connect storm N=${clients}`;
  const fleet = new Fleet(targetOf(server), roomName("storm"), 1);
  // A full history first: one client posts HISTORY_MESSAGES messages (the
  // raw servers relay them and answer with a welcome of the same size anyway).
  const [writer] = await fleet.connect(1);
  if (writer === undefined || writer.welcomeAt < 0) throw new Error(`${label}: the history writer could not connect`);
  for (let i = 0; i < HISTORY_MESSAGES; i++) fleet.send(writer, 0);
  await waitUntil(() => fleet.tally.deliveries >= HISTORY_MESSAGES, 10_000, 5);
  const pids = server.dev.runtimePids();
  await sleep(300);
  const sampler = new RssSampler(pids);
  const baseline = sampler.sample();
  sampler.peak = baseline;
  const meter = new CpuMeter(pids);
  progress(`${label}: opening ${clients} sockets at once`);
  const frames0 = fleet.tally.wireFrames;
  const t0 = performance.now();
  const ticker = setInterval(() => {
    const done = fleet.clients.filter((c) => c.welcomeAt >= 0).length - 1;
    progress(
      `${label}: ${done}/${clients} welcomed after ${Math.round(performance.now() - t0)} ms, RSS ${sampler.sample().toFixed(0)} MiB`,
    );
  }, 500);
  const opened = await fleet.connect(clients);
  clearInterval(ticker);
  const cpu = meter.read();
  const ok = opened.filter((c) => c.welcomeAt >= 0);
  const times = ok.map((c) => c.welcomeAt - c.startedAt);
  const lastWelcome = Math.max(...ok.map((c) => c.welcomeAt));
  progress(`${label}: idle for ${idleSeconds} s to read resident memory`);
  await sleep(idleSeconds * 1000);
  sampler.stop();
  // Every join must arrive, once (N + 1 distinct users: the writer and N).
  const joinsExpected = fleet.target.hasIds ? clients + (clients * (clients - 1)) / 2 : 0;
  await waitUntil(() => fleet.tally.joins >= joinsExpected, 20_000, 20);
  // Read again: wrangler dev may have replaced a workerd meanwhile.
  const idle = new RssSampler(server.dev.runtimePids()).stop();
  const result: StormResult = {
    scenario: "storm",
    clients,
    welcomed: ok.length,
    failures: clients - ok.length,
    totalMs: lastWelcome - t0,
    p50Ms: quantileOf(times, 0.5),
    p99Ms: quantileOf(times, 0.99),
    maxMs: Math.max(...times),
    historyOk: ok.filter((c) => c.historyLength === HISTORY_MESSAGES && c.historyConsecutive).length,
    baselineRssMiB: baseline,
    peakRssMiB: sampler.peak,
    idleRssMiB: idle,
    idleKiBPerConnection: ((idle - baseline) * 1024) / clients,
    runtimeProcesses: pids.length,
    presenceFrames: fleet.tally.joins + fleet.tally.leaves,
    joinsExpected,
    framesPerClient: (fleet.tally.wireFrames - frames0) / clients,
    verifyMismatches: fleet.tally.verifyMismatches,
    loadgenCpu: cpu.loadgen,
    serverCpu: cpu.server,
    othersCpu: cpu.others,
    loadgenBound: cpu.loadgen >= LOADGEN_BOUND,
  };
  await fleet.closeAll();
  return result;
}

// ---- cost (edge-chat only) --------------------------------------------------

export interface EventCost {
  count: number;
  rowsRead: number;
  rowsWritten: number;
}

export interface CostResult {
  scenario: "cost";
  messages: number;
  connects: number;
  events: Record<string, EventCost>;
  rowsWrittenPerMessage: number;
  rowsReadPerMessage: number;
  rowsReadPerConnectWarm: number;
  rowsReadPerConnectCold: number;
  rowsWrittenPerConnect: number;
  coldHistoryOk: boolean;
  /** Billed Durable Object requests per 1000 messages (20 incoming WebSocket messages = 1 request). */
  requestsPer1000Messages: number;
  /** The same, counting the connects of this scenario's clients amortised over its messages. */
  requestsPer1000MessagesWithConnects: number;
  logLines: number;
}

function parseLog(lines: readonly string[]): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of lines) {
    const at = line.indexOf("{");
    if (at < 0) continue;
    try {
      const value: unknown = JSON.parse(line.slice(at));
      if (typeof value === "object" && value !== null && !Array.isArray(value)) out.push({ ...value });
    } catch {
      // Not a log line of the room.
    }
  }
  return out;
}

function costsByEvent(entries: ReadonlyArray<Record<string, unknown>>): Record<string, EventCost> {
  const events: Record<string, EventCost> = {};
  for (const e of entries) {
    const name = typeof e.event === "string" ? e.event : "?";
    const cost = (events[name] ??= { count: 0, rowsRead: 0, rowsWritten: 0 });
    cost.count++;
    if (typeof e.rowsRead === "number") cost.rowsRead += e.rowsRead;
    if (typeof e.rowsWritten === "number") cost.rowsWritten += e.rowsWritten;
  }
  return events;
}

/**
 * Runs edge-chat at LOG_LEVEL=debug, sends `messages` messages among 10
 * clients, connects 10 more to the warm room, then restarts the server on
 * the same state folder and connects once more: the cold connect reads the
 * history from SQLite and must find all of it.
 */
export async function cost(host: "wrangler" | "miniflare", messages: number, progress: Progress): Promise<CostResult> {
  const label = `edge-chat/${host} cost`;
  progress(`${label}: starting at LOG_LEVEL=debug`);
  const logLines: string[] = [];
  const server = await startServer(
    { server: "edge-chat", host },
    { logLevel: "debug", onLine: (line) => logLines.push(line) },
  );
  const room = roomName("cost");
  const lines: string[] = [];
  try {
    const fleet = new Fleet(targetOf(server), room, SENDERS);
    const first = await fleet.connect(SENDERS);
    for (let i = 0; i < messages; i++) {
      fleet.send(first[i % SENDERS] as Client, i % SENDERS);
      if (i % 50 === 49) await sleep(20);
    }
    await waitUntil(() => fleet.tally.deliveries >= messages * SENDERS, 20_000, 5);
    progress(`${label}: ${messages} messages delivered, 10 warm connects`);
    await fleet.connect(10);
    await fleet.closeAll();
    await sleep(500);
    lines.push(...logLines.splice(0));
    progress(`${label}: restarting on the same state folder for a cold connect`);
    await server.dev.restart();
    const cold = new Fleet(targetOf(server), room, 1);
    const [reader] = await cold.connect(1);
    const coldHistoryOk =
      reader !== undefined &&
      reader.historyLength === Math.min(messages, HISTORY_MESSAGES) &&
      reader.historyConsecutive;
    await cold.closeAll();
    await sleep(500);
    const coldEntries = parseLog(logLines);
    const warmEntries = parseLog(lines);
    const events = costsByEvent(warmEntries);
    const stored = events.message_stored ?? { count: 0, rowsRead: 0, rowsWritten: 0 };
    const connects = warmEntries.filter((e) => e.event === "connect");
    const warmConnects = connects.slice(1);
    const coldConnect = coldEntries.find((e) => e.event === "connect");
    const num = (v: unknown) => (typeof v === "number" ? v : Number.NaN);
    const sum = (es: ReadonlyArray<Record<string, unknown>>, k: string) => es.reduce((a, e) => a + num(e[k]), 0);
    const connectCount = connects.length + (coldConnect === undefined ? 0 : 1);
    return {
      scenario: "cost",
      messages: stored.count,
      connects: connectCount,
      events,
      rowsWrittenPerMessage: stored.rowsWritten / stored.count,
      rowsReadPerMessage: stored.rowsRead / stored.count,
      rowsReadPerConnectWarm:
        warmConnects.length > 0 ? sum(warmConnects, "rowsRead") / warmConnects.length : Number.NaN,
      rowsReadPerConnectCold: coldConnect === undefined ? Number.NaN : num(coldConnect.rowsRead),
      rowsWrittenPerConnect: connects.length > 0 ? sum(connects, "rowsWritten") / connects.length : Number.NaN,
      coldHistoryOk,
      requestsPer1000Messages: 1000 / 20,
      requestsPer1000MessagesWithConnects: ((stored.count / 20 + connectCount) / stored.count) * 1000,
      logLines: warmEntries.length + coldEntries.length,
    };
  } finally {
    await server.dev.dispose();
  }
}
