import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { AUDIENCE, ISSUER, JWT_SECRET, PUBLIC_JWKS } from "./test/identity/keys.ts";

// Secrets are not in wrangler.toml; the tests run with known ones. Every
// secret is named, empty when a project has it off: a developer's local
// .dev.vars would otherwise fill the gaps, and local runs must equal CI.
const secrets = {
  SESSION_SECRET: "test-session-secret",
  PUBLISH_TOKEN: "test-publish-token",
  AUTH_JWT_SECRET: "",
  ADMIN_TOKEN: "",
};
// Host identity with every key source inline, guests read-only, some rooms private.
const identity = {
  ...secrets,
  AUTH_JWT_SECRET: JWT_SECRET,
  AUTH_JWKS: JSON.stringify(PUBLIC_JWKS),
  AUTH_ISSUER: ISSUER,
  AUTH_AUDIENCE: AUDIENCE,
  PRIVATE_ROOMS: "team-*,ops",
};

/** A project whose tests run inside workerd with these bindings; the room reads its settings when it starts, so each set of settings gets a runtime of its own. */
function workerd(name: string, folder: string, bindings: Record<string, string>) {
  return {
    plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings } })],
    test: { name, include: [`${folder}/*.test.ts`], testTimeout: 60_000 },
  };
}

export default defineConfig({
  test: {
    // Generous limits, never timing assertions: CI machines are shared.
    testTimeout: 60_000,
    // The rooms log from their socket handlers, and a handler may still run
    // (a close answered, a flood drained) after its test has finished.
    // Intercepted, each line is an RPC to vitest, and one still pending when
    // a test file's worker shuts down fails the run with every test green
    // (EnvironmentTeardownError, vitest-dev/vitest#11153). Unintercepted,
    // workerd prints the lines itself; tests that read logs spy on console.
    disableConsoleIntercept: true,
    projects: [
      workerd("defaults", "test", secrets),
      workerd("settings", "test/config", {
        ...secrets,
        HISTORY_SIZE: "5",
        MAX_CONNECTIONS: "3",
        RATE_BURST: "2",
        RATE_PER_SEC: "0.5",
      }),
      // Per-user and per-address limits small enough to reach in a test,
      // refilling too slowly to matter while it runs.
      workerd("abuse", "test/abuse", {
        ...secrets,
        RATE_BURST: "3",
        RATE_PER_SEC: "0.01",
        ADDRESS_RATE_BURST: "5",
        ADDRESS_RATE_PER_SEC: "0.01",
        ADDRESS_SOCKETS_PER_ROOM: "3",
        API_PER_MIN: "4",
        ADMIN_TOKEN: "test-admin-token",
      }),
      // Every per-address limit switched off with 0, as benchmarks run. The
      // slow ADDRESS_RATE_PER_SEC makes a burst of 0 that fell back to the
      // default refuse the 31st message, however slow the machine.
      workerd("limits-off", "test/limits-off", {
        ...secrets,
        ADDRESS_RATE_BURST: "0",
        ADDRESS_RATE_PER_SEC: "0.01",
        ADDRESS_SOCKETS_PER_ROOM: "0",
        API_PER_MIN: "0",
        IP_CONNECT_PER_MIN: "0",
      }),
      // The page may be framed by two hosts; the third entry is no origin and must not reach the CSP.
      workerd("identity", "test/identity", {
        ...identity,
        GUESTS: "read",
        ALLOWED_ORIGINS: "https://host.example, http://127.0.0.1:8080,https://bad.example/path",
      }),
      // Any site may embed this one.
      workerd("members-only", "test/members-only", { ...identity, GUESTS: "off", ALLOWED_ORIGINS: "*" }),
      // Moderation: ADMIN_TOKEN for the HTTP API, and the identity keys for
      // moderators' JWTs; guests may post (GUESTS on).
      workerd("moderation", "test/moderation", { ...identity, ADMIN_TOKEN: "test-admin-token" }),
      // A deployment that forgot SESSION_SECRET.
      workerd("unconfigured", "test/unconfigured", { ...secrets, SESSION_SECRET: "" }),
      // A large room spread over several Durable Objects: three sockets per
      // object, history and presence small enough to overflow, and an
      // address bucket of 12 that barely refills, so a test can empty it.
      workerd("shards", "test/shards", {
        ...identity,
        ADMIN_TOKEN: "test-admin-token",
        SHARD_SIZE: "3",
        HISTORY_SIZE: "5",
        PRESENCE_LIMIT: "4",
        ADDRESS_RATE_BURST: "12",
        ADDRESS_RATE_PER_SEC: "0.01",
      }),
      // A large room's per-user and per-address limits: three sockets per
      // object, and buckets and an address limit small enough to reach,
      // refilling too slowly to matter while a test runs.
      workerd("shards-quota", "test/shards-quota", {
        ...secrets,
        SHARD_SIZE: "3",
        RATE_BURST: "4",
        RATE_PER_SEC: "0.01",
        ADDRESS_RATE_BURST: "6",
        ADDRESS_RATE_PER_SEC: "0.01",
        ADDRESS_SOCKETS_PER_ROOM: "3",
      }),
      {
        // A large room's ordering core (sequencer, roster, part stream) in
        // plain Node: it uses no Workers APIs, and the random-schedule model
        // runs thousands of schedules in seconds.
        test: { name: "model", include: ["test/model/*.test.ts"], environment: "node", testTimeout: 300_000 },
      },
      {
        // The web client's DOM-free modules (public/js) in plain Node.
        test: { name: "client", include: ["test/client/*.test.ts"], environment: "node" },
      },
    ],
  },
});
