// The servers under test and their settings: edge-chat and do-raw under
// `wrangler dev` or a bare Miniflare, ws-raw under Node. The harness's
// DevServer runs each in its own process group on a free loopback port with
// a fresh state folder.
import { join, relative } from "node:path";
import { DevServer, ROOT } from "../tools/harness/devserver.ts";
import type { DevServerOptions } from "../tools/harness/devserver.ts";

export type ServerName = "ws-raw" | "do-raw" | "edge-chat" | "edge-chat+batch";
export const SERVER_NAMES: readonly ServerName[] = ["ws-raw", "do-raw", "edge-chat", "edge-chat+batch"];

/** edge-chat with clients that connect with `batch=1`: the same server, its own instance. */
export function isEdgeChat(server: ServerName): boolean {
  return server === "edge-chat" || server === "edge-chat+batch";
}
export type HostName = "node" | "wrangler" | "miniflare";

export interface ServerSpec {
  server: ServerName;
  host: HostName;
}

const CONFIG: Record<ServerName, string> = {
  "ws-raw": join(ROOT, "bench", "ws-raw", "server.ts"),
  "edge-chat": join(ROOT, "wrangler.toml"),
  "edge-chat+batch": join(ROOT, "wrangler.toml"),
  "do-raw": join(ROOT, "bench", "do-raw", "wrangler.toml"),
};

/** Benchmark settings: limits out of the way, logs quiet unless asked. */
function benchVars(logLevel: string): Record<string, string> {
  return {
    RATE_BURST: "1000000",
    RATE_PER_SEC: "1000000",
    IP_CONNECT_PER_MIN: "0",
    ADDRESS_RATE_BURST: "0",
    ADDRESS_SOCKETS_PER_ROOM: "0",
    API_PER_MIN: "0",
    MAX_CONNECTIONS: "100000",
    LOG_LEVEL: logLevel,
  };
}

export interface StartOptions {
  logLevel?: "debug" | "info" | "warn";
  /** Keep every line the server prints (the room's JSON log) for the cost scenario. */
  onLine?: (line: string) => void;
  /** Open workerd's V8 inspector on this port, for profiling. */
  inspectorPort?: number;
  /** edge-chat settings on top of the benchmark's. */
  vars?: Readonly<Record<string, string>>;
  /** Another checkout of the repo to run instead of this one (`--baseline`): its wrangler.toml and src/. */
  root?: string;
  /** Name of the server in logs and temp folders (default server-host). */
  name?: string;
}

export interface BenchServer {
  spec: ServerSpec;
  dev: DevServer;
}

export async function startServer(spec: ServerSpec, options: StartOptions = {}): Promise<BenchServer> {
  const logLevel = options.logLevel ?? "warn";
  const dev: DevServerOptions = {
    name: options.name ?? `${spec.server}-${spec.host}`,
    host: spec.host,
    config: options.root === undefined ? CONFIG[spec.server] : join(options.root, relative(ROOT, CONFIG[spec.server])),
    vars: isEdgeChat(spec.server) ? { ...benchVars(logLevel), ...options.vars } : {},
    // wrangler's own log level decides whether the Worker's console lines are
    // printed at all: the room logs debug/info lines through console.log,
    // which wrangler prints at its level `log` (not at `info`).
    logLevel: logLevel === "warn" ? "warn" : "log",
    // Any HTTP answer means the server is up; for the Workers this also loads
    // the Worker (426: no upgrade).
    ready: { path: "/chat/ready" },
  };
  if (options.onLine !== undefined) dev.onLine = options.onLine;
  if (options.inspectorPort !== undefined) dev.inspectorPort = options.inspectorPort;
  return { spec, dev: await DevServer.start(dev) };
}
