// SDK unit tests: the real client against msw handlers (retries, timeouts, aborts, error mapping,
// decoding), and `@ts-expect-error` for calls the contract's types must reject.
import { createServer } from "node:net";
import { delay, HttpResponse, http, passthrough } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AkiDB, AkiDBError, createAkiDB, decodeBase64Vector, encodeBase64Vector } from "../src/index.ts";

const BASE = "http://akidb.test";
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledFrame: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

/** A client whose retries wait 1 ms (backoff), so retry tests take no time. */
function client(overrides: Partial<Parameters<typeof createAkiDB>[0]> = {}): AkiDB {
  return createAkiDB({
    baseUrl: BASE,
    apiKey: "key",
    adminToken: "admin",
    retry: { baseDelayMs: 1 },
    ...overrides,
  });
}

function errorBody(message: string, type: string, code: string | null, param: string | null) {
  return { error: { message, type, code, param } };
}

function base64Of(values: number[]): string {
  const bytes = new Uint8Array(new Float32Array(values).buffer);
  return btoa(String.fromCharCode(...bytes));
}

const MODEL_LIST = { object: "list", data: [] };

describe("embeddings.create", () => {
  it("asks for base64 by default and decodes it to Float32Array, exactly", async () => {
    const values = [0.1, -2.5, 3.0e-8, 1 / 3];
    let sent: unknown;
    let authorization: string | null = null;
    server.use(
      http.post(`${BASE}/v1/embeddings`, async ({ request }) => {
        sent = await request.json();
        authorization = request.headers.get("authorization");
        return HttpResponse.json({
          object: "list",
          data: [{ object: "embedding", index: 0, embedding: base64Of(values) }],
          model: "m",
          usage: { prompt_tokens: 3, total_tokens: 3 },
        });
      }),
    );
    const result = await client().embeddings.create({ input: "hello", input_type: "query" });
    expect(sent).toEqual({ input: "hello", input_type: "query", encoding_format: "base64" });
    expect(authorization).toBe("Bearer key");
    expect(result.data[0]!.embedding).toBeInstanceOf(Float32Array);
    expect(Array.from(result.data[0]!.embedding)).toEqual(Array.from(new Float32Array(values)));
    expect(result.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
  });

  it("turns float arrays into Float32Array too", async () => {
    server.use(
      http.post(`${BASE}/v1/embeddings`, () =>
        HttpResponse.json({
          object: "list",
          data: [
            { object: "embedding", index: 0, embedding: [0.5, -0.25] },
            { object: "embedding", index: 1, embedding: [1, 0] },
          ],
          model: "m",
          usage: { prompt_tokens: 2, total_tokens: 2 },
        }),
      ),
    );
    const result = await client().embeddings.create({ input: ["a", "b"], encoding_format: "float" });
    expect(result.data.map((item) => Array.from(item.embedding))).toEqual([
      [0.5, -0.25],
      [1, 0],
    ]);
  });

  it("rejects a base64 vector whose length is not whole float32s", () => {
    expect(() => decodeBase64Vector(btoa("abc"))).toThrow(/3 bytes/);
  });
});

describe("errors", () => {
  it("maps the contract's error body to AkiDBError, without retrying a 400", async () => {
    let attempts = 0;
    server.use(
      http.post(`${BASE}/v1/embeddings`, () => {
        attempts++;
        return HttpResponse.json(
          errorBody("input[1] is empty", "invalid_request_error", "AKIDB_ERR_EMPTY_INPUT", "input[1]"),
          { status: 400, headers: { "x-request-id": "req-7" } },
        );
      }),
    );
    const error = await client()
      .embeddings.create({ input: ["a", "b"] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AkiDBError);
    expect(error).toMatchObject({
      status: 400,
      type: "invalid_request_error",
      code: "AKIDB_ERR_EMPTY_INPUT",
      message: "input[1] is empty",
      param: "input[1]",
      requestId: "req-7",
    });
    expect(attempts).toBe(1);
  });

  it("names the status when the body is not the contract's error shape", async () => {
    server.use(
      http.get(
        `${BASE}/admin/v1/status`,
        () => new HttpResponse("<html>bad gateway</html>", { status: 502 }),
      ),
    );
    const error = await client()
      .admin.status()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 502, type: "api_error", code: null, param: null });
    expect((error as AkiDBError).message).toContain("502");
    expect((error as AkiDBError).message).toContain("bad gateway");
  });

  it("sends the caller's request id", async () => {
    let requestId: string | null = null;
    server.use(
      http.get(`${BASE}/v1/models`, ({ request }) => {
        requestId = request.headers.get("x-request-id");
        return HttpResponse.json(MODEL_LIST);
      }),
    );
    await client().models.list({ requestId: "trace-42" });
    expect(requestId).toBe("trace-42");
  });

  it("sends the admin token to /admin/v1", async () => {
    let authorization: string | null = null;
    server.use(
      http.get(`${BASE}/admin/v1/models`, ({ request }) => {
        authorization = request.headers.get("authorization");
        return HttpResponse.json({ object: "list", data: [], loaded: null });
      }),
    );
    await client().admin.models();
    expect(authorization).toBe("Bearer admin");
  });
});

describe("retries", () => {
  it("retries a 429 after the Retry-After it names, then succeeds", async () => {
    const times: number[] = [];
    server.use(
      http.get(`${BASE}/v1/models`, () => {
        times.push(performance.now());
        if (times.length === 1) {
          return HttpResponse.json(errorBody("busy", "overloaded", "AKIDB_ERR_OVERLOADED", null), {
            status: 429,
            headers: { "Retry-After": "1" },
          });
        }
        return HttpResponse.json(MODEL_LIST);
      }),
    );
    await expect(client().models.list()).resolves.toEqual(MODEL_LIST);
    expect(times).toHaveLength(2);
    // Backoff alone would have waited ~1 ms; the header asked for a second.
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
  });

  it("retries 503 on a POST (refused before any work) up to the limit, then throws the last error", async () => {
    let attempts = 0;
    server.use(
      http.post(`${BASE}/v1/embeddings`, () => {
        attempts++;
        return HttpResponse.json(
          errorBody("model loading", "server_error", "AKIDB_ERR_MODEL_UNAVAILABLE", null),
          {
            status: 503,
          },
        );
      }),
    );
    const error = await client({ retry: { limit: 3, baseDelayMs: 1 } })
      .embeddings.create({ input: "a" })
      .catch((e: unknown) => e);
    expect(attempts).toBe(4);
    expect(error).toMatchObject({ status: 503, code: "AKIDB_ERR_MODEL_UNAVAILABLE" });
  });

  it("does not retry other server errors", async () => {
    let attempts = 0;
    server.use(
      http.post(`${BASE}/v1/embeddings`, () => {
        attempts++;
        return HttpResponse.json(errorBody("inference failed", "server_error", "AKIDB_ERR_INFERENCE", null), {
          status: 502,
        });
      }),
    );
    await expect(client().embeddings.create({ input: "a" })).rejects.toMatchObject({ status: 502 });
    expect(attempts).toBe(1);
  });

  it("retries an idempotent call after a connection error", async () => {
    let attempts = 0;
    server.use(
      http.get(`${BASE}/admin/v1/status`, () => {
        attempts++;
        return attempts === 1 ? HttpResponse.error() : HttpResponse.json({ mode: "mock" });
      }),
    );
    await expect(client().admin.status()).resolves.toEqual({ mode: "mock" });
    expect(attempts).toBe(2);
  });

  it("does not repeat a non-idempotent call after a connection error", async () => {
    let attempts = 0;
    server.use(
      http.post(`${BASE}/admin/v1/inference/restart`, () => {
        attempts++;
        return HttpResponse.error();
      }),
    );
    const error = await client()
      .admin.restartInference()
      .catch((e: unknown) => e);
    expect(attempts).toBe(1);
    expect(error).toBeInstanceOf(AkiDBError);
    expect(error).toMatchObject({
      status: undefined,
      type: "connection_error",
      code: "AKIDB_ERR_CONNECTION",
    });
  });

  it("reports a refused connection (a real closed port) as AKIDB_ERR_CONNECTION", async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}`;
    server.use(http.all(`${url}/*`, () => passthrough()));
    const error = await createAkiDB({ baseUrl: url, retry: { limit: 0 } })
      .health()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "AKIDB_ERR_CONNECTION", status: undefined });
    expect((error as AkiDBError).message).toContain(url);
  });
});

describe("timeouts and aborts", () => {
  it("times out an attempt that gets no response", async () => {
    server.use(
      http.get(`${BASE}/admin/v1/config`, async () => {
        await delay(5_000);
        return HttpResponse.json({});
      }),
    );
    const started = performance.now();
    const error = await client({ timeoutMs: 50 })
      .admin.config()
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: undefined, type: "timeout_error", code: "AKIDB_ERR_TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(4_000);
  });

  it("a per-call timeout overrides the client's", async () => {
    server.use(
      http.get(`${BASE}/admin/v1/config`, async () => {
        await delay(5_000);
        return HttpResponse.json({});
      }),
    );
    await expect(client().admin.config({ timeoutMs: 50 })).rejects.toMatchObject({
      code: "AKIDB_ERR_TIMEOUT",
    });
  });

  it("aborts through the caller's AbortSignal with the signal's reason", async () => {
    let arrived!: () => void;
    const requested = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    server.use(
      http.post(`${BASE}/v1/embeddings`, async () => {
        arrived();
        await delay(5_000);
        return HttpResponse.json({});
      }),
    );
    const controller = new AbortController();
    const call = client().embeddings.create({ input: "a" }, { signal: controller.signal });
    await requested;
    const reason = new Error("user went away");
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
  });

  it("an already aborted signal sends nothing", async () => {
    let attempts = 0;
    server.use(
      http.get(`${BASE}/v1/models`, () => {
        attempts++;
        return HttpResponse.json(MODEL_LIST);
      }),
    );
    await expect(client().models.list({ signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: "AbortError",
    });
    expect(attempts).toBe(0);
  });
});

describe("collections", () => {
  const INFO = {
    id: "7d3c7b8e-0000-4000-8000-000000000000",
    name: "notes",
    dimension: 3,
    metric: "cosine",
    model: "m",
    index: { M: 16, ef_construction: 128, ef_search: 64 },
    quantization: "f32",
    count: 0,
    bytes_in_ram: 0,
    bytes_on_disk: 0,
    created_at: "2026-11-30T00:00:00.000Z",
  };
  const USAGE = { total_tokens: 0, duration_ms: 1 };

  it("sends Float32Array vectors as base64, number arrays as numbers, and returns stored vectors as Float32Array", async () => {
    let upserted: unknown;
    let searched: unknown;
    server.use(
      http.post(`${BASE}/api/v1/collections/notes/upsert`, async ({ request }) => {
        upserted = await request.json();
        return HttpResponse.json({
          inserted: 1,
          updated: 0,
          ids: ["a"],
          embeddings_generated: 0,
          model: "m",
          usage: USAGE,
        });
      }),
      http.post(`${BASE}/api/v1/collections/notes/search`, async ({ request }) => {
        searched = await request.json();
        return HttpResponse.json({
          results: [{ id: "a", score: 0.5, vector: [0.25, 0.5, 1], metadata: null }],
          model: "m",
          usage: USAGE,
        });
      }),
    );
    const notes = client().collections.collection("notes");
    await notes.upsert([
      { id: "a", vector: new Float32Array([0.25, 0.5, 1]) },
      { id: "b", vector: [0.1, 0.2, 0.3] },
    ]);
    const sent = upserted as { documents: Array<{ id: string; vector: string | number[] }> };
    expect(sent.documents[0]!.vector).toBe(encodeBase64Vector(new Float32Array([0.25, 0.5, 1])));
    expect(Array.from(decodeBase64Vector(sent.documents[0]!.vector as string))).toEqual([0.25, 0.5, 1]);
    expect(sent.documents[1]).toEqual({ id: "b", vector: [0.1, 0.2, 0.3] });
    const { results } = await notes.search({
      vector: new Float32Array([1, 0, 0]),
      k: 1,
      include: ["vector"],
    });
    expect(searched).toEqual({
      vector: encodeBase64Vector(new Float32Array([1, 0, 0])),
      k: 1,
      include: ["vector"],
    });
    expect(results[0]!.vector).toBeInstanceOf(Float32Array);
    expect(Array.from(results[0]!.vector!)).toEqual([0.25, 0.5, 1]);
    expect(results[0]!.score).toBe(0.5);
  });

  it("create and get return a handle with the server's description; list returns the descriptions", async () => {
    server.use(
      http.post(`${BASE}/api/v1/collections`, () => HttpResponse.json(INFO, { status: 201 })),
      http.get(`${BASE}/api/v1/collections/notes`, () => HttpResponse.json(INFO)),
      http.get(`${BASE}/api/v1/collections`, () => HttpResponse.json({ object: "list", data: [INFO] })),
    );
    const created = await client().collections.create({ name: "notes", dimension: 3 });
    expect(created.name).toBe("notes");
    expect(created.info).toEqual(INFO);
    expect((await client().collections.get("notes")).info?.dimension).toBe(3);
    expect(await client().collections.list()).toEqual([INFO]);
  });

  it("repeats an upsert after a lost connection only when every document has an id", async () => {
    let attempts = 0;
    server.use(
      http.post(`${BASE}/api/v1/collections/notes/upsert`, () => {
        attempts++;
        return attempts % 2 === 1
          ? HttpResponse.error()
          : HttpResponse.json({
              inserted: 1,
              updated: 0,
              ids: ["x"],
              embeddings_generated: 1,
              model: "m",
              usage: USAGE,
            });
      }),
    );
    const notes = client().collections.collection("notes");
    await expect(notes.upsert([{ id: "x", text: "with an id" }])).resolves.toMatchObject({ ids: ["x"] });
    expect(attempts).toBe(2);
    // Without an id the server generates one: a repeat could store the text twice.
    await expect(notes.upsert([{ text: "no id" }])).rejects.toMatchObject({ code: "AKIDB_ERR_CONNECTION" });
    expect(attempts).toBe(3);
  });

  it("maps a missing collection to a 404 AkiDBError", async () => {
    server.use(
      http.post(`${BASE}/api/v1/collections/gone/get`, () =>
        HttpResponse.json(
          errorBody("No collection gone.", "not_found_error", "AKIDB_ERR_COLLECTION_NOT_FOUND", "collection"),
          { status: 404 },
        ),
      ),
    );
    await expect(
      client()
        .collections.collection("gone")
        .get({ ids: ["a"] }),
    ).rejects.toMatchObject({
      status: 404,
      code: "AKIDB_ERR_COLLECTION_NOT_FOUND",
    });
  });
});

describe("health", () => {
  it("returns the 503 body while shutting down (an answer, not an error), without retrying", async () => {
    let attempts = 0;
    const body = { status: "shutting_down", mode: "mock", embedder: null };
    server.use(
      http.get(`${BASE}/health`, () => {
        attempts++;
        return HttpResponse.json(body, { status: 503 });
      }),
    );
    await expect(client().health()).resolves.toEqual(body);
    expect(attempts).toBe(1);
  });
});

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Never called: `tsc` checks that the contract's types reject each of these calls. */
function wrongCalls(akidb: AkiDB) {
  // @ts-expect-error input is required
  void akidb.embeddings.create({ model: "m" });
  // @ts-expect-error input is a string or a list of strings
  void akidb.embeddings.create({ input: 3 });
  // @ts-expect-error encoding_format is float or base64
  void akidb.embeddings.create({ input: "a", encoding_format: "int8" });
  // @ts-expect-error input_type is query or document
  void akidb.embeddings.create({ input: "a", input_type: "passage" });
  // @ts-expect-error loadModel needs an alias
  void akidb.admin.loadModel();
  // @ts-expect-error no such path in the contract
  void akidb.raw.GET("/v1/nope");
  // @ts-expect-error the inference process's API is not part of the public client
  void akidb.raw.GET("/inference/health");
  // @ts-expect-error /v1/embeddings is POST only
  void akidb.raw.GET("/v1/embeddings");
  const notes = akidb.collections.collection("notes");
  // @ts-expect-error upsert takes a list of documents
  void notes.upsert({ documents: [] });
  // @ts-expect-error a vector is numbers
  void notes.upsert([{ vector: ["0.1"] }]);
  // @ts-expect-error k is a number
  void notes.search({ text: "a", k: "5" });
  // @ts-expect-error metric is cosine, l2 or ip
  void akidb.collections.create({ name: "n", metric: "hamming" });
}

it("wrong calls fail to type-check (see wrongCalls)", () => {
  expect(wrongCalls).toBeTypeOf("function");
});
