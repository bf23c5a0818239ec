// Fault injection against the real processes: `bin/akidb serve` supervising the real inference
// process on the qwen3-4bit fixture, under a steady trickle of embedding requests, is hit with
// SIGKILL of the inference process, SIGSTOP for longer than the liveness bound, and a model switch
// that cannot succeed. For each fault the test measures the time to detect it, the time to serve
// again and the requests that failed, and asserts the bounds the docs promise (docs/operations.md
// records measured numbers). Every response is checked against openapi.yaml.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAlive, waitFor } from "../control-plane/test/helpers.ts";
import { watchContract } from "./contract.ts";
import { REPO, type RunningAkiDB, startAkiDB } from "./server.ts";

const FIXTURE = path.join(REPO, ".cache", "fixtures", "qwen3-4bit");
const LIVENESS_INTERVAL_MS = 200;
const LIVENESS_TIMEOUT_MS = 1500;

interface InferenceStatus {
  state: string;
  pid: number | null;
  restarts: number;
  last_error: string | null;
}

/** One failed attempt. */
interface Outcome {
  status: number;
  retryAfter: string | null;
  code: string | null;
}

/** One logical request: retried after each failure (honouring Retry-After, at most 1 s) until it succeeds. */
interface Request {
  failures: Outcome[];
  ms: number;
  ok: boolean;
}

let server: RunningAkiDB;
let url: string;
const contract = watchContract(() => url);

async function inference(): Promise<InferenceStatus> {
  const response = await fetch(`${url}/admin/v1/status`);
  return ((await response.json()) as { inference: InferenceStatus }).inference;
}

/** Two clients sending one small embedding request after another, each retried until it succeeds, until `stop()`. */
function trickle() {
  const requests: Request[] = [];
  let running = true;
  const attempt = async (): Promise<Outcome> => {
    const response = await fetch(`${url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: ["a steady trickle of traffic"] }),
    });
    const body = (await response.json()) as { error?: { code: string | null } };
    return {
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
      code: body.error?.code ?? null,
    };
  };
  const client = async () => {
    while (running) {
      const started = Date.now();
      const failures: Outcome[] = [];
      let ok = false;
      while (!ok && Date.now() - started < 30_000) {
        const outcome = await attempt();
        ok = outcome.status === 200;
        if (ok) break;
        failures.push(outcome);
        const wait = Math.min(Number(outcome.retryAfter ?? 1), 1) * 1000;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
      requests.push({ failures, ms: Date.now() - started, ok });
    }
  };
  const clients = [client(), client()];
  return {
    requests,
    stop: async () => {
      running = false;
      await Promise.all(clients);
      return requests;
    },
  };
}

/** Polls the status until `ready` with a pid other than `pid`; returns when the state first left `ready` too. */
async function recovery(pid: number, since: number) {
  let detectedMs: number | null = null;
  const status = await waitFor(
    async () => {
      const now = await inference();
      if (detectedMs === null && (now.state !== "ready" || now.pid !== pid)) detectedMs = Date.now() - since;
      return now.state === "ready" && now.pid !== pid && now;
    },
    "a new ready inference process",
    60_000,
  );
  return { status, detectedMs: detectedMs ?? Date.now() - since, recoveredMs: Date.now() - since };
}

/** Prints the fault's numbers (docs/operations.md records them); returns every failed attempt. */
function summarize(fault: string, requests: Request[], detectedMs: number, recoveredMs: number) {
  const failed = requests.flatMap((r) => r.failures);
  const line = {
    fault,
    requests: requests.length,
    lost: requests.filter((r) => !r.ok).length,
    retried: requests.filter((r) => r.failures.length > 0).length,
    failedAttempts: failed.length,
    maxRequestMs: Math.max(...requests.map((r) => r.ms)),
    detectedMs,
    recoveredMs,
  };
  process.stdout.write(`fault-injection ${JSON.stringify(line)}\n`);
  expect(line.lost).toBe(0);
  return failed;
}

beforeAll(async () => {
  server = await startAkiDB({
    AKIDB_MODEL: FIXTURE,
    AKIDB_EMBEDDING_MLX_OFFLINE: "true",
    AKIDB_EMBEDDING_MLX_CACHE_DIR: mkdtempSync(path.join(tmpdir(), "akidb-faults-cache-")),
    AKIDB_EMBEDDING_MLX_LIVENESS_INTERVAL_MS: String(LIVENESS_INTERVAL_MS),
    AKIDB_EMBEDDING_MLX_LIVENESS_TIMEOUT_MS: String(LIVENESS_TIMEOUT_MS),
    AKIDB_EMBEDDING_MLX_RESTART_BACKOFF_INITIAL_MS: "100",
  });
  url = server.url;
});

afterAll(async () => {
  await server?.stop();
  expect(await contract.violations()).toEqual([]);
});

describe("fault injection against the real inference process", () => {
  it("SIGKILL: restarted; the requests that fail are 503 with Retry-After, none is a 5xx of another kind", async () => {
    const before = await inference();
    const load = trickle();
    await waitFor(() => load.requests.length >= 4, "traffic before the fault");
    const since = Date.now();
    process.kill(before.pid!, "SIGKILL");
    const { detectedMs, recoveredMs } = await recovery(before.pid!, since);
    await waitFor(
      () => load.requests.length >= 4 && load.requests.at(-1)!.failures.length === 0,
      "traffic served again",
    );
    const failed = summarize("SIGKILL", await load.stop(), detectedMs, recoveredMs);
    // A request in flight at the kill may fail 502 (the connection broke); every other one is 503.
    for (const outcome of failed) expect([502, 503]).toContain(outcome.status);
    for (const outcome of failed.filter((o) => o.status === 503)) expect(outcome.retryAfter).not.toBeNull();
    expect(isAlive(before.pid!)).toBe(false);
  });

  it("SIGSTOP past the liveness bound: declared hung within it, killed, restarted; waiting requests fail fast", async () => {
    const before = await inference();
    const load = trickle();
    await waitFor(() => load.requests.length >= 4, "traffic before the fault");
    const since = Date.now();
    process.kill(before.pid!, "SIGSTOP");
    const { status, detectedMs, recoveredMs } = await recovery(before.pid!, since);
    await waitFor(
      () => load.requests.length >= 4 && load.requests.at(-1)!.failures.length === 0,
      "traffic served again",
    );
    const failed = summarize("SIGSTOP", await load.stop(), detectedMs, recoveredMs);
    // Detected within the liveness bound plus one interval (and slack for a loaded 2-core CI).
    expect(detectedMs).toBeLessThan(LIVENESS_INTERVAL_MS + LIVENESS_TIMEOUT_MS + 3000);
    expect(status.restarts).toBe(before.restarts + 1);
    expect(isAlive(before.pid!)).toBe(false); // SIGKILL reaches a stopped process
    expect(failed.length).toBeGreaterThan(0);
    for (const outcome of failed) {
      expect(outcome).toMatchObject({ status: 503, code: "AKIDB_ERR_MODEL_UNAVAILABLE" });
      expect(outcome.retryAfter).not.toBeNull();
    }
  });

  it("a model switch that cannot load: 424 with the reason, the old model serves throughout", async () => {
    const before = await inference();
    const load = trickle();
    await waitFor(() => load.requests.length >= 4, "traffic before the fault");
    const since = Date.now();
    // Not in the (empty) cache, and the server is offline.
    const response = await fetch(`${url}/admin/v1/models/gemma-300m-4bit/load`, { method: "POST" });
    const answeredMs = Date.now() - since;
    const body = (await response.json()) as { error: { code: string; message: string } };
    const served = load.requests.length;
    await waitFor(() => load.requests.length >= served + 4, "traffic after the failed switch");
    const failed = summarize("failed switch", await load.stop(), answeredMs, 0);
    expect(response.status).toBe(424);
    expect(body.error.code).toBe("AKIDB_ERR_MODEL_LOAD_FAILED");
    expect(body.error.message).toContain("qwen3");
    expect(failed).toEqual([]);
    expect(await inference()).toMatchObject({ state: "ready", pid: before.pid, last_error: null });
  });
});
