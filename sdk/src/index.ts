// @akidb/sdk: a typed client for the AkiDB control plane (Node >= 22 and browsers; fetch only).
export {
  type AkiDB,
  type CallOptions,
  type ClientOptions,
  createAkiDB,
  type EmbeddingRequest,
  type PublicPaths,
} from "./client.ts";
export type {
  BatchSearchResult,
  Collection,
  CollectionInfo,
  Collections,
  CreateCollectionRequest,
  Document,
  DocumentInput,
  SearchHit,
  SearchQuery,
  SearchResult,
  VectorInput,
} from "./collections.ts";
export {
  decodeBase64Vector,
  type Embedding,
  type EmbeddingResult,
  encodeBase64Vector,
} from "./embeddings.ts";
export { AkiDBError } from "./errors.ts";
export type { components, paths } from "./generated/schema.d.ts";
export type { RetryOptions, TransportOptions } from "./transport.ts";
