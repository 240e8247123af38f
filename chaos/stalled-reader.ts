// Issue 5, "a slow or stalled reader": what the runtime does with the frames
// for a client that stops reading its socket while the rest of the room keeps
// chatting, measured in one bounded run (about 100 s after the server is up).
//
//   node chaos/stalled-reader.ts [--host wrangler|miniflare] [--rate 250]
//        [--text 1800] [--senders 4] [--listeners 4] [--base 12] [--stall 68]
//        [--drain 10] [--tail 10] [--keep]
//
// One room, healthy clients only (`ws`): S senders (which also receive) and L
// listeners, an open-loop schedule of --rate messages/s in total, each text
// stamped with performance.now() when it leaves, so every healthy receiver
// measures send-to-receive latency. Phases, all in one run:
//
//   base    healthy clients only                               (--base s)
//   stalled two raw-socket clients join, read their welcome and then never
//           read again (socket.pause(): the kernel receive buffer fills, the
//           TCP window closes). S1 is silent, so the room's ghost sweep
//           should close it after 60 s; S2 writes a `ping` every 20 s, as a
//           live client on a slow link would, so the sweep never sees it idle.
//                                                               (--stall s)
//   drain   both resume reading: how many bytes were held for them, how long
//           until S2 has caught up, and what S1 gets last (a close frame?).
//                                                       (at most --drain s)
//   tail    healthy clients only again, for the memory after   (--tail s)
//
// Sampled every second: RSS of each workerd process (wrangler dev runs two: the
// dev proxy in front, the user worker with the Durable Object behind), the
// bytes the kernel holds in those processes' TCP sockets and in the stalled
// clients' receive buffers, and the bytes broadcast since the stalled clients
// joined (what the room handed to `ws.send` for each of them, counted at a
// healthy listener: it gets the same frames). The summary fits RSS against
// those bytes, compares healthy latency with and without the stalled readers
// (same rate, same run) and says whether the runtime ever closed or failed the
// stalled sockets (a `leave` for them at the healthy listener, the room's log).
//
// Loopback only; the server runs from a copy of the app in a temp dir, in its
// own process group, stopped by group id; the temp dir is removed unless --keep.

import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, createWriteStream, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, type WriteStream } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import type { RawData } from "ws";
import { freePort } from "./server.ts";

// ---- options ----------------------------------------------------------------

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function num(name: string, fallback: number): number {
  const v = flag(name);
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number`);
  return n;
}

type Host = "wrangler" | "miniflare";
const host: Host = flag("--host") === "miniflare" ? "miniflare" : "wrangler";
const RATE = num("--rate", 60);
const TEXT = Math.min(num("--text", 1900), 1990);
// The padding character: 4 UTF-8 bytes per code point by default, so a text of
// 1900 code points is ~7.6 KB on the wire (the frame limit is 16 KiB of UTF-8,
// the text limit 2000 code points): many bytes per message at a modest rate.
const PAD_CHAR = flag("--pad") ?? "\u{1F600}";
const SENDERS = Math.max(1, num("--senders", 4));
const LISTENERS = Math.max(1, num("--listeners", 4));
const BASE_S = num("--base", 12);
const STALL_S = num("--stall", 68);
const DRAIN_S = num("--drain", 10);
const TAIL_S = num("--tail", 10);
const KEEP = process.argv.includes("--keep");
// The same run with nobody stalled: the RSS the room grows anyway at this load.
const CONTROL = process.argv.includes("--control");
const HARD_LIMIT_MS = (BASE_S + STALL_S + DRAIN_S + TAIL_S + 60) * 1000;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROOM = `stall-${randomBytes(3).toString("hex")}`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();
const MiB = 1024 * 1024;

// ---- the server ---------------------------------------------------------------


interface Server {
  child: ChildProcess;
  port: number;
  dir: string;
  logFile: string;
  log: WriteStream;
}

async function startServer(): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "stalled-reader-"));
  const app = join(dir, "app");
  // A copy, so an edit of src/ during the run cannot make wrangler reload the
  // Worker (which drops every socket), and a private dev registry for the same
  // reason (another wrangler dev on the machine coming or going).
  for (const entry of ["wrangler.toml", "package.json", "tsconfig.json", "src", "public"]) {
    const from = join(ROOT, entry);
    if (existsSync(from)) cpSync(from, join(app, entry), { recursive: true });
  }
  symlinkSync(join(ROOT, "node_modules"), join(app, "node_modules"));
  const port = await freePort();
  const vars = ["IP_CONNECT_PER_MIN:0", "ADDRESS_RATE_BURST:0", "ADDRESS_SOCKETS_PER_ROOM:0", "API_PER_MIN:0", "RATE_BURST:100000", "RATE_PER_SEC:100000"];
  const varArgs = vars.flatMap((v) => ["--var", v]);
  const persist = join(dir, "state");
  let cmd: string;
  let args: string[];
  if (host === "wrangler") {
    cmd = join(ROOT, "node_modules/.bin/wrangler");
    const inspector = await freePort();
    args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector), "--persist-to", persist, "--show-interactive-dev-session=false", ...varArgs];
  } else {
    cmd = process.execPath;
    args = [join(ROOT, "bench/host-miniflare.ts"), "--config", join(app, "wrangler.toml"), "--port", String(port), "--persist", persist, ...varArgs];
  }
  const logFile = join(dir, "server.log");
  const log = createWriteStream(logFile);
  const child = spawn(cmd, args, {
    cwd: app,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", WRANGLER_REGISTRY_PATH: join(dir, "registry") },
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const server: Server = { child, port, dir, logFile, log };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited during startup; see ${logFile}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/rooms/ready/messages`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return server;
    } catch {
      // not yet
    }
    await sleep(200);
  }
  throw new Error(`server not ready in 60 s; see ${logFile}`);
}

async function stopServer(s: Server): Promise<void> {
  const pid = s.child.pid;
  if (pid === undefined) return;
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // gone
    }
  };
  kill("SIGTERM");
  for (let i = 0; i < 40 && groupAlive(pid); i++) await sleep(100);
  kill("SIGKILL");
  for (let i = 0; i < 40 && groupAlive(pid); i++) await sleep(50);
  s.log.end();
}

function groupAlive(pgid: number): boolean {
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[2]) === pgid && f[0] !== "Z") return true;
    } catch {
      // exited
    }
  }
  return false;
}

// ---- /proc: RSS and kernel socket queues ---------------------------------------

interface Proc {
  pid: number;
  role: string;
}

function workerdPids(root: number): number[] {
  const parent = new Map<number, number>();
  const names = new Map<number, string>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      names.set(Number(e), stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")));
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // exited
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p = pid, i = 0; p > 1 && i < 50; p = parent.get(p) ?? 0, i++) if (p === root) return true;
    return false;
  };
  return [...names].filter(([pid, name]) => name === "workerd" && inTree(pid)).map(([pid]) => pid);
}

/** VmRSS and its anonymous part (heap, queues; not file-backed pages such as SQLite's). */
function rssKiB(pid: number): { total: number; anon: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s*(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { total: field("VmRSS"), anon: field("RssAnon") };
  } catch {
    return { total: 0, anon: 0 };
  }
}

function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m !== null) out.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // exited
  }
  return out;
}

interface TcpRow {
  localPort: number;
  remotePort: number;
  state: string;
  tx: number;
  rx: number;
  inode: string;
}

function tcpRows(): TcpRow[] {
  const rows: TcpRow[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const [tx, rx] = f[4].split(":").map((h) => parseInt(h, 16));
      rows.push({
        localPort: parseInt(f[1].split(":")[1], 16),
        remotePort: parseInt(f[2].split(":")[1], 16),
        state: f[3],
        tx,
        rx,
        inode: f[9],
      });
    }
  }
  return rows;
}

/** Which workerd is the dev proxy: the one that owns the listening socket on our port. */
function roles(pids: number[], port: number, rows: TcpRow[]): Proc[] {
  const listen = rows.find((r) => r.localPort === port && r.state === "0A");
  return pids.map((pid) => {
    const owns = listen !== undefined && socketInodes(pid).has(listen.inode);
    const role = pids.length === 1 ? "workerd" : owns ? "proxy" : "user";
    return { pid, role };
  });
}

// ---- latency bookkeeping -----------------------------------------------------

type Phase = "base" | "stalled" | "drain" | "tail";
let phase: Phase = "base";
const latency: Record<Phase, number[]> = { base: [], stalled: [], drain: [], tail: [] };
/** Per 10 s of the stalled phase, to see whether latency drifts as the backlog grows. */
const stalledBuckets: number[][] = [];
let stallStart = 0;

function record(ms: number): void {
  latency[phase].push(ms);
  if (phase === "stalled") {
    const b = Math.floor((now() - stallStart) / 10_000);
    (stalledBuckets[b] ??= []).push(ms);
  }
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const STAMP = /"type":"message".*?"text":"(\d+)\.(\d+)@([\d.]+)\|/;

// ---- healthy clients (ws) -------------------------------------------------------

interface Healthy {
  ws: WebSocket;
  id: string;
  received: number;
  closes: string[];
}

/** Wire bytes broadcast since the stalled clients joined, counted at one healthy listener. */
let refBytes = 0;
let refFrames = 0;
const leaves = new Map<string, number>();
let stalledIds = new Set<string>();
let counting = false;

function wireSize(payload: number): number {
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10);
}

async function openHealthy(port: number, name: string, reference: boolean): Promise<Healthy> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/chat/${ROOM}?name=${name}`);
  const h: Healthy = { ws, id: "", received: 0, closes: [] };
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${name}: no welcome in 15 s`)), 15_000);
    ws.on("message", (data: RawData) => {
      const text = data.toString();
      const t = now();
      if (h.id === "") {
        const welcome = JSON.parse(text) as { type: string; you: { id: string } };
        if (welcome.type === "welcome") {
          h.id = welcome.you.id;
          clearTimeout(timer);
          res();
        }
        return;
      }
      if (reference && counting) {
        refBytes += wireSize(Buffer.byteLength(text));
        refFrames++;
      }
      const m = STAMP.exec(text.slice(0, 200));
      if (m !== null) {
        h.received++;
        record(t - Number(m[3]));
      } else if (reference && text.startsWith('{"type":"leave"')) {
        const leave = JSON.parse(text) as { user: { id: string } };
        if (!leaves.has(leave.user.id)) leaves.set(leave.user.id, t);
      }
    });
    ws.on("close", (code: number, reason: Buffer) => h.closes.push(`${code} ${reason.toString()}`));
    ws.on("error", (err: Error) => {
      clearTimeout(timer);
      rej(err);
    });
  });
  return h;
}

// ---- stalled clients (raw TCP) ---------------------------------------------------

interface Stalled {
  label: string;
  socket: Socket;
  id: string;
  joinedAt: number;
  buf: Buffer;
  /** Wire bytes read after the welcome frame. */
  readBytes: number;
  frames: number;
  messages: number;
  /** When a message read during the drain was less than 250 ms old: caught up. */
  caughtUpAt: number | null;
  close: string | null;
  tcpClosedAt: number | null;
  destroyedByUs: boolean;
  draining: boolean;
  drainStart: number;
}

function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const out = Buffer.alloc(2 + 4 + payload.length);
  out[0] = 0x81;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i] ^ mask[i % 4];
  return out;
}

/** Parses whole frames off `s.buf`: up to the welcome, then nothing until the drain, then all. */
function pump(s: Stalled, onWelcome: () => void): void {
  while (s.id === "" || s.draining) {
    const b = s.buf;
    if (b.length < 2) return;
    const opcode = b[0] & 0x0f;
    let len = b[1] & 0x7f;
    let off = 2;
    if (len === 126) {
      if (b.length < 4) return;
      len = b.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (b.length < 10) return;
      len = Number(b.readBigUInt64BE(2));
      off = 10;
    }
    if (b.length < off + len) return;
    const payload = b.subarray(off, off + len);
    s.buf = b.subarray(off + len);
    if (s.id === "") {
      const w = JSON.parse(payload.toString()) as { type: string; you: { id: string } };
      if (w.type === "welcome") {
        s.id = w.you.id;
        s.joinedAt = now();
        onWelcome();
        // Stop reading: from here the kernel buffer fills and the window closes.
        s.socket.pause();
        return;
      }
      continue;
    }
    s.readBytes += off + len;
    s.frames++;
    if (opcode === 8) {
      s.close = `${len >= 2 ? payload.readUInt16BE(0) : "none"} ${payload.subarray(2).toString()}`;
    } else if (opcode === 1) {
      const m = STAMP.exec(payload.subarray(0, 200).toString());
      if (m !== null) {
        s.messages++;
        if (s.caughtUpAt === null && now() - Number(m[3]) < 250) s.caughtUpAt = now();
      }
    }
  }
}

async function openStalled(port: number, label: string, pings: boolean): Promise<Stalled> {
  const socket = connect(port, "127.0.0.1");
  const s: Stalled = {
    label,
    socket,
    id: "",
    joinedAt: 0,
    buf: Buffer.alloc(0),
    readBytes: 0,
    frames: 0,
    messages: 0,
    caughtUpAt: null,
    close: null,
    tcpClosedAt: null,
    destroyedByUs: false,
    draining: false,
    drainStart: 0,
  };
  const key = randomBytes(16).toString("base64");
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${label}: no welcome in 15 s`)), 15_000);
    let upgraded = false;
    socket.on("connect", () => {
      socket.write(
        `GET /chat/${ROOM}?name=${label} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on("data", (chunk: Buffer) => {
      s.buf = Buffer.concat([s.buf, chunk]);
      if (!upgraded) {
        const end = s.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = s.buf.subarray(0, end).toString();
        const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        if (!head.startsWith("HTTP/1.1 101") || !head.includes(accept)) {
          clearTimeout(timer);
          rej(new Error(`${label}: upgrade refused: ${head.split("\r\n")[0]}`));
          return;
        }
        upgraded = true;
        s.buf = s.buf.subarray(end + 4);
      }
      pump(s, () => {
        clearTimeout(timer);
        res();
      });
    });
    socket.on("close", () => {
      if (!s.destroyedByUs) s.tcpClosedAt ??= now();
    });
    socket.on("error", (err: Error) => {
      clearTimeout(timer);
      rej(err);
    });
  });
  if (pings) {
    // A live client on a slow link: its upstream works, it keeps pinging.
    const timer = setInterval(() => {
      if (!socket.destroyed) socket.write(maskedText("ping"));
    }, 20_000);
    socket.once("close", () => clearInterval(timer));
  }
  return s;
}

function resumeStalled(s: Stalled): void {
  s.draining = true;
  s.drainStart = now();
  pump(s, () => undefined);
  s.socket.resume();
}

// ---- the run ---------------------------------------------------------------------

interface Sample {
  t: number;
  phase: Phase;
  rss: Record<string, number>;
  /** Bytes broadcast to each stalled client so far (S1 frozen once it left). */
  sentS1: number;
  sentS2: number;
  /** Bytes the kernel holds: tx+rx queues of every workerd socket; the stalled clients' receive queues. */
  kernelWorkerd: number;
  kernelClients: number;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const hard = setTimeout(() => {
    console.error("hard time limit reached; stopping");
    process.exit(3);
  }, HARD_LIMIT_MS + 60_000);
  hard.unref();

  process.stderr.write(`starting ${host} …\n`);
  const server = await startServer();
  let exitCode = 0;
  const stalled: Stalled[] = [];
  const healthy: Healthy[] = [];
  let pace: ReturnType<typeof setInterval> | null = null;
  let pinger: ReturnType<typeof setInterval> | null = null;
  let sampler: ReturnType<typeof setInterval> | null = null;
  try {
    const rootPid = server.child.pid ?? 0;
    process.stderr.write(`ready on ${server.port} after ${((Date.now() - t0) / 1000).toFixed(1)} s; room ${ROOM}\n`);
    for (let i = 0; i < LISTENERS; i++) healthy.push(await openHealthy(server.port, `listener${i}`, i === 0));
    for (let i = 0; i < SENDERS; i++) healthy.push(await openHealthy(server.port, `sender${i}`, false));
    const senders = healthy.slice(LISTENERS);
    const reference = healthy[0];
    const procs = roles(workerdPids(rootPid), server.port, tcpRows());

    // Keep-alive for everyone healthy: the ghost sweep must not close them.
    pinger = setInterval(() => {
      for (const h of healthy) if (h.ws.readyState === WebSocket.OPEN) h.ws.send("ping");
    }, 20_000);

    // Open-loop sending: RATE messages/s in total, round robin over senders.
    const pad = PAD_CHAR.repeat(TEXT);
    let sent = 0;
    const seq = new Array<number>(SENDERS).fill(0);
    const sendStart = now();
    pace = setInterval(() => {
      const due = Math.floor(((now() - sendStart) / 1000) * RATE);
      while (sent < due) {
        const i = sent % SENDERS;
        const h = senders[i];
        const stamp = `${i}.${seq[i]++}@${now().toFixed(2)}|`;
        // Code points, not UTF-16 units: the stamp replaces as many pad characters.
        const text = stamp + pad.slice(stamp.length * PAD_CHAR.length);
        if (h.ws.readyState === WebSocket.OPEN) h.ws.send(JSON.stringify({ type: "message", text }));
        sent++;
      }
    }, 5);

    const samples: Sample[] = [];
    let sentS1Frozen: number | null = null;
    const sample = (): void => {
      const rows = tcpRows();
      const rss: Record<string, number> = {};
      let kernelWorkerd = 0;
      for (const p of procs) {
        const r = rssKiB(p.pid);
        rss[`${p.role}:${p.pid}`] = r.total;
        rss[`${p.role}-anon:${p.pid}`] = r.anon;
        const inodes = socketInodes(p.pid);
        for (const r of rows) if (inodes.has(r.inode)) kernelWorkerd += r.tx + r.rx;
      }
      let kernelClients = 0;
      for (const s of stalled) {
        const port = s.socket.localPort;
        for (const r of rows) if (r.localPort === port && r.remotePort === server.port) kernelClients += r.rx;
      }
      const s1 = stalled[0];
      if (s1 !== undefined && sentS1Frozen === null && leaves.has(s1.id)) sentS1Frozen = refBytes;
      samples.push({
        t: (now() - sendStart) / 1000,
        phase,
        rss,
        sentS1: sentS1Frozen ?? refBytes,
        sentS2: refBytes,
        kernelWorkerd,
        kernelClients,
      });
    };
    sampler = setInterval(sample, 1000);

    process.stderr.write(`phase base (${BASE_S} s), ${RATE} msg/s, text ${TEXT} chars, ${SENDERS} senders + ${LISTENERS} listeners\n`);
    await sleep(BASE_S * 1000);
    process.stderr.write(`  base: ${latency.base.length} deliveries, p50 ${pct(latency.base, 50).toFixed(1)} ms, p99 ${pct(latency.base, 99).toFixed(1)} ms\n`);

    process.stderr.write(`phase stalled (${STALL_S} s): S1 silent, S2 pinging\n`);
    if (!CONTROL) {
      stalled.push(await openStalled(server.port, "stalled1", false));
      stalled.push(await openStalled(server.port, "stalled2", true));
    }
    stalledIds = new Set(stalled.map((s) => s.id));
    counting = true;
    phase = "stalled";
    stallStart = now();
    const progress = setInterval(() => {
      const last = samples.at(-1);
      if (last === undefined) return;
      const rss = Object.entries(last.rss).map(([k, v]) => `${k.split(":")[0]} ${(v / 1024).toFixed(0)}`).join(" ");
      process.stderr.write(`  t=${last.t.toFixed(0)}s sent/stalled ${(last.sentS2 / MiB).toFixed(1)} MiB, RSS MiB ${rss}, kernel ${(last.kernelWorkerd / MiB).toFixed(1)}+${(last.kernelClients / MiB).toFixed(1)} MiB\n`);
    }, 10_000);
    await sleep(STALL_S * 1000);
    clearInterval(progress);
    sample();
    const atStallEnd = samples.at(-1);

    process.stderr.write(`phase drain (at most ${DRAIN_S} s): both stalled clients read again\n`);
    phase = "drain";
    const drainStart = now();
    for (const s of stalled) resumeStalled(s);
    const [s1, s2] = stalled;
    while (!CONTROL && now() - drainStart < DRAIN_S * 1000 && (s2.caughtUpAt === null || s1.close === null)) await sleep(100);
    await sleep(500);
    sample();
    const atDrainEnd = samples.at(-1);
    counting = false;
    for (const s of stalled) {
      s.destroyedByUs = true;
      s.socket.destroy();
    }

    process.stderr.write(`phase tail (${TAIL_S} s): healthy only\n`);
    phase = "tail";
    await sleep(TAIL_S * 1000);
    clearInterval(pace);
    pace = null;
    await sleep(1000);
    sample();
    clearInterval(sampler);
    sampler = null;

    // ---- summary ----------------------------------------------------------------
    const log = readFileSync(server.logFile, "utf8");
    const logLines = (word: string): string[] => log.split("\n").filter((l) => l.includes(word));
    const mib = (b: number): string => (b / MiB).toFixed(1);
    const keysOf = Object.keys(samples[0].rss);
    const baseSamples = samples.filter((x) => x.phase === "base");
    const stallSamples = samples.filter((x) => x.phase === "stalled");
    const rssAt = (x: Sample | undefined, k: string): number => (x === undefined ? Number.NaN : (x.rss[k] ?? Number.NaN) * 1024);
    const before = baseSamples.at(-1);

    console.log(`\n== stalled reader${CONTROL ? " (CONTROL: nobody stalled)" : ""}, host ${host}, ${RATE} msg/s x ${TEXT} chars, ${SENDERS} senders + ${LISTENERS} listeners, room ${ROOM}`);
    console.log(`sent ${sent} messages in ${((now() - sendStart) / 1000).toFixed(0)} s; frame on the wire ~${refFrames > 0 ? (refBytes / refFrames).toFixed(0) : "?"} B`);
    console.log(`workerd processes: ${procs.map((p) => `${p.role} ${p.pid}`).join(", ")}`);

    console.log(`\n-- RSS over time (MiB) vs bytes broadcast to each stalled client (MiB)`);
    console.log(`t s   | phase   | ${keysOf.map((k) => k.padEnd(14)).join(" | ")} | to S1  | to S2  | kernel workerd | kernel clients`);
    for (const x of samples) {
      if (x.phase === "base" && x !== baseSamples[0] && x !== before) continue;
      if (Math.round(x.t) % 5 !== 0 && x.phase === "stalled" && x !== stallSamples.at(-1)) continue;
      const cols = keysOf.map((k) => ((x.rss[k] ?? 0) / 1024).toFixed(1).padEnd(14)).join(" | ");
      console.log(`${x.t.toFixed(0).padStart(5)} | ${x.phase.padEnd(7)} | ${cols} | ${mib(x.sentS1).padStart(6)} | ${mib(x.sentS2).padStart(6)} | ${mib(x.kernelWorkerd).padStart(14)} | ${mib(x.kernelClients).padStart(14)}`);
    }

    // Fit RSS against bytes held for the stalled clients, over the stalled phase.
    console.log(`\n-- RSS growth per byte broadcast to the stalled clients (stalled phase, least squares)`);
    for (const k of keysOf) {
      const xs = stallSamples.map((x) => x.sentS1 + x.sentS2);
      const ys = stallSamples.map((x) => rssAt(x, k));
      const n = xs.length;
      const mx = xs.reduce((a, b) => a + b, 0) / n;
      const my = ys.reduce((a, b) => a + b, 0) / n;
      let sxy = 0;
      let sxx = 0;
      let syy = 0;
      for (let i = 0; i < n; i++) {
        sxy += (xs[i] - mx) * (ys[i] - my);
        sxx += (xs[i] - mx) ** 2;
        syy += (ys[i] - my) ** 2;
      }
      const slope = sxy / sxx;
      const r2 = (sxy * sxy) / (sxx * syy);
      const grew = rssAt(atStallEnd, k) - rssAt(before, k);
      const bytes = (atStallEnd?.sentS1 ?? 0) + (atStallEnd?.sentS2 ?? 0);
      console.log(`${k}: +${mib(grew)} MiB over the phase for ${mib(bytes)} MiB broadcast to S1+S2; slope ${slope.toFixed(2)} B RSS per B (r2 ${r2.toFixed(3)})`);
    }
    const overTime = (xs: Sample[], k: string): string => {
      if (xs.length < 3) return "n/a";
      const ts = xs.map((x) => x.t);
      const ys = xs.map((x) => rssAt(x, k));
      const mt = ts.reduce((a, b) => a + b, 0) / ts.length;
      const my = ys.reduce((a, b) => a + b, 0) / ys.length;
      let sty = 0;
      let stt = 0;
      for (let i = 0; i < ts.length; i++) {
        sty += (ts[i] - mt) * (ys[i] - my);
        stt += (ts[i] - mt) ** 2;
      }
      return `${(sty / stt / MiB).toFixed(2)} MiB/s`;
    };
    const baseLate = baseSamples.slice(Math.floor(baseSamples.length / 2));
    const s1Left = stalled[0] === undefined ? undefined : leaves.get(stalled[0].id);
    const stallBoth = stallSamples.filter((x) => s1Left === undefined || x.t < (s1Left - sendStart) / 1000);
    const stallOne = stallSamples.filter((x) => s1Left !== undefined && x.t >= (s1Left - sendStart) / 1000 + 1);
    const bytesRate = (xs: Sample[]): string =>
      xs.length < 2 ? "n/a" : `${((xs.at(-1)!.sentS1 + xs.at(-1)!.sentS2 - xs[0].sentS1 - xs[0].sentS2) / (xs.at(-1)!.t - xs[0].t) / MiB).toFixed(2)} MiB/s`;
    for (const k of keysOf) {
      console.log(
        `${k} RSS slope over time: base (2nd half) ${overTime(baseLate, k)}; stalled, both held ${overTime(stallBoth, k)} (broadcast to S1+S2 ${bytesRate(stallBoth)}); ` +
          `stalled, S2 only ${overTime(stallOne, k)} (${bytesRate(stallOne)}); tail ${overTime(samples.filter((x) => x.phase === "tail"), k)}`,
      );
    }
    const baseGrowth = keysOf.map((k) => `${k} ${mib(rssAt(before, k) - rssAt(baseSamples[0], k))}`).join(", ");
    console.log(`control, base phase (no stalled reader, ${BASE_S} s): RSS change MiB ${baseGrowth}`);
    console.log(`after drain: ${keysOf.map((k) => `${k} ${mib(rssAt(atDrainEnd, k))}`).join(", ")} MiB; end of tail: ${keysOf.map((k) => `${k} ${mib(rssAt(samples.at(-1), k))}`).join(", ")} MiB (before stall: ${keysOf.map((k) => `${k} ${mib(rssAt(before, k))}`).join(", ")})`);

    console.log(`\n-- the stalled sockets`);
    for (const s of stalled) {
      const leftAt = leaves.get(s.id);
      const left = leftAt !== undefined && leftAt < drainStart ? leftAt : undefined;
      const caught = s.caughtUpAt === null ? "not caught up" : `caught up ${((s.caughtUpAt - s.drainStart) / 1000).toFixed(1)} s after resuming`;
      console.log(
        `${s.label}: joined at t=${((s.joinedAt - sendStart) / 1000).toFixed(1)} s; ` +
          `left the room before the drain (leave at a healthy client): ${left === undefined ? "no" : `${((left - s.joinedAt) / 1000).toFixed(1)} s after joining`}; ` +
          `on resuming read ${mib(s.readBytes)} MiB in ${s.frames} frames (${s.messages} messages), ${caught}; ` +
          `close frame: ${s.close ?? "none"}; TCP closed by the server: ${s.tcpClosedAt === null ? "no" : `at t=${((s.tcpClosedAt - sendStart) / 1000).toFixed(1)} s`}`,
      );
    }
    console.log(`broadcast to S1 until it left: ${mib(atStallEnd?.sentS1 ?? 0)} MiB; to S2 until the drain: ${mib(atStallEnd?.sentS2 ?? 0)} MiB`);
    for (const word of ["idle_closed", "send failed", "\"fault\"", "disconnect"]) {
      const lines = logLines(word);
      console.log(`server log lines with ${word}: ${lines.length}${lines.length > 0 ? `; first: ${lines[0].slice(0, 220)}` : ""}`);
    }

    console.log(`\n-- healthy delivery latency (send to receive, ms, every healthy receiver)`);
    const row = (label: string, xs: number[]): string =>
      `${label.padEnd(18)} n=${String(xs.length).padStart(7)}  p50 ${pct(xs, 50).toFixed(1).padStart(7)}  p90 ${pct(xs, 90).toFixed(1).padStart(7)}  p99 ${pct(xs, 99).toFixed(1).padStart(7)}  max ${pct(xs, 100).toFixed(1).padStart(7)}`;
    for (const p of ["base", "stalled", "drain", "tail"] as const) console.log(row(p, latency[p]));
    stalledBuckets.forEach((b, i) => console.log(row(`  stalled ${i * 10}-${i * 10 + 10}s`, b)));
    const withoutStalled = [...latency.base, ...latency.tail];
    const r50 = pct(latency.stalled, 50) / pct(withoutStalled, 50);
    const r99 = pct(latency.stalled, 99) / pct(withoutStalled, 99);
    console.log(`ratio stalled / (base+tail): p50 ${r50.toFixed(2)}x, p99 ${r99.toFixed(2)}x`);
    const expected = sent * (LISTENERS + SENDERS);
    const got = healthy.reduce((a, h) => a + h.received, 0);
    console.log(`healthy deliveries ${got} of ${expected} expected (${expected - got} missing); healthy closes: ${healthy.flatMap((h) => h.closes).join(", ") || "none"}`);
    console.log(`server log: ${KEEP ? server.logFile : "(removed; --keep to keep it)"}`);
  } catch (err) {
    exitCode = 1;
    console.error(err);
  } finally {
    if (pace !== null) clearInterval(pace);
    if (pinger !== null) clearInterval(pinger);
    if (sampler !== null) clearInterval(sampler);
    for (const s of stalled) {
      s.destroyedByUs = true;
      s.socket.destroy();
    }
    for (const h of healthy) h.ws.terminate();
    await stopServer(server);
    if (!KEEP) rmSync(server.dir, { recursive: true, force: true });
    console.log(`run took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  process.exit(exitCode);
}

await main();
