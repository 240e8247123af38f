// Runs a server command in this process's group and ends that whole group
// when the tool that started it goes away, however it goes (Ctrl-C, a broken
// pipe, an uncaught error, SIGKILL): the tool holds the write end of this
// process's stdin, and the kernel closes it when the tool dies.
//
//   node tools/harness/guard.ts [--remove DIR] COMMAND [ARG]…
//
// The DevServer starts this as the leader of a new process group, so the
// server (wrangler and its workerd, or Miniflare's) is never a member of the
// tool's own group and never outlives it. With --remove, a tool that died
// without cleaning up also leaves no work folder behind.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { readStat } from "./proc.ts";

const USAGE = "usage: guard.ts [--remove DIR] COMMAND [ARG]…";
const argv = process.argv.slice(2);
const remove = argv[0] === "--remove" ? argv[1] : undefined;
const [command, ...args] = remove === undefined ? argv : argv.slice(2);
if (command === undefined) throw new Error(USAGE);
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
const toolGone = (): void => {
  // Unlinking first is safe: files the dying server still holds go with it.
  if (remove !== undefined) rmSync(remove, { recursive: true, force: true });
  endGroup();
};
process.stdin.on("data", () => undefined);
process.stdin.once("end", toolGone);
process.stdin.once("error", toolGone);
// A stop signal reaches the whole group; this process only waits for the server to act on it.
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => undefined);
