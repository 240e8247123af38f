// `npm run bench`: edge-chat against two reference servers (ws-raw, do-raw),
// each Worker hosted by `wrangler dev` and by a bare Miniflare, driven by one
// load generator in one run. Prints one JSON line per scenario as it
// finishes, then a table of medians (over --runs) with edge-chat's ratios.
//
//   node bench/run.ts                 short run, about a minute
//   node bench/run.ts --full          C = 100 and 1000, longer steps, 1000-client storm
//   options: --runs N  --servers ws-raw,do-raw,edge-chat  --hosts wrangler,miniflare
//            --clients 100,1000  --storm N  --step-seconds S  --no-cost
import { cpus, totalmem } from "node:os";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { cost, fanout, storm, LOADGEN_BOUND, P99_LIMIT_MS } from "./scenarios.ts";
import type { CostResult, FanoutOptions, FanoutResult, StormResult } from "./scenarios.ts";
import { ROOT, startServer, stopAll } from "./servers.ts";
import type { HostName, ServerName, ServerSpec } from "./servers.ts";
import { median } from "./stats.ts";

// ---- options ------------------------------------------------------------------

const argv = process.argv.slice(2);
function option(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}
function list(name: string): string[] | undefined {
  return option(name)?.split(",").map((s) => s.trim()).filter((s) => s !== "");
}
const full = argv.includes("--full");
const runs = Number(option("--runs") ?? "1");
const servers = (list("--servers") ?? ["ws-raw", "do-raw", "edge-chat"]) as ServerName[];
const hosts = (list("--hosts") ?? ["wrangler", "miniflare"]) as Array<Exclude<HostName, "node">>;
const clientCounts = (list("--clients") ?? (full ? ["100", "1000"] : ["100"])).map(Number);
const stormClients = Number(option("--storm") ?? (full ? "1000" : "300"));
const stepSeconds = Number(option("--step-seconds") ?? (full ? "4" : "1"));
const withCost = !argv.includes("--no-cost");
const fanoutBase: Omit<FanoutOptions, "clients" | "startRate"> = {
  factor: full ? 1.6 : 2,
  stepSeconds,
  maxSteps: full ? 14 : 9,
  refine: full ? 2 : 0,
  drainSeconds: full ? 5 : 3,
};
/** Offered deliveries per second of the first step, whatever C is. */
const START_DELIVERIES = 2_000;

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

type Result = (FanoutResult | StormResult | CostResult) & { run: number; server: ServerName; host: HostName };
const results: Result[] = [];

function emit(result: Result): void {
  progressDone();
  results.push(result);
  const { steps: _steps, ...rest } = "steps" in result ? result : { ...result, steps: undefined };
  process.stdout.write(`${JSON.stringify(result.scenario === "fanout" ? { ...rest, steps: result.steps } : rest)}\n`);
}

function specs(): ServerSpec[] {
  const out: ServerSpec[] = [];
  if (servers.includes("ws-raw")) out.push({ server: "ws-raw", host: "node" });
  for (const server of ["do-raw", "edge-chat"] as const) {
    if (!servers.includes(server)) continue;
    for (const host of hosts) out.push({ server, host });
  }
  return out;
}

async function main(): Promise<void> {
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
        process.stderr.write(`${spec.server}/${spec.host} failed: ${err instanceof Error ? err.message : String(err)}\n${server.tail()}\n`);
      } finally {
        await server.stop();
      }
    }
    if (withCost && servers.includes("edge-chat")) {
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
}

// ---- the table --------------------------------------------------------------------

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "-";
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function pick<T extends Result>(server: ServerName, host: HostName, match: (r: Result) => r is T): T[] {
  return results.filter((r): r is T => r.server === server && r.host === host && match(r));
}

const isFanout = (clients: number) => (r: Result): r is FanoutResult & Result => r.scenario === "fanout" && r.clients === clients;
const isStorm = (r: Result): r is StormResult & Result => r.scenario === "storm";
const isCost = (r: Result): r is CostResult & Result => r.scenario === "cost";

function med<T>(rs: readonly T[], f: (r: T) => number): number {
  return median(rs.map(f));
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : "-";
}

function printTable(): void {
  const rows: string[][] = [];
  const header = ["server", "host", "scenario", "result", "p50 ms", "p90 ms", "p99 ms", "max ms", "lost/dup/ooo", "loadgen CPU", "server CPU", "others CPU", "vs ws-raw", "vs do-raw"];
  const rawHost = (host: HostName): HostName => (host === "node" ? "wrangler" : host);
  for (const spec of specs()) {
    const { server, host } = spec;
    for (const clients of clientCounts) {
      const rs = pick(server, host, isFanout(clients));
      if (rs.length === 0) continue;
      const rate = med(rs, (r) => r.best?.deliveriesPerSec ?? 0);
      const wsRaw = med(pick("ws-raw", "node", isFanout(clients)), (r) => r.best?.deliveriesPerSec ?? 0);
      const doRaw = med(pick("do-raw", rawHost(host), isFanout(clients)), (r) => r.best?.deliveriesPerSec ?? 0);
      const bound = rs.some((r) => r.loadgenBound) ? " (loadgen-bound)" : "";
      rows.push([
        server,
        host,
        `fan-out C=${clients}`,
        `${fmt(rate)} deliv/s${bound}`,
        fmt(med(rs, (r) => r.best?.latency.p50 ?? Number.NaN), 1),
        fmt(med(rs, (r) => r.best?.latency.p90 ?? Number.NaN), 1),
        fmt(med(rs, (r) => r.best?.latency.p99 ?? Number.NaN), 1),
        fmt(med(rs, (r) => r.best?.latency.max ?? Number.NaN), 1),
        `${fmt(med(rs, (r) => r.lost))}/${fmt(med(rs, (r) => r.duplicates))}/${fmt(med(rs, (r) => r.outOfOrder + r.idErrors))}`,
        `${fmt(med(rs, (r) => (r.best?.loadgenCpu ?? Number.NaN) * 100))}%`,
        `${fmt(med(rs, (r) => (r.best?.serverCpu ?? Number.NaN) * 100))}%`,
        `${fmt(med(rs, (r) => (r.best?.othersCpu ?? Number.NaN) * 100))}%`,
        server === "ws-raw" ? "" : ratio(rate, wsRaw),
        server === "edge-chat" ? ratio(rate, doRaw) : "",
      ]);
    }
    const ss = pick(server, host, isStorm);
    if (ss.length > 0) {
      const total = med(ss, (r) => r.totalMs);
      const wsRaw = med(pick("ws-raw", "node", isStorm), (r) => r.totalMs);
      const doRaw = med(pick("do-raw", rawHost(host), isStorm), (r) => r.totalMs);
      const n = ss[0]?.clients ?? 0;
      rows.push([
        server,
        host,
        `storm N=${n}`,
        `all welcomed in ${fmt(total)} ms, peak ${fmt(med(ss, (r) => r.peakRssMiB))} MiB`,
        fmt(med(ss, (r) => r.p50Ms), 1),
        "",
        fmt(med(ss, (r) => r.p99Ms), 1),
        fmt(med(ss, (r) => r.maxMs), 1),
        `fail ${fmt(med(ss, (r) => r.failures))}, bad history ${fmt(med(ss, (r) => r.welcomed - r.historyOk))}`,
        `${fmt(med(ss, (r) => r.loadgenCpu * 100))}%`,
        `${fmt(med(ss, (r) => r.serverCpu * 100))}%`,
        `${fmt(med(ss, (r) => r.othersCpu * 100))}%`,
        server === "ws-raw" ? "" : `${ratio(total, wsRaw)} time`,
        server === "edge-chat" ? `${ratio(total, doRaw)} time` : "",
      ]);
      const perConn = med(ss, (r) => r.idleKiBPerConnection);
      rows.push([
        server,
        host,
        `idle N=${n}`,
        `${fmt(perConn, 1)} KiB/conn, RSS ${fmt(med(ss, (r) => r.baselineRssMiB))} -> ${fmt(med(ss, (r) => r.idleRssMiB))} MiB (${ss[0]?.runtimeProcesses ?? 0} proc)`,
        "", "", "", "", "", "", "", "",
        server === "ws-raw" ? "" : ratio(perConn, med(pick("ws-raw", "node", isStorm), (r) => r.idleKiBPerConnection)),
        server === "edge-chat" ? ratio(perConn, med(pick("do-raw", rawHost(host), isStorm), (r) => r.idleKiBPerConnection)) : "",
      ]);
    }
    const cs = pick(server, host, isCost);
    if (cs.length > 0) {
      rows.push([
        server,
        host,
        "cost",
        `rows/msg written ${fmt(med(cs, (r) => r.rowsWrittenPerMessage), 2)} read ${fmt(med(cs, (r) => r.rowsReadPerMessage), 2)}; ` +
          `rows read/connect warm ${fmt(med(cs, (r) => r.rowsReadPerConnectWarm), 1)} cold ${fmt(med(cs, (r) => r.rowsReadPerConnectCold), 0)}; ` +
          `DO requests/1000 msgs ${fmt(med(cs, (r) => r.requestsPer1000Messages))}; cold history ${cs.every((r) => r.coldHistoryOk) ? "ok" : "BAD"}`,
        "", "", "", "", "", "", "", "", "", "",
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ").trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)];
  process.stdout.write(`\n${out.join("\n")}\n`);
  process.stdout.write(
    `\nfan-out: highest offered rate with every delivery in, p99 <= ${P99_LIMIT_MS} ms and no error; ` +
      `medians of ${runs} run(s); "loadgen-bound" = the load generator used >= ${LOADGEN_BOUND * 100}% of a core there; ` +
      `CPU columns are shares of one core, "others" = the rest of the shared machine meanwhile (noise).\n`,
  );
}

function versions(): void {
  try {
    const workerd = execFileSync(join(ROOT, "node_modules", ".bin", "workerd"), ["--version"], { encoding: "utf8" }).trim();
    process.stderr.write(`bench: ${workerd}, ${Math.round(totalmem() / 2 ** 30)} GiB\n`);
  } catch {
    // Only informative.
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    progressDone();
    process.stderr.write(`bench: ${signal}, stopping the servers\n`);
    void stopAll().then(() => process.exit(130));
  });
}
versions();
await main();
