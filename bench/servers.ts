// Starts and stops the servers under test: edge-chat and do-raw under
// `wrangler dev` or a bare Miniflare, ws-raw under Node. Each runs in its own
// process group on a free loopback port with a fresh state folder, and is
// stopped by that group's id.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { processTree } from "./stats.ts";

export type ServerName = "ws-raw" | "do-raw" | "edge-chat" | "edge-chat+batch";

/** edge-chat with clients that connect with `batch=1`: the same server, its own instance. */
export function isEdgeChat(server: ServerName): boolean {
  return server === "edge-chat" || server === "edge-chat+batch";
}
export type HostName = "node" | "wrangler" | "miniflare";

export interface ServerSpec {
  server: ServerName;
  host: HostName;
}

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");

const CONFIG: Record<Exclude<ServerName, "ws-raw">, string> = {
  "edge-chat": join(ROOT, "wrangler.toml"),
  "edge-chat+batch": join(ROOT, "wrangler.toml"),
  "do-raw": join(ROOT, "bench", "do-raw", "wrangler.toml"),
};

/** Benchmark settings: limits out of the way, logs quiet unless asked. */
function benchVars(logLevel: string): string[] {
  return [
    "RATE_BURST:1000000",
    "RATE_PER_SEC:1000000",
    "IP_CONNECT_PER_MIN:0",
    "ADDRESS_RATE_BURST:0",
    "ADDRESS_SOCKETS_PER_ROOM:0",
    "API_PER_MIN:0",
    "MAX_CONNECTIONS:100000",
    `LOG_LEVEL:${logLevel}`,
  ];
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export interface StartOptions {
  logLevel?: "debug" | "info" | "warn";
  /** Reuse a state folder (to restart a room from its storage); a fresh one otherwise. */
  persistDir?: string;
  /** Keep every stdout line (the room's JSON log) for the cost scenario. */
  captureLog?: boolean;
  /** Open workerd's V8 inspector on this port (Miniflare host) for profiling. */
  inspectorPort?: number;
}

/** Servers started and not yet stopped, so an interrupted run can stop them. */
const live = new Set<RunningServer>();

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

export class RunningServer {
  readonly spec: ServerSpec;
  readonly port: number;
  readonly persistDir: string;
  readonly logLines: string[] = [];
  readonly #child: ChildProcess;
  readonly #tail: string[] = [];
  readonly #ownsPersist: boolean;
  #exited = false;

  constructor(spec: ServerSpec, port: number, persistDir: string, ownsPersist: boolean, child: ChildProcess, capture: boolean) {
    this.spec = spec;
    this.port = port;
    this.persistDir = persistDir;
    this.#ownsPersist = ownsPersist;
    this.#child = child;
    const onLine = (line: string) => {
      if (capture) this.logLines.push(line);
      this.#tail.push(line);
      if (this.#tail.length > 40) this.#tail.shift();
    };
    let pending = "";
    const onData = (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", () => {
      this.#exited = true;
    });
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  get exited(): boolean {
    return this.#exited;
  }

  tail(): string {
    return this.#tail.join("\n");
  }

  /** The processes that host the room: workerd (one, or two under wrangler dev), or ws-raw's node. */
  runtimePids(): number[] {
    if (this.spec.host === "node") return [this.pid];
    return processTree(this.pid)
      .filter((p) => p.comm === "workerd")
      .map((p) => p.pid);
  }

  /** Every process of the server, Node wrappers included. */
  allPids(): number[] {
    return processTree(this.pid).map((p) => p.pid);
  }

  async stop(): Promise<void> {
    live.delete(this);
    if (!this.#exited) {
      const gone = new Promise<void>((r) => this.#child.once("exit", () => r()));
      try {
        process.kill(-this.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      const timer = new Promise<void>((r) => setTimeout(r, 5000).unref());
      await Promise.race([gone, timer]);
    }
    // Whatever is left of the group (workerd children outlive a killed parent).
    try {
      process.kill(-this.pid, "SIGKILL");
    } catch {
      // The group is empty.
    }
    if (this.#ownsPersist) rmSync(this.persistDir, { recursive: true, force: true });
  }
}

function command(spec: ServerSpec, port: number, persist: string, logLevel: string): [string, string[]] {
  if (spec.server === "ws-raw") return [process.execPath, [join(ROOT, "bench", "ws-raw", "server.ts"), "--port", String(port)]];
  const config = CONFIG[spec.server];
  const vars = isEdgeChat(spec.server) ? benchVars(logLevel) : [];
  if (spec.host === "miniflare") {
    return [
      process.execPath,
      [join(ROOT, "bench", "host-miniflare.ts"), "--config", config, "--port", String(port), "--persist", persist, ...vars.flatMap((v) => ["--var", v])],
    ];
  }
  // wrangler's own log level decides whether the Worker's console lines are
  // printed at all: the room logs debug/info lines through console.log.
  return [
    WRANGLER,
    [
      "dev",
      "--config", config,
      "--ip", "127.0.0.1",
      "--port", String(port),
      "--persist-to", persist,
      "--log-level", logLevel === "warn" ? "warn" : "info",
      "--show-interactive-dev-session=false",
      ...vars.flatMap((v) => ["--var", v]),
    ],
  ];
}

export async function startServer(spec: ServerSpec, options: StartOptions = {}): Promise<RunningServer> {
  const port = await freePort();
  const ownsPersist = options.persistDir === undefined;
  const persist = options.persistDir ?? mkdtempSync(join(tmpdir(), "bench-state-"));
  const logLevel = options.logLevel ?? "warn";
  const [file, args] = command(spec, port, persist, logLevel);
  if (spec.host === "wrangler") args.push("--inspector-port", String(options.inspectorPort ?? (await freePort())));
  else if (spec.host === "miniflare" && options.inspectorPort !== undefined) args.push("--inspector-port", String(options.inspectorPort));
  const child = spawn(file, args, {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0" },
  });
  const server = new RunningServer(spec, port, persist, ownsPersist, child, options.captureLog === true);
  live.add(server);
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (server.exited) throw new Error(`${spec.server}/${spec.host} exited while starting:\n${server.tail()}`);
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${spec.server}/${spec.host} did not answer within 90 s:\n${server.tail()}`);
    }
    try {
      // Any HTTP answer means the server is up; for the Workers this also
      // loads the Worker (426: no upgrade).
      await fetch(`http://127.0.0.1:${port}/chat/ready`, { signal: AbortSignal.timeout(2000) });
      return server;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
