import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { configSchema } from "../src/config/schema.ts";
import { receiveTimeouts, startServer } from "../src/server.ts";
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

  it("listens on an IPv6 host written in URL brackets, as config check accepts it", async () => {
    const config = configSchema.parse({
      embedding: { mode: "mock", mock: { dimension: 8 } },
      server: { host: "[::1]", port: 0 },
      storage: { data_dir: tempDataDir().dir },
    });
    const server = await startServer(config, captureLogger().logger);
    try {
      expect(server.url).toMatch(/^http:\/\/\[::1\]:\d+$/);
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it("408 for headers or a body that arrive too slowly; a body's deadline follows its own length", async () => {
    const config = configSchema.parse({
      embedding: { mode: "mock", mock: { dimension: 8 } },
      server: { port: 0, headers_timeout_ms: 300, body_timeout_ms_per_mb: 200, max_body_bytes: 8 * 2 ** 20 },
      storage: { data_dir: tempDataDir().dir },
    });
    // Node's own bound, a backstop: the headers plus the largest body's time.
    expect(receiveTimeouts(config.server)).toEqual({ headersTimeout: 300, requestTimeout: 300 + 8 * 200 });
    const server = await startServer(config, captureLogger().logger);
    try {
      const { port } = new URL(server.url);
      /** Sends `text` and never finishes; resolves with what came back and when the server closed it. */
      const stall = (text: string) =>
        new Promise<{ answer: string; ms: number }>((resolve) => {
          const started = Date.now();
          let answer = "";
          const socket = connect(Number(port), "127.0.0.1", () => socket.write(text));
          socket.on("data", (chunk) => {
            answer += chunk.toString();
          });
          socket.on("close", () => resolve({ answer, ms: Date.now() - started }));
        });
      const post = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n";
      const [headers, small, chunked] = await Promise.all([
        stall("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"),
        stall(`${post}content-length: 20\r\n\r\n{"inp`),
        stall(`${post}transfer-encoding: chunked\r\n\r\n5\r\n{"inp`),
      ]);
      // Node checks its bounds every second (connectionsCheckingInterval): the bound plus that.
      expect(headers.answer).toMatch(/^HTTP\/1\.1 408/);
      expect(headers.ms).toBeLessThan(1300);
      // A 20-byte body gets one MiB's worth (200 ms), not the 8 MiB body's 1600 ms; both answered
      // in the OpenAI error shape before Node's backstop, and the connection closed.
      for (const [stalled, ms] of [
        [small, 200],
        [chunked, 1600],
      ] as const) {
        expect(stalled.answer).toMatch(/^HTTP\/1\.1 408/);
        expect(stalled.answer).toMatch(/\r\nconnection: close\r\n/i);
        expect(stalled.answer).toContain('"code":"AKIDB_ERR_BODY_TIMEOUT"');
        expect(stalled.answer).toContain(`within ${ms} ms`);
      }
      expect(small.ms).toBeLessThan(1600);
    } finally {
      await server.close();
    }
  });

  it("reads bodies from the Node request: 413 mid-body past max_body_bytes, answered on the socket; the next body whole", async () => {
    const config = configSchema.parse({
      embedding: { mode: "mock", mock: { dimension: 8 } },
      server: { port: 0, max_body_bytes: 1024 },
      storage: { data_dir: tempDataDir().dir },
    });
    const server = await startServer(config, captureLogger().logger);
    try {
      const { port } = new URL(server.url);
      // Chunked, so no content-length warns the server: the limit is found while reading.
      const answer = await new Promise<string>((resolve) => {
        let text = "";
        const socket = connect(Number(port), "127.0.0.1", () => {
          socket.write("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n");
          socket.write("transfer-encoding: chunked\r\n\r\n");
          for (let i = 0; i < 4; i++) socket.write(`200\r\n${"x".repeat(512)}\r\n`);
        });
        socket.on("data", (chunk) => {
          text += chunk.toString();
        });
        socket.on("close", () => resolve(text));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 413/);
      expect(answer).toMatch(/\r\nconnection: close\r\n/i);
      expect(answer).toContain('"code":"AKIDB_ERR_BODY_TOO_LARGE"');
      // A body in many small chunks arrives whole.
      const input = Array.from({ length: 40 }, (_, i) => `text ${i}`);
      const response = await fetch(`${server.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: new ReadableStream({
          start(controller) {
            for (const byte of new TextEncoder().encode(JSON.stringify({ input }))) {
              controller.enqueue(new Uint8Array([byte]));
            }
            controller.close();
          },
        }),
        duplex: "half",
      } as RequestInit);
      expect(response.status).toBe(200);
      expect(((await response.json()) as { data: unknown[] }).data).toHaveLength(40);
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
