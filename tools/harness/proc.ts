// What the tools read from Linux's /proc: the processes of a server (by
// process group or by parentage), their CPU time and resident memory, and the
// kernel's TCP socket queues. Every read tolerates a process that exits
// between the directory listing and the read.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  /** One letter: R, S, D, Z (zombie), … */
  state: string;
  comm: string;
  cpuTicks: number;
}

const TICKS_PER_SEC = 100;
const PAGE_KB = 4;

export function readStat(pid: number): ProcInfo | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may contain spaces; the rest follows the last ")".
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const f = text.slice(close + 2).split(" ");
    // f[0] is field 3 of proc(5): state, ppid, pgrp, …, utime (14), stime (15).
    return {
      pid,
      ppid: Number(f[1]),
      pgrp: Number(f[2]),
      state: f[0] ?? "?",
      comm,
      cpuTicks: Number(f[11]) + Number(f[12]),
    };
  } catch {
    return null;
  }
}

export function allProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const info = readStat(pid);
    if (info !== null) out.push(info);
  }
  return out;
}

/** The process and all its descendants, whatever their process group. */
export function processTree(root: number): ProcInfo[] {
  const all = allProcesses();
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

/** Live (not zombie) processes of process group `pgrp`. */
export function groupMembers(pgrp: number): ProcInfo[] {
  return allProcesses().filter((p) => p.pgrp === pgrp && p.state !== "Z");
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

/** VmRSS and its anonymous part (heap, queues; not file-backed pages such as SQLite's), in KiB. */
export function rssKiB(pid: number): { total: number; anon: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s*(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { total: field("VmRSS"), anon: field("RssAnon") };
  } catch {
    return { total: 0, anon: 0 };
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

/** The inodes of the sockets a process holds open. */
export function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m?.[1] !== undefined) out.add(m[1]);
      } catch {
        // Closed meanwhile.
      }
    }
  } catch {
    // Exited.
  }
  return out;
}

export interface TcpRow {
  localPort: number;
  remotePort: number;
  /** Hex state of /proc/net/tcp: "01" established, "0A" listening. */
  state: string;
  /** Bytes in the send and receive queues. */
  tx: number;
  rx: number;
  inode: string;
}

/** Every TCP socket of the machine (IPv4 and IPv6). */
export function tcpRows(): TcpRow[] {
  const rows: TcpRow[] = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const [, local, remote, state, queues, , , , , inode] = line.trim().split(/\s+/);
      if (
        local === undefined ||
        remote === undefined ||
        state === undefined ||
        queues === undefined ||
        inode === undefined
      )
        continue;
      const [tx = 0, rx = 0] = queues.split(":").map((h) => parseInt(h, 16));
      const port = (address: string): number => parseInt(address.split(":")[1] ?? "", 16);
      rows.push({ localPort: port(local), remotePort: port(remote), state, tx, rx, inode });
    }
  }
  return rows;
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
