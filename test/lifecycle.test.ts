// End to end: the real `bin/akidb serve` on a real port, supervising the real inference process
// on the tiny qwen3-4bit fixture checkpoint (`make fixtures`).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAlive, waitFor } from "../control-plane/test/helpers.ts";
import { watchContract } from "./contract.ts";

const REPO = path.resolve(import.meta.dirname, "..");
const AKIDB = path.join(REPO, "bin", "akidb");
const FIXTURE = path.join(REPO, ".cache", "fixtures", "qwen3-4bit");

interface InferenceStatus {
  state: string;
  pid: number | null;
  restarts: number;
  last_error: string | null;
}

/** bin/akidb with only these variables (and PATH/HOME), so the caller's AKIDB_* cannot leak in. */
function akidb(args: string[], env: Record<string, string>) {
  const home = mkdtempSync(path.join(tmpdir(), "akidb-home-"));
  return execa(AKIDB, args, {
    reject: false,
    buffer: false,
    extendEnv: false,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: home,
      AKIDB_STORAGE_DATA_DIR: path.join(home, "data"),
      ...env,
    },
  });
}

/** The control plane's own "listening" line (the inference process's is re-logged with a component). */
function controlPlaneUrl(output: string): string | undefined {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{") || !line.endsWith("}")) continue;
    const record = JSON.parse(line) as { msg?: string; url?: string; component?: string };
    if (record.msg === "listening" && !record.component) return record.url;
  }
  return undefined;
}

describe("bin/akidb serve with the real inference process", () => {
  let server: ResultPromise<{ reject: false; buffer: false }>;
  let url: string;
  let output = "";
  /** Every response is checked against openapi.yaml, also those during the restart. */
  const contract = watchContract(() => url);

  const inference = async (): Promise<InferenceStatus> => {
    const response = await fetch(`${url}/admin/v1/status`);
    return ((await response.json()) as { inference: InferenceStatus }).inference;
  };

  beforeAll(async () => {
    server = akidb(["serve", "--port", "0"], {
      AKIDB_MODEL: FIXTURE,
      AKIDB_EMBEDDING_MLX_RESTART_BACKOFF_INITIAL_MS: "100",
      AKIDB_SERVER_SHUTDOWN_TIMEOUT_MS: "5000",
    });
    server.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    url = await waitFor(() => controlPlaneUrl(output), "the listening line", 30_000);
    await waitFor(
      async () => (await inference()).state === "ready",
      "the inference process to be ready",
      120_000,
    );
  });

  afterAll(async () => {
    if (server.pid !== undefined && isAlive(server.pid)) server.kill("SIGKILL");
    expect(await contract.violations()).toEqual([]);
    expect(contract.checked).toBeGreaterThan(0);
  });

  it("recovers from SIGKILL of the inference process: ready again with a new pid, restart counted", async () => {
    const before = await inference();
    process.kill(before.pid!, "SIGKILL");
    const after = await waitFor(
      async () => {
        const status = await inference();
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
    const { pid } = await inference();
    expect(isAlive(pid!)).toBe(true);
    server.kill("SIGTERM");
    const result = await server;
    expect(result.exitCode).toBe(0);
    expect(output).toMatch(/"msg":"stopped"/);
    await waitFor(() => !isAlive(pid!), "the inference process to be gone", 10_000);
  });
});

describe("bin/akidb serve killed with SIGKILL", () => {
  it("leaves no inference process behind: the child sees its stdin close and shuts down", async () => {
    const server = akidb(["serve", "--port", "0"], { AKIDB_MODEL: FIXTURE });
    let output = "";
    server.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    let pid: number | null = null;
    try {
      const url = await waitFor(() => controlPlaneUrl(output), "the listening line", 30_000);
      pid = await waitFor(
        async () => {
          const response = await fetch(`${url}/admin/v1/status`);
          const { inference } = (await response.json()) as { inference: InferenceStatus };
          return inference.state === "ready" && inference.pid;
        },
        "the inference process to be ready",
        120_000,
      );
      server.kill("SIGKILL");
      await server;
      const orphan = pid;
      expect(orphan).not.toBeNull();
      await waitFor(
        () => orphan !== null && !isAlive(orphan),
        "the orphaned inference process to exit",
        15_000,
      );
    } finally {
      if (server.pid !== undefined && isAlive(server.pid)) server.kill("SIGKILL");
      if (pid !== null && isAlive(pid)) process.kill(pid, "SIGKILL");
    }
  });
});

describe("bin/akidb serve with a bad config", () => {
  it("exits 2 naming the key, before starting anything", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "akidb-bad-")), "akidb.yaml");
    writeFileSync(file, "embedding:\n  mlx:\n    batch_szie: 64\n");
    let stderr = "";
    const run = akidb(["serve", "--config", file, "--port", "0"], {});
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
