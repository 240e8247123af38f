// A tool that is interrupted leaves no server behind: Ctrl-C (SIGINT), a
// reader that goes away (`| head`: EPIPE on the next write) and even SIGKILL,
// which no handler sees (the guard ends the group then).
//
//   npm run test:tools
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "./devserver.ts";
import { allProcesses, groupMembers, processTree } from "./proc.ts";
import { sleep, waitUntil } from "./wait.ts";

interface Tool {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
}

function startTool(args: string[]): Tool {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => output };
}

/**
 * The process groups, other than ours, of the tool's descendants, once one of
 * them holds a workerd. A workerd in our own group does not count: the
 * benchmark runs `workerd --version` as its direct child before it starts a
 * server, and that one is gone before the guard exists.
 */
async function serverGroups(tool: Tool): Promise<number[]> {
  const pid = tool.child.pid ?? -1;
  const ours = allProcesses().find((p) => p.pid === process.pid)?.pgrp;
  const tree = (): string => JSON.stringify(processTree(pid).map((p) => [p.pid, p.ppid, p.pgrp, p.comm]));
  // Groups and workerd from one snapshot: a later read could miss a server that died meanwhile, and assertGone would pass on nothing.
  let groups: number[] = [];
  const workerdUp = (): boolean => {
    const outside = processTree(pid).filter((p) => p.pid !== pid && p.pgrp !== ours);
    groups = [...new Set(outside.map((p) => p.pgrp))];
    return outside.some((p) => p.comm === "workerd");
  };
  assert.ok(
    await waitUntil(workerdUp, 120_000, 100),
    `no workerd in a process group other than ours (${ours}) under the tool within 120 s; tree ${tree()}:\n${tool.output()}`,
  );
  return groups;
}

async function assertGone(groups: number[]): Promise<void> {
  // The tool has exited; what is left of a group can only be dying (SIGKILL is not instant).
  await waitUntil(() => groups.every((g) => groupMembers(g).length === 0), 10_000, 100);
  const left = groups.flatMap((g) => groupMembers(g).map((p) => `${p.pid} ${p.comm} (group ${g})`));
  for (const g of groups) {
    try {
      process.kill(-g, "SIGKILL");
    } catch {
      // Gone, as it should be.
    }
  }
  assert.deepEqual(left, [], "server processes left behind");
}

const stalledReader = [
  join(ROOT, "chaos/main.ts"),
  "--stalled-reader",
  "--host",
  "miniflare",
  "--base",
  "1",
  "--stall",
  "60",
  "--drain",
  "1",
  "--tail",
  "1",
];
const bench = [join(ROOT, "bench/run.ts"), "--servers", "edge-chat", "--no-cost"];

test("Ctrl-C (SIGINT) stops the benchmark's server", { timeout: 180_000 }, async () => {
  const tool = startTool(bench);
  const groups = await serverGroups(tool);
  tool.child.kill("SIGINT");
  const { code } = await tool.exited;
  assert.equal(code, 130, tool.output());
  await assertGone(groups);
});

test("a broken output pipe stops the stalled-reader's server", { timeout: 180_000 }, async () => {
  const tool = startTool(stalledReader);
  const groups = await serverGroups(tool);
  tool.child.stdout?.destroy();
  tool.child.stderr?.destroy();
  const { code } = await tool.exited;
  assert.equal(code, 141);
  await assertGone(groups);
});

/** The work folders the guards of these groups were told to remove. */
function workDirs(groups: number[]): string[] {
  return groups.flatMap((g) => {
    const args = readFileSync(`/proc/${g}/cmdline`, "utf8").split("\0");
    const i = args.indexOf("--remove");
    return i >= 0 && args[i + 1] !== undefined ? [args[i + 1] ?? ""] : [];
  });
}

test("SIGKILL of the tool still ends its server and removes its work folder (the guard)", {
  timeout: 180_000,
}, async () => {
  // The benchmark's server prints nothing at LOG_LEVEL=warn: no write to the
  // dead tool's pipe (EPIPE) ends it by chance.
  const tool = startTool(bench);
  const groups = await serverGroups(tool);
  const dirs = workDirs(groups);
  assert.equal(dirs.length, groups.length, "each server has a work folder to remove");
  await sleep(500);
  tool.child.kill("SIGKILL");
  const { signal } = await tool.exited;
  assert.equal(signal, "SIGKILL");
  await assertGone(groups);
  assert.deepEqual(
    dirs.filter((d) => existsSync(d)),
    [],
    "work folders left behind",
  );
});

test("a run that fails because Ctrl-C took its server still exits with Ctrl-C's code", {
  timeout: 60_000,
}, async () => {
  const tool = startTool([join(ROOT, "tools/harness/fixtures/run-ends-with-server.ts")]);
  assert.ok(await waitUntil(() => tool.output().includes("ready\n"), 30_000), tool.output());
  tool.child.kill("SIGINT");
  const { code } = await tool.exited;
  assert.equal(code, 130, tool.output());
});
