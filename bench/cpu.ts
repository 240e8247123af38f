// CPU time of a server's processes from Linux's /proc, per thread and in
// nanoseconds: /proc/<pid>/task/<tid>/schedstat holds each thread's time on
// a CPU in ns (stat's utime+stime only count 10 ms ticks, too coarse to
// price one operation). Local workerd runs every Durable Object's JavaScript
// on one thread, so the busiest thread is "the" thread whose time the
// capacity model prices; the others (I/O) are reported beside it.
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

export interface ThreadTimes {
  /** Wall clock of the reading, ms (performance.now()). */
  at: number;
  /** ns on a CPU so far, by "pid/tid". */
  threads: Map<string, number>;
}

function schedNs(path: string): number | null {
  try {
    const [ns] = readFileSync(path, "utf8").split(" ");
    const n = Number(ns);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** Every thread of the given processes, with its CPU time so far (threads that exit meanwhile are skipped). */
export function readThreads(pids: readonly number[]): ThreadTimes {
  const threads = new Map<string, number>();
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const ns = schedNs(`/proc/${pid}/task/${tid}/schedstat`);
      if (ns !== null) threads.set(`${pid}/${tid}`, ns);
    }
  }
  return { at: performance.now(), threads };
}

export interface CpuDelta {
  wallS: number;
  /** CPU seconds of every thread. */
  totalS: number;
  /** CPU seconds of the busiest thread (workerd's JavaScript thread under load). */
  mainS: number;
  mainThread: string;
}

/** CPU used between two readings; `main` is the thread that used most. */
export function cpuBetween(a: ThreadTimes, b: ThreadTimes): CpuDelta {
  let totalNs = 0;
  let mainNs = 0;
  let mainThread = "";
  for (const [tid, ns] of b.threads) {
    const used = ns - (a.threads.get(tid) ?? 0);
    totalNs += used;
    if (used > mainNs) {
      mainNs = used;
      mainThread = tid;
    }
  }
  return { wallS: (b.at - a.at) / 1000, totalS: totalNs / 1e9, mainS: mainNs / 1e9, mainThread };
}

/** CPU seconds of one named thread between two readings (0 if it is gone). */
export function threadBetween(a: ThreadTimes, b: ThreadTimes, tid: string): number {
  return ((b.threads.get(tid) ?? 0) - (a.threads.get(tid) ?? 0)) / 1e9;
}

/** Median, min and max of some numbers. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spreadOf(values: readonly number[]): Spread {
  const sorted = values.filter(Number.isFinite).toSorted((x, y) => x - y);
  const n = sorted.length;
  if (n === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { median, min: sorted[0] ?? 0, max: sorted[n - 1] ?? 0, n };
}
