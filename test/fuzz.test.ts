// The API fuzzed from openapi.yaml with schemathesis (PyPI) against the real processes on real
// ports: the control plane in mock mode, in user_provided mode and on the fixture model, and the
// inference process on the fixture model. The checks and their reasons are in
// test/schemathesis.toml: no 5xx, no status the contract does not list, no response that breaks
// its schema, invalid requests rejected, valid ones accepted, no hang (10 s per request). Each run
// is bounded by examples per operation and by time. A failure prints schemathesis's report with
// the seed; rerun it with AKIDB_FUZZ_SEED=<seed>.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { waitFor } from "../control-plane/test/helpers.ts";
import { REPO, type RunningAkiDB, startAkiDB } from "./server.ts";

const SCHEMATHESIS = path.join(REPO, "inference/.venv/bin/schemathesis");
const PYTHON = path.join(REPO, "inference/.venv/bin/python");
const CONFIG = path.join(REPO, "test/schemathesis.toml");
const CONTRACT = path.join(REPO, "openapi.yaml");
const FIXTURE = path.join(REPO, ".cache/fixtures/qwen3-4bit");
const SEED = process.env.AKIDB_FUZZ_SEED ?? "20261130";
/** Examples per operation and phase; the time bound below usually ends a run first. */
const MAX_EXAMPLES = "25";

const workDir = mkdtempSync(path.join(tmpdir(), "akidb-fuzz-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Runs schemathesis against `url`; resolves with its report, rejects with it when it failed. */
async function fuzz(schema: string, url: string, maxSeconds: number, args: string[] = []): Promise<string> {
  const result = await execa(
    SCHEMATHESIS,
    [
      "--config-file",
      CONFIG,
      "--no-color",
      "run",
      schema,
      "--url",
      url,
      "--seed",
      SEED,
      "--max-examples",
      MAX_EXAMPLES,
      "--max-time",
      String(maxSeconds),
      ...args,
    ],
    // Its working directory takes any files it writes.
    { reject: false, cwd: workDir, all: true, env: { SCHEMATHESIS_TELEMETRY: "false" } },
  );
  if (result.exitCode !== 0)
    throw new Error(`schemathesis failed (seed ${SEED}):\n${result.all.slice(-30_000)}`);
  return result.all;
}

/** The control plane's operations: every path but the inference process's. */
const PUBLIC = ["--exclude-tag", "inference"];

async function withServer(
  env: Record<string, string>,
  run: (url: string) => Promise<string>,
): Promise<string> {
  const server: RunningAkiDB = await startAkiDB(env);
  try {
    return await run(server.url);
  } finally {
    expect(await server.stop()).toBe(0);
  }
}

describe("schemathesis against the control plane", () => {
  it("mock mode", { timeout: 120_000 }, async () => {
    // With tokens (one value as both the API key and the admin token, so one header serves every
    // operation): requests without it must be refused.
    const token = { AKIDB_SERVER_API_KEYS: "fuzz-key", AKIDB_SERVER_ADMIN_TOKEN: "fuzz-key" };
    const report = await withServer({ AKIDB_EMBEDDING_MODE: "mock", ...token }, (url) =>
      fuzz(CONTRACT, url, 12, [...PUBLIC, "--header", "Authorization: Bearer fuzz-key"]),
    );
    expect(report).toMatch(/Tested: \d+/);
  });

  it("user_provided mode", { timeout: 120_000 }, async () => {
    await withServer({ AKIDB_EMBEDDING_MODE: "user_provided" }, (url) => fuzz(CONTRACT, url, 8, PUBLIC));
  });

  it("the fixture model", { timeout: 180_000 }, async () => {
    await withServer({ AKIDB_MODEL: FIXTURE }, (url) =>
      // Switching models and restarting the process are end-to-end tests of their own; fuzzing
      // them would spend the time budget on reloads.
      fuzz(CONTRACT, url, 10, [
        ...PUBLIC,
        "--exclude-operation-id",
        "adminLoadModel",
        "--exclude-operation-id",
        "adminRestartInference",
      ]),
    );
  });
});

/** The contract's inference operations at the paths the process serves (without `/inference`). */
function inferenceContract(): string {
  const contract = parse(readFileSync(CONTRACT, "utf8")) as Record<string, unknown> & {
    paths: Record<string, Record<string, unknown>>;
  };
  const paths = Object.fromEntries(
    Object.entries(contract.paths)
      .filter(([template]) => template.startsWith("/inference/"))
      .map(([template, item]) => [
        template.slice("/inference".length),
        Object.fromEntries(
          Object.entries(item).map(([method, operation]) => {
            const { servers: _servers, ...rest } = operation as Record<string, unknown>;
            return [method, rest];
          }),
        ),
      ]),
  );
  const file = path.join(workDir, "inference-openapi.json");
  writeFileSync(file, JSON.stringify({ ...contract, servers: [], paths }));
  return file;
}

/** The port in the inference process's JSON "listening" log line. */
function listeningPort(output: string): number | undefined {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line) as { msg?: string; port?: number };
    if (record.msg === "listening") return record.port;
  }
  return undefined;
}

describe("schemathesis against the inference process", () => {
  it("the fixture model", { timeout: 120_000 }, async () => {
    const token = "fuzz-token";
    const child = execa(PYTHON, ["-m", "akidb_inference", "--model", FIXTURE, "--port", "0", "--offline"], {
      reject: false,
      all: true,
      buffer: false,
      env: { AKIDB_INFERENCE_TOKEN: token },
    });
    let output = "";
    child.all?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      const port = await waitFor(() => listeningPort(output), "the listening line", 60_000);
      const url = `http://127.0.0.1:${port}`;
      await waitFor(
        async () => (await fetch(`${url}/health`)).ok,
        "the inference process to be ready",
        60_000,
      );
      await fuzz(inferenceContract(), url, 10, ["--header", `Authorization: Bearer ${token}`]);
    } finally {
      child.kill("SIGTERM");
      await child;
    }
  });
});
