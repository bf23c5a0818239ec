// End to end: the real `bin/akidb serve` on a real port, supervising the real inference process
// on the tiny qwen3-4bit fixture checkpoint (`make fixtures`).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAlive, waitFor } from "../control-plane/test/helpers.ts";
import { watchContract } from "./contract.ts";
import { REPO, type RunningAkiDB, startAkiDB } from "./server.ts";

const FIXTURE = path.join(REPO, ".cache", "fixtures", "qwen3-4bit");

interface InferenceStatus {
  state: string;
  pid: number | null;
  restarts: number;
  last_error: string | null;
}

async function inference(url: string): Promise<InferenceStatus> {
  const response = await fetch(`${url}/admin/v1/status`);
  return ((await response.json()) as { inference: InferenceStatus }).inference;
}

describe("bin/akidb serve with the real inference process", () => {
  let server: RunningAkiDB;
  let url: string;
  /** Every response is checked against openapi.yaml, also those during the restart. */
  const contract = watchContract(() => url);

  beforeAll(async () => {
    server = await startAkiDB({
      AKIDB_MODEL: FIXTURE,
      AKIDB_EMBEDDING_MLX_RESTART_BACKOFF_INITIAL_MS: "100",
      AKIDB_SERVER_SHUTDOWN_TIMEOUT_MS: "5000",
    });
    url = server.url;
  });

  afterAll(async () => {
    await server.stop("SIGKILL"); // a no-op once the SIGTERM test ended it
    expect(await contract.violations()).toEqual([]);
    expect(contract.checked).toBeGreaterThan(0);
  });

  it("recovers from SIGKILL of the inference process: ready again with a new pid, restart counted", async () => {
    const before = await inference(url);
    process.kill(before.pid!, "SIGKILL");
    const after = await waitFor(
      async () => {
        const status = await inference(url);
        return status.state === "ready" && status.pid !== before.pid && status;
      },
      "a new ready inference process",
      120_000,
    );
    expect(after.restarts).toBe(before.restarts + 1);
    expect(isAlive(before.pid!)).toBe(false);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^akidb_inference_restarts_total ${before.restarts + 1}$`, "m"));
    const embeddings = await fetch(`${url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: ["after the crash"] }),
    });
    expect(embeddings.status).toBe(200);
  });

  it("SIGTERM exits 0 and leaves no inference process behind", async () => {
    const { pid } = await inference(url);
    expect(isAlive(pid!)).toBe(true);
    expect(await server.stop()).toBe(0);
    expect(server.output()).toMatch(/"msg":"stopped"/);
    await waitFor(() => !isAlive(pid!), "the inference process to be gone", 10_000);
  });
});

describe("bin/akidb serve killed with SIGKILL", () => {
  it("leaves no inference process behind: the child sees its stdin close and shuts down", async () => {
    const server = await startAkiDB({ AKIDB_MODEL: FIXTURE });
    const { pid } = await inference(server.url);
    try {
      expect(pid).not.toBeNull();
      await server.stop("SIGKILL");
      await waitFor(() => !isAlive(pid!), "the orphaned inference process to exit", 15_000);
    } finally {
      await server.stop("SIGKILL");
      if (pid !== null && isAlive(pid)) process.kill(pid, "SIGKILL");
    }
  });
});

describe("bin/akidb serve with a bad config", () => {
  it("exits 2 naming the key, before starting anything", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "akidb-bad-")), "akidb.yaml");
    writeFileSync(file, "embedding:\n  mlx:\n    batch_szie: 64\n");
    let stderr = "";
    const run = execa(path.join(REPO, "bin/akidb"), ["serve", "--config", file, "--port", "0"], {
      reject: false,
      buffer: false,
      extendEnv: false,
      env: { PATH: process.env.PATH ?? "" },
    });
    run.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const result = await run;
    expect(result.exitCode).toBe(2);
    expect(stderr).toMatch(
      /embedding\.mlx\.batch_szie: unknown key \(akidb\.yaml line 3\); did you mean embedding\.mlx\.batch_size\?/,
    );
  });
});
