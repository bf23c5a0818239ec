import { describe, expect, it } from "vitest";
import { configSchema } from "../src/config/schema.ts";
import { startServer } from "../src/server.ts";
import { tempDataDir } from "./collection-fixtures.ts";
import { captureLogger } from "./helpers.ts";

// A close() that waited for idle keep-alive connections would hang until this timeout, well
// past the test's own; so finishing at all shows it does not.
const SHUTDOWN_TIMEOUT_MS = 600_000;

describe("startServer", () => {
  it("serves mock mode on a free port and closes without waiting out idle keep-alive connections", async () => {
    const config = configSchema.parse({
      embedding: { mode: "mock", mock: { dimension: 8 } },
      server: { port: 0, shutdown_timeout_ms: SHUTDOWN_TIMEOUT_MS },
      storage: { data_dir: tempDataDir().dir },
    });
    const { logger, lines } = captureLogger();
    const server = await startServer(config, logger);
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines.find((line) => line.msg === "listening")).toMatchObject({ url: server.url, mode: "mock" });
    const response = await fetch(`${server.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: ["a", "b"] }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { data: unknown[] }).data).toHaveLength(2);
    await server.close();
    await server.close();
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
    expect(lines.filter((line) => line.msg === "stopped")).toHaveLength(1);
  });

  it("serves user_provided mode without any embedder", async () => {
    const config = configSchema.parse({
      embedding: { mode: "user_provided" },
      server: { port: 0 },
      storage: { data_dir: tempDataDir().dir },
    });
    const server = await startServer(config, captureLogger().logger);
    try {
      expect(await (await fetch(`${server.url}/health`)).json()).toEqual({
        status: "ok",
        mode: "user_provided",
        embedder: null,
      });
      const response = await fetch(`${server.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ input: "a" }),
      });
      expect(response.status).toBe(400);
    } finally {
      await server.close();
    }
  });

  it("rejects when the port is taken", async () => {
    const first = await startServer(
      configSchema.parse({
        embedding: { mode: "mock" },
        server: { port: 0 },
        storage: { data_dir: tempDataDir().dir },
      }),
      captureLogger().logger,
    );
    try {
      const port = Number(new URL(first.url).port);
      // Its own data_dir: the port is what it must fail on.
      const storage = { data_dir: tempDataDir().dir };
      const config = configSchema.parse({ embedding: { mode: "mock" }, server: { port }, storage });
      await expect(startServer(config, captureLogger().logger)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});
