import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["control-plane/test/**/*.test.ts", "sdk/test/**/*.test.ts", "test/**/*.test.ts"],
    // End-to-end suites start real processes on real ports; they poll conditions, never sleep.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Two cores: end-to-end files each start a control plane and an inference process.
    maxWorkers: 2,
  },
});
