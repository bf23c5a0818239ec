import { readFileSync } from "node:fs";
import type { Hono } from "hono";
import { afterAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { type AkidbConfig, configSchema } from "../src/config/schema.ts";
import { MockEmbedder } from "../src/embedding/mock.ts";
import {
  createEmbeddingService,
  type InferenceControl,
  type ServiceOverrides,
} from "../src/embedding/service.ts";
import type { Embedder } from "../src/embedding/types.ts";
import { AkidbError, errorRegistry } from "../src/errors.ts";
import { createApp } from "../src/http/app.ts";
import type { ErrorResponse } from "../src/http/errors.ts";
import type { AppEnv } from "../src/http/middleware.ts";
import { embeddingRequestSchema } from "../src/http/schemas.ts";
import type { InferenceModel } from "../src/inference/client.ts";
import type { SupervisorStatus } from "../src/inference/supervisor.ts";
import { createMetrics } from "../src/metrics.ts";
import { buildRegistry, type ModelEntry, type ModelSource } from "../src/models/registry.ts";
import { noCollections } from "./collection-fixtures.ts";
import { GatedEmbedder, ScriptedEmbedder } from "./fakes.ts";
import { captureLogger } from "./helpers.ts";

interface Contract {
  paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: RequestBody }>>;
}
interface RequestBody {
  content: Record<string, { examples?: Record<string, { value: unknown }> }>;
}
const contract = parse(readFileSync(new URL("../../openapi.yaml", import.meta.url), "utf8")) as Contract;

const MOCK_DIMENSION = 16;

interface TestAppOptions {
  config?: Record<string, unknown>;
  /** mock mode: replaces the hash embedder. */
  embedder?: Embedder;
  /** mlx mode: the inference process and its embedder. */
  inference?: ServiceOverrides["inference"];
  closing?: () => boolean;
}

function buildApp(options: TestAppOptions = {}) {
  const config: AkidbConfig = configSchema.parse({
    embedding: { mode: "mock", mock: { dimension: MOCK_DIMENSION } },
    ...options.config,
  });
  const { logger, lines } = captureLogger();
  const metrics = createMetrics();
  const registry = buildRegistry(config);
  const embedding = createEmbeddingService(
    { config, registry, metrics, logger },
    {
      ...(options.embedder ? { embedder: options.embedder } : {}),
      ...(options.inference ? { inference: options.inference } : {}),
    },
  );
  const app = createApp({
    config,
    registry,
    embedding,
    collections: noCollections,
    metrics,
    logger,
    startedAt: new Date(),
    versions: { akidb: "test", node: process.version },
    closing: options.closing ?? (() => false),
  });
  const batcher = embedding.kind === "none" ? null : embedding.batcher;
  return { app, config, lines, metrics, embedding, batcher, registry };
}

/** Every (path, method, status) the tests saw, checked against the contract at the end. */
const observed: Array<{ path: string; method: string; status: number }> = [];

async function call(app: Hono<AppEnv>, path: string, init: RequestInit = {}): Promise<Response> {
  const response = await app.request(path, init);
  observed.push({ path, method: (init.method ?? "GET").toLowerCase(), status: response.status });
  return response;
}

function post(app: Hono<AppEnv>, path: string, body: unknown, headers: Record<string, string> = {}) {
  return call(app, path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function expectError(response: Response, status: number, code: string, param: string | null = null) {
  expect(response.status).toBe(status);
  const body = (await response.json()) as ErrorResponse;
  expect(body.error).toMatchObject({
    code,
    param,
    type: errorRegistry[code as keyof typeof errorRegistry].type,
  });
  expect(body.error.message).toMatch(registryMessage(code as keyof typeof errorRegistry));
  return body.error;
}

/**
 * The registry's message of `code` as a pattern: its text with each parameter free. A body that
 * matches it carries that code's own message, every parameter filled in.
 */
function registryMessage(code: keyof typeof errorRegistry): RegExp {
  const slot = (key: string) => `⟦${key}⟧`;
  // Every parameter renders as a marked slot, in a template and through .join alike.
  const params = new Proxy(
    {},
    { get: (_, key) => ({ toString: () => slot(String(key)), join: () => slot(String(key)) }) },
  );
  const render = errorRegistry[code].message as (p: unknown) => unknown;
  const text = String(render(params));
  const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${escaped.replace(/⟦[^⟧]*⟧/g, "[\\s\\S]+?")}$`);
}

function decodeBase64(text: string): Float32Array {
  const bytes = Buffer.from(text, "base64");
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

interface EmbeddingBody {
  object: string;
  model: string;
  data: Array<{ object: string; index: number; embedding: number[] | string }>;
  usage: { prompt_tokens: number; total_tokens: number };
}

describe("POST /v1/embeddings (mock mode)", () => {
  it("answers OpenAI-shaped vectors equal to the mock's own, with usage and a request id", async () => {
    const { app } = buildApp();
    const response = await post(app, "/v1/embeddings", { input: ["hello", "world"] });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const body = (await response.json()) as EmbeddingBody;
    const expected = await new MockEmbedder(MOCK_DIMENSION).embed({
      texts: ["hello", "world"],
      inputType: "document",
      normalize: true,
      requestId: "x",
    });
    expect(body.object).toBe("list");
    expect(body.model).toBe("mock");
    expect(body.data.map((d) => [d.object, d.index])).toEqual([
      ["embedding", 0],
      ["embedding", 1],
    ]);
    // Each value is written as the shortest decimal of its float32 (native/json.h), so it reads
    // back as that float32, not as the float32's exact double.
    expect(body.data.map((d) => (d.embedding as number[]).map(Math.fround))).toEqual(
      expected.vectors.map((v) => Array.from(v)),
    );
    // The mock's count: ceil(5 bytes / 4) + 1 = 3 tokens per word.
    expect(body.usage).toEqual({ prompt_tokens: 6, total_tokens: 6 });
  });

  it("echoes the client's x-request-id", async () => {
    const { app } = buildApp();
    const response = await post(app, "/v1/embeddings", { input: "a" }, { "x-request-id": "client-42" });
    expect(response.headers.get("x-request-id")).toBe("client-42");
  });

  it("encodes base64 as little-endian float32 of the same vector", async () => {
    const { app } = buildApp();
    const asFloat = (await (await post(app, "/v1/embeddings", { input: "same" })).json()) as EmbeddingBody;
    const asBase64 = (await (
      await post(app, "/v1/embeddings", { input: "same", encoding_format: "base64" })
    ).json()) as EmbeddingBody;
    const decoded = Array.from(decodeBase64(asBase64.data[0]!.embedding as string));
    expect(decoded).toEqual((asFloat.data[0]!.embedding as number[]).map(Math.fround));
  });

  it("honours dimensions (truncate + renormalise), input_type and normalize", async () => {
    const { app } = buildApp();
    const embed = async (body: Record<string, unknown>) =>
      ((await (await post(app, "/v1/embeddings", { input: "text", ...body })).json()) as EmbeddingBody)
        .data[0]!.embedding as number[];
    const short = await embed({ dimensions: 4 });
    expect(short).toHaveLength(4);
    expect(Math.hypot(...short)).toBeCloseTo(1, 6);
    expect(await embed({ input_type: "query" })).not.toEqual(await embed({ input_type: "document" }));
    expect(await embed({})).toEqual(await embed({ input_type: "document" }));
    expect(Math.hypot(...(await embed({ normalize: false })))).not.toBeCloseTo(1, 3);
  });

  it("accepts model omitted or naming the served model, else 404 AKIDB_ERR_MODEL_NOT_FOUND", async () => {
    const { app } = buildApp();
    expect((await post(app, "/v1/embeddings", { input: "a", model: "mock" })).status).toBe(200);
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: "a", model: "text-embedding-3-small" }),
      404,
      "AKIDB_ERR_MODEL_NOT_FOUND",
      "model",
    );
    expect(error.message).toContain("text-embedding-3-small");
    expect(error.message).toContain("mock");
  });
});

describe("POST /v1/embeddings error paths", () => {
  it("400 AKIDB_ERR_INVALID_JSON for a body that does not parse", async () => {
    const { app } = buildApp();
    await expectError(await post(app, "/v1/embeddings", '{"input": '), 400, "AKIDB_ERR_INVALID_JSON");
  });

  it("415 for a body that is not application/json", async () => {
    const { app } = buildApp();
    const response = await call(app, "/v1/embeddings", {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "hello",
    });
    const error = await expectError(response, 415, "AKIDB_ERR_UNSUPPORTED_MEDIA_TYPE");
    expect(error.message).toContain("text/plain");
  });

  it("413 AKIDB_ERR_BODY_TOO_LARGE past server.max_body_bytes, with or without a content-length", async () => {
    const { app } = buildApp({ config: { server: { max_body_bytes: 64 } } });
    const big = JSON.stringify({ input: "x".repeat(100) });
    const error = await expectError(await post(app, "/v1/embeddings", big), 413, "AKIDB_ERR_BODY_TOO_LARGE");
    expect(error.message).toContain("server.max_body_bytes (64 bytes)");
    const streamed = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const response = await call(app, "/v1/embeddings", {
      method: "POST",
      headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      body: streamed,
      duplex: "half",
    } as RequestInit);
    await expectError(response, 413, "AKIDB_ERR_BODY_TOO_LARGE");
  });

  it.each([
    [{}, "input", /input: is required/],
    [{ input: [] }, "input", /at least one item/],
    [{ input: [1, 2] }, "input", /token arrays are not supported/],
    [{ input: "a", encoding_format: "binary" }, "encoding_format", /float or base64/],
    [{ input: "a", dimensions: 0 }, "dimensions", /at least 1/],
    [{ input: "a", dimensions: 2.5 }, "dimensions", /integer/],
    [{ input: "a", input_type: "passage" }, "input_type", /query or document/],
    [{ input: "a", normalize: "yes" }, "normalize", /true or false/],
    [{ inputs: ["a"] }, "inputs", /did you mean `input`/],
    [[{ input: "a" }], "body", /JSON object/],
  ])("422 AKIDB_ERR_INVALID_REQUEST for %j naming %s", async (body, param, message) => {
    const { app } = buildApp();
    const error = await expectError(
      await post(app, "/v1/embeddings", body),
      422,
      "AKIDB_ERR_INVALID_REQUEST",
      param,
    );
    expect(error.message).toMatch(message);
  });

  it("400 AKIDB_ERR_EMPTY_INPUT naming the empty input", async () => {
    const { app } = buildApp();
    await expectError(
      await post(app, "/v1/embeddings", { input: ["a", ""] }),
      400,
      "AKIDB_ERR_EMPTY_INPUT",
      "input[1]",
    );
  });

  it("413 AKIDB_ERR_TOO_MANY_INPUTS past embedding.queue.max_inputs_per_request", async () => {
    const { app } = buildApp({
      config: { embedding: { mode: "mock", queue: { max_inputs_per_request: 3 } } },
    });
    expect((await post(app, "/v1/embeddings", { input: ["a", "b", "c"] })).status).toBe(200);
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: ["a", "b", "c", "d"] }),
      413,
      "AKIDB_ERR_TOO_MANY_INPUTS",
      "input",
    );
    expect(error.message).toContain("embedding.queue.max_inputs_per_request (3)");
  });

  it("422 for an input with a lone surrogate, in every mode as in the inference process (a valid pair is fine)", async () => {
    const { app } = buildApp();
    const body = '{"input": ["fine \\ud83d\\ude00", "broken \\ud83d"]}';
    const response = await call(app, "/v1/embeddings", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const error = await expectError(response, 422, "AKIDB_ERR_INVALID_REQUEST", "input[1]");
    expect(error.message).toContain("lone UTF-16 surrogate");
    expect((await post(app, "/v1/embeddings", { input: ["fine \ud83d\ude00"] })).status).toBe(200);
  });

  it("413 AKIDB_ERR_LIMIT_EXCEEDED for one input past embedding.queue.max_input_chars, naming it", async () => {
    const { app } = buildApp({
      config: { embedding: { mode: "mock", queue: { max_input_chars: 10 } } },
    });
    expect((await post(app, "/v1/embeddings", { input: ["a", "x".repeat(10)] })).status).toBe(200);
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: ["a", "x".repeat(11)] }),
      413,
      "AKIDB_ERR_LIMIT_EXCEEDED",
      "input[1]",
    );
    expect(error.message).toBe(
      "input[1]: 11 characters, more than embedding.queue.max_input_chars (10); split or shorten it.",
    );
  });

  it("400 AKIDB_ERR_DIMENSIONS_UNSUPPORTED above the model's dimension", async () => {
    const { app } = buildApp();
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: "a", dimensions: MOCK_DIMENSION + 1 }),
      400,
      "AKIDB_ERR_DIMENSIONS_UNSUPPORTED",
      "dimensions",
    );
    expect(error.message).toContain(`1 to ${MOCK_DIMENSION}`);
  });

  it("400 AKIDB_ERR_INPUT_TOO_LONG for truncate: false and an input over max_tokens", async () => {
    const { app } = buildApp();
    const long = "word ".repeat(8192);
    const cut = await post(app, "/v1/embeddings", { input: ["short", long] });
    // Truncated to the mock's max_tokens (8192), after "short" (ceil(5 / 4) + 1 = 3 tokens).
    expect(((await cut.json()) as EmbeddingBody).usage.prompt_tokens).toBe(3 + 8192);
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: ["short", long], truncate: false }),
      400,
      "AKIDB_ERR_INPUT_TOO_LONG",
      "input[1]",
    );
    expect(error.message).toContain("input[1] is longer than the model's max_tokens (8192 tokens");
  });

  it("400 AKIDB_ERR_TEXT_NEEDS_MODEL in user_provided mode", async () => {
    const { app } = buildApp({ config: { embedding: { mode: "user_provided" } } });
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: "a" }),
      400,
      "AKIDB_ERR_TEXT_NEEDS_MODEL",
    );
    expect(error.message).toContain("send vectors");
  });

  it("503 AKIDB_ERR_MODEL_UNAVAILABLE with the reason when the model failed to load", async () => {
    const embedder = new ScriptedEmbedder(MOCK_DIMENSION, "mock");
    embedder.current = { status: "failed", reason: "model.safetensors is truncated" };
    const { app } = buildApp({ embedder });
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: "a" }),
      503,
      "AKIDB_ERR_MODEL_UNAVAILABLE",
    );
    expect(error.message).toContain("model.safetensors is truncated");
  });

  it("503 with Retry-After when the embedder says the model is restarting", async () => {
    const embedder = new ScriptedEmbedder(MOCK_DIMENSION, "mock");
    embedder.failure = new AkidbError(
      "AKIDB_ERR_MODEL_UNAVAILABLE",
      { model: "mock", reason: "the inference process is restarting" },
      { retryAfterSeconds: 1 },
    );
    const { app } = buildApp({ embedder });
    const response = await post(app, "/v1/embeddings", { input: "a" });
    expect(response.headers.get("retry-after")).toBe("1");
    await expectError(response, 503, "AKIDB_ERR_MODEL_UNAVAILABLE");
  });

  it("502 AKIDB_ERR_INFERENCE_FAILED when the embedder fails", async () => {
    const embedder = new ScriptedEmbedder(MOCK_DIMENSION, "mock");
    embedder.failure = new Error("socket hang up");
    const { app } = buildApp({ embedder });
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: "a" }),
      502,
      "AKIDB_ERR_INFERENCE_FAILED",
    );
    expect(error.message).toContain("socket hang up");
  });

  it("429 AKIDB_ERR_OVERLOADED with Retry-After once max_pending_inputs are taken", async () => {
    const embedder = new GatedEmbedder(MOCK_DIMENSION, "mock");
    const { app } = buildApp({
      embedder,
      config: { embedding: { mode: "mock", queue: { max_pending_inputs: 2, max_inputs_per_request: 2 } } },
    });
    const held = post(app, "/v1/embeddings", { input: ["a", "b"] });
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const response = await post(app, "/v1/embeddings", { input: "c" });
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const error = await expectError(response, 429, "AKIDB_ERR_OVERLOADED");
    expect(error.message).toContain("embedding.queue.max_pending_inputs is 2");
    embedder.calls[0]!.release();
    expect((await held).status).toBe(200);
    const retried = post(app, "/v1/embeddings", { input: "c" });
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    embedder.calls[1]!.release();
    expect((await retried).status).toBe(200);
  });

  it("drops the inputs of a client that went away before they reach the embedder", async () => {
    const embedder = new GatedEmbedder(MOCK_DIMENSION, "mock");
    const { app, batcher, metrics } = buildApp({ embedder });
    const blocker = post(app, "/v1/embeddings", { input: "blocker" });
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const controller = new AbortController();
    const gone = app.request("/v1/embeddings", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: ["gone 1", "gone 2"] }),
      signal: controller.signal,
    });
    await vi.waitFor(() => expect(batcher!.queueDepth).toBe(2));
    controller.abort();
    await vi.waitFor(() => expect(batcher!.queueDepth).toBe(0));
    expect((await gone).status).toBe(400);
    embedder.calls[0]!.release();
    expect((await blocker).status).toBe(200);
    expect(embedder.calls.map((c) => c.batch.texts)).toEqual([["blocker"]]);
    expect(batcher!.pendingInputs).toBe(0);
    // A client that went away is not a failure of the server; it has a counter of its own.
    const text = await metrics.registry.metrics();
    expect(text).not.toContain('cause="cancelled"');
    expect(text).toContain("akidb_embedding_cancelled_total 1");
  });

  it("405 AKIDB_ERR_METHOD_NOT_ALLOWED with Allow for a wrong method on a known path; 404 for an unknown path", async () => {
    const { app } = buildApp();
    const wrong = await app.request("/v1/embeddings");
    expect(wrong.headers.get("allow")).toBe("POST");
    const error = await expectError(wrong, 405, "AKIDB_ERR_METHOD_NOT_ALLOWED");
    expect(error.message).toBe("/v1/embeddings does not take GET; it takes POST (see the Allow header).");
    const parameterized = await app.request("/admin/v1/models/qwen3-0.6b-4bit/load", { method: "GET" });
    expect(parameterized.status).toBe(405);
    expect(parameterized.headers.get("allow")).toBe("POST");
    expect((await app.request("/v1/nothing-here")).status).toBe(404);
  });

  it("a client that resets the connection mid-body is logged as an abort, not a 500, and not counted as a failure", async () => {
    const { app, lines, metrics } = buildApp();
    const reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"input": ["half a bo'));
        controller.error(reset);
      },
    });
    const response = await app.request("/v1/embeddings", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorResponse).error.code).toBe("AKIDB_ERR_CANCELLED");
    expect(lines.some((l) => l.msg === "unexpected error" || l.level === 50)).toBe(false);
    expect(lines.find((l) => l.msg === "request")).toMatchObject({ level: 30, code: "AKIDB_ERR_CANCELLED" });
    expect(await metrics.registry.metrics()).not.toContain("akidb_embedding_failures_total{");
  });

  it("504 AKIDB_ERR_TIMEOUT past embedding.queue.request_timeout_ms", async () => {
    const embedder = new GatedEmbedder(MOCK_DIMENSION, "mock");
    const { app } = buildApp({
      embedder,
      config: { embedding: { mode: "mock", queue: { request_timeout_ms: 50 } } },
    });
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: "a" }),
      504,
      "AKIDB_ERR_TIMEOUT",
    );
    expect(error.message).toContain("embedding.queue.request_timeout_ms (50 ms)");
  });

  it("404 AKIDB_ERR_NOT_FOUND for an unknown route", async () => {
    const { app } = buildApp();
    const error = await expectError(await call(app, "/v2/embeddings"), 404, "AKIDB_ERR_NOT_FOUND");
    expect(error.message).toContain("GET /v2/embeddings");
  });
});

describe("auth", () => {
  const config = {
    embedding: { mode: "mock" },
    server: { api_keys: ["key-1", "key-2"], admin_token: "admin-1" },
  };

  it("protects /v1 with server.api_keys (401 without or with a wrong key)", async () => {
    const { app } = buildApp({ config });
    const missing = await post(app, "/v1/embeddings", { input: "a" });
    expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await expectError(missing, 401, "AKIDB_ERR_UNAUTHORIZED")).message).toContain("server.api_keys");
    await expectError(
      await post(app, "/v1/embeddings", { input: "a" }, { authorization: "Bearer key-3" }),
      401,
      "AKIDB_ERR_INVALID_API_KEY",
    );
    await expectError(await call(app, "/v1/models"), 401, "AKIDB_ERR_UNAUTHORIZED");
    expect(
      (await post(app, "/v1/embeddings", { input: "a" }, { authorization: "Bearer key-2" })).status,
    ).toBe(200);
    expect((await call(app, "/v1/models", { headers: { authorization: "Bearer key-1" } })).status).toBe(200);
  });

  it("protects /admin/v1 with server.admin_token (401 without, 403 with another token)", async () => {
    const { app } = buildApp({ config });
    const missing = await call(app, "/admin/v1/status");
    expect((await expectError(missing, 401, "AKIDB_ERR_UNAUTHORIZED")).message).toContain(
      "server.admin_token",
    );
    await expectError(
      await call(app, "/admin/v1/status", { headers: { authorization: "Bearer key-1" } }),
      403,
      "AKIDB_ERR_FORBIDDEN",
    );
    await expectError(
      await call(app, "/admin/v1/config", { headers: { authorization: "Bearer wrong" } }),
      403,
      "AKIDB_ERR_FORBIDDEN",
    );
    const ok = await call(app, "/admin/v1/status", { headers: { authorization: "Bearer admin-1" } });
    expect(ok.status).toBe(200);
  });

  it("leaves /health and /metrics open", async () => {
    const { app } = buildApp({ config });
    expect((await call(app, "/health")).status).toBe(200);
    expect((await call(app, "/metrics")).status).toBe(200);
  });

  it("leaves /v1 and /admin open when no key or token is configured", async () => {
    const { app } = buildApp();
    expect((await post(app, "/v1/embeddings", { input: "a" })).status).toBe(200);
    expect((await call(app, "/admin/v1/status")).status).toBe(200);
  });
});

describe("CORS", () => {
  it("sends no CORS headers by default", async () => {
    const { app } = buildApp();
    const response = await call(app, "/v1/models", { headers: { origin: "http://localhost:3000" } });
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows the origins in server.cors_origins, preflight included", async () => {
    const { app } = buildApp({
      config: { embedding: { mode: "mock" }, server: { cors_origins: ["http://app.test"] } },
    });
    const preflight = await app.request("/v1/embeddings", {
      method: "OPTIONS",
      headers: {
        origin: "http://app.test",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("http://app.test");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");
    const other = await call(app, "/v1/models", { headers: { origin: "http://evil.test" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const allowed = await call(app, "/v1/models", { headers: { origin: "http://app.test" } });
    expect(allowed.headers.get("access-control-allow-origin")).toBe("http://app.test");
    expect(allowed.headers.get("access-control-expose-headers")).toContain("x-request-id");
  });
});

describe("GET /health", () => {
  it("is ok when the embedder is ready, and in user_provided mode", async () => {
    expect(await (await call(buildApp().app, "/health")).json()).toEqual({
      status: "ok",
      mode: "mock",
      embedder: { status: "ready" },
    });
    const userProvided = buildApp({ config: { embedding: { mode: "user_provided" } } }).app;
    expect(await (await call(userProvided, "/health")).json()).toEqual({
      status: "ok",
      mode: "user_provided",
      embedder: null,
    });
  });

  it("is 200 degraded with the reason when the model failed", async () => {
    const embedder = new ScriptedEmbedder(MOCK_DIMENSION, "mock");
    embedder.current = { status: "failed", reason: "no Python environment", pid: 42 };
    const response = await call(buildApp({ embedder }).app, "/health");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      status: "degraded",
      mode: "mock",
      embedder: { status: "failed", reason: "no Python environment", pid: 42 },
    });
  });

  it("is degraded while the model starts, ok for a stopped model that loads on demand", async () => {
    const embedder = new ScriptedEmbedder(MOCK_DIMENSION, "mock");
    embedder.current = { status: "starting" };
    const health = async (app: Hono<AppEnv>) =>
      ((await (await call(app, "/health")).json()) as { status: string }).status;
    expect(await health(buildApp({ embedder }).app)).toBe("degraded");
    embedder.current = { status: "stopped" };
    expect(await health(buildApp({ embedder }).app)).toBe("degraded");
    const registry = buildRegistry(configSchema.parse({}));
    const onDemand = buildApp({
      config: { embedding: { mode: "mlx", mlx: { preload: false } } },
      inference: { control: new FakeSupervisor(registry.get("qwen3-0.6b-4bit")!), embedder },
    });
    expect(await health(onDemand.app)).toBe("ok");
  });

  it("is 503 shutting_down once shutdown began", async () => {
    const response = await call(buildApp({ closing: () => true }).app, "/health");
    expect(response.status).toBe(503);
    expect(((await response.json()) as { status: string }).status).toBe("shutting_down");
  });
});

describe("GET /v1/models", () => {
  it("lists the registry (and the mock model, loaded) OpenAI-style", async () => {
    const { app, registry } = buildApp();
    const body = (await (await call(app, "/v1/models")).json()) as {
      object: string;
      data: Array<{ id: string; object: string; loaded: boolean; dimension: number }>;
    };
    expect(body.object).toBe("list");
    expect(body.data.map((m) => m.id)).toEqual(["mock", ...registry.list().map((e) => e.alias)]);
    expect(body.data.filter((m) => m.loaded).map((m) => m.id)).toEqual(["mock"]);
    expect(body.data[0]).toMatchObject({ object: "model", dimension: MOCK_DIMENSION });
  });
});

/** What the inference process reports for the qwen3-4bit fixture at `id`. */
function loadedFixture(id: string): InferenceModel {
  return {
    id,
    object: "model",
    created: 0,
    owned_by: "akidb",
    architecture: "qwen3",
    dimension: 64,
    matryoshka_dimensions: { min: 32, max: 64 },
    max_tokens: 512,
    pooling: "last_token",
    prompts: { query: "Instruct: q\nQuery:", document: "" },
    quantization: { bits: 4, group_size: 64, mode: "affine" },
    dtype: "float32",
    load_seconds: 0,
    resident_memory_bytes: 0,
    backend: "mlx",
    device: "cpu",
  };
}

/** A supervisor stand-in: switches and restarts are recorded, and wait for the test when gated. */
class FakeSupervisor implements InferenceControl {
  entry: ModelSource;
  restarts = 0;
  events: string[] = [];
  /** When set, switchModel rejects with it (a model that cannot be loaded). */
  failLoad: Error | undefined;
  /** Describes the moment of a switch, for the event log. */
  probe: (() => string) | undefined;

  constructor(entry: ModelSource) {
    this.entry = entry;
  }

  status(): SupervisorStatus {
    return {
      state: "ready",
      pid: 4242,
      port: 8081,
      restarts: this.restarts,
      lastError: null,
      lastOutput: null,
      alias: this.entry.alias,
      model: null,
      startedAt: "2026-01-01T00:00:00.000Z",
      fallback: null,
    };
  }

  async start(): Promise<void> {
    this.events.push("start");
  }

  async stop(): Promise<void> {
    this.events.push("stop");
  }

  async restart(): Promise<void> {
    this.events.push("restart");
    this.restarts += 1;
  }

  /** Loads at once; the swap runs inside `commit` as in the real supervisor. */
  async switchModel(entry: ModelEntry, commit = (swap: () => Promise<void>) => swap()): Promise<void> {
    if (this.failLoad) throw this.failLoad;
    await commit(async () => {
      this.events.push(`switch to ${entry.alias}${this.probe ? ` (${this.probe()})` : ""}`);
      this.entry = entry;
    });
  }
}

function mlxApp(config: Record<string, unknown> = {}, served?: ModelSource) {
  const embedder = new GatedEmbedder(1024, "qwen3-0.6b-4bit");
  const registry = buildRegistry(configSchema.parse({}));
  const supervisor = new FakeSupervisor(served ?? registry.get("qwen3-0.6b-4bit")!);
  const built = buildApp({
    config: { embedding: { mode: "mlx" }, ...config },
    inference: { control: supervisor, embedder },
  });
  return { ...built, supervisor, embedder };
}

describe("mlx mode with a supervised model", () => {
  it("accepts the entry's alias or source as model, and checks dimensions against its Matryoshka sizes", async () => {
    const { app, embedder } = mlxApp();
    const byAlias = post(app, "/v1/embeddings", { input: "a", model: "qwen3-0.6b-4bit", dimensions: 32 });
    const bySource = post(app, "/v1/embeddings", {
      input: "b",
      model: "mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ",
    });
    await vi.waitFor(() => expect(embedder.calls.length).toBeGreaterThan(0));
    embedder.calls[0]!.release();
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    embedder.calls[1]!.release();
    expect((await byAlias).status).toBe(200);
    expect((await bySource).status).toBe(200);
    const error = await expectError(
      await post(app, "/v1/embeddings", { input: "a", dimensions: 16 }),
      400,
      "AKIDB_ERR_DIMENSIONS_UNSUPPORTED",
      "dimensions",
    );
    expect(error.message).toContain("allowed: 32 to 1024");
  });

  it("loads another model once accepted requests finish; later requests wait for it", async () => {
    const { app, embedder, supervisor, batcher } = mlxApp();
    supervisor.probe = () => `${embedder.calls.length} batches sent, ${embedder.inFlight} in flight`;
    const before = post(app, "/v1/embeddings", { input: "before" });
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const load = call(app, "/admin/v1/models/gemma-300m-4bit/load", { method: "POST" });
    await vi.waitFor(() => expect(batcher!.draining).toBe(true));
    const after = post(app, "/v1/embeddings", { input: "after" });
    await vi.waitFor(() => expect(batcher!.queueDepth).toBe(1));
    expect(supervisor.events).toEqual([]);
    embedder.calls[0]!.release();
    const loaded = await load;
    expect(loaded.status).toBe(200);
    expect(await loaded.json()).toMatchObject({ alias: "gemma-300m-4bit", loaded: true, dimension: 768 });
    expect((await before).status).toBe(200);
    expect(supervisor.events).toEqual(["switch to gemma-300m-4bit (1 batches sent, 0 in flight)"]);

    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    expect(embedder.calls[1]!.batch.texts).toEqual(["after"]);
    embedder.calls[1]!.release();
    expect((await after).status).toBe(200);
    embedder.open = true;
    expect((await post(app, "/v1/embeddings", { input: "a", model: "gemma-300m-4bit" })).status).toBe(200);
    await expectError(
      await post(app, "/v1/embeddings", { input: "a", model: "qwen3-0.6b-4bit" }),
      404,
      "AKIDB_ERR_MODEL_NOT_FOUND",
      "model",
    );
    const status = (await (await call(app, "/admin/v1/status")).json()) as { model: { alias: string } };
    expect(status.model.alias).toBe("gemma-300m-4bit");
  });

  it("a failed load is 424 AKIDB_ERR_MODEL_LOAD_FAILED with the reason, and the old model serves on", async () => {
    const { app, supervisor, embedder } = mlxApp();
    embedder.open = true;
    supervisor.failLoad = new AkidbError("AKIDB_ERR_MODEL_LOAD_FAILED", {
      model: "gemma-300m-4bit",
      reason: "not in the cache and offline",
      serving: "qwen3-0.6b-4bit is still serving",
    });
    const error = await expectError(
      await call(app, "/admin/v1/models/gemma-300m-4bit/load", { method: "POST" }),
      424,
      "AKIDB_ERR_MODEL_LOAD_FAILED",
    );
    expect(error.message).toContain("not in the cache and offline");
    expect(error.message).toContain("qwen3-0.6b-4bit is still serving");
    expect((await post(app, "/v1/embeddings", { input: "still served" })).status).toBe(200);
  });

  it("every model /admin/v1/models lists loads by the name it is listed under (a configured directory too)", async () => {
    const dir = new URL("../../.cache/fixtures/qwen3-4bit", import.meta.url).pathname;
    const served = buildRegistry(configSchema.parse({})).resolve(dir);
    const { app, supervisor, embedder } = mlxApp({ embedding: { mode: "mlx", mlx: { model: dir } } }, served);
    // Outside the registry: unlisted, and no model in the status, until the inference process reports it.
    const before = (await (await call(app, "/admin/v1/models")).json()) as { data: Array<{ alias: string }> };
    expect(before.data.map((e) => e.alias)).not.toContain(dir);
    expect(((await (await call(app, "/admin/v1/status")).json()) as { model: unknown }).model).toBeNull();
    await expectError(await post(app, "/v1/embeddings", { input: "a" }), 503, "AKIDB_ERR_MODEL_UNAVAILABLE");
    embedder.current = { status: "ready", model: loadedFixture(dir) };
    const list = (await (await call(app, "/admin/v1/models")).json()) as {
      data: Array<{ alias: string; dimension: number; architecture: string; matryoshka_dimensions: unknown }>;
    };
    expect(list.data.find((e) => e.alias === dir)).toMatchObject({
      architecture: "qwen3",
      dimension: 64,
      matryoshka_dimensions: { min: 32, max: 64 },
    });
    // In listing order, so the directory model is loaded again after others replaced it.
    for (const { alias } of [...list.data, list.data[0]!]) {
      const response = await call(app, `/admin/v1/models/${encodeURIComponent(alias)}/load`, {
        method: "POST",
      });
      expect(response.status, alias).toBe(200);
    }
    expect(supervisor.events).toHaveLength(list.data.length + 1);
    expect(supervisor.entry.alias).toBe(dir);
  });

  it("404 for loading an alias the registry does not have", async () => {
    const { app, supervisor } = mlxApp();
    const error = await expectError(
      await call(app, "/admin/v1/models/no-such-model/load", { method: "POST" }),
      404,
      "AKIDB_ERR_MODEL_NOT_FOUND",
      "alias",
    );
    expect(error.message).toContain("qwen3-0.6b-4bit");
    expect(supervisor.events).toEqual([]);
  });

  it("restarts the inference process and reports its status", async () => {
    const { app, supervisor } = mlxApp();
    const response = await call(app, "/admin/v1/inference/restart", { method: "POST" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      state: "ready",
      pid: 4242,
      port: 8081,
      restarts: 1,
      last_error: null,
      last_output: null,
      started_at: "2026-01-01T00:00:00.000Z",
      model: "qwen3-0.6b-4bit",
      backend: null,
      device: null,
    });
    expect(supervisor.events).toEqual(["restart"]);
  });
});

describe("admin", () => {
  it("status reports mode, model, inference, queue, uptime and versions", async () => {
    const { app } = mlxApp();
    const status = (await (await call(app, "/admin/v1/status")).json()) as Record<string, unknown>;
    expect(status).toMatchObject({
      mode: "mlx",
      model: { alias: "qwen3-0.6b-4bit", loaded: true },
      embedder: { status: "ready" },
      inference: { state: "ready", pid: 4242 },
      queue: { depth: 0, in_flight: 0, pending_inputs: 0, max_pending_inputs: 4096, draining: false },
      versions: { akidb: "test", node: process.version },
    });
    expect(status.uptime_seconds).toBeGreaterThanOrEqual(0);
  });

  it("config is the effective config with secrets redacted", async () => {
    const { app } = buildApp({
      config: {
        embedding: { mode: "mock" },
        server: { api_keys: ["secret-key"], admin_token: "secret-admin" },
      },
    });
    const response = await call(app, "/admin/v1/config", {
      headers: { authorization: "Bearer secret-admin" },
    });
    const text = await response.text();
    expect(text).not.toContain("secret-key");
    expect(text).not.toContain("secret-admin");
    const config = JSON.parse(text) as AkidbConfig;
    expect(config.server.api_keys).toEqual(["<redacted>"]);
    expect(config.server.admin_token).toBe("<redacted>");
    expect(config.embedding.mode).toBe("mock");
  });

  it("models lists the registry with the loaded flag", async () => {
    const { app } = mlxApp();
    const body = (await (await call(app, "/admin/v1/models")).json()) as {
      data: Array<{ alias: string; loaded: boolean; builtin: boolean }>;
      loaded: unknown;
    };
    expect(body.data.map((e) => [e.alias, e.loaded])).toEqual([
      ["qwen3-0.6b-4bit", true],
      ["gemma-300m-4bit", false],
      ["minilm-l6-v2", false],
    ]);
    expect(body.loaded).toBeNull();
  });

  it("409 AKIDB_ERR_MODE_CONFLICT for load and restart outside mlx mode", async () => {
    const { app } = buildApp();
    const load = await call(app, "/admin/v1/models/gemma-300m-4bit/load", { method: "POST" });
    expect((await expectError(load, 409, "AKIDB_ERR_MODE_CONFLICT")).message).toContain(
      "embedding.mode is mock",
    );
    await expectError(
      await call(app, "/admin/v1/inference/restart", { method: "POST" }),
      409,
      "AKIDB_ERR_MODE_CONFLICT",
    );
  });
});

describe("error bodies", () => {
  it("are checked against the registry's own message of their code (registryMessage)", () => {
    const tooMany = registryMessage("AKIDB_ERR_TOO_MANY_INPUTS");
    expect(new AkidbError("AKIDB_ERR_TOO_MANY_INPUTS", { count: 3, limit: 2 }).message).toMatch(tooMany);
    expect(new AkidbError("AKIDB_ERR_EMPTY_INPUT", { param: "input" }).message).not.toMatch(tooMany);
    expect("input has 3 items.").not.toMatch(tooMany);
    const notFound = registryMessage("AKIDB_ERR_MODEL_NOT_FOUND");
    expect(
      new AkidbError("AKIDB_ERR_MODEL_NOT_FOUND", { model: "x", available: ["a", "b"] }).message,
    ).toMatch(notFound);
  });
});

describe("request log", () => {
  it("writes one JSON line per request with reqId, method, path, status and ms", async () => {
    const { app, lines } = buildApp();
    await post(app, "/v1/embeddings", { input: "a" }, { "x-request-id": "log-1" });
    await post(app, "/v1/embeddings", { input: "a", model: "nope" }, { "x-request-id": "log-2" });
    const requests = lines.filter((line) => line.msg === "request");
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({
      reqId: "log-1",
      method: "POST",
      path: "/v1/embeddings",
      status: 200,
    });
    expect(typeof requests[0]!.ms).toBe("number");
    expect(requests[1]).toMatchObject({ reqId: "log-2", status: 404, code: "AKIDB_ERR_MODEL_NOT_FOUND" });
  });
});

describe("the contract (openapi.yaml)", () => {
  const templated = (path: string) => new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`);

  it("documents every route the app serves", () => {
    const { app } = buildApp();
    const routes = app.routes.filter((route) => route.method !== "ALL");
    expect(routes.length).toBeGreaterThan(5);
    for (const route of routes) {
      const path = route.path.replace(/:(\w+)/g, "{$1}");
      expect(contract.paths[path], `${path} in openapi.yaml`).toBeDefined();
      expect(contract.paths[path]![route.method.toLowerCase()], `${route.method} ${path}`).toBeDefined();
    }
  });

  it("has examples the request schema accepts", () => {
    const examples =
      contract.paths["/v1/embeddings"]!.post!.requestBody!.content["application/json"]!.examples!;
    expect(Object.keys(examples).length).toBeGreaterThan(0);
    for (const [name, example] of Object.entries(examples)) {
      expect(embeddingRequestSchema.safeParse(example.value).success, name).toBe(true);
    }
  });

  afterAll(() => {
    // Runs after every test in this file: each status a route answered must be documented.
    const undocumented = observed.filter(({ path, method, status }) => {
      const key = Object.keys(contract.paths).find(
        (p) => !p.startsWith("/inference") && templated(p).test(path),
      );
      if (!key) return status !== 404;
      return !contract.paths[key]![method]?.responses[String(status)];
    });
    expect(undocumented).toEqual([]);
    expect(observed.length).toBeGreaterThan(50);
  });
});
