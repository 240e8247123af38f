// One dev server for every tool: `wrangler dev`, a bare Miniflare (one
// workerd, no dev proxy) or a Node script, on a free loopback port, in a
// process group of its own, stopped (and SIGKILLed) by that group.
//
// - Its own process group: wrangler is a Node process with workerd and esbuild
//   below it, and a signal to wrangler alone leaves workerd holding the port
//   and the SQLite files. The group's leader is guard.ts, which ends the group
//   when the tool dies, however it dies.
// - A private dev registry (WRANGLER_REGISTRY_PATH): wrangler reloads the
//   Worker, dropping every socket with 1006, whenever another `wrangler dev`
//   on the machine registers or leaves the shared one.
// - Optionally a snapshot: a copy of the app, so that editing `src/` during a
//   long run does not make wrangler reload the Worker either.
// - A restart keeps the port and the storage: "the server went away and came
//   back with its state".
import { spawn, type ChildProcess } from "node:child_process";
import {
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  type WriteStream,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { groupMembers, rssKiB } from "./proc.ts";
import { sleep } from "./wait.ts";

// From import.meta.url: vitest's module runner (e2e) has no import.meta.dirname.
const HERE = fileURLToPath(new URL(".", import.meta.url));
export const ROOT = resolve(HERE, "../..");
const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");
const GUARD = join(HERE, "guard.ts");
const MINIFLARE_HOST = join(HERE, "host-miniflare.ts");

export type Host = "wrangler" | "miniflare" | "node";

export interface DevServerOptions {
  /** Default `wrangler`. */
  host?: Host;
  /** The wrangler config (wrangler, miniflare; default the repo's), or the script a `node` host runs with `--port P`. */
  config?: string;
  vars?: Readonly<Record<string, string>>;
  /** Run from a copy of the config's folder (wrangler.toml, src/, public/, …). */
  snapshot?: boolean;
  /** Work folder (registry, storage, snapshot, server.log); default a fresh temp folder that dispose() removes. */
  dir?: string;
  /** Storage folder; default `state` in the work folder. */
  persistTo?: string;
  /**
   * wrangler's own log level (default `warn`). The Worker's console.log lines
   * are printed at `log` (wrangler's default), not at `info` or `warn`.
   */
  logLevel?: "log" | "warn";
  /** Every line the server prints, as it prints it. */
  onLine?: (line: string) => void;
  inspectorPort?: number;
  /** Ready when this path answers, with `status` when given (any answer otherwise). */
  ready?: { path: string; status?: number };
  readyTimeoutMs?: number;
  name?: string;
  /** dispose() keeps the work folder it made. */
  keep?: boolean;
}

/** A port that was free a moment ago (bind port 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null ? resolvePort(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.once("error", () => resolveFree(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolveFree(true)));
  });
}

/** Servers started and not yet stopped. */
const live = new Set<DevServer>();
/** Set once stopServersOnExit is ending the process. */
let exiting = false;
/** dispose() without the wait for an exit under way: for stopAll, which the exit path runs (set in DevServer's static block). */
let disposeNow: (server: DevServer) => Promise<void> = () => Promise.resolve();

export class DevServer {
  readonly name: string;
  readonly host: Host;
  readonly dir: string;
  readonly persistTo: string;
  readonly logFile: string;
  port = 0;
  /** How many times it was started. */
  starts = 0;
  readonly #o: DevServerOptions;
  readonly #ownsDir: boolean;
  readonly #tail: string[] = [];
  #child: ChildProcess | null = null;
  #log: WriteStream | null = null;
  #workerdAtStart = "";

  static {
    disposeNow = (server) => server.#dispose(server.#o.keep === true);
  }

  constructor(options: DevServerOptions = {}) {
    this.#o = options;
    this.host = options.host ?? "wrangler";
    this.name = options.name ?? this.host;
    this.#ownsDir = options.dir === undefined;
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), `edge-chat-${this.name.replace(/[^\w-]/g, "_")}-`));
    mkdirSync(this.dir, { recursive: true });
    this.persistTo = options.persistTo ?? join(this.dir, "state");
    this.logFile = join(this.dir, "server.log");
  }

  /** Creates and starts a server. */
  static async start(options: DevServerOptions = {}): Promise<DevServer> {
    const server = new DevServer(options);
    try {
      await server.start();
    } catch (err) {
      await server.dispose();
      throw err;
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** The process group's id (the guard's pid) while running. */
  get pgid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== null && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The last lines the server printed, for error messages. */
  tail(): string {
    return this.#tail.join("\n");
  }

  /** Every live process of the server. */
  pids(): number[] {
    const group = this.pgid;
    return group === null ? [] : groupMembers(group).map((p) => p.pid);
  }

  /** The processes that host the Worker (workerd: one, or two under wrangler dev), or a Node host's script. */
  runtimePids(): number[] {
    const group = this.pgid;
    if (group === null) return [];
    const members = groupMembers(group);
    if (this.host === "node") return members.filter((p) => p.pid !== group).map((p) => p.pid);
    return members.filter((p) => p.comm === "workerd").map((p) => p.pid);
  }

  /** Resident set of each workerd process, in KiB. */
  workerdRss(): Array<{ pid: number; rssKiB: number }> {
    return this.runtimePids().map((pid) => ({ pid, rssKiB: rssKiB(pid).total }));
  }

  /** True when workerd was replaced since the last start: wrangler reloaded the Worker by itself. */
  reloaded(): boolean {
    return this.running && this.#workerdPidsKey() !== this.#workerdAtStart;
  }

  #workerdPidsKey(): string {
    return this.runtimePids().sort().join(",");
  }

  /** The app's files as they are now, once: later starts run the same code. */
  #snapshot(config: string): string {
    const app = join(this.dir, "app");
    if (!existsSync(app)) {
      mkdirSync(app, { recursive: true });
      for (const entry of [basename(config), "package.json", "tsconfig.json", "src", "public"]) {
        const from = join(dirname(config), entry);
        if (existsSync(from)) cpSync(from, join(app, entry), { recursive: true });
      }
      symlinkSync(join(ROOT, "node_modules"), join(app, "node_modules"));
    }
    return join(app, basename(config));
  }

  #command(config: string, inspectorPort: number | undefined): string[] {
    const port = String(this.port);
    // wrangler always gets one of its own (it would take 9229, which another
    // server may hold); Miniflare none unless asked: the benchmark measures
    // workerd without one.
    const inspector = inspectorPort === undefined ? [] : ["--inspector-port", String(inspectorPort)];
    const vars = Object.entries(this.#o.vars ?? {}).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
    switch (this.host) {
      case "node":
        return [process.execPath, config, "--port", port];
      case "miniflare":
        return [
          process.execPath,
          MINIFLARE_HOST,
          "--config",
          config,
          "--port",
          port,
          "--persist",
          this.persistTo,
          ...inspector,
          ...vars,
        ];
      case "wrangler":
        return [
          WRANGLER,
          "dev",
          "--config",
          config,
          "--ip",
          "127.0.0.1",
          "--port",
          port,
          ...inspector,
          "--persist-to",
          this.persistTo,
          "--log-level",
          this.#o.logLevel ?? "warn",
          "--show-interactive-dev-session=false",
          ...vars,
        ];
    }
  }

  /** Starts the server (again: same port, same storage); resolves with the milliseconds it took to be ready. */
  async start(): Promise<number> {
    if (this.#child !== null) throw new Error(`${this.name} is already running`);
    const t0 = Date.now();
    if (this.port === 0) this.port = await freePort();
    const configured = resolve(this.#o.config ?? join(ROOT, "wrangler.toml"));
    const config = this.#o.snapshot === true ? this.#snapshot(configured) : configured;
    const inspectorPort = this.#o.inspectorPort ?? (this.host === "wrangler" ? await freePort() : undefined);
    const command = this.#command(config, inspectorPort);
    this.#log ??= createWriteStream(this.logFile, { flags: "a" });
    this.#log.write(`\n=== start #${this.starts + 1}: ${command.join(" ")}\n`);
    const remove = this.#ownsDir && this.#o.keep !== true ? ["--remove", this.dir] : [];
    const child = spawn(process.execPath, [GUARD, ...remove, ...command], {
      cwd: dirname(config),
      detached: true,
      // stdin is the guard's lifeline: it closes when this process dies.
      stdio: ["pipe", "pipe", "pipe"],
      env: {
        ...process.env,
        CI: "true",
        WRANGLER_SEND_METRICS: "false",
        NO_COLOR: "1",
        FORCE_COLOR: "0",
        WRANGLER_REGISTRY_PATH: join(this.dir, "registry"),
      },
    });
    this.#child = child;
    this.starts++;
    live.add(this);
    this.#readLines(child);

    const timeoutMs = this.#o.readyTimeoutMs ?? 90_000;
    const ready = this.#o.ready ?? { path: "/api/rooms/ready/messages", status: 200 };
    const deadline = t0 + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) {
        // Stopped under our feet by an interrupt: the process exits with the
        // interrupt's code in a moment; an error here would end it first, with 1.
        if (exiting) await new Promise<never>(() => undefined);
        await this.stop("SIGKILL");
        throw new Error(`${this.name} exited while starting:\n${this.tail()}`);
      }
      try {
        const res = await fetch(`${this.url}${ready.path}`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (ready.status === undefined || res.status === ready.status) {
          this.#workerdAtStart = this.#workerdPidsKey();
          return Date.now() - t0;
        }
      } catch {
        // Not listening yet.
      }
      await sleep(150);
    }
    await this.stop("SIGKILL");
    throw new Error(`${this.name} did not answer ${ready.path} on ${this.url} within ${timeoutMs} ms:\n${this.tail()}`);
  }

  #readLines(child: ChildProcess): void {
    let pending = "";
    const onData = (chunk: Buffer): void => {
      this.#log?.write(chunk);
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        this.#o.onLine?.(line);
        this.#tail.push(line);
        if (this.#tail.length > 40) this.#tail.shift();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  }

  /**
   * Ends the whole group: `signal`, then SIGKILL after `graceMs` for what is
   * left. SIGKILL first is a crash: no shutdown hooks, no flush. Resolves when
   * no process of the group is left and the port is free again.
   */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 5_000): Promise<void> {
    const child = this.#child;
    if (child === null || child.pid === undefined) return;
    const group = child.pid;
    const send = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-group, sig);
      } catch {
        // The group is empty.
      }
    };
    const empty = (): boolean => groupMembers(group).length === 0;
    send(signal);
    for (const end = Date.now() + (signal === "SIGKILL" ? 0 : graceMs); Date.now() < end && !empty(); ) await sleep(50);
    for (let i = 0; i < 100 && !empty(); i++) {
      send("SIGKILL");
      await sleep(50);
    }
    child.stdin?.destroy();
    this.#child = null;
    live.delete(this);
    for (let i = 0; i < 80 && !(await portFree(this.port)); i++) await sleep(100);
  }

  /** SIGKILL to the whole group, like a crashed host. */
  kill(): Promise<void> {
    return this.stop("SIGKILL");
  }

  async restart(): Promise<number> {
    await this.stop();
    return this.start();
  }

  /**
   * Stops the server and removes its work folder (unless `keep` or the folder
   * was given). Once an interrupt is ending the process, it never resolves:
   * the exit path stops the server and exits with the interrupt's code, and a
   * run that failed because its server went away must not exit first with its
   * own (a broken pipe would end as 1, not 141).
   */
  async dispose(keep = this.#o.keep === true): Promise<void> {
    if (exiting) await new Promise<never>(() => undefined);
    await this.#dispose(keep);
  }

  async #dispose(keep: boolean): Promise<void> {
    await this.stop();
    this.#log?.end();
    this.#log = null;
    if (this.#ownsDir && !keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Stops every server still running, and removes the work folders they made. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map(disposeNow));
}

let exitHooked = false;

/**
 * Stops every server and exits when the tool is interrupted (Ctrl-C,
 * SIGTERM, SIGHUP) or what reads its output goes away (EPIPE: `| head`).
 * `beforeExit` runs first, once (e.g. to say where the run's files are).
 * Node ignores SIGPIPE, so a broken pipe shows as an `error` on the stream;
 * unhandled, it would end the process without stopping anything.
 */
export function stopServersOnExit(beforeExit?: () => Promise<void> | void): void {
  if (exitHooked) return;
  exitHooked = true;
  const exit = (code: number): void => {
    if (exiting) return;
    exiting = true;
    void Promise.resolve()
      .then(beforeExit)
      .catch(() => undefined)
      .then(stopAll)
      .finally(() => process.exit(code));
  };
  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  for (const [signal, code] of Object.entries(codes)) process.on(signal, () => exit(code));
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") exit(141);
      else throw err;
    });
  }
}
