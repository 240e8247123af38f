// The soak: one room, many clients, a few of them sending at a steady rate,
// everyone but a few witnesses dropped and reconnected at random (half of the
// drops without a close frame), optionally the whole server SIGKILLed and
// restarted on the same storage in the middle. The clients check each frame
// as it comes (client.ts); this file checks the end state:
//
// - every client ends at the same last id N, started at 1, and holds every id
//   in 1..N once, except the ranges a `welcome.gap` told it it had missed;
// - every id maps to one message for the whole run, restarts included;
// - every message a sender posted came back, once (a second copy is only
//   excused when the sender had to send it twice), with the sender's identity;
// - the history a fresh client and the HTTP API see is the last 100 of the
//   same messages, and `after` behaves at the edges;
// - after a SIGKILL the room still has every id any client had received.

import type { Message } from "../src/protocol.ts";
import { ChatClient } from "./client.ts";
import { describe, narrowHistoryPage, sameMessage } from "../tools/harness/frames.ts";
import { type Findings, Ledger } from "./findings.ts";
import type { DevServer } from "../tools/harness/devserver.ts";
import { sleep, waitUntil } from "../tools/harness/wait.ts";

export interface SoakOptions {
  server: DevServer;
  findings: Findings;
  room: string;
  random: () => number;
  clients: number;
  senders: number;
  witnesses: number;
  messages: number;
  sendWindowMs: number;
  /** Chaos drops per second across the room. */
  dropsPerSec: number;
  kill: boolean;
  log: (line: string) => void;
  /**
   * A sharded room (the server runs with SHARD_SIZE): the room's stats,
   * read with this ADMIN_TOKEN, must show it spread over parts.
   */
  shards?: { adminToken: string; size: number };
}

export interface SoakResult {
  room: string;
  lastId: number;
  wallMs: number;
  connects: number;
  drops: { abrupt: number; graceful: number };
  gaps: number;
  retried: number;
  retryDuplicates: number;
  /** Unknown-fate messages (sent, then a gap) settled by another client's view / resent at the end. */
  settledByOthers: number;
  releasedAtEnd: number;
  closeCodes: Record<string, number>;
  kill?: { downMs: number; restartMs: number; backMs: number; maxIdBefore: number };
  /** Presence frames all clients received, by kind. */
  presenceFrames: { join: number; leave: number; count: number; list: number };
  /** Sharded runs: the most objects and the most parts' connections stats ever showed. */
  shards?: { maxShards: number; maxParts: string; samples: number };
}

const GARNISH = ["", " é", " €uro", " 😀", " 日本語", " \u0007bell", " <b>x</b>", ' "quoted"', " 𝄞 clef"];

export async function soak(o: SoakOptions): Promise<SoakResult> {
  const t0 = Date.now();
  const f = o.findings;
  const ledger = new Ledger(f);
  const clients: ChatClient[] = [];
  const role = (i: number): "sender" | "witness" | "sleeper" | "churner" =>
    i < o.senders
      ? "sender"
      : i < o.senders + o.witnesses
        ? "witness"
        : i === o.senders + o.witnesses
          ? "sleeper"
          : "churner";
  for (let i = 0; i < o.clients; i++) {
    const r = role(i);
    clients.push(
      new ChatClient({
        base: o.server.wsUrl,
        room: o.room,
        name: `${r}-${i}`,
        label: `${o.room}/${r}-${i}`,
        random: o.random,
        findings: f,
        ledger,
        oracle: (nonce) => {
          const [id] = ledger.idsOfNonce(nonce);
          return id === undefined ? undefined : ledger.get(id);
        },
      }),
    );
  }
  for (const c of clients) c.start();
  if (!(await waitUntil(() => clients.every((c) => c.online), 30_000))) {
    f.violation(
      `${o.room}: ${clients.filter((c) => !c.online).length} of ${o.clients} clients got no welcome within 30 s`,
    );
  }
  for (const c of clients) {
    if (c.lastId !== null) f.violation(`${c.label}: a fresh room's welcome has history (last id ${c.lastId})`);
  }

  const senders = clients.slice(0, o.senders);
  const droppable = clients.filter((_, i) => role(i) === "sender" || role(i) === "churner");
  const sleeper = clients[o.senders + o.witnesses];
  const interval = o.sendWindowMs / o.messages;
  const msgPerSec = 1000 / interval;
  const drops = { abrupt: 0, graceful: 0 };
  let posted = 0;
  let chaos = true;
  const start = Date.now();

  const sendTimer = setInterval(() => {
    const due = Math.min(o.messages, Math.floor((Date.now() - start) / interval) + 1);
    for (; posted < due; posted++) {
      const sender = senders[posted % senders.length];
      if (sender === undefined) break;
      const seq = Math.floor(posted / senders.length);
      const garnish = GARNISH[posted % GARNISH.length];
      sender.post(`${sender.label} #${seq}${garnish}`, `${o.room.slice(-8)}.${posted % senders.length}.${seq}`);
    }
    if (posted >= o.messages) clearInterval(sendTimer);
  }, 20);

  const chaosLoop = (async () => {
    const sleeperAt = start + o.sendWindowMs * (0.2 + 0.2 * o.random());
    let sleeperDone = false;
    while (chaos) {
      await sleep(o.random() * (2000 / o.dropsPerSec));
      if (!chaos) break;
      if (!sleeperDone && sleeper !== undefined && Date.now() >= sleeperAt) {
        // Away for longer than the history covers: its resume must say gap.
        const away = ((o.messages > 0 ? (sleeper.limits?.history ?? 100) : 100) + 40) / msgPerSec;
        sleeper.drop(true, away * 1000);
        sleeperDone = true;
      }
      const c = droppable[Math.floor(o.random() * droppable.length)];
      if (c === undefined || !c.online) continue;
      const abrupt = o.random() < 0.5;
      if (abrupt) drops.abrupt++;
      else drops.graceful++;
      c.drop(abrupt);
    }
  })();

  // A client that is connected must keep up: one that stays a history's
  // worth behind the room while connected is not being sent to.
  const behindSince = new Map<ChatClient, number>();
  const stallTimer = setInterval(() => {
    for (const c of clients) {
      const size = c.limits?.history ?? 100;
      if (!c.online || c.lastId === null || ledger.maxId - c.lastId <= size) {
        behindSince.delete(c);
        continue;
      }
      const since = behindSince.get(c) ?? Date.now();
      behindSince.set(c, since);
      if (Date.now() - since > 3_000) {
        f.violation(
          `${c.label}: connected but ${ledger.maxId - c.lastId} ids behind the room for 3 s (at ${c.lastId}, room at ${ledger.maxId})`,
        );
        behindSince.set(c, Date.now() + 60_000);
      }
    }
  }, 250);

  // A sharded run that never sharded tested nothing new: sample the stats.
  const sharding = { maxShards: 0, maxParts: "", samples: 0 };
  let statsOn = o.shards !== undefined;
  const statsLoop = (async () => {
    while (statsOn) {
      const st = await readStats(o);
      if (st !== null) {
        sharding.samples++;
        if (st.shards > sharding.maxShards) {
          sharding.maxShards = st.shards;
          sharding.maxParts = (st.parts ?? []).map((p) => `${p.part}:${p.connections}`).join(" ");
        }
      }
      await sleep(500);
    }
  })();

  let kill: SoakResult["kill"];
  if (o.kill) {
    await sleep(o.sendWindowMs * (0.35 + 0.3 * o.random()));
    const maxIdBefore = ledger.maxId;
    const before: Message[] = [];
    for (let id = Math.max(1, maxIdBefore - 30); id <= maxIdBefore; id++) {
      const m = ledger.get(id);
      if (m !== undefined) before.push(m);
    }
    // The senders (the only writers) stay away until the room has been read
    // back; everyone else reconnects by itself while the server is down.
    for (const s of senders) s.pause();
    const tk = Date.now();
    await o.server.kill();
    const down = 300 + o.random() * 1200;
    await sleep(down);
    const restartMs = await o.server.start();
    // Before the clients are back: is everything they had received still there?
    await checkAfterRestart(o, maxIdBefore, before);
    for (const s of senders) s.resume();
    const back = await waitUntil(() => clients.every((c) => c.online), 30_000);
    if (!back)
      f.violation(
        `${o.room}: after the restart ${clients.filter((c) => !c.online).length} clients did not come back within 30 s`,
      );
    kill = { downMs: Math.round(down), restartMs, backMs: Date.now() - tk, maxIdBefore };
    o.log(
      `  killed at id ${maxIdBefore}; restarted in ${restartMs} ms; all ${o.clients} clients back ${kill.backMs} ms after the kill`,
    );
  }

  await waitUntil(() => posted >= o.messages, o.sendWindowMs + 10_000);
  chaos = false;
  await chaosLoop;

  // Drain: every sender's outbox empty. One stuck with pending messages on a
  // live connection (a rate_limited drop names no nonce) is nudged to
  // reconnect, which resends after the resync.
  const drainEnd = Date.now() + 60_000;
  let lastProgress = Date.now();
  let lastPending = -1;
  let released = 0;
  while (Date.now() < drainEnd) {
    const pending = senders.reduce((n, s) => n + s.pending, 0);
    if (pending === 0) break;
    const limbo = senders.reduce((n, s) => n + s.inLimbo, 0);
    if (limbo === pending && senders.every((s) => s.online)) {
      // Nothing else in flight: give the last broadcasts a moment to land,
      // then resend what nobody has seen stored.
      await sleep(500);
      for (const s of senders) released += s.releaseLimbo();
      continue;
    }
    if (pending !== lastPending) {
      lastPending = pending;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > 3_000) {
      for (const s of senders) released += s.releaseLimbo();
      for (const s of senders) if (s.pending > s.inLimbo && s.online) s.drop(false);
      lastProgress = Date.now();
    }
    await sleep(50);
  }
  const stuck = senders.reduce((n, s) => n + s.pending, 0);
  if (stuck > 0) f.violation(`${o.room}: ${stuck} messages never came back to their senders within 60 s of the end`);

  const settled = await waitUntil(() => clients.every((c) => c.online && c.lastId === ledger.maxId), 30_000);
  if (!settled) {
    const behind = clients.filter((c) => !c.online || c.lastId !== ledger.maxId);
    f.violation(
      `${o.room}: ${behind.length} clients did not reach id ${ledger.maxId}: ${behind
        .slice(0, 5)
        .map((c) => `${c.label}@${c.lastId}${c.online ? "" : " offline"}`)
        .join(", ")}`,
    );
  }
  const n = ledger.maxId;
  clearInterval(stallTimer);
  statsOn = false;
  await statsLoop;
  if (o.shards !== undefined && sharding.maxShards < 2) {
    o.findings.violation(
      `${o.room}: with SHARD_SIZE ${o.shards.size} and ${o.clients} clients the room never had a part (${sharding.samples} stats samples, at most ${sharding.maxShards} object)`,
    );
  }
  await checkPresence(o, clients);

  await checkFinalHistory(o, ledger, n);
  checkClients(o, clients, ledger, n);
  const duplicates = checkSenders(o, senders, ledger);

  for (const c of clients) c.stop();
  const closeCodes: Record<string, number> = {};
  for (const c of clients) for (const [code, k] of c.closeCodes) closeCodes[code] = (closeCodes[code] ?? 0) + k;
  const errors = new Map<string, number>();
  const refusals = new Map<string, number>();
  for (const c of clients) {
    for (const [code, k] of c.errorsByCode) errors.set(code, (errors.get(code) ?? 0) + k);
    for (const [status, k] of c.httpRefusals) refusals.set(status, (refusals.get(status) ?? 0) + k);
  }
  for (const [code, k] of errors) {
    // Senders pace at 70% of the announced rate; a rate_limited now and then
    // is the two buckets' clocks disagreeing, anything else is a bug.
    if (code === "rate_limited")
      f.note(`${o.room}: senders drew ${k} rate_limited errors while pacing below the announced limits`);
    else f.violation(`${o.room}: clients sending only valid frames drew ${k} ${code} errors`);
  }
  for (const [status, k] of refusals) {
    if (status === "429" || status === "503" || !o.kill)
      f.violation(`${o.room}: ${k} WebSocket upgrades refused with HTTP ${status}`);
    else f.note(`${o.room}: ${k} WebSocket upgrades refused with HTTP ${status} around the restart`);
  }
  for (const code of [1008, 1009, 1011]) {
    if (closeCodes[code] !== undefined)
      f.violation(`${o.room}: clients saw close code ${code} ${closeCodes[code]} times`);
  }
  return {
    room: o.room,
    lastId: n,
    wallMs: Date.now() - t0,
    connects: clients.reduce((k, c) => k + c.connects, 0),
    drops,
    gaps: clients.reduce((k, c) => k + c.gaps, 0),
    retried: senders.reduce((k, s) => k + [...s.items].filter((i) => i.sends > 1).length, 0),
    retryDuplicates: duplicates,
    settledByOthers: senders.reduce((k, s) => k + [...s.items].filter((i) => i.byOracle).length, 0),
    releasedAtEnd: released,
    closeCodes,
    kill,
    presenceFrames: {
      join: clients.reduce((k, c) => k + c.presenceFrames.join, 0),
      leave: clients.reduce((k, c) => k + c.presenceFrames.leave, 0),
      count: clients.reduce((k, c) => k + c.presenceFrames.count, 0),
      list: clients.reduce((k, c) => k + c.presenceFrames.list, 0),
    },
    ...(o.shards !== undefined ? { shards: sharding } : {}),
  };
}

interface Stats {
  connections: number;
  users: number;
  shards: number;
  parts?: { part: string; connections: number }[];
}

async function readStats(o: SoakOptions): Promise<Stats | null> {
  if (o.shards === undefined) return null;
  try {
    const res = await fetch(`${o.server.url}/api/rooms/${o.room}/stats`, {
      headers: { authorization: `Bearer ${o.shards.adminToken}` },
      signal: AbortSignal.timeout(5_000),
    });
    // Down around a SIGKILL: the next sample will do.
    if (res.status !== 200) return null;
    const v: unknown = await res.json();
    if (typeof v !== "object" || v === null) return null;
    const field = (k: string): unknown => (Object.hasOwn(v, k) ? Reflect.get(v, k) : undefined);
    const [connections, users, shards, parts] = [field("connections"), field("users"), field("shards"), field("parts")];
    if (typeof connections !== "number" || typeof users !== "number" || typeof shards !== "number") {
      o.findings.violation(`${o.room}: stats without connections/users/shards: ${JSON.stringify(v).slice(0, 200)}`);
      return null;
    }
    const isPart = (p: unknown): p is { part: string; connections: number } =>
      typeof p === "object" &&
      p !== null &&
      typeof Reflect.get(p, "part") === "string" &&
      typeof Reflect.get(p, "connections") === "number";
    const list = Array.isArray(parts) ? (parts as unknown[]).filter(isPart) : undefined;
    return { connections, users, shards, ...(list !== undefined ? { parts: list } : {}) };
  } catch {
    return null;
  }
}

/**
 * Once every client is connected and caught up, presence must converge: each
 * client counts every user (and lists every one while the count is at or
 * under PRESENCE_LIMIT, where the list is whole), and the room's stats agree.
 * Checked after the room is quiet for a few seconds' worth of presence frames.
 */
async function checkPresence(o: SoakOptions, clients: ChatClient[]): Promise<void> {
  const f = o.findings;
  const truth = new Map<string, string>();
  for (const c of clients) if (c.you !== null) truth.set(c.you.id, c.you.name);
  const wrong = (c: ChatClient): string | null => {
    const p = c.presence;
    if (p.count !== truth.size) return `counts ${p.count}`;
    if (p.partial) return null;
    const missing = [...truth.keys()].filter((id) => !p.users.has(id));
    const extra = [...p.users.keys()].filter((id) => !truth.has(id));
    return missing.length + extra.length === 0
      ? null
      : `lists ${p.users.size} (${missing.length} missing, ${extra.length} extra)`;
  };
  const converged = await waitUntil(() => clients.every((c) => c.online && wrong(c) === null), 15_000);
  if (!converged) {
    const off = clients.filter((c) => wrong(c) !== null);
    f.violation(
      `${o.room}: presence did not converge to ${truth.size} users within 15 s: ${off.length} clients wrong, e.g. ${off
        .slice(0, 4)
        .map((c) => `${c.label} ${wrong(c)}`)
        .join("; ")}`,
    );
  }
  for (const c of clients) {
    if (c.presenceAnomalies.length > 0)
      f.violation(
        `${c.label}: ${c.presenceAnomalies.length} presence frames contradict its list, e.g. ${c.presenceAnomalies.slice(0, 3).join("; ")}`,
      );
  }
  if (o.shards === undefined) return;
  // Parts report their sockets to the room asynchronously: poll, bounded.
  let st: Stats | null = null;
  for (let end = Date.now() + 10_000; Date.now() < end; await sleep(250)) {
    st = await readStats(o);
    if (st !== null && st.users === truth.size && st.connections === clients.length) return;
  }
  if (st === null) f.violation(`${o.room}: stats unreadable at the end`);
  else
    f.violation(
      `${o.room}: stats at the end say ${st.users} users on ${st.connections} connections, the soak holds ${truth.size} on ${clients.length}`,
    );
}

async function getPage(o: SoakOptions, after: string): Promise<{ messages: Message[]; gap: boolean } | null> {
  try {
    const res = await fetch(`${o.server.url}/api/rooms/${o.room}/messages?after=${after}`, {
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status !== 200) {
      o.findings.violation(`${o.room}: GET messages?after=${after} answered ${res.status}`);
      return null;
    }
    const page = narrowHistoryPage(await res.json());
    if (!page.ok) {
      o.findings.violation(`${o.room}: GET messages?after=${after}: ${page.why}`);
      return null;
    }
    if (page.value.room !== o.room) o.findings.violation(`${o.room}: GET messages answered room ${page.value.room}`);
    return page.value;
  } catch (e) {
    o.findings.violation(`${o.room}: GET messages?after=${after} failed: ${String(e)}`);
    return null;
  }
}

async function checkAfterRestart(o: SoakOptions, maxIdBefore: number, before: Message[]): Promise<void> {
  const firstBefore = before[0]?.id;
  if (firstBefore === undefined) return;
  // No sender is connected yet, so nothing new was written: the room is at or
  // just past (messages stored but not yet received at the kill) the last id
  // any client had, and the ids before it are unchanged.
  const after = firstBefore - 1;
  const page = await getPage(o, String(after));
  if (page === null) return;
  const last = page.messages.at(-1)?.id ?? 0;
  if (last < maxIdBefore) {
    o.findings.violation(
      `${o.room}: after the SIGKILL the room's last id is ${last || "none"}, but clients had received up to ${maxIdBefore}: broadcast messages were lost`,
    );
  }
  const got = new Map(page.messages.map((m) => [m.id, m]));
  const oldest = page.messages[0]?.id ?? Infinity;
  for (const m of before) {
    const g = got.get(m.id);
    if (g === undefined) {
      if (m.id >= oldest || !page.gap)
        o.findings.violation(`${o.room}: after the SIGKILL the room lost ${describe(m)}, which clients had received`);
    } else if (!sameMessage(g, m)) {
      o.findings.violation(`${o.room}: after the SIGKILL id ${m.id} is ${describe(g)}, clients had ${describe(m)}`);
    }
  }
  const kept = before.filter((m) => got.has(m.id)).length;
  o.log(
    `  after the restart the room is at id ${last}; ${kept} of ids ${firstBefore}..${maxIdBefore} read back unchanged${kept < before.length ? " (the rest trimmed by newer messages)" : ""}`,
  );
}

async function checkFinalHistory(o: SoakOptions, ledger: Ledger, n: number): Promise<void> {
  const f = o.findings;
  const fresh = new ChatClient({
    base: o.server.wsUrl,
    room: o.room,
    name: "auditor",
    label: `${o.room}/auditor`,
    random: o.random,
    findings: f,
    ledger,
  });
  fresh.start();
  const ok = await waitUntil(() => fresh.online, 10_000);
  fresh.stop();
  if (!ok) {
    f.violation(`${o.room}: a fresh client got no welcome`);
    return;
  }
  const size = fresh.limits?.history ?? 100;
  const expectFirst = Math.max(1, n - size + 1);
  if (fresh.lastId !== n || fresh.firstId !== expectFirst) {
    f.violation(
      `${o.room}: a fresh client's history is ${fresh.firstId}..${fresh.lastId}, expected ${expectFirst}..${n}`,
    );
  }
  const all = await getPage(o, "0");
  if (all !== null) {
    const ids = all.messages.map((m) => m.id);
    // after=0 asks for everything from id 1: a gap exactly when id 1 is trimmed.
    if (all.gap !== expectFirst > 1)
      f.violation(`${o.room}: GET after=0 says gap=${all.gap} with ids ${expectFirst}..${n} kept`);
    if (ids.length !== n - expectFirst + 1 || ids[0] !== expectFirst || ids[ids.length - 1] !== n) {
      f.violation(
        `${o.room}: GET after=0 returned ${ids.length} messages ${ids[0]}..${ids[ids.length - 1]}, expected ${expectFirst}..${n}`,
      );
    }
    for (const m of all.messages) ledger.record(m, "GET after=0");
  }
  const tail = await getPage(o, String(n - 10));
  if (tail !== null && (tail.gap || tail.messages.length !== 10 || tail.messages[0]?.id !== n - 9)) {
    f.violation(
      `${o.room}: GET after=${n - 10} returned ${tail.messages.length} messages, gap=${tail.gap}; expected ${n - 9}..${n}, gap=false`,
    );
  }
  const none = await getPage(o, String(n));
  if (none !== null && (none.gap || none.messages.length !== 0)) {
    f.violation(
      `${o.room}: GET after=${n} (the last id) returned ${none.messages.length} messages, gap=${none.gap}; expected none, gap=false`,
    );
  }
  const beyond = await getPage(o, String(n + 1000));
  if (beyond !== null && (!beyond.gap || beyond.messages.length !== n - expectFirst + 1)) {
    f.violation(
      `${o.room}: GET after=${n + 1000} (beyond the last id) returned ${beyond.messages.length} messages, gap=${beyond.gap}; expected all ${n - expectFirst + 1} kept, gap=true`,
    );
  }
  if (n > size + 5) {
    const old = await getPage(o, "1");
    if (old !== null && (!old.gap || old.messages.length !== size)) {
      f.violation(
        `${o.room}: GET after=1 (long trimmed) returned ${old.messages.length} messages, gap=${old.gap}; expected ${size}, gap=true`,
      );
    }
  }
}

function checkClients(o: SoakOptions, clients: ChatClient[], ledger: Ledger, n: number): void {
  const f = o.findings;
  const holes: Array<{ from: number; to: number }> = [];
  for (const c of clients) {
    const missed = c.holes.reduce((k, h) => k + (h.to - h.from + 1), 0);
    holes.push(...c.holes);
    if (c.firstId !== 1) f.violation(`${c.label}: its first message is ${c.firstId}, not 1`);
    if (c.lastId !== n) continue;
    if (c.received + missed !== n)
      f.violation(`${c.label}: holds ${c.received} messages + ${missed} announced as missed, expected ${n}`);
  }
  for (const id of ledger.unseen()) {
    const excused = holes.some((h) => h.from <= id && id <= h.to);
    if (excused) f.note(`${o.room}: id ${id} seen by no client (every one that was away had gap=true)`);
    else f.violation(`${o.room}: id ${id} was never delivered to anyone though no client was told of a gap`);
  }
}

/** Checks every sender's outbox against the ledger; returns how many messages a resend stored twice. */
function checkSenders(o: SoakOptions, senders: ChatClient[], ledger: Ledger): number {
  const f = o.findings;
  let stored = 0;
  const raced: string[] = [];
  for (const s of senders) {
    for (const item of s.items) {
      const ids = ledger.idsOfNonce(item.nonce);
      if (ids.length > 0) stored++;
      if (ids.length > 1) {
        if (item.sends > 1) raced.push(`${item.nonce} at ids ${ids.join("+")} after ${item.sends} sends`);
        else
          f.violation(`${s.label}: nonce ${item.nonce} sent once, stored ${ids.length} times (ids ${ids.join(", ")})`);
      }
      if (item.echoedId === null) continue;
      const m = ledger.get(item.echoedId);
      if (m === undefined || m.nonce !== item.nonce || m.text !== item.text || m.from.id !== s.you?.id) {
        f.violation(
          `${s.label}: echoed ${item.nonce} as id ${item.echoedId}, but the room has ${m === undefined ? "nothing" : describe(m)}`,
        );
      }
    }
  }
  if (raced.length > 0) {
    f.note(
      `${o.room}: ${raced.length} messages stored twice because a resend raced the first copy, still in flight on a dead connection or stored in ids the sender had missed (${raced.slice(0, 3).join("; ")})`,
    );
  }
  if (stored !== o.messages) f.violation(`${o.room}: ${stored} of ${o.messages} posted messages are stored`);
  return raced.length;
}
