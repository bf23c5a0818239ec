// The log must never stop the server: the real `bin/akidb serve` whose stdout nobody reads (the
// test stops reading its pipe) keeps serving, drops and counts the lines it cannot write, says so
// once read again, and still exits on SIGTERM.
import { expect, it } from "vitest";
import { waitFor } from "../control-plane/test/helpers.ts";
import { startAkiDB } from "./server.ts";

async function droppedLines(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  return Number(/^akidb_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1]);
}

/** Requests (one log line each) until the server reports dropped lines: its stdout is full. */
async function fillStdout(url: string): Promise<number> {
  for (let i = 0; i < 20_000; i++) {
    const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
    expect(health.status).toBe(200);
    const dropped = await droppedLines(url);
    if (dropped > 0) return dropped;
  }
  throw new Error("20000 requests and no log line dropped");
}

it("a stdout nobody reads blocks neither requests nor SIGTERM; dropped lines are counted and reported", async () => {
  const server = await startAkiDB({ AKIDB_EMBEDDING_MODE: "mock", AKIDB_SERVER_LOG_QUEUE_BYTES: "4096" });
  try {
    server.pauseOutput();
    const dropped = await fillStdout(server.url);
    server.resumeOutput();
    // Lines logged while the backlog drains may still be dropped: ask until one gets through.
    const lines = await waitFor(async () => {
      const response = await fetch(`${server.url}/health`, {
        headers: { "x-request-id": "after-the-stall" },
      });
      expect(response.status).toBe(200);
      const lines = server
        .output()
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      return lines.some((line) => line.reqId === "after-the-stall") && lines;
    }, "a request's log line after the reader resumed");
    const notice = lines.findIndex((line) => line.msg === "log lines dropped: stdout was not read");
    expect(notice).toBeGreaterThanOrEqual(0);
    expect(lines[notice]).toMatchObject({ level: 40 });
    expect(lines[notice]!.dropped).toBeGreaterThanOrEqual(dropped);
    const request = lines.findIndex((line) => line.reqId === "after-the-stall");
    expect(lines[request]).toMatchObject({ msg: "request", path: "/health", status: 200 });
    expect(request).toBeGreaterThan(notice);

    server.pauseOutput();
    await fillStdout(server.url);
    let deadline: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      server.stop(),
      new Promise((resolve) => {
        deadline = setTimeout(() => resolve("still running 10 s after SIGTERM"), 10_000);
      }),
    ]);
    clearTimeout(deadline);
    expect(exit).toBe(0);
  } finally {
    await server.stop("SIGKILL");
  }
}, 60_000);
