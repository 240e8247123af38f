// Starts `wrangler dev` on a free loopback port, waits until the Worker
// answers, and stops it by process group: wrangler is a Node process with
// workerd and esbuild below it, and a SIGKILL to wrangler alone would leave
// workerd holding the port and the SQLite files. `detached: true` makes the
// child a group leader, so `process.kill(-pid)` reaches all of them.

import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { sleep } from "./findings.ts";

export interface DevServerOptions {
  /** The project; it is copied to `appDir` first (see `snapshot`). */
  repo: string;
  appDir: string;
  persistTo: string;
  logFile: string;
  vars: Record<string, string>;
  /** A wrangler config other than the repo's (its directory is copied), for trying the harness out. */
  config?: string;
  readyTimeoutMs?: number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export class DevServer {
  port = 0;
  private inspectorPort = 0;
  private child: ChildProcess | null = null;
  private log: WriteStream | null = null;
  starts = 0;
  private pidsAtStart = "";

  private readonly o: DevServerOptions;

  constructor(options: DevServerOptions) {
    this.o = options;
  }

  /**
   * `wrangler dev` reloads the Worker when a source file changes, which drops
   * every socket with 1006. A run against a copy tests one version of the
   * code however long it takes, while someone keeps editing `src/`.
   */
  private snapshot(): void {
    if (existsSync(this.o.appDir)) return;
    mkdirSync(this.o.appDir, { recursive: true });
    const configDir = this.o.config === undefined ? this.o.repo : dirname(this.o.config);
    for (const entry of ["wrangler.toml", "wrangler.json", "wrangler.jsonc", "package.json", "tsconfig.json", "src", "public"]) {
      const from = join(configDir, entry);
      if (existsSync(from)) cpSync(from, join(this.o.appDir, entry), { recursive: true });
    }
    symlinkSync(join(this.o.repo, "node_modules"), join(this.o.appDir, "node_modules"));
  }

  get http(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get ws(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Starts wrangler; a restart keeps the port and the persistence directory. */
  async start(): Promise<number> {
    if (this.child !== null) throw new Error("dev server already running");
    if (this.port === 0) this.port = await freePort();
    this.inspectorPort = await freePort();
    this.log ??= createWriteStream(this.o.logFile, { flags: "a" });
    const args = ["dev", "--ip", "127.0.0.1", "--port", String(this.port), "--inspector-port", String(this.inspectorPort)];
    args.push("--persist-to", this.o.persistTo, "--log-level", "warn", "--show-interactive-dev-session=false");
    for (const [name, value] of Object.entries(this.o.vars)) args.push("--var", `${name}:${value}`);
    this.snapshot();
    const t0 = Date.now();
    this.log.write(`\n=== start #${this.starts + 1}: wrangler ${args.join(" ")}\n`);
    const child = spawn(join(this.o.repo, "node_modules/.bin/wrangler"), args, {
      cwd: this.o.appDir,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // A private dev registry: wrangler reloads the Worker (dropping every
      // socket with 1006) whenever another `wrangler dev` on the machine
      // registers or leaves the shared one.
      env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", WRANGLER_REGISTRY_PATH: join(this.o.appDir, ".registry") },
    });
    this.child = child;
    this.starts++;
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    let exited = false;
    child.once("exit", () => {
      exited = true;
    });
    const deadline = t0 + (this.o.readyTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      if (exited) throw new Error(`wrangler dev exited during startup; see ${this.o.logFile}`);
      try {
        const res = await fetch(`${this.http}/api/rooms/chaos-ready/messages?after=0`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200) {
          this.pidsAtStart = this.workerdRss().map((p) => p.pid).sort().join(",");
          return Date.now() - t0;
        }
      } catch {
        // Not listening yet.
      }
      await sleep(150);
    }
    await this.kill();
    throw new Error(`wrangler dev was not ready within ${this.o.readyTimeoutMs ?? 60_000} ms; see ${this.o.logFile}`);
  }

  /** SIGKILL to the whole group: no shutdown hooks, no flush, like a crashed host. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** A polite stop at the end of a run (SIGTERM, then SIGKILL after a grace period). */
  async stop(): Promise<void> {
    await this.signal("SIGTERM", 5_000);
  }

  private async signal(signal: NodeJS.Signals, graceMs = 0): Promise<void> {
    const child = this.child;
    if (child === null || child.pid === undefined) return;
    const group = child.pid;
    const gone = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    const send = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-group, sig);
      } catch {
        // The group is already gone.
      }
    };
    send(signal);
    if (graceMs > 0) {
      const timer = sleep(graceMs).then(() => send("SIGKILL"));
      await Promise.race([gone, timer]);
    }
    await gone;
    // Children of the group (workerd) may outlive the leader by a moment.
    for (let i = 0; i < 100 && groupPids(group).length > 0; i++) {
      send("SIGKILL");
      await sleep(50);
    }
    this.child = null;
  }

  /** True when workerd was replaced since the last start: wrangler reloaded the Worker by itself. */
  reloaded(): boolean {
    return this.child !== null && this.workerdRss().map((p) => p.pid).sort().join(",") !== this.pidsAtStart;
  }

  /** Resident set of each workerd process of this server, in KiB. */
  workerdRss(): Array<{ pid: number; rssKiB: number }> {
    const group = this.child?.pid;
    if (group === undefined) return [];
    const out: Array<{ pid: number; rssKiB: number }> = [];
    for (const pid of groupPids(group)) {
      try {
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        const name = /^Name:\s*(\S+)/m.exec(status)?.[1];
        const rss = /^VmRSS:\s*(\d+) kB/m.exec(status)?.[1];
        if (name === "workerd" && rss !== undefined) out.push({ pid, rssKiB: Number(rss) });
      } catch {
        // Exited between the listing and the read.
      }
    }
    return out;
  }

  closeLog(): void {
    this.log?.end();
    this.log = null;
  }
}

/** Live (not zombie) processes whose process group is `group`. */
function groupPids(group: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the parenthesised command name: state ppid pgrp ...
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[2]) === group && rest[0] !== "Z") out.push(Number(entry));
    } catch {
      // Gone already.
    }
  }
  return out;
}
