import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Every metric name starts with this, process metrics included. */
export const METRIC_PREFIX = "akidb_";

/** The server's Prometheus metrics, on a registry of their own so several servers can share a process. */
export interface Metrics {
  registry: Registry;
  /** Inputs per batch sent to the embedder. */
  batchSize: Histogram<never>;
  /** queue: enqueue to batch dispatch, per input; inference: one embedder call; total: one HTTP request. */
  latencyMs: Histogram<"stage">;
  /** Embedding requests answered, by HTTP status. */
  requests: Counter<"status">;
  /** Failed embedding requests by cause: the error code without its AKIDB_ERR_ prefix, lower-cased. */
  failures: Counter<"cause">;
  /** Embedding requests whose client went away before the answer (not failures of the server). */
  cancelled: Counter<never>;
  /** Inputs waiting in the batcher's queue (not yet sent). */
  queueDepth: Gauge<never>;
  /** Tokens embedded, prompts and special tokens included. */
  tokens: Counter<never>;
  /** Times the supervisor restarted the inference process. */
  inferenceRestarts: Counter<never>;
  /** Collection upsert and search requests, end to end (embedding included). */
  collectionLatencyMs: Histogram<"operation">;
  /** Documents per collection. */
  collectionVectors: Gauge<"collection">;
  /** Estimated RAM of each collection's vector index. */
  collectionIndexBytes: Gauge<"collection">;
  /** Log lines dropped because stdout's reader lagged by more than `server.log_queue_bytes`. */
  logLinesDropped: Counter<never>;
}

/** 1 ms .. ~65 s, doubling: batching waits are milliseconds, cold CPU batches tens of seconds. */
const LATENCY_BUCKETS_MS = Array.from({ length: 17 }, (_, i) => 2 ** i);

/** 1 .. 1024, powers of two: batch_size is usually a power of two. */
const BATCH_SIZE_BUCKETS = Array.from({ length: 11 }, (_, i) => 2 ** i);

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  const registers = [registry];
  return {
    registry,
    batchSize: new Histogram({
      name: `${METRIC_PREFIX}embedding_batch_size`,
      help: "Inputs per batch sent to the embedder.",
      buckets: BATCH_SIZE_BUCKETS,
      registers,
    }),
    latencyMs: new Histogram({
      name: `${METRIC_PREFIX}embedding_latency_ms`,
      help: "Embedding latency in milliseconds by stage: queue (per input), inference (per batch), total (per request).",
      labelNames: ["stage"],
      buckets: LATENCY_BUCKETS_MS,
      registers,
    }),
    requests: new Counter({
      name: `${METRIC_PREFIX}embedding_requests_total`,
      help: "Embedding requests answered, by HTTP status.",
      labelNames: ["status"],
      registers,
    }),
    failures: new Counter({
      name: `${METRIC_PREFIX}embedding_failures_total`,
      help: "Failed embedding requests by cause (error code).",
      labelNames: ["cause"],
      registers,
    }),
    cancelled: new Counter({
      name: `${METRIC_PREFIX}embedding_cancelled_total`,
      help: "Embedding requests whose client went away before the answer (not counted as failures).",
      registers,
    }),
    queueDepth: new Gauge({
      name: `${METRIC_PREFIX}embedding_queue_depth`,
      help: "Inputs waiting in the batcher's queue.",
      registers,
    }),
    tokens: new Counter({
      name: `${METRIC_PREFIX}embedding_tokens_total`,
      help: "Tokens embedded, prompts and special tokens included.",
      registers,
    }),
    inferenceRestarts: new Counter({
      name: `${METRIC_PREFIX}inference_restarts_total`,
      help: "Times the supervisor restarted the inference process.",
      registers,
    }),
    collectionLatencyMs: new Histogram({
      name: `${METRIC_PREFIX}collection_latency_ms`,
      help: "Collection request latency in milliseconds by operation (upsert, search), embedding included.",
      labelNames: ["operation"],
      buckets: LATENCY_BUCKETS_MS,
      registers,
    }),
    collectionVectors: new Gauge({
      name: `${METRIC_PREFIX}collection_vectors`,
      help: "Documents (vectors) per collection.",
      labelNames: ["collection"],
      registers,
    }),
    collectionIndexBytes: new Gauge({
      name: `${METRIC_PREFIX}collection_index_bytes`,
      help: "Estimated RAM of each collection's vector index, in bytes.",
      labelNames: ["collection"],
      registers,
    }),
    logLinesDropped: new Counter({
      name: `${METRIC_PREFIX}log_lines_dropped_total`,
      help: "Log lines dropped because stdout was not read fast enough (server.log_queue_bytes).",
      registers,
    }),
  };
}

/** The `cause` label of a failure: `AKIDB_ERR_TIMEOUT` -> `timeout`. */
export function failureCause(code: string): string {
  return code.replace(/^AKIDB_ERR_/, "").toLowerCase();
}
