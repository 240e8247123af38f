// Runs a server command in this process's group and ends that whole group
// when the tool that started it goes away, however it goes (Ctrl-C, a broken
// pipe, an uncaught error, SIGKILL): the tool holds the write end of this
// process's stdin, and the kernel closes it when the tool dies.
//
//   node tools/harness/guard.ts COMMAND [ARG]…
//
// The DevServer starts this as the leader of a new process group, so the
// server (wrangler and its workerd, or Miniflare's) is never a member of the
// tool's own group and never outlives it.
import { spawn } from "node:child_process";
import { readStat } from "./proc.ts";

const [command, ...args] = process.argv.slice(2);
if (command === undefined) throw new Error("usage: guard.ts COMMAND [ARG]…");
// Ending "this group" is only safe in a group of its own (spawn with `detached: true`).
if (readStat(process.pid)?.pgrp !== process.pid) throw new Error("guard.ts must lead its own process group");

function endGroup(): void {
  try {
    process.kill(0, "SIGKILL");
  } catch {
    process.exit(1);
  }
}

const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"] });
child.once("error", (err) => {
  process.stderr.write(`guard: ${command}: ${err.message}\n`);
  endGroup();
});
// The server ended by itself: so does the group (wrangler leaves workerd behind otherwise).
child.once("exit", endGroup);
process.stdin.on("data", () => undefined);
process.stdin.once("end", endGroup);
process.stdin.once("error", endGroup);
// A stop signal reaches the whole group; this process only waits for the server to act on it.
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => undefined);
