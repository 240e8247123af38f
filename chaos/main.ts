// npm run chaos [-- flags]: the chaos soak and the fuzz run against a real
// `wrangler dev`, started and stopped here. Exit code 1 on any violation of
// PROTOCOL.md, 2 when the harness itself could not run.
//
//   (no flags)   soak, fuzz, then two soaks with a SIGKILL/restart: ~2 minutes
//   --short      fuzz, then one smaller soak with churn and a SIGKILL/restart:
//                ~35 s on an idle machine, ~55 s on a loaded one (CI)
//   --soak --fuzz --kill   run only the phases named (any combination)
//   --messages N --window S --clients N --senders N --seed N --keep --verbose
//   --shard-size N   the server runs with SHARD_SIZE=N: the soaks' room spreads
//                    over parts, and a run where it never did fails
//   --presence-limit N   PRESENCE_LIMIT=N (default 500: join/leave for 50 clients)
//   --stalled-reader [flags]   the stalled-reader measurement instead (stalled-reader.ts)

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { resolve } from "node:path";
import { numberFlag, parseCli, stringFlags } from "../tools/harness/cli.ts";
import { DevServer, ROOT, stopServersOnExit } from "../tools/harness/devserver.ts";
import { seeded } from "../tools/harness/random.ts";
import { Findings } from "./findings.ts";
import { fuzz } from "./fuzz.ts";
import { soak, type SoakResult } from "./soak.ts";
import { stalledReader } from "./stalled-reader.ts";

if (process.argv.includes("--stalled-reader")) {
  process.exit(await stalledReader(process.argv.slice(2).filter((a) => a !== "--stalled-reader")));
}

// All clients share 127.0.0.1, so the per-address limits are off. The
// per-connection rate limit is raised from 5/s to 20/s: 2000 messages from 10
// senders in 25 s is 8/s per sender. Senders pace themselves at 70% of what
// `welcome.limits` announces, and the fuzz run reads the limits the same way.
const VARS: Record<string, string> = {
  IP_CONNECT_PER_MIN: "0",
  ADDRESS_RATE_BURST: "0",
  ADDRESS_SOCKETS_PER_ROOM: "0",
  API_PER_MIN: "0",
  RATE_BURST: "20",
  RATE_PER_SEC: "20",
  LOG_LEVEL: "warn",
};

const values = parseCli(
  {
    short: { type: "boolean", default: false },
    soak: { type: "boolean", default: false },
    fuzz: { type: "boolean", default: false },
    kill: { type: "boolean", default: false },
    ...stringFlags("messages", "window", "clients", "senders", "seed", "config", "shard-size", "presence-limit"),
    keep: { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
  },
  "npm run chaos -- [--short] [--soak] [--fuzz] [--kill] [--messages N] [--window S] [--clients N] [--senders N] [--seed N] [--shard-size N] [--presence-limit N] [--config FILE] [--keep] [--verbose] | --stalled-reader …",
);
const int = (raw: string | undefined, fallback: number, name: string): number => numberFlag(raw, fallback, name, 1);

const short = values.short;
const picked = values.soak || values.fuzz || values.kill;
const phases = {
  soak: picked ? values.soak : !short,
  fuzz: picked ? values.fuzz : true,
  kills: picked ? (values.kill ? (short ? 1 : 2) : 0) : short ? 1 : 2,
};
const messages = int(values.messages, short ? 1000 : 2000, "messages");
const windowMs = int(values.window, short ? 12 : 25, "window") * 1000;
const clients = int(values.clients, 50, "clients");
const senders = int(values.senders, 10, "senders");
const seed = int(values.seed, Math.floor(Math.random() * 2 ** 31) + 1, "seed");
const random = seeded(seed);
// --shard-size: the room spreads over parts of SHARD_SIZE connections each,
// and the soak reads its stats (ADMIN_TOKEN, a throwaway) to see that it did.
// PRESENCE_LIMIT stays at its default (500, above the client count, so
// join/leave) unless --presence-limit puts it under, for count frames.
const shardSize = values["shard-size"] === undefined ? undefined : int(values["shard-size"], 0, "shard-size");
const adminToken = randomBytes(16).toString("hex");
if (shardSize !== undefined) {
  VARS.SHARD_SIZE = String(shardSize);
  VARS.ADMIN_TOKEN = adminToken;
}
if (values["presence-limit"] !== undefined)
  VARS.PRESENCE_LIMIT = String(int(values["presence-limit"], 0, "presence-limit"));
const dir = mkdtempSync(resolve(tmpdir(), "edge-chat-chaos-"));
const log = (line: string): void => console.log(line);
const findings = new Findings();
const server = new DevServer({
  name: "wrangler dev",
  dir,
  snapshot: true,
  vars: VARS,
  config: resolve(values.config ?? resolve(ROOT, "wrangler.toml")),
  readyTimeoutMs: 60_000,
});

function rss(): string {
  const list = server.workerdRss();
  const total = list.reduce((k, p) => k + p.rssKiB, 0);
  return `${(total / 1024).toFixed(0)} MiB (${list.map((p) => `${p.pid}: ${(p.rssKiB / 1024).toFixed(0)}`).join(", ")})`;
}

function checkReload(phase: string): void {
  if (server.reloaded()) {
    findings.note(
      `wrangler dev reloaded the Worker by itself during ${phase} (workerd was replaced); every socket dropped with 1006, so violations of that phase may be the harness's, not the server's`,
    );
  }
}

function summarize(label: string, r: SoakResult): void {
  const codes = Object.entries(r.closeCodes)
    .map(([c, k]) => `${c}×${k}`)
    .join(" ");
  log(
    `  ${label}: ${r.lastId} messages, ids 1..${r.lastId}, ${r.connects} connects (${r.drops.abrupt} abrupt + ${r.drops.graceful} graceful drops), ${r.gaps} gap resumes, ${r.retried} resent (${r.settledByOthers} settled from other clients' view, ${r.releasedAtEnd} resent at the end), ${r.retryDuplicates} duplicates from resends, closes ${codes}, ${(r.wallMs / 1000).toFixed(1)} s`,
  );
  const pf = r.presenceFrames;
  log(
    `  ${label}: presence frames received: ${pf.join} join, ${pf.leave} leave, ${pf.count} count-only and ${pf.list} full-list`,
  );
  if (r.shards !== undefined)
    log(
      `  ${label}: at most ${r.shards.maxShards} objects (${r.shards.maxParts}) over ${r.shards.samples} stats samples`,
    );
}

async function cleanup(keepDir: boolean): Promise<void> {
  await server.dispose();
  if (!keepDir && !values.keep) rmSync(dir, { recursive: true, force: true });
}
// Interrupted: the server stops, the work folder stays for a look at what was going on.
stopServersOnExit(() => log(`chaos: interrupted; work dir ${dir} kept`));

async function main(): Promise<number> {
  const t0 = Date.now();
  log(
    `chaos: seed ${seed}, ${clients} clients (${senders} senders), ${messages} messages per soak in ${windowMs / 1000} s; work dir ${dir}`,
  );
  log(
    `wrangler dev vars: ${Object.entries(VARS)
      .map(([k, v]) => `${k}=${k === "ADMIN_TOKEN" ? "…" : v}`)
      .join(" ")}`,
  );
  const startMs = await server.start();
  log(`wrangler dev ready on ${server.url} in ${startMs} ms; workerd RSS ${rss()}`);
  const tag = Date.now().toString(36);
  const soakOptions = (room: string, kill: boolean) => ({
    server,
    findings,
    random,
    log,
    kill,
    room,
    clients,
    senders,
    witnesses: Math.min(5, Math.max(0, clients - senders - 2)),
    messages,
    sendWindowMs: windowMs,
    dropsPerSec: 4,
    ...(shardSize !== undefined ? { shards: { adminToken, size: shardSize } } : {}),
  });
  if (phases.soak) {
    log(`soak: churn, no restart`);
    summarize("soak", await soak(soakOptions(`chaos-${tag}-soak`, false)));
    checkReload("the soak");
    log(`  workerd RSS ${rss()}`);
  }
  if (phases.fuzz) {
    log(`fuzz`);
    await fuzz({
      server,
      findings,
      room: `chaos-${tag}-fuzz`,
      random,
      log,
      rss,
      verbose: values.verbose,
      rounds: short ? 1 : 3,
      burstFrames: 2000,
      fill: shardSize ?? 0,
    });
    checkReload("the fuzz run");
  }
  for (let k = 1; k <= phases.kills; k++) {
    log(`soak with SIGKILL/restart #${k}`);
    summarize(`kill #${k}`, await soak(soakOptions(`chaos-${tag}-kill${k}`, true)));
    checkReload(`kill run #${k}`);
    log(`  workerd RSS ${rss()}`);
  }
  log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return findings.count;
}

let code = 0;
try {
  const violations = await main();
  for (const note of findings.notes) log(`note: ${note}`);
  for (const v of findings.violations) log(`VIOLATION: ${v}`);
  if (violations > findings.violations.length) log(`… and ${violations - findings.violations.length} more violations`);
  log(
    violations === 0
      ? "chaos: OK, no violations"
      : `chaos: FAILED, ${violations} violations (wrangler log and storage kept in ${dir})`,
  );
  code = violations === 0 ? 0 : 1;
} catch (e) {
  console.error(`chaos: could not run: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  console.error(`wrangler log: ${server.logFile}`);
  code = 2;
}
await cleanup(code !== 0);
process.exit(code);
