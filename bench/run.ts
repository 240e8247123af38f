// `npm run bench`: edge-chat (plain v1 clients, and clients of the `batch=1`
// extension: "edge-chat+batch") against two reference servers (ws-raw,
// do-raw), driven by one load generator in one run. The Workers run in a bare
// Miniflare by default; `--wrangler` adds the `wrangler dev` host. Prints one
// JSON line per scenario as it finishes, then a table of medians (over
// --runs) with edge-chat's ratios, then the issue 4 targets.
//
//   node bench/run.ts                 short run, about three minutes: C=100, storm of 200, large room
//   node bench/run.ts --full          C = 100 and 1000, 3 s steps, 1000-client storm
//   options: --runs N  --servers ws-raw,do-raw,edge-chat,edge-chat+batch
//            --hosts miniflare,wrangler (or --wrangler)  --clients 100,1000
//            --storm N  --step-seconds S  --no-cost
//   every run also: a large room (issue 11) of 1000 clients under wrangler dev
//                   with SHARD_SIZE 100 (10 objects) against the same 1000 in one
//                   object, plain and batch: --large-clients N (0: skip)
//                   --shard-size N  --large-host wrangler|miniflare  --large-only
//   node bench/run.ts --baseline REF  single-room regression check: edge-chat plain and batch, C=100 and
//                                     1000, this tree against REF (a git worktree with its own npm ci),
//                                     interleaved, --runs times (default 3); ratios and the same-tree
//                                     spread that says what "within noise" is
//   node bench/run.ts --memory        JS heap and RSS per idle connection (do-raw, edge-chat,
//                                     +batch under Miniflare), heap snapshot breakdown, and the
//                                     worst case of one object (full 2000-character history,
//                                     storm): --memory-steps 0,250,500,1000  --memory-storm 1000 (a list)
import { cpus, loadavg, totalmem } from "node:os";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { cost, fanout, storm, LOADGEN_BOUND, P99_LIMIT_MS } from "./scenarios.ts";
import type { CostResult, FanoutOptions, FanoutResult, FanoutStep, StormResult } from "./scenarios.ts";
import { SERVER_NAMES, isEdgeChat, startServer } from "./servers.ts";
import { ONE_OBJECT, fanoutFaults, largeFanout, startSharded } from "./sharded.ts";
import { checkoutBaseline, disposeBaselines } from "./baseline.ts";
import type { LargeResult } from "./sharded.ts";
import { TEXT_LENGTH } from "./fixture.ts";
import { MAX_TEXT, idleMemory, worstCase } from "./memory.ts";
import type { MemoryResult, WorstResult } from "./memory.ts";
import type { HostName, ServerName, ServerSpec } from "./servers.ts";
import { median } from "./stats.ts";
import { HISTORY_MESSAGES as HISTORY_SIZE } from "./fixture.ts";
import { choiceList, listFlag, numberFlag, parseCli, stringFlags } from "../tools/harness/cli.ts";
import { ROOT, stopServersOnExit } from "../tools/harness/devserver.ts";

// ---- options ------------------------------------------------------------------

const USAGE =
  "node bench/run.ts [--full] [--runs N] [--servers LIST] [--hosts LIST | --wrangler] [--clients LIST] [--storm N] [--step-seconds S] [--no-cost]" +
  " [--large-clients N] [--shard-size N] [--large-host wrangler|miniflare] [--large-only] [--from FILE]" +
  " | --baseline REF [--runs N] [--servers LIST] [--hosts LIST] [--clients LIST] [--step-seconds S]" +
  " | --memory [--servers LIST] [--memory-steps LIST] [--memory-storm LIST]";
const flags = parseCli(
  {
    full: { type: "boolean", default: false },
    ...stringFlags(
      "runs",
      "servers",
      "hosts",
      "clients",
      "storm",
      "step-seconds",
      "from",
      "memory-steps",
      "memory-storm",
      "large-clients",
      "shard-size",
      "large-host",
      "baseline",
    ),
    wrangler: { type: "boolean", default: false },
    memory: { type: "boolean", default: false },
    "no-cost": { type: "boolean", default: false },
    "large-only": { type: "boolean", default: false },
  },
  USAGE,
);
const full = flags.full;
const runs = numberFlag(flags.runs, flags.baseline === undefined ? 1 : 3, "runs", 1);
const servers = choiceList(flags.servers, SERVER_NAMES, SERVER_NAMES, "servers");
const hosts = choiceList(
  flags.hosts,
  ["miniflare", "wrangler"] as const,
  flags.wrangler ? ["miniflare", "wrangler"] : ["miniflare"],
  "hosts",
);
const clientCounts = (
  listFlag(flags.clients) ?? (full || flags.baseline !== undefined ? ["100", "1000"] : ["100"])
).map((c) => numberFlag(c, 0, "clients", 1));
const stormClients = numberFlag(flags.storm, full ? 1000 : 200, "storm", 1);
const stepSeconds = numberFlag(flags["step-seconds"], full ? 3 : 1, "step-seconds", 0.1);
const withCost = !flags["no-cost"];
const fanoutBase: Omit<FanoutOptions, "clients" | "startRate"> = {
  factor: full ? 1.6 : 2,
  stepSeconds,
  maxSteps: full ? 12 : 7,
  refine: full ? 1 : 0,
  drainSeconds: full ? 4 : 2,
};
/** The large room (issue 11): clients, SHARD_SIZE and host; 0 clients skips it. */
const largeClients = numberFlag(flags["large-clients"], 1000, "large-clients", 0);
const shardSize = numberFlag(flags["shard-size"], 100, "shard-size", 1);
const [largeHost = "wrangler"] = choiceList<"wrangler" | "miniflare">(
  flags["large-host"],
  ["wrangler", "miniflare"],
  ["wrangler"],
  "large-host",
);
/** What is missing this long after the last step of a large room counts as lost. */
const LARGE_FINAL_DRAIN_SECONDS = 20;
/** Offered deliveries per second of the first step, whatever C is. */
const START_DELIVERIES = full ? 3_000 : 4_000;

// ---- progress -------------------------------------------------------------------

const tty = process.stderr.isTTY === true;
let lastPlain = 0;
function progress(line: string): void {
  if (tty) {
    process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
  } else if (Date.now() - lastPlain > 3000) {
    lastPlain = Date.now();
    process.stderr.write(`${line}\n`);
  }
}
function progressDone(): void {
  if (tty) process.stderr.write("\r\x1b[K");
}

// ---- results ----------------------------------------------------------------------

type Result = (FanoutResult | StormResult | CostResult | LargeResult) & {
  run: number;
  server: ServerName;
  host: HostName;
};
const results: Result[] = [];
/** Runs whose results are in (the table's medians are over these). */
let runsDone = 0;

function emit(result: Result): void {
  progressDone();
  results.push(result);
  const { steps: _steps, ...rest } = "steps" in result ? result : { ...result, steps: undefined };
  process.stdout.write(
    `${JSON.stringify(result.scenario === "fanout" || result.scenario === "large" ? { ...rest, steps: result.steps } : rest)}\n`,
  );
}

function specs(): ServerSpec[] {
  const out: ServerSpec[] = [];
  if (flags["large-only"]) return out;
  if (servers.includes("ws-raw")) out.push({ server: "ws-raw", host: "node" });
  for (const server of ["do-raw", "edge-chat", "edge-chat+batch"] as const) {
    if (!servers.includes(server)) continue;
    for (const host of hosts) out.push({ server, host });
  }
  return out;
}

/** `--from FILE`: the table and targets again from the JSON lines of earlier runs (e.g. an interrupted one). */
function fromFile(file: string): void {
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    const r = JSON.parse(line) as Result;
    results.push(r);
    runsDone = Math.max(runsDone, r.run);
  }
  printTable();
}

async function main(): Promise<void> {
  const from = flags.from;
  if (from !== undefined) return fromFile(from);
  if (flags.memory) return memory();
  if (flags.baseline !== undefined) return regression(flags.baseline);
  const started = Date.now();
  process.stderr.write(
    `bench: ${full ? "full" : "short"} run, ${runs} run(s), C=${clientCounts.join("/")}, storm ${stormClients}, ` +
      `${stepSeconds}s steps; ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), node ${process.version}\n`,
  );
  for (let run = 1; run <= runs; run++) {
    for (const spec of specs()) {
      progress(`${spec.server}/${spec.host}: starting`);
      const server = await startServer(spec);
      try {
        for (const clients of clientCounts) {
          const startRate = Math.max(1, Math.round(START_DELIVERIES / clients));
          const r = await fanout(server, { ...fanoutBase, clients, startRate }, progress);
          emit({ ...r, run, ...spec });
        }
        const s = await storm(server, stormClients, full ? 3 : 1, progress);
        emit({ ...s, run, ...spec });
      } catch (err) {
        progressDone();
        process.stderr.write(
          `${spec.server}/${spec.host} failed: ${err instanceof Error ? err.message : String(err)}\n${server.dev.tail()}\n`,
        );
      } finally {
        await server.dev.dispose();
      }
    }
    await largeRooms(run);
    runsDone = run;
    if (withCost && servers.includes("edge-chat") && !flags["large-only"]) {
      for (const host of full ? hosts : hosts.slice(-1)) {
        try {
          const c = await cost(host, full ? 1000 : 200, progress);
          emit({ ...c, run, server: "edge-chat", host });
        } catch (err) {
          progressDone();
          process.stderr.write(`edge-chat/${host} cost failed: ${err instanceof Error ? err.message : String(err)}\n`);
        }
      }
    }
  }
  progressDone();
  printTable();
  process.stderr.write(`bench: done in ${Math.round((Date.now() - started) / 1000)} s\n`);
  failLoudly();
}

/**
 * The large room against one object, plain then batch clients: the same
 * 1000 clients, the same steps; which of the two goes first alternates from
 * run to run.
 */
async function largeRooms(run: number): Promise<void> {
  if (largeClients === 0) return;
  for (const batch of [false, true]) {
    if (!servers.includes(batch ? "edge-chat+batch" : "edge-chat")) continue;
    const sizes = run % 2 === 1 ? [ONE_OBJECT, shardSize] : [shardSize, ONE_OBJECT];
    for (const size of sizes) {
      const name = `${batch ? "edge-chat+batch" : "edge-chat"}/${largeHost} SHARD_SIZE ${size}`;
      progress(`${name}: starting`);
      try {
        const server = await startSharded(largeHost, size, batch);
        try {
          const startRate = Math.max(1, Math.round(START_DELIVERIES / largeClients));
          const r = await largeFanout(
            server,
            { ...fanoutBase, clients: largeClients, startRate, finalDrainSeconds: LARGE_FINAL_DRAIN_SECONDS },
            (line) => progress(`${name} ${line.slice(line.indexOf(":") + 1).trim()}`),
          );
          emit({ ...r, run, ...server.spec });
        } finally {
          await server.dev.dispose();
        }
      } catch (err) {
        progressDone();
        largeErrors.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
        process.stderr.write(`${name} failed: ${largeErrors.at(-1)}\n`);
      }
    }
  }
}

/** Large-room runs that did not finish (a server that would not start, a scenario that threw). */
const largeErrors: string[] = [];

/**
 * Any lost, duplicated or out-of-order delivery (or other fault) of edge-chat
 * in any scenario, a large room that did not split as SHARD_SIZE says, or
 * one that did not run: printed on stderr and the exit code is 1.
 */
function failLoudly(): void {
  const faults: string[] = [...largeErrors];
  for (const r of results) {
    const name = `${r.server}/${r.host} run ${r.run}`;
    if (r.scenario === "large") {
      const n = fanoutFaults(r);
      if (n > 0)
        faults.push(
          `${name} large room SHARD_SIZE ${r.shardSize}: ${n} faults (lost ${r.lost}, duplicated ${r.duplicates}, out of order ${r.outOfOrder}, id errors ${r.idErrors}, closes ${r.unexpectedCloses}, errors ${r.errorFrames}, connect failures ${r.connectFailures}, parse mismatches ${r.verifyMismatches})`,
        );
      if (r.shapeFault !== "") faults.push(`${name} large room SHARD_SIZE ${r.shardSize}: ${r.shapeFault}`);
    } else if (r.scenario === "fanout" && isEdgeChat(r.server) && fanoutFaults(r) > 0) {
      faults.push(
        `${name} fan-out C=${r.clients}: lost ${r.lost}, duplicated ${r.duplicates}, out of order ${r.outOfOrder + r.idErrors}, other faults ${fanoutFaults(r) - r.lost - r.duplicates - r.outOfOrder - r.idErrors}`,
      );
    }
  }
  if (faults.length === 0) return;
  process.stderr.write(`\nbench: FAILED\n${faults.map((f) => `  ${f}`).join("\n")}\n`);
  process.exitCode = 1;
}

// ---- the table --------------------------------------------------------------------

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "-";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function pick<T extends Result>(server: ServerName, host: HostName, match: (r: Result) => r is T): T[] {
  return results.filter((r): r is T => r.server === server && r.host === host && match(r));
}

const isFanout =
  (clients: number) =>
  (r: Result): r is FanoutResult & Result =>
    r.scenario === "fanout" && r.clients === clients;
const isStorm = (r: Result): r is StormResult & Result => r.scenario === "storm";
const isCost = (r: Result): r is CostResult & Result => r.scenario === "cost";

function med<T>(rs: readonly T[], f: (r: T) => number): number {
  return median(rs.map(f));
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : "-";
}

/** Median fan-out rate, storm time and idle memory of one server and host, for the ratios. */
function refFanout(server: ServerName, host: HostName, clients: number): number {
  return med(pick(server, host, isFanout(clients)), (r) => r.best?.deliveriesPerSec ?? 0);
}
function refStorm(server: ServerName, host: HostName, f: (r: StormResult) => number): number {
  return med(pick(server, host, isStorm), f);
}

/** A row whose result says it all: the measured columns stay empty, and the comparisons too unless given. */
function noteRow(server: string, host: string, scenario: string, result: string, versus = ["", "", ""]): string[] {
  return [server, host, scenario, result, ...Array<string>(9).fill(""), ...versus];
}

function printTable(): void {
  const rows: string[][] = [];
  const header = [
    "server",
    "host",
    "scenario",
    "result",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "p99 @half",
    "lost/dup/ooo",
    "loadgen CPU",
    "server CPU",
    "others CPU",
    "vs ws-raw",
    "vs do-raw",
    "vs plain",
  ];
  for (const spec of specs()) {
    const { server, host } = spec;
    const edge = isEdgeChat(server);
    const vsPlain = server === "edge-chat+batch";
    for (const clients of clientCounts) {
      const rs = pick(server, host, isFanout(clients));
      if (rs.length === 0) continue;
      const rate = med(rs, (r) => r.best?.deliveriesPerSec ?? 0);
      const bound = rs.some((r) => r.loadgenBound) ? " (loadgen-bound)" : "";
      const frames = edge
        ? `, ${fmt(
            med(rs, (r) => r.best?.framesPerDelivery ?? Number.NaN),
            3,
          )} frames/deliv`
        : "";
      const mismatches = med(rs, (r) => r.verifyMismatches);
      rows.push([
        server,
        host,
        `fan-out C=${clients}`,
        `${fmt(rate)} deliv/s${frames}${bound}`,
        fmt(
          med(rs, (r) => r.best?.latency.p50 ?? Number.NaN),
          1,
        ),
        fmt(
          med(rs, (r) => r.best?.latency.p90 ?? Number.NaN),
          1,
        ),
        fmt(
          med(rs, (r) => r.best?.latency.p99 ?? Number.NaN),
          1,
        ),
        fmt(
          med(rs, (r) => r.best?.latency.max ?? Number.NaN),
          1,
        ),
        fmt(
          med(rs, (r) => r.half?.latency.p99 ?? Number.NaN),
          1,
        ),
        `${fmt(med(rs, (r) => r.lost))}/${fmt(med(rs, (r) => r.duplicates))}/${fmt(med(rs, (r) => r.outOfOrder + r.idErrors))}` +
          (mismatches > 0 ? ` PARSE MISMATCH ${fmt(mismatches)}` : "") +
          (rs.some((r) => r.unexpectedCloses + r.errorFrames > 0)
            ? `, closes/errors ${fmt(med(rs, (r) => r.unexpectedCloses + r.errorFrames))}`
            : ""),
        `${fmt(med(rs, (r) => (r.best?.loadgenCpu ?? Number.NaN) * 100))}%`,
        `${fmt(med(rs, (r) => (r.best?.serverCpu ?? Number.NaN) * 100))}%`,
        `${fmt(med(rs, (r) => (r.best?.othersCpu ?? Number.NaN) * 100))}%`,
        server === "ws-raw" ? "" : ratio(rate, refFanout("ws-raw", "node", clients)),
        edge ? ratio(rate, refFanout("do-raw", host, clients)) : "",
        vsPlain ? ratio(rate, refFanout("edge-chat", host, clients)) : "",
      ]);
    }
    const ss = pick(server, host, isStorm);
    if (ss.length > 0) {
      const total = med(ss, (r) => r.totalMs);
      const n = ss[0]?.clients ?? 0;
      const joins = edge
        ? `; joins ${ss.every((r) => r.presenceFrames === r.joinsExpected) ? "all" : "MISSING/EXTRA"} (${fmt(med(ss, (r) => r.presenceFrames))}), ${fmt(
            med(ss, (r) => r.framesPerClient),
            1,
          )} frames/client`
        : "";
      rows.push([
        server,
        host,
        `storm N=${n}`,
        `all welcomed in ${fmt(total)} ms, peak ${fmt(med(ss, (r) => r.peakRssMiB))} MiB${joins}`,
        fmt(
          med(ss, (r) => r.p50Ms),
          1,
        ),
        "",
        fmt(
          med(ss, (r) => r.p99Ms),
          1,
        ),
        fmt(
          med(ss, (r) => r.maxMs),
          1,
        ),
        "",
        `fail ${fmt(med(ss, (r) => r.failures))}, bad history ${fmt(med(ss, (r) => r.welcomed - r.historyOk))}`,
        `${fmt(med(ss, (r) => r.loadgenCpu * 100))}%`,
        `${fmt(med(ss, (r) => r.serverCpu * 100))}%`,
        `${fmt(med(ss, (r) => r.othersCpu * 100))}%`,
        server === "ws-raw"
          ? ""
          : `${ratio(
              total,
              refStorm("ws-raw", "node", (r) => r.totalMs),
            )} time`,
        edge
          ? `${ratio(
              total,
              refStorm("do-raw", host, (r) => r.totalMs),
            )} time`
          : "",
        vsPlain
          ? `${ratio(
              total,
              refStorm("edge-chat", host, (r) => r.totalMs),
            )} time`
          : "",
      ]);
      const perConn = med(ss, (r) => r.idleKiBPerConnection);
      rows.push(
        noteRow(
          server,
          host,
          `idle N=${n}`,
          `${fmt(perConn, 1)} KiB/conn, RSS ${fmt(med(ss, (r) => r.baselineRssMiB))} -> ${fmt(med(ss, (r) => r.idleRssMiB))} MiB (${ss[0]?.runtimeProcesses ?? 0} proc)`,
          [
            server === "ws-raw"
              ? ""
              : ratio(
                  perConn,
                  refStorm("ws-raw", "node", (r) => r.idleKiBPerConnection),
                ),
            edge
              ? ratio(
                  perConn,
                  refStorm("do-raw", host, (r) => r.idleKiBPerConnection),
                )
              : "",
            vsPlain
              ? ratio(
                  perConn,
                  refStorm("edge-chat", host, (r) => r.idleKiBPerConnection),
                )
              : "",
          ],
        ),
      );
    }
    const cs = pick(server, host, isCost);
    if (cs.length > 0) {
      rows.push(
        noteRow(
          server,
          host,
          "cost",
          `rows/msg written ${fmt(
            med(cs, (r) => r.rowsWrittenPerMessage),
            2,
          )} read ${fmt(
            med(cs, (r) => r.rowsReadPerMessage),
            2,
          )}; ` +
            `rows read/connect warm ${fmt(
              med(cs, (r) => r.rowsReadPerConnectWarm),
              1,
            )} cold ${fmt(
              med(cs, (r) => r.rowsReadPerConnectCold),
              0,
            )}; ` +
            `rows written/connect ${fmt(
              med(cs, (r) => r.rowsWrittenPerConnect),
              1,
            )}; ` +
            `DO requests/1000 msgs ${fmt(med(cs, (r) => r.requestsPer1000Messages))} (${fmt(med(cs, (r) => r.requestsPer1000MessagesWithConnects))} with connects); cold history ${cs.every((r) => r.coldHistoryOk) ? "ok" : "BAD"}`,
        ),
      );
    }
  }
  if (rows.length === 0) {
    printLarge();
    return;
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join(" | ")
      .trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)];
  process.stdout.write(`\n${out.join("\n")}\n`);
  process.stdout.write(
    `\nfan-out: highest offered rate with every delivery in, p99 <= ${P99_LIMIT_MS} ms and no error; "p99 @half": a step at half that rate; ` +
      `medians of ${runsDone} run(s); "loadgen-bound" = the load generator used >= ${LOADGEN_BOUND * 100}% of a core there; ` +
      `CPU columns are shares of one core, "others" = the rest of the shared machine meanwhile (noise); "vs plain" = edge-chat+batch / edge-chat.\n`,
  );
  printTargets();
  printLarge();
}

const isLarge = (r: Result): r is LargeResult & Result => r.scenario === "large";

/** The highest offered rate at which both fan-outs had a clean step, and those two steps. */
function commonStep(a: LargeResult, b: LargeResult): { rate: number; a: FanoutStep; b: FanoutStep } | null {
  let found: { rate: number; a: FanoutStep; b: FanoutStep } | null = null;
  for (const sa of a.steps) {
    if (!sa.clean) continue;
    const sb = b.steps.find((s) => s.clean && s.rate === sa.rate);
    if (sb !== undefined && (found === null || sa.rate > found.rate)) found = { rate: sa.rate, a: sa, b: sb };
  }
  return found;
}

/**
 * The large room against one object, per client kind: the room's objects,
 * the highest clean rate, latency there and at half of it, faults; then per
 * run the ratios sharded / one object of the highest clean rate, and of p99
 * and server CPU per message at the highest rate both carried cleanly.
 */
function printLarge(): void {
  const all = results.filter(isLarge);
  if (all.length === 0) return;
  const lines: string[] = [];
  for (const server of ["edge-chat", "edge-chat+batch"] as const) {
    const mine = all.filter((r) => r.server === server);
    const sizes = [...new Set(mine.map((r) => r.shardSize))].sort((x, y) => y - x);
    for (const size of sizes) {
      const rs = mine.filter((r) => r.shardSize === size);
      const shape = rs.at(-1)?.shape;
      const objects =
        shape === null || shape === undefined
          ? "stats unread"
          : `${shape.shards} object${shape.shards === 1 ? "" : "s"}${
              shape.parts.length > 0
                ? ` (${Math.min(...shape.parts.map((p) => p.connections))}-${Math.max(...shape.parts.map((p) => p.connections))} each)`
                : ""
            }`;
      const faults = rs.reduce((a, r) => a + fanoutFaults(r), 0);
      const bad = rs.filter((r) => r.shapeFault !== "").map((r) => r.shapeFault);
      lines.push(
        `  ${`${server}/${rs[0]?.host ?? "?"}`.padEnd(26)} SHARD_SIZE ${String(size).padEnd(6)} C=${rs[0]?.clients ?? 0}: ${objects}; ` +
          `${fmt(med(rs, (r) => r.best?.deliveriesPerSec ?? 0))} deliv/s, p50 ${fmt(
            med(rs, (r) => r.best?.latency.p50 ?? Number.NaN),
            1,
          )} p99 ${fmt(
            med(rs, (r) => r.best?.latency.p99 ?? Number.NaN),
            1,
          )} ms, p99 @half ${fmt(
            med(rs, (r) => r.half?.latency.p99 ?? Number.NaN),
            1,
          )} ms; lost/dup/ooo ${fmt(rs.reduce((a, r) => a + r.lost, 0))}/${fmt(rs.reduce((a, r) => a + r.duplicates, 0))}/${fmt(
            rs.reduce((a, r) => a + r.outOfOrder + r.idErrors, 0),
          )}${faults > 0 ? `, FAULTS ${faults}` : ""}${bad.length > 0 ? `, NOT SHARDED AS EXPECTED: ${bad.join("; ")}` : ""}`,
      );
    }
    for (const size of sizes.filter((x) => x !== ONE_OBJECT)) {
      const per: string[] = [];
      const rateRatios: number[] = [];
      for (const b of mine.filter((r) => r.shardSize === size)) {
        const a = mine.find((r) => r.shardSize === ONE_OBJECT && r.run === b.run);
        if (a === undefined) continue;
        const rateRatio = (b.best?.deliveriesPerSec ?? Number.NaN) / (a.best?.deliveriesPerSec ?? Number.NaN);
        rateRatios.push(rateRatio);
        const common = commonStep(a, b);
        per.push(
          `run ${b.run}: rate ${ratio(b.best?.deliveriesPerSec ?? Number.NaN, a.best?.deliveriesPerSec ?? Number.NaN)}` +
            (common === null
              ? ", no rate clean in both"
              : `; at ${fmt(common.rate * b.clients)} deliv/s: p50 ${fmt(common.b.latency.p50, 1)} vs ${fmt(common.a.latency.p50, 1)} ms, ` +
                `p99 ${fmt(common.b.latency.p99, 1)} vs ${fmt(common.a.latency.p99, 1)} ms (${ratio(common.b.latency.p99, common.a.latency.p99)}), ` +
                `server CPU/msg ${fmt(common.b.serverCpuMsPerMessage, 1)} vs ${fmt(common.a.serverCpuMsPerMessage, 1)} ms (${ratio(common.b.serverCpuMsPerMessage, common.a.serverCpuMsPerMessage)})`),
        );
      }
      lines.push(
        `  ${server}: SHARD_SIZE ${size} / one object, highest clean rate ${fmt(median(rateRatios), 2)}x (median of ${rateRatios.length}); ${per.join(" | ")}`,
      );
    }
  }
  process.stdout.write(`\nlarge room (issue 11), sharded against one object in the same run:\n${lines.join("\n")}\n`);
}

/** Issue 4's targets against the medians of this run, per edge-chat variant and host. */
function printTargets(): void {
  const lines: string[] = [];
  const mark = (ok: boolean | null) => (ok === null ? "n/a   " : ok ? "met   " : "MISSED");
  const vs = (a: number, b: number, min: number) =>
    Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a >= min * b : null;
  for (const spec of specs()) {
    if (!isEdgeChat(spec.server)) continue;
    const { server, host } = spec;
    const name = `${server}/${host}`;
    const all = results.filter((r) => r.server === server && r.host === host);
    if (all.length === 0) continue;
    let bad = 0;
    for (const r of all) {
      if (r.scenario === "fanout")
        bad +=
          r.lost + r.duplicates + r.outOfOrder + r.idErrors + r.verifyMismatches + r.unexpectedCloses + r.errorFrames;
      if (r.scenario === "storm")
        bad +=
          r.failures + (r.welcomed - r.historyOk) + Math.abs(r.presenceFrames - r.joinsExpected) + r.verifyMismatches;
    }
    lines.push(
      `${mark(bad === 0)} ${name}: zero lost/dup/out-of-order (nor any close, error, missing join or bad history) in every scenario: ${bad} faults`,
    );
    for (const clients of clientCounts) {
      const rate = refFanout(server, host, clients);
      const doRaw = refFanout("do-raw", host, clients);
      const wsRaw = refFanout("ws-raw", "node", clients);
      const bound = pick(server, host, isFanout(clients)).some((r) => r.loadgenBound) ? " (loadgen-bound)" : "";
      if (Number.isFinite(doRaw))
        lines.push(
          `${mark(vs(rate, doRaw, 0.75))} ${name}: fan-out C=${clients} >= 0.75x do-raw: ${ratio(rate, doRaw)} (${fmt(rate)} vs ${fmt(doRaw)} deliv/s)${bound}`,
        );
      if (Number.isFinite(wsRaw))
        lines.push(
          `${mark(vs(rate, wsRaw, 0.4))} ${name}: fan-out C=${clients} >= 0.4x ws-raw: ${ratio(rate, wsRaw)} (${fmt(rate)} vs ${fmt(wsRaw)} deliv/s)${bound}`,
        );
      const half = med(pick(server, host, isFanout(clients)), (r) => r.half?.latency.p99 ?? Number.NaN);
      lines.push(
        `${mark(Number.isFinite(half) ? half < 50 : null)} ${name}: p99 at half the highest clean rate < 50 ms, C=${clients}: ${fmt(half, 1)} ms`,
      );
    }
    const stormMs = refStorm(server, host, (r) => r.totalMs);
    const wsStorm = refStorm("ws-raw", "node", (r) => r.totalMs);
    if (Number.isFinite(stormMs) && Number.isFinite(wsStorm)) {
      lines.push(
        `${mark(stormMs <= 10 * wsStorm)} ${name}: connect storm N=${stormClients} within 10x ws-raw: ${ratio(stormMs, wsStorm)} (${fmt(stormMs)} vs ${fmt(wsStorm)} ms)`,
      );
    }
  }
  for (const host of hosts) {
    const cs = pick("edge-chat", host, isCost);
    if (cs.length === 0) continue;
    const written = med(cs, (r) => r.rowsWrittenPerMessage);
    const cold = med(cs, (r) => r.rowsReadPerConnectCold);
    const warm = med(cs, (r) => r.rowsReadPerConnectWarm);
    lines.push(`${mark(written <= 1)} edge-chat/${host}: <= 1 row written per message: ${fmt(written, 2)}`);
    lines.push(
      `${mark(Math.max(cold, warm) <= HISTORY_SIZE)} edge-chat/${host}: <= HISTORY_SIZE (${HISTORY_SIZE}) rows read per connect: warm ${fmt(warm, 1)}, cold ${fmt(cold, 0)}`,
    );
  }
  if (lines.length > 0)
    process.stdout.write(
      `\nissue 4 targets (medians of ${runsDone} run(s)):\n${lines.map((l) => `  ${l}`).join("\n")}\n`,
    );
}

// ---- --baseline -------------------------------------------------------------------

type Tree = "current" | "baseline";
interface Measured {
  run: number;
  tree: Tree;
  server: ServerName;
  clients: number;
  fanout: FanoutResult;
}

/**
 * Single-room fan-out of this tree against `ref`, interleaved: per run and
 * client kind both servers are up, and for each C the two trees take turns,
 * the first of them alternating. Every figure is compared as a ratio within
 * its run; the spread of one tree's figures across runs says how large a
 * ratio the machine's noise alone makes.
 */
async function regression(ref: string): Promise<void> {
  const started = Date.now();
  const kinds = servers.filter(isEdgeChat);
  const host = hosts[0] ?? "miniflare";
  const tree = checkoutBaseline(ref, (line) => process.stderr.write(`${line}\n`));
  const head = execFileSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  const dirty = execFileSync("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "wrangler.toml"], {
    encoding: "utf8",
  }).trim();
  process.stderr.write(
    `bench --baseline: this tree (${head}${dirty === "" ? "" : ", src/ modified"}) against ${ref} (${tree.commit.slice(0, 7)}), ` +
      `${kinds.join(", ")} on ${host}, C=${clientCounts.join("/")}, ${runs} run(s), ${stepSeconds}s steps; ${cpus().length} CPUs, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}\n`,
  );
  const measured: Measured[] = [];
  try {
    for (let run = 1; run <= runs; run++) {
      for (const kind of kinds) {
        const spec: ServerSpec = { server: kind, host };
        const both = {
          current: await startServer(spec, { name: `${kind}-current` }),
          baseline: await startServer(spec, { name: `${kind}-baseline`, root: tree.root }),
        };
        try {
          for (const [i, clients] of clientCounts.entries()) {
            const order: Tree[] = (run + i) % 2 === 1 ? ["current", "baseline"] : ["baseline", "current"];
            for (const t of order) {
              const startRate = Math.max(1, Math.round(START_DELIVERIES / clients));
              const r = await fanout(both[t], { ...fanoutBase, clients, startRate }, (line) =>
                progress(`run ${run} ${t} ${line}`),
              );
              progressDone();
              const m: Measured = { run, tree: t, server: kind, clients, fanout: r };
              measured.push(m);
              const { steps: _steps, ...rest } = r;
              process.stdout.write(
                `${JSON.stringify({ run, tree: t, ref: t === "baseline" ? ref : head, server: kind, host, ...rest, steps: r.steps })}\n`,
              );
            }
          }
        } finally {
          await Promise.all([both.current.dev.dispose(), both.baseline.dev.dispose()]);
        }
      }
    }
  } finally {
    tree.dispose();
  }
  printRegression(measured, ref);
  process.stderr.write(`bench --baseline: done in ${Math.round((Date.now() - started) / 1000)} s\n`);
  const faults = measured.filter((m) => fanoutFaults(m.fanout) > 0);
  if (faults.length > 0) {
    process.stderr.write(
      `\nbench: FAILED\n${faults.map((m) => `  ${m.tree} ${m.server} C=${m.clients} run ${m.run}: ${fanoutFaults(m.fanout)} faults`).join("\n")}\n`,
    );
    process.exitCode = 1;
  }
}

/** The highest offered rate clean in every one of `rs`, and each one's step there. */
function commonClean(rs: readonly FanoutResult[]): { rate: number; steps: Array<FanoutStep | undefined> } | null {
  const rates = new Set(rs[0]?.steps.filter((s) => s.clean).map((s) => s.rate) ?? []);
  for (const r of rs.slice(1)) {
    const clean = new Set(r.steps.filter((s) => s.clean).map((s) => s.rate));
    for (const rate of rates) if (!clean.has(rate)) rates.delete(rate);
  }
  if (rates.size === 0) return null;
  const rate = Math.max(...rates);
  return { rate, steps: rs.map((r) => r.steps.find((s) => s.clean && s.rate === rate)) };
}

/** max / min of positive finite values. */
function spread(values: readonly number[]): number {
  const ok = values.filter((v) => Number.isFinite(v) && v > 0);
  return ok.length < 2 ? Number.NaN : Math.max(...ok) / Math.min(...ok);
}

function printRegression(measured: readonly Measured[], ref: string): void {
  const lines: string[] = [];
  const range = (xs: readonly number[]) =>
    xs.length === 0 ? "-" : `${fmt(Math.min(...xs), 2)}-${fmt(Math.max(...xs), 2)}`;
  for (const kind of [...new Set(measured.map((m) => m.server))]) {
    for (const clients of clientCounts) {
      const mine = measured.filter((m) => m.server === kind && m.clients === clients);
      const runIds = [...new Set(mine.map((m) => m.run))];
      const pair = (run: number) => ({
        cur: mine.find((m) => m.run === run && m.tree === "current")?.fanout,
        base: mine.find((m) => m.run === run && m.tree === "baseline")?.fanout,
      });
      const rate = (r: FanoutResult | undefined) => r?.best?.deliveriesPerSec ?? Number.NaN;
      const rateRatios = runIds.map((run) => rate(pair(run).cur) / rate(pair(run).base)).filter(Number.isFinite);
      const curRates = mine.filter((m) => m.tree === "current").map((m) => rate(m.fanout));
      const baseRates = mine.filter((m) => m.tree === "baseline").map((m) => rate(m.fanout));
      const rateNoise = Math.max(spread(curRates), spread(baseRates));
      // Server CPU per message at the highest rate every one of these fan-outs carried cleanly.
      const common = commonClean(mine.map((m) => m.fanout));
      let cpuLine = "no rate clean in every fan-out";
      if (common !== null) {
        const cpu = (tree: Tree) =>
          mine.flatMap((m, i) => (m.tree === tree ? [common.steps[i]?.serverCpuMsPerMessage ?? Number.NaN] : []));
        const cpuRatios = runIds
          .map((run) => {
            const ci = mine.findIndex((m) => m.run === run && m.tree === "current");
            const bi = mine.findIndex((m) => m.run === run && m.tree === "baseline");
            return (
              (common.steps[ci]?.serverCpuMsPerMessage ?? Number.NaN) /
              (common.steps[bi]?.serverCpuMsPerMessage ?? Number.NaN)
            );
          })
          .filter(Number.isFinite);
        const p99 = (tree: Tree) =>
          mine.flatMap((m, i) => (m.tree === tree ? [common.steps[i]?.latency.p99 ?? Number.NaN] : []));
        const cpuNoise = Math.max(spread(cpu("current")), spread(cpu("baseline")));
        cpuLine =
          `server CPU/msg at ${fmt(common.rate * clients)} deliv/s: ${fmt(median(cpu("current")), 2)} vs ${fmt(median(cpu("baseline")), 2)} ms, ` +
          `ratio ${fmt(median(cpuRatios), 2)}x (runs ${range(cpuRatios)}; same-tree spread ${fmt(cpuNoise, 2)}x: ${
            !Number.isFinite(cpuNoise) ? "one run" : median(cpuRatios) <= cpuNoise ? "within noise" : "ABOVE NOISE"
          }); ` +
          `p99 there ${fmt(median(p99("current")), 1)} vs ${fmt(median(p99("baseline")), 1)} ms`;
      }
      const r = median(rateRatios);
      const verdict = !Number.isFinite(r)
        ? "n/a"
        : !Number.isFinite(rateNoise)
          ? "one run: no spread to judge by"
          : r >= 1 / rateNoise
            ? "within noise"
            : "BELOW NOISE";
      lines.push(
        `  ${kind.padEnd(15)} C=${String(clients).padEnd(4)} highest clean rate ${fmt(median(curRates))} vs ${fmt(median(baseRates))} deliv/s, ` +
          `ratio ${fmt(r, 2)}x (runs ${range(rateRatios)}; same-tree spread ${fmt(rateNoise, 2)}x): ${verdict}\n` +
          `  ${"".padEnd(15)} ${"".padEnd(6)} ${cpuLine}`,
      );
    }
  }
  process.stdout.write(
    `\nthis tree / ${ref} (medians of ${Math.max(0, ...measured.map((m) => m.run))} interleaved run(s); a ratio < 1 is slower; ` +
      `"same-tree spread" = max/min of one tree's figure across runs, the larger of the two trees; ` +
      `"within noise" = the median rate ratio is at least 1/spread):\n${lines.join("\n")}\n`,
  );
}

// ---- --memory ---------------------------------------------------------------------

async function memory(): Promise<void> {
  const started = Date.now();
  const steps = (listFlag(flags["memory-steps"]) ?? ["0", "250", "500", "1000"]).map((c) =>
    numberFlag(c, 0, "memory-steps", 0),
  );
  const storms = (listFlag(flags["memory-storm"]) ?? ["1000"]).map((c) => numberFlag(c, 0, "memory-storm", 1));
  const chosen = servers.filter((s) => s !== "ws-raw");
  process.stderr.write(
    `bench --memory: steps ${steps.join("/")}, worst-case storm ${storms.join("/")}; ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), node ${process.version}\n`,
  );
  const idle: MemoryResult[] = [];
  const worst: WorstResult[] = [];
  for (const server of chosen) {
    try {
      const r = await idleMemory(server, steps, TEXT_LENGTH, progress);
      progressDone();
      process.stdout.write(`${JSON.stringify(r)}\n`);
      idle.push(r);
    } catch (err) {
      progressDone();
      process.stderr.write(`${server} memory failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  for (const server of chosen.filter(isEdgeChat)) {
    for (const n of storms) {
      try {
        const r = await worstCase(server, n, progress);
        progressDone();
        process.stdout.write(`${JSON.stringify(r)}\n`);
        worst.push(r);
      } catch (err) {
        progressDone();
        process.stderr.write(
          `${server} worst case N=${n} failed: ${err instanceof Error ? err.message : String(err)}\n`,
        );
      }
    }
  }
  const mib = (kib: number) => fmt(kib / 1024, 1);
  const lines = ["", "idle connections (Miniflare; heap = V8 used size after a forced GC, RSS = workerd):"];
  for (const r of idle) {
    const pts = r.points
      .map((p) => `N=${p.clients}: heap ${mib(p.heapUsedKiB)}/${mib(p.heapTotalKiB)} MiB, RSS ${mib(p.rssKiB)} MiB`)
      .join("; ");
    lines.push(
      `  ${r.server.padEnd(15)} heap ${fmt(r.heapKiBPerConnection, 2)} KiB/conn (of which embedder ${fmt(r.embedderKiBPerConnection, 2)}), RSS ${fmt(r.rssKiBPerConnection, 1)} KiB/conn  (${pts})`,
    );
  }
  for (const r of idle.filter((x) => x.breakdown.length > 0)) {
    const n = Math.max(...r.points.map((p) => p.clients)) - Math.min(...r.points.map((p) => p.clients));
    lines.push("", `${r.server}: heap snapshot difference over ${n} connections, per connection (largest first):`);
    for (const g of r.breakdown)
      lines.push(`  ${fmt(g.bytes / n, 0).padStart(7)} B  ${fmt(g.count / n, 2).padStart(6)} nodes  ${g.name}`);
  }
  if (worst.length > 0)
    lines.push(
      "",
      `worst case: history of ${HISTORY_SIZE} messages of ${MAX_TEXT} characters, storm of N connects at once:`,
    );
  for (const r of worst) {
    lines.push(
      `  ${r.server.padEnd(15)} N=${r.clients}: ${r.welcomed} welcomed with the full history in ${fmt(r.stormMs)} ms; ` +
        `heap ${mib(r.baseline.heapUsedKiB)} -> peak ${mib(r.peakHeapUsedKiB)} used / ${mib(r.peakHeapTotalKiB)} total MiB -> idle ${mib(r.idle.heapUsedKiB)} MiB; ` +
        `RSS ${mib(r.baseline.rssKiB)} -> peak ${mib(r.peakRssKiB)} -> idle ${mib(r.idle.rssKiB)} MiB`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  process.stderr.write(`bench --memory: done in ${Math.round((Date.now() - started) / 1000)} s\n`);
}

function versions(): void {
  try {
    const workerd = execFileSync(join(ROOT, "node_modules", ".bin", "workerd"), ["--version"], {
      encoding: "utf8",
    }).trim();
    process.stderr.write(`bench: ${workerd}, ${Math.round(totalmem() / 2 ** 30)} GiB\n`);
  } catch {
    // Only informative.
  }
}

stopServersOnExit(() => {
  progressDone();
  disposeBaselines();
  process.stderr.write("bench: interrupted, stopping the servers\n");
});
versions();
await main();
