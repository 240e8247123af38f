// End-to-end tests: a real `wrangler dev` and a real Chromium, in plain Node
// (not the Workers pool of vitest.config.ts). One file at a time: each file
// runs its own dev server, and the machine has two cores.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    reporters: ["verbose"],
  },
});
