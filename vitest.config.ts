import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Secrets are not in wrangler.toml; the tests run with known ones.
const secrets = { SESSION_SECRET: "test-session-secret", PUBLISH_TOKEN: "test-publish-token" };

export default defineConfig({
  test: {
    // Generous limits, never timing assertions: CI machines are shared.
    testTimeout: 60_000,
    projects: [
      {
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings: secrets } })],
        test: { name: "defaults", include: ["test/*.test.ts"], testTimeout: 60_000 },
      },
      {
        // The room reads its settings when it starts, so settings other than
        // the defaults get a runtime of their own.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: { ...secrets, HISTORY_SIZE: "5", MAX_CONNECTIONS: "3", RATE_BURST: "2", RATE_PER_SEC: "0.5" },
            },
          }),
        ],
        test: { name: "settings", include: ["test/config/*.test.ts"], testTimeout: 60_000 },
      },
      {
        // Per-user and per-address limits small enough to reach in a test,
        // refilling too slowly to matter while it runs.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...secrets,
                RATE_BURST: "3",
                RATE_PER_SEC: "0.01",
                ADDRESS_RATE_BURST: "5",
                ADDRESS_RATE_PER_SEC: "0.01",
                ADDRESS_SOCKETS_PER_ROOM: "3",
                API_PER_MIN: "4",
              },
            },
          }),
        ],
        test: { name: "abuse", include: ["test/abuse/*.test.ts"], testTimeout: 60_000 },
      },
      {
        // Every per-address limit switched off with 0, as benchmarks run. The
        // slow ADDRESS_RATE_PER_SEC makes a burst of 0 that fell back to the
        // default refuse the 31st message, however slow the machine.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...secrets,
                ADDRESS_RATE_BURST: "0",
                ADDRESS_RATE_PER_SEC: "0.01",
                ADDRESS_SOCKETS_PER_ROOM: "0",
                API_PER_MIN: "0",
                IP_CONNECT_PER_MIN: "0",
              },
            },
          }),
        ],
        test: { name: "limits-off", include: ["test/limits-off/*.test.ts"], testTimeout: 60_000 },
      },
      {
        // A deployment that forgot SESSION_SECRET.
        plugins: [
          cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings: { PUBLISH_TOKEN: secrets.PUBLISH_TOKEN } } }),
        ],
        test: { name: "unconfigured", include: ["test/unconfigured/*.test.ts"], testTimeout: 60_000 },
      },
      {
        // The web client's DOM-free modules (public/js) in plain Node.
        test: { name: "client", include: ["test/client/*.test.ts"], environment: "node" },
      },
    ],
  },
});
