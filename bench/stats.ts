// Latency histograms and process statistics read from /proc.
import { readdirSync, readFileSync } from "node:fs";

const BUCKET_MS = 0.01;
const MAX_MS = 30_000;

/** Latencies in 10 µs buckets up to 30 s: constant memory however many deliveries. */
export class Histogram {
  readonly #counts = new Uint32Array(Math.ceil(MAX_MS / BUCKET_MS) + 1);
  count = 0;
  max = 0;

  record(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    const i = Math.min(Math.floor(v / BUCKET_MS), this.#counts.length - 1);
    this.#counts[i] = (this.#counts[i] ?? 0) + 1;
    this.count++;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.#counts.fill(0);
    this.count = 0;
    this.max = 0;
  }

  /** The latency at quantile q (0..1), at the upper edge of its bucket. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i] ?? 0;
      if (seen >= rank) return Math.min((i + 1) * BUCKET_MS, this.max);
    }
    return this.max;
  }

  summary(): LatencySummary {
    return { p50: this.quantile(0.5), p90: this.quantile(0.9), p99: this.quantile(0.99), max: this.max };
  }
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Quantile of a plain sample (sorted copy). */
export function quantileOf(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return Number.NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

// ---- /proc ------------------------------------------------------------------

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  cpuTicks: number;
}

const TICKS_PER_SEC = 100;
const PAGE_KB = 4;

function readStat(pid: number): ProcInfo | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may contain spaces; the rest follows the last ")".
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const fields = text.slice(close + 2).split(" ");
    // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
    return { pid, ppid: Number(fields[1]), comm, cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** The process and all its descendants. */
export function processTree(root: number): ProcInfo[] {
  const all: ProcInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const info = readStat(pid);
    if (info !== null) all.push(info);
  }
  const inTree = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if (!inTree.has(p.pid) && inTree.has(p.ppid)) {
        inTree.add(p.pid);
        grew = true;
      }
    }
  }
  return all.filter((p) => inTree.has(p.pid));
}

/** Resident set size in MiB (from statm, cheap enough to sample every few ms). */
export function rssMiB(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1]);
    return (pages * PAGE_KB) / 1024;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a set of processes has used so far. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / TICKS_PER_SEC;
}

/** CPU seconds every process on the machine has used (busy time of /proc/stat). */
export function machineBusySeconds(): number {
  const first = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const f = first.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / TICKS_PER_SEC;
}

/** Samples the summed RSS of some processes until stopped; keeps the peak. */
export class RssSampler {
  readonly #pids: readonly number[];
  readonly #timer: NodeJS.Timeout;
  peak = 0;

  constructor(pids: readonly number[], everyMs = 20) {
    this.#pids = pids;
    this.sample();
    this.#timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): number {
    let sum = 0;
    for (const pid of this.#pids) sum += rssMiB(pid);
    if (sum > this.peak) this.peak = sum;
    return sum;
  }

  stop(): number {
    clearInterval(this.#timer);
    return this.sample();
  }
}
