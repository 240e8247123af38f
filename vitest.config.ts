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
