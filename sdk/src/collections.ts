// Collections: `akidb.collections.*` and the handle of one collection (`collection.upsert()` ...).
import type { Client } from "openapi-fetch";
import type { CallInit, CallOptions, PublicPaths } from "./client.ts";
import { encodeBase64Vector } from "./embeddings.ts";
import { unwrap } from "./errors.ts";
import type { components } from "./generated/schema.d.ts";

type Schemas = components["schemas"];

/** A vector as the SDK takes it: a Float32Array (sent as base64: exact, a quarter of the bytes and
 * parsed faster by the server) or a plain array of numbers (sent as JSON numbers). */
export type VectorInput = Float32Array | readonly number[];

/** A document to upsert: the contract's DocumentInput, with `vector` also a Float32Array. */
export type DocumentInput = Omit<Schemas["DocumentInput"], "vector"> & { vector?: VectorInput };
/** A search: the contract's SearchRequest (exactly one of `text` and `vector`). */
export type SearchQuery = Omit<Schemas["SearchRequest"], "vector"> & { vector?: VectorInput };
/** A stored document; `vector` (when included) is a Float32Array. */
export type Document = Omit<Schemas["Document"], "vector"> & { vector?: Float32Array };
export type SearchHit = Document & { score: number };
export interface SearchResult {
  results: SearchHit[];
  model: string | null;
  usage: Schemas["CollectionUsage"];
}
export interface BatchSearchResult {
  results: SearchHit[][];
  model: string | null;
  usage: Schemas["CollectionUsage"];
}
export type CollectionInfo = Schemas["Collection"];
export type CreateCollectionRequest = Schemas["CreateCollectionRequest"];

/** One collection: its state when the handle was made (`info`) and the calls on its documents. */
export interface Collection {
  /** The name (or id) the handle addresses. */
  readonly name: string;
  /** The collection as the server described it; undefined for `collections.collection(name)`. */
  readonly info: CollectionInfo | undefined;
  /** Inserts or replaces documents; text without a vector is embedded by the server. All or nothing. */
  upsert(documents: DocumentInput[], options?: CallOptions): Promise<Schemas["UpsertResponse"]>;
  /** The nearest documents to a text or a vector, best first. */
  search(query: SearchQuery, options?: CallOptions): Promise<SearchResult>;
  /** Several searches in one request (their texts are embedded together). */
  searchBatch(queries: SearchQuery[], options?: CallOptions): Promise<BatchSearchResult>;
  /** Documents by ids (in that order, missing ones left out) or by metadata filter, paged. */
  get(request: Schemas["GetDocumentsRequest"], options?: CallOptions): Promise<Document[]>;
  /** One document by id (404 AkiDBError when there is none). */
  getDocument(id: string, options?: CallOptions): Promise<Document>;
  /** Deletes documents by ids, by filter, or both (the ids that match); resolves with the count. */
  delete(request: Schemas["DeleteDocumentsRequest"], options?: CallOptions): Promise<number>;
  /** Deletes one document; resolves with the count (0 or 1). */
  deleteDocument(id: string, options?: CallOptions): Promise<number>;
}

export interface Collections {
  /** Creates a collection (409 AkiDBError when the name is taken). */
  create(request: CreateCollectionRequest, options?: CallOptions): Promise<Collection>;
  /** Every collection, oldest first. */
  list(options?: CallOptions): Promise<CollectionInfo[]>;
  /** The collection named (or with this id), fetched: 404 AkiDBError when there is none. */
  get(name: string, options?: CallOptions): Promise<Collection>;
  /** A handle on a collection without asking the server (its calls fail with 404 if it does not exist). */
  collection(name: string): Collection;
  /** Deletes a collection and everything in it. */
  delete(name: string, options?: CallOptions): Promise<Schemas["DeletedCollection"]>;
}

function vectorOut(vector: VectorInput | undefined): number[] | string | undefined {
  if (vector === undefined) return undefined;
  return vector instanceof Float32Array ? encodeBase64Vector(vector) : Array.from(vector);
}

function documentIn<T extends { vector?: number[] }>(
  document: T,
): Omit<T, "vector"> & { vector?: Float32Array } {
  const { vector, ...rest } = document;
  return vector === undefined ? rest : { ...rest, vector: Float32Array.from(vector) };
}

function queryOut(query: SearchQuery): Schemas["SearchRequest"] {
  const { vector, ...rest } = query;
  return vector === undefined ? rest : { ...rest, vector: vectorOut(vector)! };
}

export function createCollections(raw: Client<PublicPaths>, init: CallInit): Collections {
  const path = (collection: string) => ({ params: { path: { collection } } });
  // Reads and deletes by id are safe to repeat after a lost connection; creating is not (a repeat
  // would be a 409), nor is an upsert that lets the server generate ids (a repeat would duplicate).
  const read = (call: CallOptions | undefined) => init({ idempotent: true }, call);

  const handle = (name: string, info: CollectionInfo | undefined): Collection => ({
    name,
    info,
    async upsert(documents, call) {
      const body = {
        documents: documents.map(({ vector, ...rest }) => ({ ...rest, vector: vectorOut(vector) })),
      };
      const idempotent = documents.every((document) => document.id !== undefined);
      const result = await raw.POST("/api/v1/collections/{collection}/upsert", {
        ...path(name),
        body,
        ...init({ idempotent }, call),
      });
      return unwrap(result);
    },
    async search(query, call) {
      const result = await raw.POST("/api/v1/collections/{collection}/search", {
        ...path(name),
        body: queryOut(query),
        ...read(call),
      });
      const response = unwrap(result);
      return { ...response, results: response.results.map(documentIn) };
    },
    async searchBatch(queries, call) {
      const result = await raw.POST("/api/v1/collections/{collection}/search/batch", {
        ...path(name),
        body: { queries: queries.map(queryOut) },
        ...read(call),
      });
      const response = unwrap(result);
      return { ...response, results: response.results.map((hits) => hits.map(documentIn)) };
    },
    async get(request, call) {
      const result = await raw.POST("/api/v1/collections/{collection}/get", {
        ...path(name),
        body: request,
        ...read(call),
      });
      return unwrap(result).documents.map(documentIn);
    },
    async getDocument(id, call) {
      const result = await raw.GET("/api/v1/collections/{collection}/documents/{id}", {
        params: { path: { collection: name, id } },
        ...read(call),
      });
      return documentIn(unwrap(result));
    },
    async delete(request, call) {
      const result = await raw.POST("/api/v1/collections/{collection}/delete", {
        ...path(name),
        body: request,
        ...read(call),
      });
      return unwrap(result).deleted;
    },
    async deleteDocument(id, call) {
      const result = await raw.DELETE("/api/v1/collections/{collection}/documents/{id}", {
        params: { path: { collection: name, id } },
        ...read(call),
      });
      return unwrap(result).deleted;
    },
  });

  return {
    async create(request, call) {
      const result = await raw.POST("/api/v1/collections", {
        body: request,
        ...init({ idempotent: false }, call),
      });
      const info = unwrap(result);
      return handle(info.name, info);
    },
    list: async (call) => unwrap(await raw.GET("/api/v1/collections", read(call))).data,
    async get(name, call) {
      const info = unwrap(
        await raw.GET("/api/v1/collections/{collection}", { ...path(name), ...read(call) }),
      );
      return handle(name, info);
    },
    collection: (name) => handle(name, undefined),
    delete: async (name, call) =>
      // A repeat after a lost connection would answer 404 for a deletion that worked.
      unwrap(
        await raw.DELETE("/api/v1/collections/{collection}", {
          ...path(name),
          ...init({ idempotent: false }, call),
        }),
      ),
  };
}
