// npm run token -- --sub alice [--name Alice] [--roles moderator] [--rooms team-*] [--minutes 60]
//
// Mints the HS256 JWT a host application would sign, from AUTH_JWT_SECRET in
// .dev.vars, so verified users and moderation can be tried on `npm run dev`.
// The token goes to stdout alone (so `$(npm run -s token -- --sub alice)`
// works); everything else goes to stderr. Without a secret in .dev.vars one is
// generated and added there: .dev.vars is gitignored and only `wrangler dev`
// reads it, so a random local secret is safe and saves a step.

import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { MAX_SUB_LENGTH, MIN_SECRET_BYTES, normalizeRoomPattern, verifiedUserId } from "../src/auth.ts";
import { normalizeName } from "../src/protocol.ts";
import { mintToken } from "./mint.ts";

const DEV_VARS = resolve(import.meta.dirname, "..", ".dev.vars");
const MAX_MINUTES = 7 * 24 * 60;

function fail(message: string): never {
  process.stderr.write(`token: ${message}\n`);
  process.exit(2);
}

/** KEY=VALUE lines as wrangler reads them (dotenv): comments, optional quotes. */
function readDevVars(): Map<string, string> {
  const vars = new Map<string, string>();
  if (!existsSync(DEV_VARS)) return vars;
  for (const line of readFileSync(DEV_VARS, "utf8").split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match === null) continue;
    const [, key = "", raw = ""] = match;
    const quoted = /^(["'])(.*)\1$/.exec(raw);
    vars.set(key, quoted ? (quoted[2] ?? "") : raw.replace(/\s+#.*$/, ""));
  }
  return vars;
}

/** Adds a random AUTH_JWT_SECRET to .dev.vars, unless git would commit the file. */
function createSecret(): string {
  const check = spawnSync("git", ["check-ignore", "-q", DEV_VARS], { cwd: resolve(import.meta.dirname, "..") });
  if (check.status === 1) {
    fail(
      `${DEV_VARS} is not gitignored; add AUTH_JWT_SECRET=<at least ${MIN_SECRET_BYTES} random bytes> to it yourself`,
    );
  }
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  const existing = existsSync(DEV_VARS) ? readFileSync(DEV_VARS, "utf8") : "";
  const separator = existing === "" || existing.endsWith("\n") ? "" : "\n";
  appendFileSync(DEV_VARS, `${separator}AUTH_JWT_SECRET=${secret}\n`, { mode: 0o600 });
  process.stderr.write(
    `token: added a random AUTH_JWT_SECRET to ${DEV_VARS} (gitignored).\n` +
      "token: restart `npm run dev` so the chat picks it up.\n",
  );
  return secret;
}

const list = (values: string[] | undefined) =>
  (values ?? [])
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v !== "");

const USAGE =
  "usage: npm run token -- --sub ID [--name NAME] [--roles a,b] [--rooms room,prefix*] [--minutes 60] [--iss I] [--aud A]";

function args() {
  try {
    return parseArgs({ options: OPTIONS, strict: true, allowPositionals: false });
  } catch (err) {
    fail(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
}

const OPTIONS = {
  sub: { type: "string" },
  name: { type: "string" },
  roles: { type: "string", multiple: true },
  rooms: { type: "string", multiple: true },
  minutes: { type: "string", default: "60" },
  iss: { type: "string" },
  aud: { type: "string" },
} as const;

const { values } = args();

const sub = values.sub;
if (sub === undefined || sub.length < 1 || [...sub].length > MAX_SUB_LENGTH) {
  fail(`--sub is required: the user's id in your application, 1 to ${MAX_SUB_LENGTH} characters\n${USAGE}`);
}
const name =
  values.name === undefined
    ? undefined
    : (normalizeName(values.name) ?? fail(`--name "${values.name}" is not a valid display name`));
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0 || minutes > MAX_MINUTES)
  fail(`--minutes must be more than 0 and at most ${MAX_MINUTES}`);
const roles = list(values.roles);
const rooms = list(values.rooms).map(
  (r) => normalizeRoomPattern(r) ?? fail(`--rooms "${r}" is not a room name or prefix*`),
);

const vars = readDevVars();
let secret = vars.get("AUTH_JWT_SECRET") ?? "";
if (secret === "") secret = createSecret();
else if (new TextEncoder().encode(secret).length < MIN_SECRET_BYTES) {
  fail(
    `AUTH_JWT_SECRET in ${DEV_VARS} is shorter than ${MIN_SECRET_BYTES} bytes; the chat ignores it. Replace it or delete the line.`,
  );
}
const issuer = values.iss ?? vars.get("AUTH_ISSUER");
const audience = values.aud ?? vars.get("AUTH_AUDIENCE");

const jwt = await mintToken(secret, {
  sub,
  roles,
  rooms,
  minutes,
  ...(name !== undefined && { name }),
  ...(issuer !== undefined && issuer !== "" && { issuer }),
  ...(audience !== undefined && audience !== "" && { audience }),
});
process.stdout.write(`${jwt}\n`);
process.stderr.write(`token: ${sub} is user ${await verifiedUserId(sub)}; valid for ${minutes} minutes\n`);
