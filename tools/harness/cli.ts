// Command-line options for the tools: node:util's parseArgs (unknown flags are
// an error, not silently ignored) and checked numbers and lists.
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** The parsed flags; on a bad command line, the usage and exit code 2. */
export function parseCli<const T extends ParseArgsOptionsConfig>(
  options: T,
  usage: string,
  args: string[] = process.argv.slice(2),
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\nusage: ${usage}\n`);
    process.exit(2);
  }
}

/** Value flags (`--name VALUE`), read as strings and checked by numberFlag or listFlag. */
export function stringFlags<const K extends string>(...names: K[]): Record<K, { type: "string" }> {
  const out: Partial<Record<K, { type: "string" }>> = {};
  for (const name of names) out[name] = { type: "string" };
  return out as Record<K, { type: "string" }>;
}

/** A number flag, `fallback` when absent; at least `min`. */
export function numberFlag(raw: string | undefined, fallback: number, name: string, min = 0): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < min)
    throw new Error(`--${name} must be a number >= ${min}, not ${JSON.stringify(raw)}`);
  return n;
}

/** A comma-separated flag, undefined when absent. */
export function listFlag(raw: string | undefined): string[] | undefined {
  return raw
    ?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** A list flag whose items must be among `allowed`. */
export function choiceList<T extends string>(
  raw: string | undefined,
  allowed: readonly T[],
  fallback: readonly T[],
  name: string,
): T[] {
  const items = listFlag(raw);
  if (items === undefined) return [...fallback];
  return items.map((item) => {
    const known = allowed.find((a) => a === item);
    if (known === undefined) throw new Error(`--${name}: ${item} is not one of ${allowed.join(", ")}`);
    return known;
  });
}
