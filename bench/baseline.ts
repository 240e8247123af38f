// `--baseline REF`: another commit of this repo checked out next to the
// current tree (a detached `git worktree` in a temp folder, with its own
// `npm ci`), so one run can start both servers and compare them on the same
// machine at the same moment. Both are hosted by the current tree's harness
// and runtime (Miniflare/wrangler and workerd of this checkout's
// node_modules): what differs is the baseline's wrangler.toml and src/, and
// the packages its src imports (from its own node_modules).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../tools/harness/devserver.ts";

export interface BaselineTree {
  ref: string;
  commit: string;
  /** The checkout: pass as `root` to startServer. */
  root: string;
  dispose(): void;
}

function git(args: readonly string[]): string {
  return execFileSync("git", ["-C", ROOT, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Worktrees made by this process and not yet removed (for an interrupted run). */
const made = new Set<BaselineTree>();

/** Checks `ref` out in a temp folder and installs its packages; throws when the ref is unknown or the install fails. */
export function checkoutBaseline(ref: string, log: (line: string) => void): BaselineTree {
  const commit = git(["rev-parse", "--verify", `${ref}^{commit}`]);
  const root = mkdtempSync(join(tmpdir(), "edge-chat-baseline-"));
  const tree: BaselineTree = {
    ref,
    commit,
    root,
    dispose() {
      if (!made.delete(tree)) return;
      try {
        git(["worktree", "remove", "--force", root]);
      } catch {
        rmSync(root, { recursive: true, force: true });
        git(["worktree", "prune"]);
      }
    },
  };
  made.add(tree);
  try {
    log(`baseline: git worktree of ${ref} (${commit.slice(0, 10)}) in ${root}`);
    git(["worktree", "add", "--detach", "--force", root, commit]);
    log("baseline: npm ci");
    execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel", "error"], {
      cwd: root,
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (err) {
    tree.dispose();
    throw err;
  }
  return tree;
}

/** Removes every worktree this process made and still holds. */
export function disposeBaselines(): void {
  for (const tree of [...made]) tree.dispose();
}
