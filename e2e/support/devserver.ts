// Starts `wrangler dev` on a free loopback port for the end-to-end tests and
// stops it by process group (wrangler runs workerd as a child, which must go
// too). Restarting on the same port and --persist-to directory is how a test
// plays "the server went away and came back with its storage".

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");

/** A port that was free a moment ago (bind port 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

export class DevServer {
  readonly port: number;
  readonly persistTo: string;
  readonly url: string;
  readonly #vars: Record<string, string>;
  #child: ChildProcess | null = null;
  #log: string[] = [];

  private constructor(port: number, persistTo: string, vars: Record<string, string>) {
    this.port = port;
    this.persistTo = persistTo;
    this.#vars = vars;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** `vars` override wrangler.toml's [vars] (wrangler's `--var NAME:VALUE`). */
  static async start(vars: Record<string, string> = {}): Promise<DevServer> {
    const server = new DevServer(await freePort(), mkdtempSync(join(tmpdir(), "edge-chat-e2e-")), vars);
    await server.restart();
    return server;
  }

  /** The last lines wrangler printed, for failure messages. */
  get log(): string {
    return this.#log.slice(-40).join("");
  }

  /** Starts wrangler (again) on the same port and storage; resolves once `GET /` answers. */
  async restart(timeoutMs = 120_000): Promise<void> {
    if (this.#child !== null) throw new Error("dev server already running");
    const child = spawn(
      WRANGLER,
      [
        "dev",
        "--ip", "127.0.0.1",
        "--port", String(this.port),
        "--inspector-port", String(await freePort()),
        "--persist-to", this.persistTo,
        "--show-interactive-dev-session=false",
        "--log-level", "warn",
        ...Object.entries(this.#vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
      ],
      {
        cwd: ROOT,
        // Own process group, so stop() can end wrangler and its workerd together.
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        // A registry of its own: wrangler reloads the Worker (dropping every
        // socket) whenever another `wrangler dev` on the machine starts or stops.
        env: {
          ...process.env,
          CI: "true",
          WRANGLER_SEND_METRICS: "false",
          NO_COLOR: "1",
          WRANGLER_REGISTRY_PATH: `${this.persistTo}/registry`,
        },
      },
    );
    this.#child = child;
    const keep = (chunk: Buffer) => {
      this.#log.push(chunk.toString());
      if (this.#log.length > 200) this.#log.splice(0, 100);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);

    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        this.#child = null;
        throw new Error(`wrangler dev exited (${child.exitCode ?? child.signalCode}) before answering:\n${this.log}`);
      }
      try {
        const res = await fetch(`${this.url}/`, { signal: AbortSignal.timeout(2000) });
        if (res.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(250);
    }
    await this.stop();
    throw new Error(`wrangler dev did not answer GET / on ${this.url} within ${timeoutMs} ms:\n${this.log}`);
  }

  /** Ends wrangler and workerd. `SIGKILL` is the crash a client must survive. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (child === null || child.pid === undefined) return;
    this.#child = null;
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // Already gone.
      }
    };
    killGroup(signal);
    const timer = setTimeout(() => killGroup("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    // workerd may outlive wrangler by a moment; make sure the whole group is gone.
    killGroup("SIGKILL");
    await this.#portFree();
  }

  async #portFree(): Promise<void> {
    for (let i = 0; i < 80; i++) {
      const free = await new Promise<boolean>((resolve) => {
        const srv = createServer();
        srv.once("error", () => resolve(false));
        srv.listen(this.port, "127.0.0.1", () => srv.close(() => resolve(true)));
      });
      if (free) return;
      await sleep(100);
    }
    throw new Error(`port ${this.port} still taken after stopping wrangler`);
  }

  /** Stops the server and deletes its storage. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.persistTo, { recursive: true, force: true });
  }
}
