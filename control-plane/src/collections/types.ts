import type { Filter } from "./filter.ts";

export type Metric = "cosine" | "l2" | "ip";
export type Quantization = "f32" | "f16" | "i8";

/** HNSW parameters: graph degree, build beam, default search beam. */
export interface IndexParams {
  M: number;
  ef_construction: number;
  ef_search: number;
}

/** What a collection is created with; every field already validated and defaulted by the caller. */
export interface CollectionSpec {
  name: string;
  dimension: number;
  metric: Metric;
  quantization: Quantization;
  index: IndexParams;
  /** The embedding model text in this collection is embedded with; null: vectors only. */
  model: string | null;
}

export interface CollectionInfo extends CollectionSpec {
  id: string;
  /** Live documents. */
  count: number;
  /** Bytes the vector index holds in RAM (its graph and vectors, dead nodes included). */
  bytes_in_ram: number;
  /** Bytes of the collection's index snapshot on disk (its rows live in the shared SQLite file). */
  bytes_on_disk: number;
  created_at: string;
}

/** One document to write: its vector is already computed and checked against the dimension. */
export interface DocumentWrite {
  id: string;
  vector: Float32Array;
  text: string | null;
  metadata: Metadata | null;
}

export type MetadataValue =
  | string
  | number
  | boolean
  | null
  | MetadataValue[]
  | { [key: string]: MetadataValue };
export type Metadata = { [key: string]: MetadataValue };

export interface StoredDocument {
  id: string;
  vector?: Float32Array;
  text?: string | null;
  metadata?: Metadata | null;
}

/** Which stored fields a read returns besides the id. */
export interface Include {
  vector: boolean;
  text: boolean;
  metadata: boolean;
}

export interface UpsertResult {
  inserted: number;
  updated: number;
  ids: string[];
}

export interface GetQuery {
  ids?: string[];
  filter?: Filter;
  limit: number;
  offset: number;
  include: Include;
}

export interface DeleteQuery {
  ids?: string[];
  filter?: Filter;
}

export interface SearchQuery {
  vector: Float32Array;
  k: number;
  filter?: Filter;
  /** Search beam; defaults to the collection's `index.ef_search`. */
  ef?: number;
  include: Include;
}

export interface SearchHit extends StoredDocument {
  /** cosine: cosine similarity; ip: dot product (higher is better); l2: Euclidean distance (lower is better). */
  score: number;
}

/**
 * Where collections live. The local store keeps them in this process (HNSW graphs in RAM, SQLite on
 * disk); a distributed engine (a Qdrant or Milvus cluster) can implement the same interface
 * without touching HTTP (docs/scale-out.md). Collections are addressed by name or id. Errors are
 * AkidbErrors (collection or document not found, name taken); inputs arrive validated.
 */
export interface CollectionStore {
  create(spec: CollectionSpec): Promise<CollectionInfo>;
  list(): Promise<CollectionInfo[]>;
  get(nameOrId: string): Promise<CollectionInfo>;
  /** Deletes the collection and everything in it. */
  drop(nameOrId: string): Promise<void>;
  /**
   * Inserts or replaces documents by id, all or nothing. Resolves once the write is durable
   * (it survives kill -9) and visible to searches.
   */
  upsert(nameOrId: string, documents: DocumentWrite[]): Promise<UpsertResult>;
  /** Documents by ids (in the order asked, missing ones left out) or by filter (in insertion order). */
  getDocuments(nameOrId: string, query: GetQuery): Promise<StoredDocument[]>;
  /** Resolves with the number of documents deleted, once durable. */
  deleteDocuments(nameOrId: string, query: DeleteQuery): Promise<number>;
  /** One result list per query, best first. */
  search(nameOrId: string, queries: SearchQuery[]): Promise<SearchHit[][]>;
  /** Writes snapshots and releases the data directory. */
  close(): Promise<void>;
}
