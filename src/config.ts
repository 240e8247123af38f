import { DEFAULT_HISTORY_SIZE, DEFAULT_RATE_BURST, DEFAULT_RATE_PER_SEC } from "./protocol.ts";
import { isLogLevel, type LogLevel } from "./log.ts";

export const DEFAULT_IP_CONNECT_PER_MIN = 300;
/** Per room, all of its parts together (v1.1; v1 had 5000 for one object). */
export const DEFAULT_MAX_CONNECTIONS = 100_000;
/** Chosen by CPU per part at a target message rate (BENCHMARKS.md, "Large rooms: CPU per operation and capacity model"). */
export const DEFAULT_SHARD_SIZE = 500;
export const DEFAULT_PRESENCE_LIMIT = 500;
export const DEFAULT_ADDRESS_RATE_BURST = 30;
export const DEFAULT_ADDRESS_RATE_PER_SEC = 15;
export const DEFAULT_ADDRESS_SOCKETS_PER_ROOM = 100;
export const DEFAULT_API_PER_MIN = 120;

/** The `[vars]` of wrangler.toml, typed and checked. */
export interface Config {
  /** Origins allowed to open a WebSocket besides the page's own; `"*"` allows any. */
  allowedOrigins: ReadonlySet<string> | "*";
  historySize: number;
  /** The message bucket of one user, shared by all of its sockets in a room. */
  rateBurst: number;
  ratePerSec: number;
  /** The message bucket of one client address in a room; 0 in either turns it off. */
  addressRateBurst: number;
  addressRatePerSec: number;
  /** Open sockets one address may hold in one room; 0 turns the limit off. */
  addressSocketsPerRoom: number;
  /** New connections per address per minute, across rooms; 0 turns the limit off. */
  ipConnectPerMin: number;
  /** HTTP API requests per address per minute; 0 turns the limit off. */
  apiPerMin: number;
  maxConnections: number;
  /** Connections one object of a room holds; past it, new ones go to another part. */
  shardSize: number;
  /** Above this many users online, presence is a count. */
  presenceLimit: number;
  logLevel: LogLevel;
}

type Vars = Pick<
  Env,
  | "ALLOWED_ORIGINS"
  | "HISTORY_SIZE"
  | "RATE_BURST"
  | "RATE_PER_SEC"
  | "ADDRESS_RATE_BURST"
  | "ADDRESS_RATE_PER_SEC"
  | "ADDRESS_SOCKETS_PER_ROOM"
  | "IP_CONNECT_PER_MIN"
  | "API_PER_MIN"
  | "MAX_CONNECTIONS"
  | "SHARD_SIZE"
  | "PRESENCE_LIMIT"
  | "LOG_LEVEL"
>;

// A var that is absent, empty or malformed falls back to its default, so a
// typo in a deployment never turns into a NaN limit.
function number(raw: string | undefined, fallback: number, valid: (n: number) => boolean): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  return valid(n) ? n : fallback;
}

const isCount = (min: number) => (n: number) => Number.isInteger(n) && n >= min;
const isRate = (n: number) => Number.isFinite(n) && n > 0;
const isRateOrOff = (n: number) => Number.isFinite(n) && n >= 0;

export function readConfig(vars: Partial<Vars>): Config {
  const origins = (vars.ALLOWED_ORIGINS ?? "").trim();
  return {
    allowedOrigins:
      origins === "*"
        ? "*"
        : new Set(
            origins
              .split(",")
              .map((o) => o.trim())
              .filter((o) => o !== ""),
          ),
    historySize: number(vars.HISTORY_SIZE, DEFAULT_HISTORY_SIZE, isCount(1)),
    rateBurst: number(vars.RATE_BURST, DEFAULT_RATE_BURST, isRate),
    ratePerSec: number(vars.RATE_PER_SEC, DEFAULT_RATE_PER_SEC, isRate),
    addressRateBurst: number(vars.ADDRESS_RATE_BURST, DEFAULT_ADDRESS_RATE_BURST, isRateOrOff),
    addressRatePerSec: number(vars.ADDRESS_RATE_PER_SEC, DEFAULT_ADDRESS_RATE_PER_SEC, isRateOrOff),
    addressSocketsPerRoom: number(vars.ADDRESS_SOCKETS_PER_ROOM, DEFAULT_ADDRESS_SOCKETS_PER_ROOM, isCount(0)),
    ipConnectPerMin: number(vars.IP_CONNECT_PER_MIN, DEFAULT_IP_CONNECT_PER_MIN, isCount(0)),
    apiPerMin: number(vars.API_PER_MIN, DEFAULT_API_PER_MIN, isCount(0)),
    maxConnections: number(vars.MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS, isCount(1)),
    shardSize: number(vars.SHARD_SIZE, DEFAULT_SHARD_SIZE, isCount(1)),
    presenceLimit: number(vars.PRESENCE_LIMIT, DEFAULT_PRESENCE_LIMIT, isCount(1)),
    logLevel: isLogLevel(vars.LOG_LEVEL) ? vars.LOG_LEVEL : "info",
  };
}
