// One JSON object per line and event, so Workers Logs (observability) can
// index every field. Message text is never logged at `info` or above.
//
// Every string field is cut to MAX_LOG_STRING here, in the one place every
// line passes: header values, paths and error messages can come from a
// client, and a 12 KB `Origin` must not become a 12 KB log line.

export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && Object.hasOwn(RANK, value);
}

type LogValue = string | number | boolean | null | undefined;
export type LogFields = Record<string, LogValue>;

/** The most UTF-16 code units of a string field a log line keeps. */
export const MAX_LOG_STRING = 200;

function bounded(value: LogValue): LogValue {
  if (typeof value !== "string" || value.length <= MAX_LOG_STRING) return value;
  // Never split a surrogate pair: the line stays well-formed Unicode.
  const last = value.charCodeAt(MAX_LOG_STRING - 1);
  const end = last >= 0xd800 && last <= 0xdbff ? MAX_LOG_STRING - 1 : MAX_LOG_STRING;
  return `${value.slice(0, end)}…[${value.length} chars]`;
}

function boundedFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) out[key] = bounded(value);
  return out;
}

export interface Logger {
  readonly level: LogLevel;
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

export function createLogger(level: LogLevel, context: LogFields = {}): Logger {
  const base = boundedFields(context);
  const emit = (at: LogLevel, event: string, fields?: LogFields) => {
    if (RANK[at] < RANK[level]) return;
    const line = JSON.stringify({ level: at, event, ...base, ...(fields === undefined ? {} : boundedFields(fields)) });
    if (at === "error") console.error(line);
    else if (at === "warn") console.warn(line);
    else console.log(line);
  };
  return {
    level,
    debug: (event, fields) => emit("debug", event, fields),
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
  };
}

/** A thrown value as a log field, without a stack trace reaching any client. */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
