// Profiles the Worker isolate (the room's Durable Object included) under a
// steady fan-out load, through workerd's V8 inspector (Chrome DevTools
// Protocol), and prints where its CPU time goes.
//
//   node bench/profile-do.ts [--server edge-chat|edge-chat+batch|do-raw] [--clients 100]
//        [--rate 200] [--seconds 8] [--out bench/profiles/NAME.cpuprofile] [--root DIR]
//
// --root runs another checkout of the repo (e.g. a `git worktree` of an older
// commit, with its own node_modules) instead of this one.
//
// The .cpuprofile file opens in Chrome DevTools (Performance > Load profile).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { Cdp } from "./cdp.ts";
import { Fleet } from "./load.ts";
import { sleep, waitUntil } from "../tools/harness/wait.ts";
import type { Client } from "./load.ts";
import { isEdgeChat, startServer } from "./servers.ts";
import { choiceList, numberFlag, parseCli, stringFlags } from "../tools/harness/cli.ts";
import { ROOT, freePort, stopServersOnExit } from "../tools/harness/devserver.ts";

const flags = parseCli(
  {
    server: { type: "string", default: "edge-chat" },
    ...stringFlags("clients", "rate", "seconds", "out", "root"),
  },
  "node bench/profile-do.ts [--server edge-chat|edge-chat+batch|do-raw] [--clients 100] [--rate 200] [--seconds 8] [--out FILE] [--root DIR]",
);
const [serverName = "edge-chat"] = choiceList(
  flags.server,
  ["edge-chat", "edge-chat+batch", "do-raw"] as const,
  [],
  "server",
);
const clients = numberFlag(flags.clients, 100, "clients", 1);
const rate = numberFlag(flags.rate, 200, "rate", 1);
const seconds = numberFlag(flags.seconds, 8, "seconds", 1);
const out = flags.out ?? join(ROOT, "bench", "profiles", `${serverName}-c${clients}-r${rate}.cpuprofile`);
const SENDERS = 10;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}
function isProfile(value: unknown): value is { profile: Profile } {
  return typeof value === "object" && value !== null && "profile" in value;
}

function report(profile: Profile): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (const [i, id] of profile.samples.entries()) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  for (const [id, us] of self) {
    const f = byId.get(id)?.callFrame;
    if (f === undefined) continue;
    const file = f.url === "" ? "" : f.url.slice(f.url.lastIndexOf("/") + 1);
    const key = `${f.functionName || "(anonymous)"} ${file === "" ? "" : `${file}:${f.lineNumber + 1}`}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  const rows = [...byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30);
  process.stdout.write(`self time by function (${(total / 1000).toFixed(0)} ms sampled):\n`);
  for (const [name, us] of rows) {
    process.stdout.write(
      `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms  ${name}\n`,
    );
  }
}

stopServersOnExit();
const inspectorPort = await freePort();
const server = await startServer(
  { server: serverName, host: "miniflare" },
  flags.root === undefined ? { inspectorPort } : { inspectorPort, root: flags.root },
);
try {
  const { cdp, targets } = await Cdp.openWorker(inspectorPort);
  process.stderr.write(`inspector targets: ${targets.join(", ")}\n`);
  await cdp.call("Profiler.enable");
  await cdp.call("Profiler.setSamplingInterval", { interval: 1000 });

  const fleet = new Fleet(
    {
      base: server.dev.wsUrl,
      hasIds: isEdgeChat(serverName),
      batch: serverName === "edge-chat+batch",
      keepAlive: isEdgeChat(serverName),
    },
    `prof-${Date.now()}`,
    SENDERS,
  );
  for (let n = 0; n < clients; n += 100) await fleet.connect(Math.min(100, clients - n));
  const senders = fleet.clients.slice(0, SENDERS);
  await cdp.call("Profiler.start");
  const t0 = performance.now();
  const total = Math.round(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    for (; sent < due; sent++) fleet.send(senders[sent % SENDERS] as Client, sent % SENDERS);
    await sleep(1);
  }
  await waitUntil(() => fleet.tally.deliveries >= total * fleet.clients.length, 10_000, 5);
  const result = await cdp.call("Profiler.stop");
  const summary = fleet.latency.summary();
  process.stderr.write(
    `${serverName}: ${clients} clients, ${rate} msg/s for ${seconds} s: ${fleet.tally.deliveries}/${total * fleet.clients.length} delivered, ` +
      `p50 ${summary.p50.toFixed(1)} p99 ${summary.p99.toFixed(1)} ms\n`,
  );
  if (!isProfile(result)) throw new Error("no profile returned");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result.profile));
  process.stderr.write(`profile written to ${out}\n`);
  report(result.profile);
  cdp.close();
  await fleet.closeAll();
} finally {
  await server.dev.dispose();
}
