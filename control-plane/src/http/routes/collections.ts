import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import { type Filter, parseFilter } from "../../collections/filter.ts";
import type {
  CollectionInfo,
  CollectionSpec,
  CollectionStore,
  DocumentWrite,
  Include,
  StoredDocument,
} from "../../collections/types.ts";
import { modelSettings } from "../../config/model-settings.ts";
import type { AkidbConfig } from "../../config/schema.ts";
import type { components } from "../../contract.ts";
import type { EmbeddingService } from "../../embedding/service.ts";
import type { InputType } from "../../embedding/types.ts";
import { AkidbError, isAkidbError } from "../../errors.ts";
import type { Metrics } from "../../metrics.ts";
import { checkBytes, checkCount, vectorOf } from "../collection-checks.ts";
import {
  batchSearchSchema,
  createCollectionSchema,
  deleteDocumentsSchema,
  getDocumentsSchema,
  type SearchBody,
  searchSchema,
} from "../collection-schemas.ts";
import { checkInputTexts } from "../input-text.ts";
import { type AppEnv, bodyBytes, checkJsonContentType, readJson } from "../middleware.ts";
import { parseUpsertBody } from "../upsert-body.ts";
import type { UpsertParser } from "../upsert-parser.ts";

type Schemas = components["schemas"];

/** What a collection was created with, and its id: what never changes while it exists. */
type CollectionFacts = CollectionSpec & { id: string };

export interface CollectionRoutesDeps {
  config: AkidbConfig;
  embedding: EmbeddingService;
  collections: CollectionStore;
  metrics: Metrics;
  /** Parses upsert bodies off the HTTP thread; without one (in-process tests) they are parsed inline. */
  upsertParser?: UpsertParser;
}

/** Seconds a client waits before retrying a text request while the model is unavailable. */
const MODEL_RETRY_AFTER_SECONDS = 5;
const DEFAULT_INCLUDE: Include = { metadata: true, text: true, vector: false };
const DEFAULT_K = 10;
const DEFAULT_PAGE = 100;

/** `/api/v1/collections/*`: collections, documents and search (openapi.yaml, tag collections). */
export function collectionRoutes(deps: CollectionRoutesDeps): Hono<AppEnv> {
  const { config, embedding, collections: store, metrics, upsertParser } = deps;
  const limits = config.collection;
  const app = new Hono<AppEnv>();
  const base = "/api/v1/collections";

  const observe = (info: CollectionInfo) => {
    metrics.collectionVectors.set({ collection: info.name }, info.count);
    metrics.collectionIndexBytes.set({ collection: info.name }, info.bytes_in_ram);
  };
  const timed = (operation: "upsert" | "search") => async (_c: unknown, next: () => Promise<void>) => {
    const started = performance.now();
    await next();
    metrics.collectionLatencyMs.observe({ operation }, performance.now() - started);
  };
  /**
   * Collections' facts by the names and ids requests named them with, so a request on a collection
   * (a search above all) takes one trip to the store's thread, not two. An entry goes when its
   * collection is dropped; the store's thread answers in order, so no answer from before the drop
   * can arrive after it.
   */
  const known = new Map<string, CollectionFacts>();
  const factsOf = async (ref: string): Promise<CollectionFacts> => {
    const cached = known.get(ref);
    if (cached) return cached;
    const { count, bytes_in_ram, bytes_on_disk, created_at, ...facts } = await store.get(ref);
    known.set(ref, facts);
    return facts;
  };
  void store.list().then((infos) => {
    for (const info of infos) observe(info);
  });
  app.use(`${base}/:collection/upsert`, timed("upsert"));
  app.use(`${base}/:collection/search`, timed("search"));
  app.use(`${base}/:collection/search/batch`, timed("search"));

  /** Vectors for `texts` from the collection's model; nothing is written before this resolves. */
  const embedTexts = async (
    collection: CollectionFacts,
    texts: string[],
    inputType: InputType,
    requestId: string,
    signal: AbortSignal,
  ): Promise<{ vectors: Float32Array[]; tokens: number }> => {
    if (texts.length === 0) return { vectors: [], tokens: 0 };
    if (embedding.kind === "none") {
      throw new AkidbError("AKIDB_ERR_TEXT_NEEDS_MODEL", { mode: embedding.mode });
    }
    const served = embedding.modelNames();
    if (collection.model === null || !served.includes(collection.model)) {
      throw new AkidbError("AKIDB_ERR_MODEL_MISMATCH", {
        collection: collection.name,
        collectionModel: collection.model ?? "no model (vectors only)",
        servedModel: served[0] ?? "none",
      });
    }
    const full = embedding.limits().dimension;
    const request = {
      texts,
      inputType,
      ...(collection.dimension < full ? { dimensions: collection.dimension } : {}),
      normalize: modelSettings(config).normalize,
      truncate: true,
      requestId,
      signal,
    };
    let result: Awaited<ReturnType<typeof embedding.embed>>;
    try {
      result = await embedding.embed(request);
    } catch (error) {
      // The model is down, loading or restarting: a text request can be retried later.
      if (isAkidbError(error) && error.status === 503 && error.retryAfterSeconds === undefined) {
        throw new AkidbError(error.code, error.params, {
          retryAfterSeconds: MODEL_RETRY_AFTER_SECONDS,
          cause: error,
        });
      }
      throw error;
    }
    return { vectors: result.vectors, tokens: result.tokenCounts.reduce((sum, n) => sum + n, 0) };
  };

  app.get(base, async (c) => {
    const list: Schemas["CollectionList"] = { object: "list", data: await store.list() };
    return c.json(list);
  });

  app.post(base, async (c) => {
    const body = await readJson(c, createCollectionSchema);
    let model: string | null;
    let dimension: number;
    if (embedding.kind === "none") {
      model = body.model ?? null;
      const given = body.dimension ?? limits.default_dimension;
      if (given === undefined) {
        throw new AkidbError(
          "AKIDB_ERR_DIMENSION_REQUIRED",
          { mode: embedding.mode },
          { param: "dimension" },
        );
      }
      dimension = given;
    } else {
      const served = embedding.modelNames();
      if (body.model !== undefined && !served.includes(body.model)) {
        throw new AkidbError(
          "AKIDB_ERR_MODEL_NOT_FOUND",
          { model: body.model, available: served.slice(0, 1) },
          { param: "model" },
        );
      }
      model = served[0]!;
      const modelLimits = embedding.limits();
      dimension = body.dimension ?? modelLimits.dimension;
      if (!allowsDimension(modelLimits.matryoshka_dimensions, modelLimits.dimension, dimension)) {
        throw new AkidbError(
          "AKIDB_ERR_DIMENSIONS_UNSUPPORTED",
          {
            dimensions: dimension,
            allowed: describeSizes(modelLimits.matryoshka_dimensions, modelLimits.dimension),
          },
          { param: "dimension" },
        );
      }
    }
    if (dimension > limits.max_dimension) {
      const problem = `must be at most collection.max_dimension (${limits.max_dimension})`;
      throw new AkidbError(
        "AKIDB_ERR_INVALID_REQUEST",
        { param: "dimension", problem },
        { param: "dimension" },
      );
    }
    const info = await store.create({
      name: body.name,
      dimension,
      metric: body.metric ?? limits.default_metric,
      quantization: body.quantization ?? "f32",
      index: { M: 16, ef_construction: 128, ef_search: 64, ...body.index },
      model,
    });
    observe(info);
    return c.json(info, 201);
  });

  app.get(`${base}/:collection`, async (c) => c.json(await store.get(c.req.param("collection"))));

  app.delete(`${base}/:collection`, async (c) => {
    const info = await factsOf(c.req.param("collection"));
    await store.drop(info.id);
    for (const [ref, facts] of known) if (facts.id === info.id) known.delete(ref);
    metrics.collectionVectors.remove({ collection: info.name });
    metrics.collectionIndexBytes.remove({ collection: info.name });
    const deleted: Schemas["DeletedCollection"] = { id: info.id, name: info.name, deleted: true };
    return c.json(deleted);
  });

  app.post(`${base}/:collection/upsert`, async (c) => {
    const started = performance.now();
    const collection = await factsOf(c.req.param("collection"));
    checkJsonContentType(c);
    const bytes = bodyBytes(c);
    // Off this thread when the server runs a parser thread (in-process tests parse here); the body's
    // bytes are handed over to it, not copied.
    const documents = upsertParser
      ? await upsertParser.parse(bytes, collection.dimension)
      : parseUpsertBody(bytes, collection.dimension, config);
    const toEmbed = documents.flatMap((doc, i) => (doc.vector === undefined ? [i] : []));
    const { vectors, tokens } = await embedTexts(
      collection,
      toEmbed.map((i) => documents[i]!.text!),
      "document",
      c.get("requestId"),
      c.req.raw.signal,
    );
    const embedded = new Map(toEmbed.map((docIndex, i) => [docIndex, vectors[i]!]));
    const writes: DocumentWrite[] = documents.map((doc, i) => ({
      id: doc.id ?? randomUUID(),
      vector: embedded.get(i) ?? doc.vector!,
      text: doc.text ?? null,
      metadata: doc.metadata ?? null,
    }));
    const result = await store.upsert(collection.id, writes);
    observe(await store.get(collection.id));
    const response: Schemas["UpsertResponse"] = {
      ...result,
      embeddings_generated: toEmbed.length,
      model: collection.model,
      usage: { total_tokens: tokens, duration_ms: elapsed(started) },
    };
    return c.json(response);
  });

  app.get(`${base}/:collection/documents/:id`, async (c) => {
    const collection = await factsOf(c.req.param("collection"));
    const id = c.req.param("id");
    const include = { metadata: true, text: true, vector: true };
    const [doc] = await store.getDocuments(collection.id, { ids: [id], limit: 1, offset: 0, include });
    if (!doc) throw new AkidbError("AKIDB_ERR_DOCUMENT_NOT_FOUND", { collection: collection.name, id });
    return c.json(documentJson(doc));
  });

  app.delete(`${base}/:collection/documents/:id`, async (c) => {
    const collection = await factsOf(c.req.param("collection"));
    const id = c.req.param("id");
    const deleted = await store.deleteDocuments(collection.id, { ids: [id] });
    if (deleted === 0)
      throw new AkidbError("AKIDB_ERR_DOCUMENT_NOT_FOUND", { collection: collection.name, id });
    observe(await store.get(collection.id));
    return c.json({ deleted } satisfies Schemas["DeleteResponse"]);
  });

  app.post(`${base}/:collection/get`, async (c) => {
    const collection = await factsOf(c.req.param("collection"));
    const body = await readJson(c, getDocumentsSchema);
    const max = limits.max_documents_per_request;
    if (body.ids) checkCount("ids", body.ids.length, max, "collection.max_documents_per_request");
    const limit = body.limit ?? Math.min(DEFAULT_PAGE, max);
    checkCount("limit", limit, max, "collection.max_documents_per_request");
    const docs = await store.getDocuments(collection.id, {
      ...(body.ids ? { ids: body.ids } : {}),
      ...optionalFilter(body.filter, "filter"),
      limit,
      offset: body.offset ?? 0,
      include: includeOf(body.include),
    });
    return c.json({ documents: docs.map(documentJson) } satisfies Schemas["GetDocumentsResponse"]);
  });

  app.post(`${base}/:collection/delete`, async (c) => {
    const collection = await factsOf(c.req.param("collection"));
    const body = await readJson(c, deleteDocumentsSchema);
    if (!body.ids && !body.filter) {
      const problem = "is required: send ids, filter, or both";
      throw new AkidbError("AKIDB_ERR_INVALID_REQUEST", { param: "ids", problem }, { param: "ids" });
    }
    if (body.ids)
      checkCount(
        "ids",
        body.ids.length,
        limits.max_documents_per_request,
        "collection.max_documents_per_request",
      );
    const deleted = await store.deleteDocuments(collection.id, {
      ...(body.ids ? { ids: body.ids } : {}),
      ...optionalFilter(body.filter, "filter"),
    });
    observe(await store.get(collection.id));
    return c.json({ deleted } satisfies Schemas["DeleteResponse"]);
  });

  /** Validates queries, embeds their texts in one call, and searches. */
  const search = async (
    collection: CollectionFacts,
    queries: SearchBody[],
    prefix: (i: number) => string,
    requestId: string,
    signal: AbortSignal,
  ) => {
    const started = performance.now();
    const parsed = queries.map((query, i) => {
      const at = prefix(i);
      if ((query.text === undefined) === (query.vector === undefined)) {
        const param = `${at}text`;
        throw new AkidbError(
          "AKIDB_ERR_INVALID_REQUEST",
          { param, problem: "send exactly one of text and vector" },
          { param },
        );
      }
      if (query.text !== undefined)
        checkBytes(`${at}text`, query.text, limits.max_text_bytes, "collection.max_text_bytes");
      const vector =
        query.vector === undefined ? undefined : vectorOf(`${at}vector`, query.vector, collection.dimension);
      const k = query.k ?? DEFAULT_K;
      if (k > limits.max_k) {
        const problem = `must be at most collection.max_k (${limits.max_k})`;
        throw new AkidbError("AKIDB_ERR_INVALID_REQUEST", { param: `${at}k`, problem }, { param: `${at}k` });
      }
      return { query, vector, k, filter: optionalFilter(query.filter, `${at}filter`) };
    });
    const textIndexes = parsed.flatMap(({ query }, i) => (query.text === undefined ? [] : [i]));
    checkInputTexts(
      textIndexes.map((i) => ({ param: `${prefix(i)}text`, text: parsed[i]!.query.text! })),
      config,
    );
    const { vectors, tokens } = await embedTexts(
      collection,
      textIndexes.map((i) => parsed[i]!.query.text!),
      "query",
      requestId,
      signal,
    );
    const embedded = new Map(textIndexes.map((queryIndex, i) => [queryIndex, vectors[i]!]));
    const results = await store.search(
      collection.id,
      parsed.map(({ query, vector, k, filter }, i) => ({
        vector: embedded.get(i) ?? vector!,
        k,
        ...filter,
        ...(query.ef === undefined ? {} : { ef: query.ef }),
        include: includeOf(query.include),
      })),
    );
    return {
      results: results.map((hits) => hits.map((hit) => ({ ...documentJson(hit), score: hit.score }))),
      model: collection.model,
      usage: { total_tokens: tokens, duration_ms: elapsed(started) },
    };
  };

  app.post(`${base}/:collection/search`, async (c) => {
    const collection = await factsOf(c.req.param("collection"));
    const body = await readJson(c, searchSchema, { dimension: collection.dimension, list: null });
    const { results, ...rest } = await search(
      collection,
      [body],
      () => "",
      c.get("requestId"),
      c.req.raw.signal,
    );
    return c.json({ results: results[0]!, ...rest } satisfies Schemas["SearchResponse"]);
  });

  app.post(`${base}/:collection/search/batch`, async (c) => {
    const collection = await factsOf(c.req.param("collection"));
    const body = await readJson(c, batchSearchSchema, { dimension: collection.dimension, list: "queries" });
    checkCount(
      "queries",
      body.queries.length,
      limits.max_queries_per_search,
      "collection.max_queries_per_search",
    );
    const response = await search(
      collection,
      body.queries,
      (i) => `queries[${i}].`,
      c.get("requestId"),
      c.req.raw.signal,
    );
    return c.json(response satisfies Schemas["BatchSearchResponse"]);
  });

  return app;
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

function includeOf(include: Array<"metadata" | "text" | "vector"> | undefined): Include {
  if (!include) return DEFAULT_INCLUDE;
  return {
    metadata: include.includes("metadata"),
    text: include.includes("text"),
    vector: include.includes("vector"),
  };
}

function optionalFilter(raw: Record<string, unknown> | undefined, param: string): { filter?: Filter } {
  return raw === undefined ? {} : { filter: parseFilter(raw, param) };
}

function documentJson(doc: StoredDocument): Schemas["Document"] {
  const out: Schemas["Document"] = { id: doc.id };
  if (doc.text !== undefined) out.text = doc.text;
  if (doc.metadata !== undefined) out.metadata = doc.metadata;
  if (doc.vector !== undefined) out.vector = Array.from(doc.vector);
  return out;
}

type Sizes = number[] | { min: number; max: number };

/** Whether `dimension` is the model's size or one of its Matryoshka sizes. */
function allowsDimension(sizes: Sizes, full: number, dimension: number): boolean {
  if (dimension === full) return true;
  if (Array.isArray(sizes)) return sizes.includes(dimension);
  return dimension >= sizes.min && dimension <= sizes.max;
}

function describeSizes(sizes: Sizes, full: number): string {
  if (Array.isArray(sizes)) return sizes.length === 0 ? String(full) : sizes.join(", ");
  return `${sizes.min} to ${sizes.max}`;
}
