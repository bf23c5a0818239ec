import type { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../src/config/schema.ts";
import { MockEmbedder } from "../src/embedding/mock.ts";
import { createEmbeddingService } from "../src/embedding/service.ts";
import type { EmbedBatch } from "../src/embedding/types.ts";
import { AkidbError } from "../src/errors.ts";
import { createApp } from "../src/http/app.ts";
import type { AppEnv } from "../src/http/middleware.ts";
import { createMetrics } from "../src/metrics.ts";
import { buildRegistry } from "../src/models/registry.ts";
import { openStore, tempDataDir } from "./collection-fixtures.ts";
import { captureLogger } from "./helpers.ts";

const DIMENSION = 8;

/**
 * The mock model with one prompt for queries and documents (so a query finds its own text),
 * recording the input types it was asked for; it can be switched off (the model is down).
 */
class SwitchableEmbedder extends MockEmbedder {
  down = false;
  inputTypes: string[] = [];
  override async embed(batch: EmbedBatch) {
    if (this.down) {
      throw new AkidbError("AKIDB_ERR_MODEL_UNAVAILABLE", {
        model: "mock",
        reason: "the inference process is stopped",
      });
    }
    this.inputTypes.push(batch.inputType);
    return super.embed({ ...batch, inputType: "document" });
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function build(
  mode: "mock" | "user_provided" = "mock",
  dataDir?: string,
  maxInputChars?: number,
  defaultDimension?: number,
) {
  const config = configSchema.parse({
    embedding: {
      mode,
      mock: { dimension: DIMENSION },
      ...(maxInputChars === undefined ? {} : { queue: { max_input_chars: maxInputChars } }),
    },
    collection: {
      max_documents_per_request: 5,
      max_metadata_depth: 2,
      max_k: 50,
      exact_search_max_matches: 3,
      ...(defaultDimension === undefined ? {} : { default_dimension: defaultDimension }),
    },
  });
  const data = dataDir ? { dir: dataDir, remove: () => {} } : tempDataDir();
  const store = await openStore(data.dir, { exactSearchMaxMatches: 3 });
  cleanups.push(async () => {
    await store.close();
    data.remove();
  });
  const { logger } = captureLogger();
  const metrics = createMetrics();
  const registry = buildRegistry(config);
  const embedder = new SwitchableEmbedder(DIMENSION);
  const embedding = createEmbeddingService({ config, registry, metrics, logger }, { embedder });
  const app = createApp({
    config,
    registry,
    embedding,
    collections: store,
    metrics,
    logger,
    startedAt: new Date(),
    versions: { akidb: "test", node: process.version },
    closing: () => false,
  });
  return { app, store, embedder, metrics, dataDir: data.dir };
}

async function call(app: Hono<AppEnv>, method: string, path: string, body?: unknown) {
  const response = await app.request(path, {
    method,
    ...(body === undefined
      ? {}
      : {
          headers: { "content-type": "application/json" },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
  });
  return {
    status: response.status,
    headers: response.headers,
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the assertions
    body: (await response.json()) as Record<string, any>,
  };
}

const unit = (i: number) => Array.from({ length: DIMENSION }, (_, j) => (j === i % DIMENSION ? 1 : 0.01 * j));
/** A vector as the base64 of its little-endian float32 bytes. */
const base64 = (values: number[]) => Buffer.from(new Float32Array(values).buffer).toString("base64");

describe("/api/v1/collections", () => {
  it("creates, lists, gets by name or id, refuses a taken name, deletes", async () => {
    const { app } = await build();
    const created = await call(app, "POST", "/api/v1/collections", { name: "notes", quantization: "f16" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: "notes",
      dimension: DIMENSION,
      metric: "cosine",
      quantization: "f16",
      model: "mock",
      count: 0,
      index: { M: 16, ef_construction: 128, ef_search: 64 },
    });
    const id = created.body.id as string;
    expect((await call(app, "GET", `/api/v1/collections/${id}`)).body.name).toBe("notes");
    expect((await call(app, "GET", "/api/v1/collections/notes")).body.id).toBe(id);
    expect((await call(app, "GET", "/api/v1/collections")).body.data).toHaveLength(1);
    const taken = await call(app, "POST", "/api/v1/collections", { name: "notes" });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe("AKIDB_ERR_COLLECTION_EXISTS");
    const status = await call(app, "GET", "/admin/v1/status");
    expect(status.body.collections).toEqual([expect.objectContaining({ id, name: "notes", count: 0 })]);
    expect((await call(app, "DELETE", "/api/v1/collections/notes")).body).toEqual({
      id,
      name: "notes",
      deleted: true,
    });
    const gone = await call(app, "GET", `/api/v1/collections/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe("AKIDB_ERR_COLLECTION_NOT_FOUND");
  });

  it("a name dropped and created again names the new collection, by name and by the old id not at all", async () => {
    const { app } = await build();
    const first = await call(app, "POST", "/api/v1/collections", { name: "notes", dimension: 4 });
    const oldId = first.body.id as string;
    // Searched and written by name and by id, so both refs have been resolved once.
    for (const ref of ["notes", oldId]) {
      const upsert = await call(app, "POST", `/api/v1/collections/${ref}/upsert`, {
        documents: [{ id: ref, vector: [1, 0, 0, 0] }],
      });
      expect(upsert.status).toBe(200);
      expect(
        (await call(app, "POST", `/api/v1/collections/${ref}/search`, { vector: [1, 0, 0, 0] })).status,
      ).toBe(200);
    }
    expect((await call(app, "DELETE", `/api/v1/collections/${oldId}`)).status).toBe(200);
    const second = await call(app, "POST", "/api/v1/collections", { name: "notes", dimension: 3 });
    expect(second.status).toBe(201);
    const wrong = await call(app, "POST", "/api/v1/collections/notes/search", { vector: [1, 0, 0, 0] });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.message).toContain("expected 3 dimensions, got 4");
    const hits = await call(app, "POST", "/api/v1/collections/notes/search", { vector: [1, 0, 0] });
    expect(hits.body.results).toEqual([]);
    const stale = await call(app, "POST", `/api/v1/collections/${oldId}/search`, { vector: [1, 0, 0, 0] });
    expect(stale.status).toBe(404);
    expect(stale.body.error.code).toBe("AKIDB_ERR_COLLECTION_NOT_FOUND");
  });

  it("answers bad collection specs with a 4xx naming the field", async () => {
    const { app } = await build();
    const cases: Array<[unknown, number, string]> = [
      [{ name: "has space" }, 422, "name"],
      [{ name: "a", metric: "dot" }, 422, "metric"],
      [{ name: "a", dimenson: 8 }, 422, "dimenson"],
      [{ name: "a", dimension: 9 }, 400, "dimension"],
      [{ name: "a", index: { M: 1 } }, 422, "index.M"],
      [{ name: "a", model: "qwen3-0.6b-4bit" }, 404, "model"],
    ];
    for (const [body, status, param] of cases) {
      const response = await call(app, "POST", "/api/v1/collections", body);
      expect([response.status, response.body.error.param]).toEqual([status, param]);
    }
    expect((await call(app, "GET", "/api/v1/collections")).body.data).toEqual([]);
  });

  it("upserts text and vectors, searches by text and vector, filters, gets and deletes", async () => {
    const { app, metrics, embedder } = await build();
    await call(app, "POST", "/api/v1/collections", { name: "c" });
    const upsert = await call(app, "POST", "/api/v1/collections/c/upsert", {
      documents: [
        { id: "a", text: "alpha", metadata: { kind: "x", n: 1 } },
        { id: "b", text: "beta", metadata: { kind: "y", n: 2 } },
        { text: "gamma", metadata: { kind: "x", n: 3 } },
        { id: "v", vector: unit(0), text: "stored with its vector", metadata: { kind: "z", n: 4 } },
      ],
    });
    expect(upsert.status).toBe(200);
    expect(upsert.body).toMatchObject({ inserted: 4, updated: 0, embeddings_generated: 3, model: "mock" });
    expect(upsert.body.ids.slice(0, 2)).toEqual(["a", "b"]);
    expect(upsert.body.ids[2]).toMatch(/^[0-9a-f-]{36}$/);
    // The mock's count, ceil(UTF-8 bytes / 4) + 1: alpha 3, beta 2, gamma 3; the stored vector costs none.
    expect(upsert.body.usage.total_tokens).toBe(8);

    const byText = await call(app, "POST", "/api/v1/collections/c/search", { text: "beta", k: 2 });
    expect(byText.body.results[0]).toMatchObject({ id: "b", text: "beta", metadata: { kind: "y", n: 2 } });
    expect(byText.body.results[0].score).toBeCloseTo(1, 5);
    expect(embedder.inputTypes).toEqual(["document", "query"]);
    const byVector = await call(app, "POST", "/api/v1/collections/c/search", {
      vector: unit(0),
      k: 1,
      include: ["vector"],
    });
    expect(byVector.body.results).toEqual([
      { id: "v", vector: unit(0).map((x) => Math.fround(x)), score: expect.any(Number) },
    ]);
    const filtered = await call(app, "POST", "/api/v1/collections/c/search", {
      text: "beta",
      k: 10,
      filter: { $and: [{ kind: "x" }, { n: { $gte: 2 } }] },
      include: [],
    });
    expect(filtered.body.results).toEqual([{ id: upsert.body.ids[2], score: expect.any(Number) }]);
    const batch = await call(app, "POST", "/api/v1/collections/c/search/batch", {
      queries: [
        { text: "alpha", k: 1 },
        { vector: unit(0), k: 1, filter: { kind: { $in: ["z"] } } },
      ],
    });
    expect(batch.body.results.map((hits: Array<{ id: string }>) => hits[0]?.id)).toEqual(["a", "v"]);

    const replaced = await call(app, "POST", "/api/v1/collections/c/upsert", {
      documents: [{ id: "a", text: "alpha two", metadata: { kind: "y" } }],
    });
    expect(replaced.body).toMatchObject({ inserted: 0, updated: 1, ids: ["a"] });
    const doc = await call(app, "GET", "/api/v1/collections/c/documents/a");
    expect(doc.body).toMatchObject({ id: "a", text: "alpha two", metadata: { kind: "y" } });
    expect(doc.body.vector).toHaveLength(DIMENSION);

    const page = await call(app, "POST", "/api/v1/collections/c/get", {
      filter: { kind: "y" },
      limit: 1,
      offset: 1,
    });
    expect(page.body.documents).toEqual([{ id: "b", text: "beta", metadata: { kind: "y", n: 2 } }]);
    const byIds = await call(app, "POST", "/api/v1/collections/c/get", {
      ids: ["v", "missing", "a"],
      include: [],
    });
    expect(byIds.body.documents).toEqual([{ id: "v" }, { id: "a" }]);

    expect((await call(app, "POST", "/api/v1/collections/c/delete", { filter: { kind: "y" } })).body).toEqual(
      {
        deleted: 2,
      },
    );
    expect((await call(app, "DELETE", "/api/v1/collections/c/documents/v")).body).toEqual({ deleted: 1 });
    const missing = await call(app, "GET", "/api/v1/collections/c/documents/v");
    expect([missing.status, missing.body.error.code]).toEqual([404, "AKIDB_ERR_DOCUMENT_NOT_FOUND"]);
    expect((await call(app, "GET", "/api/v1/collections/c")).body.count).toBe(1);
    const scrape = await metrics.registry.metrics();
    expect(scrape).toMatch(/akidb_collection_vectors\{collection="c"\} 1/);
    expect(scrape).toMatch(/akidb_collection_latency_ms_count\{operation="upsert"\} 2/);
    expect(scrape).toMatch(/akidb_collection_index_bytes\{collection="c"\} \d+/);
  });

  it("answers bad documents and queries with a 4xx naming the field, and writes nothing", async () => {
    const { app } = await build();
    await call(app, "POST", "/api/v1/collections", { name: "c" });
    const ok = { id: "ok", vector: unit(1) };
    const cases: Array<[string, unknown, number, string, RegExp?]> = [
      [
        "upsert",
        { documents: [ok, { vector: [1, 2] }] },
        400,
        "documents[1].vector",
        /expected 8 dimensions, got 2/,
      ],
      ["upsert", '{"documents": [{"vector": [1e999, 0, 0, 0, 0, 0, 0, 0]}]}', 422, "documents[0].vector[0]"],
      [
        "upsert",
        '{"documents": [{"vector": [0, 1e39, 0, 0, 0, 0, 0, 0]}]}',
        400,
        "documents[0].vector[1]",
        /float32's range/,
      ],
      [
        "upsert",
        { documents: [ok, { vector: base64([1, 2]) }] },
        400,
        "documents[1].vector",
        /expected 8 dimensions, got 2/,
      ],
      ["upsert", { documents: [{ vector: "not base64!" }] }, 422, "documents[0].vector", /base64/],
      ["upsert", { documents: [{ vector: "AAAAAAA=" }] }, 400, "documents[0].vector", /5 bytes/],
      [
        "upsert",
        { documents: [{ vector: base64([0, 0, 0, Number.NaN, 0, 0, 0, 0]) }] },
        400,
        "documents[0].vector[3]",
      ],
      [
        "upsert",
        { documents: [ok, ok, ok, ok, ok, ok] },
        413,
        "documents",
        /collection.max_documents_per_request \(5\)/,
      ],
      ["upsert", { documents: [{ ...ok, metadata: { a: { b: { c: 1 } } } }] }, 413, "documents[0].metadata"],
      ["upsert", { documents: [{ ...ok, id: "x".repeat(300) }] }, 413, "documents[0].id"],
      ["upsert", { documents: [{ id: "n" }] }, 422, "documents[0]"],
      ["upsert", { documents: [{ ...ok, colour: "red" }] }, 422, "documents[0].colour"],
      ["search", { vector: unit(0), k: 51 }, 422, "k", /collection.max_k \(50\)/],
      ["search", { vector: unit(0), text: "both" }, 422, "text"],
      ["search", { vector: unit(0), filter: { n: { $gt: "1" } } }, 400, "filter.n.$gt"],
      ["search", { vector: unit(0), filter: { $or: [] } }, 400, "filter.$or"],
      ["search", { vector: unit(0), filter: { n: { $regex: "x" } } }, 400, "filter.n.$regex"],
      ["search/batch", { queries: [{ vector: unit(0) }, { vector: [1] }] }, 400, "queries[1].vector"],
      ["search/batch", { queries: [{ vector: base64([1]) }] }, 400, "queries[0].vector"],
      ["delete", {}, 422, "ids"],
    ];
    for (const [route, body, status, param, message] of cases) {
      const response = await call(app, "POST", `/api/v1/collections/c/${route}`, body);
      expect([route, response.status, response.body.error?.param]).toEqual([route, status, param]);
      if (message) expect(response.body.error.message).toMatch(message);
    }
    expect((await call(app, "GET", "/api/v1/collections/c")).body.count).toBe(0);
    const unknown = await call(app, "POST", "/api/v1/collections/nope/upsert", { documents: [ok] });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, "AKIDB_ERR_COLLECTION_NOT_FOUND"]);
  });

  it("takes vectors as base64 of little-endian float32, in upserts and searches", async () => {
    const { app } = await build("user_provided");
    await call(app, "POST", "/api/v1/collections", { name: "b", dimension: DIMENSION });
    const upsert = await call(app, "POST", "/api/v1/collections/b/upsert", {
      documents: [
        { id: "json", vector: unit(2) },
        { id: "b64", vector: base64(unit(5)), metadata: { form: "base64" } },
      ],
    });
    expect(upsert.body.inserted).toBe(2);
    const stored = await call(app, "GET", "/api/v1/collections/b/documents/b64");
    expect(stored.body.vector).toEqual(unit(5).map((x) => Math.fround(x)));
    const hits = await call(app, "POST", "/api/v1/collections/b/search", { vector: base64(unit(5)), k: 1 });
    expect(hits.body.results).toEqual([
      { id: "b64", score: expect.closeTo(1, 5), metadata: { form: "base64" }, text: null },
    ]);
  });

  it("applies /v1/embeddings' text rules (lone surrogate 422, max_input_chars 413) to collection text", async () => {
    const { app, store } = await build("mock", undefined, 10);
    await call(app, "POST", "/api/v1/collections", { name: "c" });
    const lone = "ok \uD83D here";
    const long = "x".repeat(11);
    const cases: Array<[string, unknown, number, string, string]> = [
      [
        "upsert",
        { documents: [{ text: "a" }, { vector: unit(1) }, { text: "b" }, { vector: unit(2), text: lone }] },
        422,
        "AKIDB_ERR_INVALID_REQUEST",
        "documents[3].text",
      ],
      [
        "upsert",
        { documents: [{ text: "a" }, { text: long }] },
        413,
        "AKIDB_ERR_LIMIT_EXCEEDED",
        "documents[1].text",
      ],
      ["search", { text: lone }, 422, "AKIDB_ERR_INVALID_REQUEST", "text"],
      ["search", { text: long }, 413, "AKIDB_ERR_LIMIT_EXCEEDED", "text"],
      [
        "search/batch",
        { queries: [{ text: "a" }, { text: lone }] },
        422,
        "AKIDB_ERR_INVALID_REQUEST",
        "queries[1].text",
      ],
      [
        "search/batch",
        { queries: [{ vector: unit(1) }, { text: long }] },
        413,
        "AKIDB_ERR_LIMIT_EXCEEDED",
        "queries[1].text",
      ],
    ];
    for (const [route, body, status, code, param] of cases) {
      const response = await call(app, "POST", `/api/v1/collections/c/${route}`, body);
      expect([route, response.status, response.body.error.code, response.body.error.param]).toEqual([
        route,
        status,
        code,
        param,
      ]);
      expect(response.body.error.message).toContain(param);
      if (status === 413)
        expect(response.body.error.message).toContain(
          "11 characters, more than embedding.queue.max_input_chars (10)",
        );
    }
    expect((await store.get("c")).count).toBe(0);
    // The same function answers /v1/embeddings, with the same codes.
    const embeddings = await call(app, "POST", "/v1/embeddings", { input: ["fine", long] });
    expect([embeddings.status, embeddings.body.error.param]).toEqual([413, "input[1]"]);
    const ok = await call(app, "POST", "/api/v1/collections/c/upsert", {
      documents: [{ text: "x".repeat(10) }],
    });
    expect(ok.status).toBe(200);
  });

  it("answers a text upsert 503 with Retry-After while the model is down, writing nothing; vectors still work", async () => {
    const { app, embedder } = await build();
    await call(app, "POST", "/api/v1/collections", { name: "c" });
    embedder.down = true;
    const text = await call(app, "POST", "/api/v1/collections/c/upsert", {
      documents: [
        { id: "v", vector: unit(0) },
        { id: "t", text: "needs the model" },
      ],
    });
    expect(text.status).toBe(503);
    expect(text.headers.get("retry-after")).toBe("5");
    expect(text.body.error.code).toBe("AKIDB_ERR_MODEL_UNAVAILABLE");
    expect((await call(app, "GET", "/api/v1/collections/c")).body.count).toBe(0);
    const search = await call(app, "POST", "/api/v1/collections/c/search", { text: "q" });
    expect(search.status).toBe(503);
    const vectors = await call(app, "POST", "/api/v1/collections/c/upsert", {
      documents: [{ id: "v", vector: unit(0) }],
    });
    expect(vectors.body).toMatchObject({ inserted: 1, embeddings_generated: 0, usage: { total_tokens: 0 } });
  });

  it("answers text on a collection of another model 409 naming both; vectors still work", async () => {
    const { app, store } = await build();
    await store.create({
      name: "old",
      dimension: DIMENSION,
      metric: "cosine",
      quantization: "f32",
      index: { M: 16, ef_construction: 64, ef_search: 32 },
      model: "qwen3-0.6b-4bit",
    });
    const text = await call(app, "POST", "/api/v1/collections/old/search", { text: "q" });
    expect(text.status).toBe(409);
    expect(text.body.error.code).toBe("AKIDB_ERR_MODEL_MISMATCH");
    expect(text.body.error.message).toContain("qwen3-0.6b-4bit");
    expect(text.body.error.message).toContain("mock");
    const vector = await call(app, "POST", "/api/v1/collections/old/upsert", {
      documents: [{ vector: unit(2) }],
    });
    expect(vector.status).toBe(200);
  });

  it("takes the spec's collection.default_dimension in user_provided mode when it is set", async () => {
    const { app } = await build("user_provided", undefined, undefined, 7);
    const created = await call(app, "POST", "/api/v1/collections", { name: "d" });
    expect(created.status).toBe(201);
    expect(created.body.dimension).toBe(7);
  });

  it("needs vectors in user_provided mode, and keeps collections across a restart", async () => {
    const data = tempDataDir();
    cleanups.push(data.remove);
    const first = await build("user_provided", data.dir);
    const sizeless = await call(first.app, "POST", "/api/v1/collections", { name: "u" });
    expect(sizeless.status).toBe(400);
    expect(sizeless.body.error).toMatchObject({
      code: "AKIDB_ERR_DIMENSION_REQUIRED",
      type: "invalid_request_error",
      param: "dimension",
    });
    expect(sizeless.body.error.message).toMatch(/vectors come from the client.*dimension must be given/);
    const created = await call(first.app, "POST", "/api/v1/collections", {
      name: "u",
      dimension: DIMENSION,
      metric: "l2",
    });
    expect(created.body).toMatchObject({ model: null, metric: "l2" });
    const text = await call(first.app, "POST", "/api/v1/collections/u/upsert", {
      documents: [{ text: "t" }],
    });
    expect([text.status, text.body.error.code]).toEqual([400, "AKIDB_ERR_TEXT_NEEDS_MODEL"]);
    await call(first.app, "POST", "/api/v1/collections/u/upsert", {
      documents: [
        { id: "p", vector: unit(3), metadata: { tag: "keep" } },
        { id: "q", vector: unit(4) },
      ],
    });
    await (cleanups.pop() as () => Promise<void>)();
    const second = await build("user_provided", data.dir);
    const hits = await call(second.app, "POST", "/api/v1/collections/u/search", { vector: unit(3), k: 1 });
    expect(hits.body.results).toEqual([{ id: "p", text: null, metadata: { tag: "keep" }, score: 0 }]);
  });

  it("refuses a second store on the same data_dir with a clear message", async () => {
    const { store, dataDir } = await build();
    expect(store).toBeDefined();
    await expect(openStore(dataDir)).rejects.toThrow(/storage.data_dir .* is in use by another AkiDB server/);
  });
});
