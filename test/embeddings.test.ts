// End to end: the real `bin/akidb serve` on a real port, supervising the real inference process
// on the tiny qwen3-4bit fixture (`make fixtures`), checked against a second inference process
// the test runs itself, and against the official openai clients for Node and Python.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAlive, waitFor } from "../control-plane/test/helpers.ts";
import { watchContract } from "./contract.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const FIXTURE = path.join(ROOT, ".cache/fixtures/qwen3-4bit");
const PYTHON = path.join(ROOT, "inference/.venv/bin/python");
const API_KEY = "e2e-key";
const ADMIN_TOKEN = "e2e-admin";
const INFERENCE_TOKEN = "e2e-inference";
const MAX_BODY_BYTES = 65_536;

interface Process {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Starts a process whose stdout and stderr are JSON lines, kept parsed. */
function start(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Process {
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Record<string, unknown>[] = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on("line", (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, lines, exited };
}

async function stop(proc: Process | undefined): Promise<number | null | undefined> {
  if (!proc || proc.child.exitCode !== null) return proc?.child.exitCode;
  proc.child.kill("SIGTERM");
  return proc.exited;
}

let workDir: string;
let server: Process;
let inference: Process;
let url: string;
let inferenceUrl: string;
/** The served model's name: its local directory, as the registry resolves a path. */
let model: string;
/** Every response from either process is checked against openapi.yaml. */
const contract = watchContract(() => url);
const inferenceContract = watchContract(() => inferenceUrl, "/inference");

beforeAll(async () => {
  workDir = mkdtempSync(path.join(tmpdir(), "akidb-e2e-"));
  const configPath = path.join(workDir, "akidb.yaml");
  writeFileSync(
    configPath,
    [
      "embedding:",
      "  mode: mlx",
      "  mlx:",
      `    model: ${FIXTURE}`,
      "    offline: true",
      `    cache_dir: ${path.join(workDir, "cache")}`,
      "    batch_size: 16",
      "server:",
      "  port: 0",
      `  api_keys: [${API_KEY}]`,
      `  admin_token: ${ADMIN_TOKEN}`,
      `  max_body_bytes: ${MAX_BODY_BYTES}`,
      "storage:",
      `  data_dir: ${path.join(workDir, "data")}`,
      "",
    ].join("\n"),
  );
  server = start(path.join(ROOT, "bin/akidb"), ["serve", "--config", configPath]);
  inference = start(PYTHON, ["-m", "akidb_inference", "--model", FIXTURE, "--port", "0", "--offline"], {
    AKIDB_INFERENCE_TOKEN: INFERENCE_TOKEN,
  });
  url = await waitFor(
    () => server.lines.find((line) => line.msg === "listening")?.url as string | undefined,
    "the server's listening line",
    60_000,
  );
  const port = await waitFor(
    () => inference.lines.find((line) => line.msg === "listening")?.port as number | undefined,
    "the inference process's listening line",
    60_000,
  );
  inferenceUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => ((await (await fetch(`${url}/health`)).json()) as { status: string }).status === "ok",
    "the server's /health to say ok",
    120_000,
  );
  await waitFor(
    async () => (await fetch(`${inferenceUrl}/health`)).ok,
    "the inference process to be ready",
    120_000,
  );
  const status = (await (
    await fetch(`${url}/admin/v1/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  ).json()) as { model: { alias: string } };
  model = status.model.alias;
});

afterAll(async () => {
  const [serverExit] = await Promise.all([stop(server), stop(inference)]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  expect(serverExit).toBe(0);
  expect([...(await contract.violations()), ...(await inferenceContract.violations())]).toEqual([]);
  expect(contract.checked).toBeGreaterThan(0);
  expect(inferenceContract.checked).toBeGreaterThan(0);
});

interface Options {
  input_type?: "query" | "document";
  dimensions?: number;
}

/** One unbatched call to the test's own inference process. */
async function direct(text: string, options: Options = {}): Promise<number[]> {
  const response = await fetch(`${inferenceUrl}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${INFERENCE_TOKEN}` },
    body: JSON.stringify({ input: [text], ...options }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { data: Array<{ embedding: number[] }> };
  return body.data[0]!.embedding;
}

function embed(body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}`, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
}

interface Status {
  queue: { pending_inputs: number };
  inference: { pid: number };
}

async function status(): Promise<Status> {
  const response = await fetch(`${url}/admin/v1/status`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  return (await response.json()) as Status;
}

/** Work that keeps the fixture model busy for a second or two (30 batches of 16 short inputs). */
const BUSY = Array.from({ length: 480 }, (_, i) => `busy ${i} ${"word ".repeat(5)}`);

async function vectors(body: Record<string, unknown>): Promise<number[][]> {
  const response = await embed(body);
  expect(response.status).toBe(200);
  return ((await response.json()) as { data: Array<{ embedding: number[] }> }).data.map((d) => d.embedding);
}

function cosine(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

/** Texts of very different lengths, so batches pad. */
const TEXTS = Array.from({ length: 12 }, (_, i) =>
  `${["edge", "vector", "database", "embedding", "batch", "query"][i % 6]} `
    .repeat(1 + ((i * 7) % 23))
    .trim(),
);

async function metric(series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe("the server against the inference process", () => {
  it("gives batched requests the inference process's own unbatched vectors", async () => {
    const singles = await Promise.all(TEXTS.map((text) => direct(text)));
    const concurrent = await Promise.all(TEXTS.map((text) => vectors({ input: text })));
    const together = await vectors({ input: TEXTS });
    TEXTS.forEach((_, i) => {
      expect(cosine(concurrent[i]![0]!, singles[i]!)).toBeGreaterThanOrEqual(0.9999);
      expect(cosine(together[i]!, singles[i]!)).toBeGreaterThanOrEqual(0.9999);
    });
  });

  it("passes input_type and dimensions through", async () => {
    const options: Options = { input_type: "query", dimensions: 32 };
    const [served] = await vectors({ input: TEXTS[3], ...options });
    const own = await direct(TEXTS[3]!, options);
    expect(served).toHaveLength(32);
    expect(cosine(served!, own)).toBeGreaterThanOrEqual(0.9999);
    expect(cosine(served!, (await vectors({ input: TEXTS[3], dimensions: 32 }))[0]!)).toBeLessThan(0.9999);
  });

  it("batches 60 concurrent requests (seen in /metrics) and answers each with its own vectors", async () => {
    const batchesBefore = await metric("akidb_embedding_batch_size_count");
    const inputsBefore = await metric("akidb_embedding_batch_size_sum");
    const singlesBefore = await metric('akidb_embedding_batch_size_bucket{le="1"}');
    const requests = Array.from({ length: 60 }, (_, i) => TEXTS[i % TEXTS.length]!);
    const answers = await Promise.all(requests.map((text) => vectors({ input: text })));
    const batches = (await metric("akidb_embedding_batch_size_count")) - batchesBefore;
    const inputs = (await metric("akidb_embedding_batch_size_sum")) - inputsBefore;
    const singles = (await metric('akidb_embedding_batch_size_bucket{le="1"}')) - singlesBefore;
    expect(inputs).toBe(60);
    expect(batches).toBeLessThan(60);
    expect(singles).toBeLessThan(batches);
    const own = await Promise.all(TEXTS.map((text) => direct(text)));
    answers.forEach((answer, i) => {
      expect(cosine(answer[0]!, own[i % TEXTS.length]!)).toBeGreaterThanOrEqual(0.9999);
    });
    expect(await metric('akidb_embedding_requests_total{status="200"}')).toBeGreaterThanOrEqual(60);
    expect(await metric("akidb_embedding_tokens_total")).toBeGreaterThan(60);
  });
});

describe("clients that go away", () => {
  it("never sends the inputs of a client that disconnected while they waited", async () => {
    const sentBefore = await metric("akidb_embedding_batch_size_sum");
    const cancelledBefore = await metric("akidb_embedding_cancelled_total");
    // The inference process is paused, so the busy request's first batches stay in flight and every
    // input after them waits in the queue, however fast the machine and the batcher are; well within
    // the liveness bound, so the supervisor leaves it alone.
    const { pid } = (await status()).inference;
    process.kill(pid, "SIGSTOP");
    let busy: Promise<number[][]>;
    let batchesWhileWaiting: number;
    const goneInputs = Array.from({ length: 40 }, (_, i) => `never sent ${i}`);
    try {
      busy = vectors({ input: BUSY });
      await waitFor(
        async () => (await status()).queue.pending_inputs === BUSY.length,
        "the busy request to queue",
      );
      const batchesBefore = await metric("akidb_embedding_batch_size_count");
      const controller = new AbortController();
      const gone = embed({ input: goneInputs }, {}, controller.signal).catch((e: unknown) => e);
      await waitFor(
        async () => (await status()).queue.pending_inputs >= BUSY.length + goneInputs.length,
        "the second request to queue",
      );
      controller.abort();
      expect(await gone).toBeInstanceOf(Error);
      await waitFor(
        async () => (await metric("akidb_embedding_cancelled_total")) === cancelledBefore + 1,
        "the cancellation to be counted",
      );
      batchesWhileWaiting = (await metric("akidb_embedding_batch_size_count")) - batchesBefore;
    } finally {
      process.kill(pid, "SIGCONT");
    }
    expect(await busy).toHaveLength(BUSY.length);
    // Each batch takes the oldest queued input of every waiting request first (fairness), and the
    // busy request still had inputs queued, so each batch dispatched before the cancellation took
    // at most one of the gone request's inputs; none went out after it.
    const sentOfGone = (await metric("akidb_embedding_batch_size_sum")) - sentBefore - BUSY.length;
    expect(sentOfGone).toBeGreaterThanOrEqual(0);
    expect(sentOfGone).toBeLessThanOrEqual(Math.min(batchesWhileWaiting, goneInputs.length - 1));
  });
});

describe("official OpenAI clients, unchanged", () => {
  it("works with the openai npm client (base64 by default)", async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: API_KEY, maxRetries: 0 });
    const response = await client.embeddings.create({ model, input: TEXTS.slice(0, 3) });
    expect(response.data).toHaveLength(3);
    for (const [i, item] of response.data.entries()) {
      expect(item.index).toBe(i);
      expect(cosine(item.embedding, await direct(TEXTS[i]!))).toBeGreaterThanOrEqual(0.9999);
    }
    // The fixture's Qwen3 tokenizer, document prompt empty: 1, 8 and 15 word tokens, each + <|endoftext|>.
    expect(response.usage).toEqual({ prompt_tokens: 2 + 9 + 16, total_tokens: 2 + 9 + 16 });
    const short = await client.embeddings.create({
      model,
      input: "x",
      dimensions: 32,
      encoding_format: "float",
    });
    expect(short.data[0]!.embedding).toHaveLength(32);
    await expect(
      client.embeddings.create({ model: "text-embedding-3-small", input: "x" }),
    ).rejects.toMatchObject({
      status: 404,
      code: "AKIDB_ERR_MODEL_NOT_FOUND",
      param: "model",
    });
    const models = await client.models.list();
    expect(models.data.find((m) => m.id === model)).toMatchObject({ object: "model" });
  });

  it("works with the openai Python client (base64 by default)", async () => {
    const script = [
      "import json, sys, openai",
      "client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)",
      "response = client.embeddings.create(model=sys.argv[3], input=json.loads(sys.argv[4]))",
      "try:",
      "    client.embeddings.create(model='nope', input='x')",
      "    error = None",
      "except openai.NotFoundError as e:",
      "    error = {'status': e.status_code, 'code': e.code}",
      "print(json.dumps({'embeddings': [d.embedding for d in response.data], 'error': error}))",
    ].join("\n");
    const texts = TEXTS.slice(4, 7);
    const { stdout } = await promisify(execFile)(
      PYTHON,
      ["-c", script, `${url}/v1`, API_KEY, model, JSON.stringify(texts)],
      { timeout: 60_000 },
    );
    const result = JSON.parse(stdout) as { embeddings: number[][]; error: { status: number; code: string } };
    expect(result.embeddings).toHaveLength(3);
    for (const [i, embedding] of result.embeddings.entries()) {
      expect(cosine(embedding, await direct(texts[i]!))).toBeGreaterThanOrEqual(0.9999);
    }
    expect(result.error).toEqual({ status: 404, code: "AKIDB_ERR_MODEL_NOT_FOUND" });
  });
});

describe("error paths over the wire", () => {
  async function expectError(response: Response, status: number, code: string, param: string | null = null) {
    expect(response.status).toBe(status);
    const body = (await response.json()) as {
      error: { code: string; param: string | null; message: string };
    };
    expect(body.error.code).toBe(code);
    expect(body.error.param).toBe(param);
    return body.error.message;
  }

  it("answers each documented status with its code", async () => {
    await expectError(await embed({ input: "a" }, { authorization: "" }), 401, "AKIDB_ERR_UNAUTHORIZED");
    await expectError(
      await embed({ input: "a" }, { authorization: "Bearer nope" }),
      401,
      "AKIDB_ERR_INVALID_API_KEY",
    );
    await expectError(await embed("{not json"), 400, "AKIDB_ERR_INVALID_JSON");
    await expectError(await embed({ input: ["a", ""] }), 400, "AKIDB_ERR_EMPTY_INPUT", "input[1]");
    await expectError(await embed({ input: [1] }), 422, "AKIDB_ERR_INVALID_REQUEST", "input");
    await expectError(
      await embed({ input: "a" }, { "content-type": "text/plain" }),
      415,
      "AKIDB_ERR_UNSUPPORTED_MEDIA_TYPE",
    );
    const big = await embed({ input: "x".repeat(MAX_BODY_BYTES) });
    expect(await expectError(big, 413, "AKIDB_ERR_BODY_TOO_LARGE")).toContain(`${MAX_BODY_BYTES} bytes`);
    const dims = await embed({ input: "a", dimensions: 16 });
    expect(await expectError(dims, 400, "AKIDB_ERR_DIMENSIONS_UNSUPPORTED", "dimensions")).toContain(
      "32 to 64",
    );
    const long = await embed({ input: ["short", "word ".repeat(2000)], truncate: false });
    expect(await expectError(long, 400, "AKIDB_ERR_INPUT_TOO_LONG", "input[1]")).toContain(
      "max_tokens (512 tokens",
    );
    expect((await embed({ input: ["short", "word ".repeat(2000)] })).status).toBe(200);
    await expectError(
      await fetch(`${url}/v1/nothing`, { headers: { authorization: `Bearer ${API_KEY}` } }),
      404,
      "AKIDB_ERR_NOT_FOUND",
    );
    await expectError(await fetch(`${url}/admin/v1/status`), 401, "AKIDB_ERR_UNAUTHORIZED");
    await expectError(
      await fetch(`${url}/admin/v1/status`, { headers: { authorization: `Bearer ${API_KEY}` } }),
      403,
      "AKIDB_ERR_FORBIDDEN",
    );
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
  });

  it("logs every request as a JSON line with its request id, also in the inference process's lines", async () => {
    expect((await embed({ input: "traced" }, { "x-request-id": "e2e-trace-1" })).status).toBe(200);
    await waitFor(
      () => server.lines.find((line) => line.msg === "request" && line.reqId === "e2e-trace-1"),
      "the request log line",
    );
    const line = server.lines.find((l) => l.msg === "request" && l.reqId === "e2e-trace-1")!;
    expect(line).toMatchObject({ method: "POST", path: "/v1/embeddings", status: 200 });
    await waitFor(
      () => server.lines.find((l) => l.component === "inference" && l.request_id === "e2e-trace-1"),
      "an inference log line with the request id",
    );
    // One batch, one call to the inference process: once a later request is in its log (lines
    // arrive in order), the first one's requests are all there.
    expect((await embed({ input: "later" }, { "x-request-id": "e2e-trace-2" })).status).toBe(200);
    const inferenceRequests = (id: string) =>
      server.lines.filter((l) => l.component === "inference" && l.msg === "request" && l.request_id === id);
    await waitFor(
      () => inferenceRequests("e2e-trace-2").length > 0,
      "the later request in the inference log",
    );
    expect(inferenceRequests("e2e-trace-1").map((l) => l.path)).toEqual(["/v1/embeddings"]);
  });
});

describe("shutdown", () => {
  it("on SIGTERM finishes the request in flight, then exits 0 and stops the inference process", async () => {
    const { inference: child } = await status();
    const inFlight = vectors({ input: BUSY });
    await waitFor(async () => (await status()).queue.pending_inputs > 0, "the request to be accepted");
    server.child.kill("SIGTERM");
    expect(await inFlight).toHaveLength(BUSY.length);
    expect(await server.exited).toBe(0);
    expect(isAlive(child.pid)).toBe(false);
  });
});
