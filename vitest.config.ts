import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // Secrets are not in wrangler.toml; the tests run with known ones.
        bindings: { SESSION_SECRET: "test-session-secret", PUBLISH_TOKEN: "test-publish-token" },
      },
    }),
  ],
  test: {
    include: ["test/**/*.test.ts"],
  },
});
