// Hosts a Worker from its wrangler config in one workerd through Miniflare's
// API, with no dev proxy in front (wrangler dev runs a second workerd as a
// proxy): the closer of the two local hosts to production.
//
//   node tools/harness/host-miniflare.ts --config wrangler.toml --port P --persist DIR
//        [--var KEY:VALUE]… [--inspector-port P]
//
// wrangler's own unstable_getMiniflareWorkerOptions reads the config, so the
// Durable Object bindings, the SQLite classes (new_sqlite_classes) and the
// vars are the ones `wrangler dev` would use; esbuild bundles `main` the way
// wrangler does. Static assets are left out: the benchmark only opens sockets.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { build } from "esbuild";
import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";
import type { Json, V4WorkerOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { numberFlag, parseCli, stringFlags } from "./cli.ts";

const USAGE = "host-miniflare.ts --config FILE --port P --persist DIR [--var K:V]… [--inspector-port P]";
const flags = parseCli(
  {
    config: { type: "string", default: "wrangler.toml" },
    ...stringFlags("port", "persist", "inspector-port"),
    var: { type: "string", multiple: true, default: [] },
  },
  USAGE,
);
const configPath = resolve(flags.config);
const port = numberFlag(flags.port, Number.NaN, "port", 1);
const persist = flags.persist;
const inspectorPort = flags["inspector-port"];
if (!Number.isInteger(port) || persist === undefined) throw new Error(`usage: ${USAGE}`);
const vars: Record<string, string> = {};
for (const pair of flags.var) {
  const colon = pair.indexOf(":");
  vars[pair.slice(0, colon)] = pair.slice(colon + 1);
}

const { workerOptions, main, define } = unstable_getMiniflareWorkerOptions(configPath);
if (main === undefined) throw new Error(`${configPath} has no main`);
mkdirSync(persist, { recursive: true });
// Inside the state folder, which the harness deletes however this process ends.
const outdir = mkdtempSync(join(persist, "bundle-"));
await build({
  entryPoints: [resolve(dirname(configPath), main)],
  outfile: join(outdir, "worker.mjs"),
  bundle: true,
  format: "esm",
  target: "es2024",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["module", "main"],
  external: ["cloudflare:*", "node:*"],
  define,
  logLevel: "warning",
});

// One bundled module: the config's module rules have nothing left to match.
const { assets: _assets, modulesRules: _rules, ...rest } = workerOptions;
// wrangler's .d.ts types these vars loosely; they are JSON values from the config.
const bindings: Record<string, Json> = Object.assign({}, rest.bindings, vars);
const worker: V4WorkerOptions = {
  ...rest,
  name: "bench",
  modules: true,
  scriptPath: join(outdir, "worker.mjs"),
  modulesRoot: outdir,
  bindings,
};
// The worker's console lines go to stdout as they are: the cost scenario
// parses the room's JSON log lines from there.
const mf = new Miniflare(
  convertV4MiniflareOptions({
    host: "127.0.0.1",
    port,
    inspectorPort: inspectorPort === undefined ? undefined : Number(inspectorPort),
    resourcePersistencePath: persist,
    cf: false,
    log: new Log(LogLevel.WARN),
    handleStructuredLogs: ({ message }) => process.stdout.write(`${message}\n`),
    workers: [worker],
  }),
);
const url = await mf.ready;
console.log(`miniflare ready on ${url.href}`);

async function stop(): Promise<void> {
  // First: the group's SIGTERM may already have ended workerd, and dispose() then fails.
  rmSync(outdir, { recursive: true, force: true });
  await mf.dispose().catch(() => undefined);
  process.exit(0);
}
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
