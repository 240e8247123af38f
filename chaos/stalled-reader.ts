// Issue 5, "a slow or stalled reader": what the runtime does with the frames
// for a client that stops reading its socket while the rest of the room keeps
// chatting, measured in one bounded run (about 100 s after the server is up).
//
//   npm run chaos -- --stalled-reader [--host wrangler|miniflare] [--rate 60]
//        [--text 1900] [--pad CHAR] [--senders 4] [--listeners 4] [--base 12]
//        [--stall 68] [--drain 10] [--tail 10] [--control] [--keep]
//
// One room, healthy clients only: S senders (which also receive) and L
// listeners, an open-loop schedule of --rate messages/s in total, each text
// stamped with performance.now() when it leaves, so every healthy receiver
// measures send-to-receive latency. Phases, all in one run:
//
//   base    healthy clients only                               (--base s)
//   stalled two clients join, read their welcome and then never read again
//           (ws's pause(): the socket stops reading, the kernel receive
//           buffer fills, the TCP window closes). S1 is silent, so the room's
//           ghost sweep should close it after 60 s; S2 writes a `ping` every
//           20 s, as a live client on a slow link would, so the sweep never
//           sees it idle.                                      (--stall s)
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

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { numberFlag, parseCli, stringFlags } from "../tools/harness/cli.ts";
import { DevServer, stopServersOnExit } from "../tools/harness/devserver.ts";
import { narrowServerFrame } from "../tools/harness/frames.ts";
import { rssKiB, socketInodes, tcpRows, type TcpRow } from "../tools/harness/proc.ts";
import { sleep } from "../tools/harness/wait.ts";

const USAGE =
  "npm run chaos -- --stalled-reader [--host wrangler|miniflare] [--rate N] [--text N] [--pad CHAR] [--senders N] [--listeners N] " +
  "[--base S] [--stall S] [--drain S] [--tail S] [--control] [--keep]";

const now = (): number => performance.now();
const MiB = 1024 * 1024;
const STAMP = /"type":"message".*?"text":"(\d+)\.(\d+)@([\d.]+)\|/;

type Phase = "base" | "stalled" | "drain" | "tail";

interface Proc {
  pid: number;
  role: string;
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

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/** Bytes of a server frame (unmasked) on the wire. */
function wireSize(payload: number): number {
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10);
}

interface Client {
  label: string;
  ws: WebSocket;
  id: string;
  localPort: number;
  joinedAt: number;
}

/**
 * Opens a client and resolves once its welcome is read; every later text
 * frame goes to `onFrame`. A stalled client stops reading right after the
 * welcome (`pause()`), so frames from then on wait in the kernel.
 */
function open(
  url: string,
  label: string,
  stall: boolean,
  onFrame: (text: string, at: number) => void,
): Promise<Client> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const c: Client = { label, ws, id: "", localPort: 0, joinedAt: 0 };
  ws.once("upgrade", (res) => {
    c.localPort = res.socket.localPort ?? 0;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label}: no welcome in 15 s`)), 15_000);
    ws.on("message", (data) => {
      const text = data.toString();
      if (c.id !== "") return onFrame(text, now());
      const f = narrowServerFrame(text);
      if (!f.ok || f.value.type !== "welcome") return;
      c.id = f.value.you.id;
      c.joinedAt = now();
      if (stall) ws.pause();
      clearTimeout(timer);
      resolve(c);
    });
    ws.on("error", (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

interface Healthy {
  client: Client;
  received: number;
  closes: string[];
}

interface Stalled {
  client: Client;
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

/** Runs the measurement; the exit code: 0, or 1 when the run failed. */
export async function stalledReader(args: string[]): Promise<number> {
  const flags = parseCli(
    {
      host: { type: "string", default: "wrangler" },
      ...stringFlags("rate", "text", "pad", "senders", "listeners", "base", "stall", "drain", "tail"),
      keep: { type: "boolean", default: false },
      // The same run with nobody stalled: the RSS the room grows anyway at this load.
      control: { type: "boolean", default: false },
    },
    USAGE,
    args,
  );
  const host = flags.host === "miniflare" ? "miniflare" : "wrangler";
  const RATE = numberFlag(flags.rate, 60, "rate");
  const TEXT = Math.min(numberFlag(flags.text, 1900, "text"), 1990);
  // The padding character: 4 UTF-8 bytes per code point by default, so a text of
  // 1900 code points is ~7.6 KB on the wire (the frame limit is 16 KiB of UTF-8,
  // the text limit 2000 code points): many bytes per message at a modest rate.
  const PAD_CHAR = flags.pad ?? "\u{1F600}";
  const SENDERS = numberFlag(flags.senders, 4, "senders", 1);
  const LISTENERS = numberFlag(flags.listeners, 4, "listeners", 1);
  const BASE_S = numberFlag(flags.base, 12, "base");
  const STALL_S = numberFlag(flags.stall, 68, "stall");
  const DRAIN_S = numberFlag(flags.drain, 10, "drain");
  const TAIL_S = numberFlag(flags.tail, 10, "tail");
  const KEEP = flags.keep;
  const CONTROL = flags.control;
  const HARD_LIMIT_MS = (BASE_S + STALL_S + DRAIN_S + TAIL_S + 60) * 1000;
  const ROOM = `stall-${randomBytes(3).toString("hex")}`;

  // ---- latency bookkeeping ----------------------------------------------------
  let phase: Phase = "base";
  const latency: Record<Phase, number[]> = { base: [], stalled: [], drain: [], tail: [] };
  /** Per 10 s of the stalled phase, to see whether latency drifts as the backlog grows. */
  const stalledBuckets: number[][] = [];
  let stallStart = 0;
  const record = (ms: number): void => {
    latency[phase].push(ms);
    if (phase === "stalled") (stalledBuckets[Math.floor((now() - stallStart) / 10_000)] ??= []).push(ms);
  };

  /** Wire bytes broadcast since the stalled clients joined, counted at one healthy listener. */
  let refBytes = 0;
  let refFrames = 0;
  const leaves = new Map<string, number>();
  let counting = false;

  const t0 = Date.now();
  stopServersOnExit();
  process.stderr.write(`starting ${host} …\n`);
  const server = new DevServer({
    name: `stalled-reader-${host}`,
    host,
    snapshot: true,
    // The room's log lines (idle_closed, disconnect, …) are read for the report.
    logLevel: "log",
    vars: {
      IP_CONNECT_PER_MIN: "0",
      ADDRESS_RATE_BURST: "0",
      ADDRESS_SOCKETS_PER_ROOM: "0",
      API_PER_MIN: "0",
      RATE_BURST: "100000",
      RATE_PER_SEC: "100000",
    },
    readyTimeoutMs: 60_000,
    keep: KEEP,
  });
  const hard = setTimeout(() => {
    console.error("hard time limit reached; stopping");
    void server.dispose().finally(() => process.exit(3));
  }, HARD_LIMIT_MS + 60_000);
  hard.unref();
  let exitCode = 0;
  const stalled: Stalled[] = [];
  const healthy: Healthy[] = [];
  let pace: ReturnType<typeof setInterval> | null = null;
  let pinger: ReturnType<typeof setInterval> | null = null;
  let sampler: ReturnType<typeof setInterval> | null = null;

  const roomUrl = (name: string): string => `${server.wsUrl}/chat/${ROOM}?name=${name}`;

  const openHealthy = async (name: string, reference: boolean): Promise<Healthy> => {
    const h = { received: 0, closes: [] as string[] };
    const client = await open(roomUrl(name), name, false, (text, at) => {
      if (reference && counting) {
        refBytes += wireSize(Buffer.byteLength(text));
        refFrames++;
      }
      const m = STAMP.exec(text.slice(0, 200));
      if (m !== null) {
        h.received++;
        record(at - Number(m[3]));
      } else if (reference && text.startsWith('{"type":"leave"')) {
        const f = narrowServerFrame(text);
        if (f.ok && f.value.type === "leave" && !leaves.has(f.value.user.id)) leaves.set(f.value.user.id, at);
      }
    });
    client.ws.on("close", (code: number, reason: Buffer) => h.closes.push(`${code} ${reason.toString()}`));
    return Object.assign(h, { client });
  };

  const openStalled = async (label: string, pings: boolean): Promise<Stalled> => {
    const counts: Omit<Stalled, "client"> = {
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
    // Frames that came in one read with the welcome arrive before open() resolves.
    const client = await open(roomUrl(label), label, true, (text, at) => {
      counts.readBytes += wireSize(Buffer.byteLength(text));
      counts.frames++;
      const m = STAMP.exec(text.slice(0, 200));
      if (m === null) return;
      counts.messages++;
      if (counts.draining && counts.caughtUpAt === null && at - Number(m[3]) < 250) counts.caughtUpAt = at;
    });
    const s: Stalled = Object.assign(counts, { client });
    const ws = s.client.ws;
    ws.on("close", (code: number, reason: Buffer) => {
      // 1006: the TCP connection ended without a close frame; 1005: a close frame without a code.
      if (code !== 1006) {
        s.close = `${code === 1005 ? "none" : code} ${reason.toString()}`;
        s.readBytes += wireSize(code === 1005 ? 0 : 2 + reason.length);
        s.frames++;
      }
      if (!s.destroyedByUs) s.tcpClosedAt ??= now();
    });
    if (pings) {
      // A live client on a slow link: its upstream works, it keeps pinging.
      const timer = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send("ping");
      }, 20_000);
      ws.once("close", () => clearInterval(timer));
    }
    return s;
  };

  const resumeStalled = (s: Stalled): void => {
    s.draining = true;
    s.drainStart = now();
    s.client.ws.resume();
  };

  try {
    await server.start();
    process.stderr.write(`ready on ${server.port} after ${((Date.now() - t0) / 1000).toFixed(1)} s; room ${ROOM}\n`);
    for (let i = 0; i < LISTENERS; i++) healthy.push(await openHealthy(`listener${i}`, i === 0));
    for (let i = 0; i < SENDERS; i++) healthy.push(await openHealthy(`sender${i}`, false));
    const senders = healthy.slice(LISTENERS).map((h) => h.client.ws);
    const procs = roles(server.runtimePids(), server.port, tcpRows());

    // Keep-alive for everyone healthy: the ghost sweep must not close them.
    pinger = setInterval(() => {
      for (const h of healthy) if (h.client.ws.readyState === WebSocket.OPEN) h.client.ws.send("ping");
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
        const ws = senders[i];
        const stamp = `${i}.${(seq[i] = (seq[i] ?? 0) + 1) - 1}@${now().toFixed(2)}|`;
        // Code points, not UTF-16 units: the stamp replaces as many pad characters.
        const text = stamp + pad.slice(stamp.length * PAD_CHAR.length);
        if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "message", text }));
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
        for (const row of rows) if (inodes.has(row.inode)) kernelWorkerd += row.tx + row.rx;
      }
      let kernelClients = 0;
      for (const s of stalled) {
        for (const r of rows)
          if (r.localPort === s.client.localPort && r.remotePort === server.port) kernelClients += r.rx;
      }
      const s1 = stalled[0];
      if (s1 !== undefined && sentS1Frozen === null && leaves.has(s1.client.id)) sentS1Frozen = refBytes;
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

    process.stderr.write(
      `phase base (${BASE_S} s), ${RATE} msg/s, text ${TEXT} chars, ${SENDERS} senders + ${LISTENERS} listeners\n`,
    );
    await sleep(BASE_S * 1000);
    process.stderr.write(
      `  base: ${latency.base.length} deliveries, p50 ${pct(latency.base, 50).toFixed(1)} ms, p99 ${pct(latency.base, 99).toFixed(1)} ms\n`,
    );

    process.stderr.write(`phase stalled (${STALL_S} s): S1 silent, S2 pinging\n`);
    if (!CONTROL) {
      stalled.push(await openStalled("stalled1", false));
      stalled.push(await openStalled("stalled2", true));
    }
    counting = true;
    phase = "stalled";
    stallStart = now();
    const progress = setInterval(() => {
      const last = samples.at(-1);
      if (last === undefined) return;
      const rss = Object.entries(last.rss)
        .map(([k, v]) => `${k.split(":")[0]} ${(v / 1024).toFixed(0)}`)
        .join(" ");
      process.stderr.write(
        `  t=${last.t.toFixed(0)}s sent/stalled ${(last.sentS2 / MiB).toFixed(1)} MiB, RSS MiB ${rss}, kernel ${(last.kernelWorkerd / MiB).toFixed(1)}+${(last.kernelClients / MiB).toFixed(1)} MiB\n`,
      );
    }, 10_000);
    await sleep(STALL_S * 1000);
    clearInterval(progress);
    sample();
    const atStallEnd = samples.at(-1);

    process.stderr.write(`phase drain (at most ${DRAIN_S} s): both stalled clients read again\n`);
    phase = "drain";
    const drainStart = now();
    for (const s of stalled) resumeStalled(s);
    const done = (): boolean => stalled.every((s, i) => (i === 0 ? s.close !== null : s.caughtUpAt !== null));
    while (!CONTROL && now() - drainStart < DRAIN_S * 1000 && !done()) await sleep(100);
    await sleep(500);
    sample();
    const atDrainEnd = samples.at(-1);
    counting = false;
    for (const s of stalled) {
      s.destroyedByUs = true;
      s.client.ws.terminate();
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
    const keysOf = Object.keys(samples[0]?.rss ?? {});
    const baseSamples = samples.filter((x) => x.phase === "base");
    const stallSamples = samples.filter((x) => x.phase === "stalled");
    const rssAt = (x: Sample | undefined, k: string): number =>
      x === undefined ? Number.NaN : (x.rss[k] ?? Number.NaN) * 1024;
    const before = baseSamples.at(-1);

    console.log(
      `\n== stalled reader${CONTROL ? " (CONTROL: nobody stalled)" : ""}, host ${host}, ${RATE} msg/s x ${TEXT} chars, ${SENDERS} senders + ${LISTENERS} listeners, room ${ROOM}`,
    );
    console.log(
      `sent ${sent} messages in ${((now() - sendStart) / 1000).toFixed(0)} s; frame on the wire ~${refFrames > 0 ? (refBytes / refFrames).toFixed(0) : "?"} B`,
    );
    console.log(`workerd processes: ${procs.map((p) => `${p.role} ${p.pid}`).join(", ")}`);

    console.log(`\n-- RSS over time (MiB) vs bytes broadcast to each stalled client (MiB)`);
    console.log(
      `t s   | phase   | ${keysOf.map((k) => k.padEnd(14)).join(" | ")} | to S1  | to S2  | kernel workerd | kernel clients`,
    );
    for (const x of samples) {
      if (x.phase === "base" && x !== baseSamples[0] && x !== before) continue;
      if (Math.round(x.t) % 5 !== 0 && x.phase === "stalled" && x !== stallSamples.at(-1)) continue;
      const cols = keysOf.map((k) => ((x.rss[k] ?? 0) / 1024).toFixed(1).padEnd(14)).join(" | ");
      console.log(
        `${x.t.toFixed(0).padStart(5)} | ${x.phase.padEnd(7)} | ${cols} | ${mib(x.sentS1).padStart(6)} | ${mib(x.sentS2).padStart(6)} | ${mib(x.kernelWorkerd).padStart(14)} | ${mib(x.kernelClients).padStart(14)}`,
      );
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
        const dx = (xs[i] ?? mx) - mx;
        const dy = (ys[i] ?? my) - my;
        sxy += dx * dy;
        sxx += dx ** 2;
        syy += dy ** 2;
      }
      const slope = sxy / sxx;
      const r2 = (sxy * sxy) / (sxx * syy);
      const grew = rssAt(atStallEnd, k) - rssAt(before, k);
      const bytes = (atStallEnd?.sentS1 ?? 0) + (atStallEnd?.sentS2 ?? 0);
      console.log(
        `${k}: +${mib(grew)} MiB over the phase for ${mib(bytes)} MiB broadcast to S1+S2; slope ${slope.toFixed(2)} B RSS per B (r2 ${r2.toFixed(3)})`,
      );
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
        const dt = (ts[i] ?? mt) - mt;
        sty += dt * ((ys[i] ?? my) - my);
        stt += dt ** 2;
      }
      return `${(sty / stt / MiB).toFixed(2)} MiB/s`;
    };
    const baseLate = baseSamples.slice(Math.floor(baseSamples.length / 2));
    const s1Left = stalled[0] === undefined ? undefined : leaves.get(stalled[0].client.id);
    const stallBoth = stallSamples.filter((x) => s1Left === undefined || x.t < (s1Left - sendStart) / 1000);
    const stallOne = stallSamples.filter((x) => s1Left !== undefined && x.t >= (s1Left - sendStart) / 1000 + 1);
    const bytesRate = (xs: Sample[]): string => {
      const [first, last] = [xs[0], xs.at(-1)];
      if (xs.length < 2 || first === undefined || last === undefined) return "n/a";
      return `${((last.sentS1 + last.sentS2 - first.sentS1 - first.sentS2) / (last.t - first.t) / MiB).toFixed(2)} MiB/s`;
    };
    for (const k of keysOf) {
      console.log(
        `${k} RSS slope over time: base (2nd half) ${overTime(baseLate, k)}; stalled, both held ${overTime(stallBoth, k)} (broadcast to S1+S2 ${bytesRate(stallBoth)}); ` +
          `stalled, S2 only ${overTime(stallOne, k)} (${bytesRate(stallOne)}); tail ${overTime(
            samples.filter((x) => x.phase === "tail"),
            k,
          )}`,
      );
    }
    const baseGrowth = keysOf.map((k) => `${k} ${mib(rssAt(before, k) - rssAt(baseSamples[0], k))}`).join(", ");
    console.log(`control, base phase (no stalled reader, ${BASE_S} s): RSS change MiB ${baseGrowth}`);
    console.log(
      `after drain: ${keysOf.map((k) => `${k} ${mib(rssAt(atDrainEnd, k))}`).join(", ")} MiB; end of tail: ${keysOf.map((k) => `${k} ${mib(rssAt(samples.at(-1), k))}`).join(", ")} MiB (before stall: ${keysOf.map((k) => `${k} ${mib(rssAt(before, k))}`).join(", ")})`,
    );

    console.log(`\n-- the stalled sockets`);
    for (const s of stalled) {
      const leftAt = leaves.get(s.client.id);
      const left = leftAt !== undefined && leftAt < drainStart ? leftAt : undefined;
      const caught =
        s.caughtUpAt === null
          ? "not caught up"
          : `caught up ${((s.caughtUpAt - s.drainStart) / 1000).toFixed(1)} s after resuming`;
      console.log(
        `${s.client.label}: joined at t=${((s.client.joinedAt - sendStart) / 1000).toFixed(1)} s; ` +
          `left the room before the drain (leave at a healthy client): ${left === undefined ? "no" : `${((left - s.client.joinedAt) / 1000).toFixed(1)} s after joining`}; ` +
          `on resuming read ${mib(s.readBytes)} MiB in ${s.frames} frames (${s.messages} messages), ${caught}; ` +
          `close frame: ${s.close ?? "none"}; TCP closed by the server: ${s.tcpClosedAt === null ? "no" : `at t=${((s.tcpClosedAt - sendStart) / 1000).toFixed(1)} s`}`,
      );
    }
    console.log(
      `broadcast to S1 until it left: ${mib(atStallEnd?.sentS1 ?? 0)} MiB; to S2 until the drain: ${mib(atStallEnd?.sentS2 ?? 0)} MiB`,
    );
    for (const word of ["idle_closed", "send failed", '"fault"', "disconnect"]) {
      const lines = logLines(word);
      console.log(
        `server log lines with ${word}: ${lines.length}${lines.length > 0 ? `; first: ${lines[0]?.slice(0, 220)}` : ""}`,
      );
    }

    console.log(`\n-- healthy delivery latency (send to receive, ms, every healthy receiver)`);
    const row = (label: string, xs: number[]): string =>
      `${label.padEnd(18)} n=${String(xs.length).padStart(7)}  p50 ${pct(xs, 50).toFixed(1).padStart(7)}  p90 ${pct(xs, 90).toFixed(1).padStart(7)}  p99 ${pct(xs, 99).toFixed(1).padStart(7)}  max ${pct(xs, 100).toFixed(1).padStart(7)}`;
    for (const p of ["base", "stalled", "drain", "tail"] as const) console.log(row(p, latency[p]));
    for (const [i, b] of stalledBuckets.entries()) console.log(row(`  stalled ${i * 10}-${i * 10 + 10}s`, b));
    const withoutStalled = [...latency.base, ...latency.tail];
    const r50 = pct(latency.stalled, 50) / pct(withoutStalled, 50);
    const r99 = pct(latency.stalled, 99) / pct(withoutStalled, 99);
    console.log(`ratio stalled / (base+tail): p50 ${r50.toFixed(2)}x, p99 ${r99.toFixed(2)}x`);
    const expected = sent * (LISTENERS + SENDERS);
    const got = healthy.reduce((a, h) => a + h.received, 0);
    console.log(
      `healthy deliveries ${got} of ${expected} expected (${expected - got} missing); healthy closes: ${healthy.flatMap((h) => h.closes).join(", ") || "none"}`,
    );
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
      s.client.ws.terminate();
    }
    for (const h of healthy) h.client.ws.terminate();
    await server.dispose();
    console.log(`run took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  return exitCode;
}
