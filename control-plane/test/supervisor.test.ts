import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { type AkidbConfig, configSchema } from "../src/config/schema.ts";
import { InferenceEmbedder } from "../src/embedding/inference-embedder.ts";
import type { AkidbError } from "../src/errors.ts";
import { InferenceClient } from "../src/inference/client.ts";
import { type InferenceCommand, LaunchError, pythonInferenceCommand } from "../src/inference/launch.ts";
import { InferenceSupervisor, type SupervisorOptions } from "../src/inference/supervisor.ts";
import { buildRegistry, type ModelSource } from "../src/models/registry.ts";
import { captureLogger, isAlive, waitFor } from "./helpers.ts";

const FAKE = path.join(import.meta.dirname, "fixtures", "fake-inference.ts");

function testConfig(restart: Partial<AkidbConfig["embedding"]["mlx"]["restart"]> = {}, startupMs = 20_000) {
  return configSchema.parse({
    embedding: {
      mlx: {
        cache_dir: mkdtempSync(path.join(tmpdir(), "akidb-models-")),
        startup_timeout_ms: startupMs,
        restart: {
          max_restarts: 3,
          window_ms: 60_000,
          backoff_initial_ms: 20,
          backoff_max_ms: 200,
          ...restart,
        },
      },
    },
  });
}

const entry = buildRegistry(configSchema.parse({})).get("qwen3-0.6b-4bit")!;

/** The fake inference process with `env`; counts its launches. */
function fakeCommand(env: Record<string, string> = {}) {
  const launches: number[] = [];
  const command = ({ entry }: { entry: { source: string } }): InferenceCommand => {
    launches.push(Date.now());
    return { file: process.execPath, args: [FAKE, "--port", "0", "--model", entry.source], env };
  };
  return { command, launches };
}

const supervisors: InferenceSupervisor[] = [];

function supervise(options: Partial<SupervisorOptions> & Pick<SupervisorOptions, "command">) {
  const { logger, lines } = captureLogger();
  let restarts = 0;
  const supervisor = new InferenceSupervisor({
    config: testConfig(),
    entry,
    logger,
    metrics: { restarts: { inc: () => restarts++ } },
    ...options,
  });
  supervisors.push(supervisor);
  return { supervisor, lines, restarts: () => restarts };
}

afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.stop()));
});

describe("InferenceSupervisor", () => {
  it("start() resolves once /health says ready and forwards the child's JSON logs", async () => {
    process.env.AKIDB_SERVER_ADMIN_TOKEN = "not-for-the-child";
    onTestFinished(() => {
      delete process.env.AKIDB_SERVER_ADMIN_TOKEN;
    });
    const { supervisor, lines } = supervise({ command: fakeCommand({ FAKE_READY_AFTER_MS: "300" }).command });
    await supervisor.start();
    const status = supervisor.status();
    expect(status.state).toBe("ready");
    expect(status.model?.id).toBe(entry.source);
    expect(isAlive(status.pid!)).toBe(true);
    const forwarded = lines.find((line) => line.component === "inference" && line.msg === "listening");
    // Only its own token among the AKIDB_* variables: the test process's are not passed on.
    expect(forwarded).toMatchObject({
      level: 30,
      port: status.port,
      akidb_variables: ["AKIDB_INFERENCE_TOKEN"],
    });
    expect(lines.some((line) => line.msg === "inference process ready" && typeof line.ms === "number")).toBe(
      true,
    );
  });

  it("a process squatting where the child says it listens gets neither the token nor a text", async () => {
    // The squatter answers /health "ready" like the real process, but cannot prove the token.
    const seen: Array<{ method: string; url: string; authorization: string | undefined }> = [];
    const squatter = createServer((request, response) => {
      seen.push({ method: request.method!, url: request.url!, authorization: request.headers.authorization });
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ status: "ready", model: { id: "impostor" } }));
    });
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    onTestFinished(() => {
      squatter.closeAllConnections();
      squatter.close();
    });
    const squatterPort = (squatter.address() as AddressInfo).port;
    const { command } = fakeCommand({ FAKE_REPORT_PORT: String(squatterPort) });
    const { supervisor } = supervise({ command, config: testConfig({ max_restarts: 0 }) });
    const error = await supervisor.start().catch((e: Error) => e);
    expect(String(error)).toContain("without proof that it is the inference process this server started");
    expect(supervisor.status().state).toBe("failed");
    expect(supervisor.client()).toBeUndefined();
    expect(seen.length).toBeGreaterThan(0);
    expect(
      seen.every((r) => r.method === "GET" && r.url === "/health" && r.authorization === undefined),
    ).toBe(true);
  });

  it("the child binds port 0 itself and the supervisor uses the port it reports", async () => {
    const { supervisor } = supervise({ command: fakeCommand().command });
    await supervisor.start();
    const { port } = supervisor.status();
    expect(port).toBeGreaterThan(0);
    expect(supervisor.client()!.baseUrl).toBe(`http://127.0.0.1:${port}`);
  });

  it("a child that exits before ready fails start() with its exit code and stderr tail", async () => {
    const { command } = fakeCommand({ FAKE_EXIT_CODE: "3", FAKE_STDERR: "boom: weights missing" });
    const { supervisor } = supervise({ command, config: testConfig({ max_restarts: 0 }) });
    const error = await supervisor.start().catch((e: Error) => e);
    expect(String(error)).toMatch(/exited with code 3 before it was ready/);
    expect(String(error)).toContain("boom: weights missing");
    expect(supervisor.status().state).toBe("failed");
    // The output goes to the caller, /admin and the log; lastError (shown by the open /health) names the cause only.
    expect(supervisor.status().lastOutput).toContain("boom: weights missing");
    expect(supervisor.status().lastError).not.toContain("boom");
    expect(supervisor.status().lastError).toContain("POST /admin/v1/inference/restart");
    // max_restarts 0: nothing will happen without an operator, so no Retry-After.
    expect(supervisor.retryAfterSeconds()).toBeUndefined();
  });

  it("a model load failure reported by /health fails the start and kills the child", async () => {
    const { command } = fakeCommand({
      FAKE_HEALTH_FAILED: "the model failed to load: model_type llama is not supported",
    });
    const { supervisor, lines } = supervise({ command, config: testConfig({ max_restarts: 0 }) });
    await expect(supervisor.start()).rejects.toThrow(
      /^the model failed to load: model_type llama is not supported$/,
    );
    const spawned = lines.find((line) => line.msg === "inference process spawned")!;
    expect(isAlive(spawned.inference_pid as number)).toBe(false);
  });

  it("a child that never gets ready fails at the deadline and is killed", async () => {
    const { command } = fakeCommand({ FAKE_READY_AFTER_MS: "600000" });
    // Long enough for the child to answer /health at least once even on a loaded 2-core machine.
    const { supervisor, lines } = supervise({ command, config: testConfig({ max_restarts: 0 }, 3000) });
    await expect(supervisor.start()).rejects.toThrow(
      /not ready within 3000 ms \(last \/health: loading: loading weights\)/,
    );
    const spawned = lines.find((line) => line.msg === "inference process spawned")!;
    expect(isAlive(spawned.inference_pid as number)).toBe(false);
  });

  it("a launch that can never work (no Python environment) fails at once without retrying", async () => {
    const { supervisor } = supervise({
      command: () => {
        throw new LaunchError("The Python environment is missing; run make setup.");
      },
    });
    await expect(supervisor.start()).rejects.toThrow(/run make setup/);
    expect(supervisor.status()).toMatchObject({ state: "failed", restarts: 0 });
  });

  it("restarts a killed child with a new pid and counts the restart", async () => {
    const { supervisor, restarts, lines } = supervise({ command: fakeCommand().command });
    await supervisor.start();
    const first = supervisor.status().pid!;
    process.kill(first, "SIGKILL");
    await waitFor(() => supervisor.status().state === "restarting", "the restarting state");
    const status = await waitFor(() => {
      const s = supervisor.status();
      return s.state === "ready" && s.pid !== first && s;
    }, "a new ready child");
    expect(isAlive(status.pid!)).toBe(true);
    expect(status.restarts).toBe(1);
    expect(restarts()).toBe(1);
    expect(lines.some((l) => /exited on signal SIGKILL unexpectedly/.test(String(l.msg)))).toBe(true);
  });

  it("a child that stops answering (SIGSTOP) is declared hung, killed and replaced; calls on it fail at once", async () => {
    const config = testConfig();
    config.embedding.mlx.liveness_interval_ms = 100;
    config.embedding.mlx.liveness_timeout_ms = 600;
    const { supervisor, lines } = supervise({ command: fakeCommand().command, config });
    const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    await supervisor.start();
    const first = supervisor.status().pid!;
    process.kill(first, "SIGSTOP");
    const stoppedAt = Date.now();
    const call = embedder.embed({ texts: ["x"], inputType: "query", normalize: true, requestId: "r" });
    const error = await call.catch((e: AkidbError) => e);
    const failedAfter = Date.now() - stoppedAt;
    // Not the 30 s request timeout: the liveness bound (600 ms) plus one interval, with slack for CI.
    expect(failedAfter).toBeLessThan(5000);
    expect(error).toMatchObject({ code: "AKIDB_ERR_MODEL_UNAVAILABLE", status: 503, retryAfterSeconds: 1 });
    expect(String(error)).toContain("did not answer /health within 600 ms");
    const status = await waitFor(() => {
      const s = supervisor.status();
      return s.state === "ready" && s.pid !== first && s;
    }, "a new ready child");
    expect(isAlive(first)).toBe(false);
    expect(status.lastError).toBeNull();
    expect(lines.some((l) => l.level === 50 && /declared hung and killed/.test(String(l.msg)))).toBe(true);
  });

  it("gives up after max_restarts failures within the window, backing off between attempts", async () => {
    const { command, launches } = fakeCommand({ FAKE_EXIT_CODE: "1", FAKE_STDERR: "crash" });
    const { supervisor } = supervise({
      command,
      config: testConfig({ max_restarts: 3, backoff_initial_ms: 40, backoff_max_ms: 1000 }),
    });
    await expect(supervisor.start()).rejects.toThrow(/code 1/);
    await waitFor(() => supervisor.status().state === "failed", "the failed state");
    const status = supervisor.status();
    expect(launches).toHaveLength(4);
    expect(status.restarts).toBe(3);
    expect(status.lastError).toMatch(/4 failures within 60000 ms: retrying only every 1000 ms/);
    expect(status.lastError).toContain("POST /admin/v1/inference/restart");
    // Text requests meanwhile get 503 with a Retry-After of the next attempt (backoff_max_ms: 1 s).
    const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    const refused = await embedder
      .embed({ texts: ["x"], inputType: "query", normalize: true, requestId: "r" })
      .catch((e: AkidbError) => e);
    expect(refused).toMatchObject({ code: "AKIDB_ERR_MODEL_UNAVAILABLE", retryAfterSeconds: 1 });
    const gaps = launches.slice(1, 4).map((time, i) => time - launches[i]!);
    // 40, 80, 160 ms of backoff at least (plus the time each attempt took).
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual(40 * 2 ** i);
    });
    // Not for good: it keeps trying at the longest backoff, staying `failed` while the cause remains.
    await waitFor(() => launches.length === 5, "a retry at backoff_max_ms");
    expect(launches[4]! - launches[3]!).toBeGreaterThanOrEqual(1000);
    await waitFor(() => supervisor.status().state === "failed", "failed again");
  });

  it("stop() kills the whole process group, grandchildren included", async () => {
    const { supervisor, lines } = supervise({ command: fakeCommand({ FAKE_GRANDCHILD: "1" }).command });
    await supervisor.start();
    const pid = supervisor.status().pid!;
    const grandchild = await waitFor(
      () => lines.find((l) => l.msg === "grandchild")?.grandchild_pid as number | undefined,
      "the grandchild's pid",
    );
    expect(isAlive(grandchild)).toBe(true);
    await supervisor.stop();
    expect(supervisor.status()).toMatchObject({ state: "stopped", pid: null });
    await waitFor(() => !isAlive(pid) && !isAlive(grandchild), "child and grandchild to be gone");
  });

  it("stop() escalates to SIGKILL when the child ignores SIGTERM", async () => {
    const { supervisor } = supervise({
      command: fakeCommand({ FAKE_IGNORE_SIGTERM: "1" }).command,
      stopGraceMs: 300,
    });
    await supervisor.start();
    const pid = supervisor.status().pid!;
    await supervisor.stop();
    expect(isAlive(pid)).toBe(false);
  });

  it("stop() during a slow start pre-empts it and leaves no child", async () => {
    const { supervisor, lines } = supervise({
      command: fakeCommand({ FAKE_READY_AFTER_MS: "600000" }).command,
    });
    const starting = supervisor.start().catch((e: Error) => e);
    const spawned = await waitFor(
      () => lines.find((l) => l.msg === "inference process spawned"),
      "the spawn",
    );
    await supervisor.stop();
    expect(String(await starting)).toMatch(/stopped before it was ready/);
    expect(supervisor.status().state).toBe("stopped");
    expect(isAlive(spawned.inference_pid as number)).toBe(false);
  });

  it("switchModel() replaces the process with one serving the new entry", async () => {
    const { supervisor } = supervise({ command: fakeCommand().command });
    await supervisor.start();
    const first = supervisor.status().pid!;
    const gemma = buildRegistry(configSchema.parse({})).get("gemma-300m-4bit")!;
    await supervisor.switchModel(gemma);
    const status = supervisor.status();
    expect(status).toMatchObject({ state: "ready", alias: "gemma-300m-4bit", restarts: 0 });
    expect(status.model?.id).toBe(gemma.source);
    expect(status.pid).not.toBe(first);
    await waitFor(() => !isAlive(first), "the old process to be gone");
  });
});

describe("model switches without an outage", () => {
  const registry = buildRegistry(configSchema.parse({}));
  const gemma = registry.get("gemma-300m-4bit")!;
  /** The fake; a launch of `gemma` gets `env` (e.g. a load failure or a slow load). */
  const perModel = (env: Record<string, string>) => {
    const { command } = fakeCommand();
    return (spec: { entry: ModelSource }) => {
      const launch = command(spec);
      return spec.entry.alias === gemma.alias ? { ...launch, env: { ...launch.env, ...env } } : launch;
    };
  };

  it("the old process serves while the new model loads; traffic moves only once it is ready", async () => {
    const { supervisor } = supervise({ command: perModel({ FAKE_READY_AFTER_MS: "800" }) });
    const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    await supervisor.start();
    const first = supervisor.status().pid!;
    const switching = supervisor.switchModel(gemma);
    const batch = { texts: ["x"], inputType: "query" as const, normalize: true, requestId: "during" };
    // While the new one loads, the old one answers (same pid, old model).
    await embedder.embed(batch);
    expect(supervisor.status()).toMatchObject({ state: "ready", pid: first, alias: entry.alias });
    await switching;
    expect(supervisor.status()).toMatchObject({ state: "ready", alias: gemma.alias });
    expect(supervisor.status().pid).not.toBe(first);
    await waitFor(() => !isAlive(first), "the old process to be stopped");
  });

  it("a model that cannot be loaded is AKIDB_ERR_MODEL_LOAD_FAILED with the reason; the old one serves on", async () => {
    const reason = "the model failed to load: gemma is not in the cache and downloads are off";
    const { supervisor, lines } = supervise({ command: perModel({ FAKE_HEALTH_FAILED: reason }) });
    const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    await supervisor.start();
    const first = supervisor.status().pid!;
    const error = await supervisor.switchModel(gemma).catch((e: AkidbError) => e);
    expect(error).toMatchObject({ code: "AKIDB_ERR_MODEL_LOAD_FAILED", status: 424 });
    expect(String(error)).toContain(reason);
    expect(String(error)).toContain(`${entry.alias} is still serving`);
    expect(supervisor.status()).toMatchObject({
      state: "ready",
      pid: first,
      alias: entry.alias,
      lastError: null,
    });
    const result = await embedder.embed({
      texts: ["x"],
      inputType: "query",
      normalize: true,
      requestId: "r",
    });
    expect(result.vectors).toHaveLength(1);
    const spawned = lines.filter((l) => l.msg === "inference process spawned");
    expect(spawned).toHaveLength(2);
    expect(isAlive(spawned[1]!.inference_pid as number)).toBe(false);
  });

  it("a restart whose launch fails is AKIDB_ERR_MODEL_UNAVAILABLE (503) with the reason, never a bare error", async () => {
    let launches = 0;
    const { command } = fakeCommand();
    const { supervisor } = supervise({
      command: (spec) => {
        launches++;
        const launch = command(spec);
        return launches > 1 ? { ...launch, env: { FAKE_EXIT_CODE: "2", FAKE_STDERR: "boom" } } : launch;
      },
    });
    await supervisor.start();
    const error = await supervisor.restart().catch((e: AkidbError) => e);
    expect(error).toMatchObject({ code: "AKIDB_ERR_MODEL_UNAVAILABLE", status: 503 });
    expect(String(error)).toContain("exited with code 2 before it was ready");
  });
});

describe("InferenceEmbedder over the fake inference process", () => {
  it("makes one request per batch: base64 vectors equal to the float answer, with each input's tokens", async () => {
    const { supervisor, lines } = supervise({ command: fakeCommand().command });
    const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    await supervisor.start();
    const texts = ["hello world", "a b c d e f g h i j k l m n o p q r s t", "x"];
    const result = await embedder.embed({
      texts,
      inputType: "document",
      normalize: true,
      requestId: "req-1",
    });
    const floats = await supervisor
      .client()!
      .embed({ input: texts, encoding_format: "float" }, { requestId: "req-2" });
    expect(result.vectors).toHaveLength(texts.length);
    result.vectors.forEach((vector, i) => {
      expect(Array.from(vector)).toEqual(Array.from(new Float32Array(floats.data[i]!.embedding as number[])));
    });
    // The fake counts words + 1 and cuts at its max_tokens, 16: the 20-word text is cut.
    expect(result.tokenCounts).toEqual([3, 16, 2]);
    expect(result.truncated).toEqual([false, true, false]);
    // One batch, one call: once the later req-2 is logged, the fake logged req-1 exactly once.
    const requestLines = (id: string) =>
      lines.filter((l) => l.component === "inference" && l.msg === "request" && l.request_id === id);
    await waitFor(() => requestLines("req-2").length > 0, "the fake's request log line");
    const calls = requestLines("req-1");
    expect(calls.map((l) => l.path)).toEqual(["/v1/embeddings"]);
    expect(embedder.state()).toMatchObject({ status: "ready", pid: supervisor.status().pid });
  });

  it("maps upstream errors to AkidbError codes", async () => {
    const { supervisor } = supervise({ command: fakeCommand().command });
    const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    await supervisor.start();
    const embed = (texts: string[], signal?: AbortSignal) =>
      embedder.embed({
        texts,
        inputType: "query",
        normalize: true,
        requestId: "r",
        ...(signal ? { signal } : {}),
      });
    await expect(embed(["ok", "REJECT"])).rejects.toMatchObject({
      code: "AKIDB_ERR_INFERENCE_REJECTED",
      status: 400,
      message: "input[1] is rejected",
      param: "input[0]",
    });
    await expect(embed(["UNAVAILABLE"])).rejects.toMatchObject({
      code: "AKIDB_ERR_MODEL_UNAVAILABLE",
      status: 503,
    });
    const controller = new AbortController();
    const slow = embed(["SLOW"], controller.signal);
    controller.abort();
    await expect(slow).rejects.toMatchObject({ code: "AKIDB_ERR_CANCELLED" });
    await expect(embed(["CRASH"])).rejects.toMatchObject({ code: "AKIDB_ERR_INFERENCE_FAILED" });
  });

  it("the client's own timeout and a refused token are inference failures", async () => {
    const { supervisor } = supervise({ command: fakeCommand().command });
    await supervisor.start();
    const { baseUrl } = supervisor.client()!;
    const wrongToken = new InferenceClient({ baseUrl, token: "wrong", model: "m", timeoutMs: 5000 });
    // A server that accepts requests and never answers them.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    onTestFinished(() => {
      silent.closeAllConnections();
      silent.close();
    });
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const impatient = new InferenceClient({ baseUrl: silentUrl, token: "t", model: "m", timeoutMs: 200 });
    await expect(impatient.embed({ input: ["SLOW"] }, { requestId: "r" })).rejects.toMatchObject({
      code: "AKIDB_ERR_INFERENCE_FAILED",
      message: expect.stringContaining("no answer to POST /v1/embeddings within 200 ms"),
    });
    await expect(wrongToken.embed({ input: ["x"] }, { requestId: "r" })).rejects.toMatchObject({
      code: "AKIDB_ERR_INFERENCE_FAILED",
      message: expect.stringContaining("POST /v1/embeddings answered 401: missing or wrong bearer token"),
    });
  });

  it("answers 503 while the process is not ready, and starts it on first use when not preloading", async () => {
    const { supervisor } = supervise({ command: fakeCommand().command });
    const batch = {
      texts: ["x"],
      inputType: "query" as const,
      normalize: true,
      requestId: "r",
    };
    const eager = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    await expect(eager.embed(batch)).rejects.toMatchObject({
      code: "AKIDB_ERR_MODEL_UNAVAILABLE",
      message: expect.stringContaining("the inference process is stopped"),
    });
    const lazy = new InferenceEmbedder(supervisor, { loadsOnDemand: true });
    expect(supervisor.status().state).toBe("stopped");
    const result = await lazy.embed(batch);
    expect(result.vectors[0]).toHaveLength(8);
    expect(supervisor.status().state).toBe("ready");
  });
});

describe("no orphan when the supervising process dies", () => {
  async function parentWithChild(mode: "throw" | "wait") {
    const parent = execa(
      process.execPath,
      [path.join(import.meta.dirname, "fixtures", "supervising-parent.ts"), mode],
      {
        reject: false,
        buffer: false,
      },
    );
    let output = "";
    parent.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const childPid = await waitFor(
      () => (/^\d+\n/.test(output) ? Number.parseInt(output, 10) : undefined),
      "the child pid",
    );
    return { parent, childPid };
  }

  it("an uncaught exception in the parent kills the child (execa cleanup on exit)", async () => {
    const { parent, childPid } = await parentWithChild("throw");
    expect((await parent).exitCode).toBe(1);
    await waitFor(() => !isAlive(childPid), "the child to be gone");
  });

  it("SIGKILL of the parent closes the child's stdin pipe, and the child exits", async () => {
    const { parent, childPid } = await parentWithChild("wait");
    expect(isAlive(childPid)).toBe(true);
    parent.kill("SIGKILL");
    await parent;
    await waitFor(() => !isAlive(childPid), "the child to be gone");
  });
});

describe("the Python inference command", () => {
  const spec = (mlx: Record<string, unknown> = {}) => {
    const config = configSchema.parse({ embedding: { mlx: { cache_dir: "/models", ...mlx } } });
    return { config, entry: { ...entry, revision: "entry-rev" } };
  };

  it("runs the venv's python -m akidb_inference on loopback with the config's options", () => {
    const command = pythonInferenceCommand(spec({ device: "cpu", offline: true, max_batch_tokens: 2048 }));
    expect(command.file).toBe(path.resolve(import.meta.dirname, "../../inference/.venv/bin/python"));
    expect(command.args.join(" ")).toBe(
      `-m akidb_inference --model ${entry.source} --host 127.0.0.1 --port 0 --cache-dir /models --device cpu --backend auto --onnx-precision f32 --max-batch-tokens 2048 --exit-with-stdin --revision entry-rev --offline`,
    );
    expect(pythonInferenceCommand(spec({ revision: "v2" })).args).toContain("v2");
  });

  it("passes the backend and the ONNX Runtime settings", () => {
    const config = configSchema.parse({
      embedding: { backend: "onnx", onnx: { precision: "int8", threads: 3 } },
    });
    expect(pythonInferenceCommand({ config, entry }).args.join(" ")).toContain(
      "--backend onnx --onnx-precision int8 --onnx-threads 3",
    );
  });

  it("without the Python environment is a LaunchError that says to run make setup", () => {
    const root = mkdtempSync(path.join(tmpdir(), "akidb-no-venv-"));
    expect(() => pythonInferenceCommand(spec(), root)).toThrow(LaunchError);
    expect(() => pythonInferenceCommand(spec(), root)).toThrow(
      `The Python environment is missing (no ${root}/inference/.venv/bin/python); run make setup.`,
    );
  });
});

describe("the real inference process on the qwen3-4bit fixture", () => {
  const fixture = path.resolve(import.meta.dirname, "../../.cache/fixtures/qwen3-4bit");

  it("starts, embeds like its own float output, and is restarted after SIGKILL", async () => {
    const config = testConfig();
    const fixtureEntry = buildRegistry(config).resolve(fixture);
    const { logger, lines } = captureLogger();
    const supervisor = new InferenceSupervisor({ config, entry: fixtureEntry, logger });
    supervisors.push(supervisor);
    const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand: false });
    await supervisor.start();
    // A directory outside the registry: its facts are the inference process's (the fixture's hidden size).
    expect(fixtureEntry).toEqual({ alias: fixture, source: fixture });
    expect(supervisor.status().model).toMatchObject({ id: fixture, architecture: "qwen3", dimension: 64 });
    expect(lines.some((l) => l.component === "inference" && l.msg === "listening")).toBe(true);

    const texts = ["What is the capital of France?", "Paris is the capital of France."];
    const result = await embedder.embed({
      texts,
      inputType: "query",
      normalize: true,
      requestId: "q1",
    });
    const own = await supervisor.client()!.embed({ input: texts, input_type: "query" }, { requestId: "q2" });
    result.vectors.forEach((vector, i) => {
      expect(Array.from(vector)).toEqual(Array.from(Float32Array.from(own.data[i]!.embedding as number[])));
    });
    // The fixture's Qwen3 tokenizer on query prompt + text (26 tokens each), plus <|endoftext|>.
    expect(result.tokenCounts).toEqual([27, 27]);
    expect(result.truncated).toEqual([false, false]);
    expect(result.tokenCounts.reduce((a, b) => a + b, 0)).toBe(own.usage.prompt_tokens);
    // One batch, one call: once the later q2 is logged, the process logged q1 exactly once.
    const requestLines = (id: string) =>
      lines.filter((l) => l.component === "inference" && l.msg === "request" && l.request_id === id);
    await waitFor(() => requestLines("q2").length > 0, "the inference process's request log line");
    const calls = requestLines("q1");
    expect(calls.map((l) => l.path)).toEqual(["/v1/embeddings"]);

    const first = supervisor.status().pid!;
    process.kill(first, "SIGKILL");
    await waitFor(
      () => supervisor.status().state === "ready" && supervisor.status().pid !== first,
      "recovery",
      60_000,
    );
    const again = await embedder.embed({
      texts,
      inputType: "query",
      normalize: true,
      requestId: "q3",
    });
    expect(Array.from(again.vectors[0]!)).toEqual(Array.from(result.vectors[0]!));
  });
});
