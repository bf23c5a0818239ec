import { z } from "zod";

// Every object is strict (an unknown key is an error with a did-you-mean suggestion) and every
// section has a prefault, so an empty file, or none, yields the documented defaults.
// `akidb.example.yaml` lists every key with its default; a test keeps the two in step.

const positiveInt = z.int().min(1);

const restartSchema = z.strictObject({
  /**
   * Unexpected exits (or hangs) tolerated within `window_ms` before the supervisor enters `failed`,
   * from where it retries only once every `backoff_max_ms`. Higher rides out more flakiness; lower
   * surfaces a broken model sooner; 0 never restarts. Default 5.
   */
  max_restarts: z.int().min(0).default(5),
  /** The sliding window, in ms, over which `max_restarts` is counted. Default 300000 (5 min). */
  window_ms: positiveInt.default(300_000),
  /**
   * Delay before the first restart, doubled after each consecutive failure. Short recovers
   * faster; long spares a machine that a crashing model keeps loading. Default 500.
   */
  backoff_initial_ms: positiveInt.default(500),
  /** Upper bound of the restart delay. Default 30000. */
  backoff_max_ms: positiveInt.default(30_000),
});

/** The built-in default of `embedding.mlx.model`; only it falls back to `embedding.fallback_model`. */
export const DEFAULT_MODEL = "qwen3-0.6b-4bit";

const mlxSchema = z.strictObject({
  /**
   * What to load: a registry alias (`qwen3-0.6b-4bit`, `gemma-300m-4bit`, `minilm-l6-v2` or one
   * under `models`), a Hugging Face repo id, or a local checkpoint directory. Default
   * `qwen3-0.6b-4bit`: the best retrieval quality of the built-ins; `gemma-300m-4bit` is smaller
   * and faster; `minilm-l6-v2` is installed with AkiDB and needs no network.
   */
  model: z.string().min(1).default(DEFAULT_MODEL),
  /**
   * Where downloaded checkpoints are kept (a Hugging Face cache layout). `~` is the home
   * directory; relative paths are resolved against the config file's directory. Default
   * `~/.cache/akidb/models`.
   */
  cache_dir: z.string().min(1).default("~/.cache/akidb/models"),
  /**
   * Disk budget, in GB (10^9 bytes), of the models AkiDB downloaded into `cache_dir`. At server
   * start and at a model switch the least recently used of those (recorded in
   * `cache_dir/.akidb-downloads.json`) are deleted, with a warning, until they fit; models other
   * tools put in a shared cache, and the model in use, never are. Lower saves disk; higher keeps
   * more models ready to switch to offline. Default 10.
   */
  max_cache_gb: z.number().positive().default(10),
  /**
   * Most inputs per forward pass. Larger batches use the accelerator better but make every input
   * in the batch wait for the slowest. Requests with more inputs are split, never rejected. Default 32.
   */
  batch_size: positiveInt.default(32),
  /**
   * How long, in ms, a batch waits for more inputs before it runs. Higher improves throughput under
   * concurrency at the price of latency for a lone request. Default 5.
   */
  batch_timeout_ms: z.int().min(0).default(5),
  /**
   * Batches sent to the inference process and not yet answered. With 2, the next batch travels and
   * is tokenized while one computes, so a GPU does not idle between batches (TEI prepares its next
   * batch the same way); 1 sends a batch only once the last has returned, which keeps a CPU's cores
   * for the model. `auto`: 2 when the model computes on a GPU, 1 on a CPU. Default `auto`.
   */
  batches_in_flight: z.union([z.literal("auto"), positiveInt.max(8)]).default("auto"),
  /**
   * Token budget of one batch (padded tokens), bounding the memory of one forward pass. Lower is
   * safer on small machines; higher packs more long inputs together. Default 16384.
   */
  max_batch_tokens: positiveInt.default(16_384),
  /** L2-normalise vectors unless a request says otherwise; cosine and dot product then agree. Default true. */
  normalize: z.boolean().default(true),
  /** `auto` uses the GPU (Metal, or CUDA with MLX's CUDA build) when present, else the CPU; `gpu`, `cpu` force one. Default `auto`. */
  device: z.enum(["auto", "gpu", "cpu"]).default("auto"),
  /**
   * Start the inference process and load the model at server start (true), or on the first
   * request that needs it (false: faster start, slow first request). Default true.
   */
  preload: z.boolean().default(true),
  /** Checkpoint revision (branch, tag or commit) for a Hugging Face repo; unset means the entry's or `main`. */
  revision: z.string().min(1).optional(),
  /** Never contact the Hugging Face Hub: load only what `cache_dir` already holds. Default false. */
  offline: z.boolean().default(false),
  /**
   * How long, in ms, the inference process may take to become ready (download, load and warm-up)
   * before the start counts as failed. A first download needs the longest. Default 600000 (10 min).
   */
  startup_timeout_ms: positiveInt.default(600_000),
  /**
   * How often, in ms, the supervisor asks a running inference process `/health` (which answers
   * within 100 ms even mid-batch). Lower detects a hung process sooner at the price of a few more
   * loopback requests. Default 1000.
   */
  liveness_interval_ms: positiveInt.default(1000),
  /**
   * How long, in ms, a running inference process may go without answering `/health` before it is
   * declared hung (stopped, deadlocked): it is then killed (SIGKILL to its process group) and
   * restarted, and requests waiting on it get a retryable 503 at once. Lower recovers sooner; too
   * low could kill a process on a machine so loaded it answers late. Default 10000.
   */
  liveness_timeout_ms: positiveInt.default(10_000),
  /** When and how the inference process is restarted after it exits unexpectedly. */
  restart: restartSchema.prefault({}),
});

const onnxSchema = z.strictObject({
  /**
   * Weight precision of the ONNX graph AkiDB writes from the checkpoint. `f32` reproduces the
   * reference model (within 1e-5); `int8` (dynamic quantization) is about 4x faster on CPUs with
   * int8 dot products and less exact (MiniLM: cosine >= 0.98 against f32); `int4` has the smallest
   * weights (cosine >= 0.95). Default `f32`.
   */
  precision: z.enum(["f32", "int8", "int4"]).default("f32"),
  /**
   * ONNX Runtime intra-op threads. More use more cores for one batch; fewer leave cores to the
   * control plane and other processes. Unset: the CPU cores the inference process may use.
   */
  threads: positiveInt.optional(),
});

const mockSchema = z.strictObject({
  /** Dimension of the deterministic hash vectors of `mode: mock`. Default 384. */
  dimension: positiveInt.max(65_536).default(384),
});

const queueSchema = z
  .strictObject({
    /**
     * Inputs waiting for a batch, across all requests, before new requests get 429 with Retry-After.
     * Higher absorbs bursts; lower bounds memory and queueing delay. Default 4096.
     */
    max_pending_inputs: positiveInt.default(4096),
    /** Most inputs in one request (OpenAI's limit is 2048). Default 2048. */
    max_inputs_per_request: positiveInt.default(2048),
    /**
     * Most characters (UTF-16 code units) in one input; a longer one is 413 naming it. Models read
     * at most a few thousand tokens (~4 characters each) and truncate the rest, so this only bounds
     * the memory and transfer a single text can cost. Default 200000 (above every built-in model's
     * max_tokens times 4).
     */
    max_input_chars: positiveInt.default(200_000),
    /**
     * Refuse at once (429 with Retry-After) a request of several inputs that the recently measured
     * pace says could not be answered within `request_timeout_ms` behind the work already
     * accepted, instead of accepting it to time out having computed nothing. One-input requests are
     * always accepted (they ride in the next batch). Default true.
     */
    refuse_doomed: z.boolean().default(true),
    /** Deadline of a request from arrival to response, in ms; past it the answer is 504. Default 30000. */
    request_timeout_ms: positiveInt.default(30_000),
  })
  .superRefine((queue, context) => {
    // A request takes one permit per input from the pending pool: a larger one could never be queued.
    if (queue.max_inputs_per_request > queue.max_pending_inputs) {
      context.addIssue({
        code: "custom",
        path: ["max_inputs_per_request"],
        input: queue.max_inputs_per_request,
        message: `is more than embedding.queue.max_pending_inputs (${queue.max_pending_inputs}), the most inputs that can ever wait, so such a request could never be queued`,
      });
    }
  });

const embeddingSchema = z.strictObject({
  /**
   * `mlx`: embed text with a local model in the inference process (computed by MLX or ONNX Runtime:
   * `embedding.backend`). `user_provided`: no
   * model; documents and queries must carry vectors. `mock`: deterministic hash vectors, for
   * tests and demos. Default `mlx`.
   */
  mode: z.enum(["mlx", "user_provided", "mock"]).default("mlx"),
  /**
   * Served instead of the built-in default model when that one is neither in the cache nor
   * downloadable (a fresh or offline machine): a registry alias whose weights need no network.
   * The switch is logged once and shown by /health, /admin/v1/status and /v1/models; collections
   * record the model that embedded them, so vectors of the two never mix. Only the default falls
   * back: a model set in `mlx.model` that cannot be had leaves the server `degraded`. `""` turns
   * the fallback off (the default model is then `degraded` too until it can be had). Default
   * `minilm-l6-v2`.
   */
  fallback_model: z.string().default("minilm-l6-v2"),
  /** Prompt for requests that do not say `input_type`: OpenAI clients send none. Default `document`. */
  default_input_type: z.enum(["query", "document"]).default("document"),
  /**
   * Which library the inference process computes with: `mlx` (Apple MLX: Metal on Apple Silicon,
   * CUDA on NVIDIA GPUs with its CUDA build, a slow CPU path elsewhere), `onnx` (ONNX Runtime: the
   * CPU's vector and int8 units, CUDA with onnxruntime-gpu), or `auto`: MLX on Metal; on NVIDIA
   * GPUs ONNX Runtime's CUDA provider (measured faster than MLX's CUDA build), or MLX's CUDA build
   * without onnxruntime-gpu; ONNX Runtime on CPUs. The model, batching and device settings under
   * `mlx` apply to both. Default `auto`.
   */
  backend: z.enum(["auto", "mlx", "onnx"]).default("auto"),
  /** The local model and its batching. */
  mlx: mlxSchema.prefault({}),
  /** The ONNX Runtime backend's settings. */
  onnx: onnxSchema.prefault({}),
  /** The mock model. */
  mock: mockSchema.prefault({}),
  /** Backpressure and deadlines of embedding requests. */
  queue: queueSchema.prefault({}),
});

const collectionSchema = z.strictObject({
  /**
   * Dimension of a collection created without one in `user_provided` mode (the spec's key). Unset
   * (the default), such a create is a 400 naming `dimension`: vectors come from the client, so
   * only it knows their size.
   */
  default_dimension: positiveInt.max(65_536).optional(),
  /** Similarity of a collection created without one. Default `cosine`. */
  default_metric: z.enum(["cosine", "l2", "ip"]).default("cosine"),
  /** Most collections one server holds; creating another is 409. Default 1000. */
  max_collections: positiveInt.default(1000),
  /**
   * Most documents in one upsert, ids in one get or delete, and the largest `limit` of a get. Larger
   * requests amortise the commit; smaller ones bound a request's memory and latency. Default 1000.
   */
  max_documents_per_request: positiveInt.default(1000),
  /** Longest document or query text, in UTF-8 bytes (the model truncates to its max tokens anyway). Default 32768. */
  max_text_bytes: positiveInt.default(32_768),
  /** Largest metadata object of one document, in bytes of its JSON. Metadata is held in RAM for filters. Default 8192. */
  max_metadata_bytes: positiveInt.default(8192),
  /** Deepest nesting of metadata (objects and arrays); 1 allows only flat values. Default 4. */
  max_metadata_depth: positiveInt.max(64).default(4),
  /** Longest document id, in UTF-8 bytes. Default 256. */
  max_id_length: positiveInt.max(4096).default(256),
  /** Largest vector dimension a collection may have (the index supports up to 4096 here). Default 4096. */
  max_dimension: positiveInt.max(4096).default(4096),
  /** Largest `k` of a search; the cost of a search grows with it. Default 1000. */
  max_k: positiveInt.max(10_000).default(1000),
  /** Most queries in one batch search. Default 100. */
  max_queries_per_search: positiveInt.default(100),
  /**
   * A filtered search whose filter matches at most this many documents compares the query with each
   * of them exactly (full recall, cost linear in the matches); a wider filter searches the graph,
   * whose walk fills its beam with matching documents only. Default 2048.
   */
  exact_search_max_matches: z.int().min(0).default(2048),
  /**
   * Threads that insert one batch of vectors into a collection's index (up to 64 vectors per call,
   * in the store's thread). More ingests faster where cores are free; 1 inserts one vector at a
   * time. On Linux they run at nice + 10, so HTTP requests are served first while an ingest keeps
   * every core busy. Recall and reachability after threaded inserts are tested equal to single-threaded ones
   * (usearch, the index before AkiDB's own, could strand nodes: its issue #735). Default 2.
   */
  insert_threads: positiveInt.max(64).default(2),
  /**
   * Share of a collection's graph made of dead nodes (replaced versions and deleted documents, which
   * stay in the graph so no live node loses its links) at which the graph is rebuilt from the live
   * vectors, beside the serving one, and snapshotted. Lower keeps RAM, snapshots and the steps a
   * search spends passing dead nodes smaller but rebuilds more often: a rebuild inserts every live vector
   * again, once per `ratio / (1 - ratio)` x live updates. Default 0.3.
   */
  compact_dead_ratio: z.number().gt(0).lt(1).default(0.3),
});

const serverSchema = z.strictObject({
  /**
   * Interface to listen on. Default `127.0.0.1` (this machine only). Any other host needs
   * `admin_token`, or the server refuses to start.
   */
  host: z.string().min(1).default("127.0.0.1"),
  /** TCP port; 0 picks a free one (logged at start). Default 8080. */
  port: z.int().min(0).max(65_535).default(8080),
  /** Bearer tokens accepted on the public API; empty leaves it open. Default none. */
  api_keys: z.array(z.string().min(1)).default([]),
  /** Bearer token of `/admin/v1`; unset leaves the admin API open, which only a loopback host allows. */
  admin_token: z.string().min(1).optional(),
  /** Browser origins allowed by CORS, or `*`; empty sends no CORS headers. Default none. */
  cors_origins: z.array(z.string().min(1)).default([]),
  /** Largest request body in bytes; larger bodies get 413. Default 16777216 (16 MiB). */
  max_body_bytes: positiveInt.default(16 * 1024 * 1024),
  /**
   * How long, in ms, a client may take to send a request's headers before the socket is closed
   * (408). Lower frees sockets held by slow or idle clients sooner. Default 5000.
   */
  headers_timeout_ms: positiveInt.default(5000),
  /**
   * Time, in ms, a request body may take to arrive per MiB of its content-length, at least one
   * MiB's worth (a chunked body gets the time of `max_body_bytes`), else 408 and the connection
   * closes. Lower bounds what a slow sender can hold; higher suits clients on slow links.
   * Default 2000 (0.5 MiB/s).
   */
  body_timeout_ms_per_mb: positiveInt.default(2000),
  /**
   * On SIGINT/SIGTERM, how long in-flight requests may finish before the server closes anyway, in
   * ms. Default 10000.
   */
  shutdown_timeout_ms: positiveInt.default(10_000),
  /** Least severe log level written (pino levels). Default `info`. */
  log_level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  /**
   * Log bytes held in memory while stdout's reader lags (a pipe nobody reads). Past this, lines are
   * dropped and counted (`akidb_log_lines_dropped_total`, and a warning once lines get through
   * again) rather than wait: a write that waited would stop the server. Higher rides out longer
   * stalls of the reader, with that much more memory. Default 1048576 (1 MiB).
   */
  log_queue_bytes: positiveInt.default(1024 * 1024),
});

const storageSchema = z.strictObject({
  /** Directory of the durable log and index snapshots; relative to the config file. Default `./data`. */
  data_dir: z.string().min(1).default("./data"),
  /**
   * Index changes after which a collection's index is snapshotted (written atomically) and its log
   * up to the snapshot deleted. The snapshot waits until no write has arrived or been applied for
   * 1 s (saving is one synchronous call that holds the store's thread: writes and searches wait), or is written anyway at 8 times
   * this many changes.
   * Lower makes restarts replay less and keeps the log small, at the price of writing the whole
   * index more often. Default 10000.
   */
  snapshot_every_ops: positiveInt.default(10_000),
});

/** A user registry entry under `models`: the facts the control plane needs before the model loads. */
export const modelEntrySchema = z.strictObject({
  /** Hugging Face repo id or local checkpoint directory. */
  source: z.string().min(1),
  /** Checkpoint revision of a Hugging Face repo; default `main`. */
  revision: z.string().min(1).optional(),
  /** The checkpoint's `model_type` (e.g. `qwen3`, `gemma3_text`; the inference process decides which it serves). */
  architecture: z.string().min(1),
  /** Full output dimension. */
  dimension: positiveInt,
  /**
   * Dimensions a vector may be truncated to: a list of sizes (`[256, 512]`), or `{min, max}` for
   * any size in a range; default only `dimension`.
   */
  matryoshka_dimensions: z
    .union([z.array(positiveInt).min(1), z.strictObject({ min: positiveInt, max: positiveInt })])
    .optional(),
  /** Longest input in tokens, prompt included. */
  max_tokens: positiveInt,
  /**
   * Default: the architecture's (`last_token` for qwen3, `mean` for gemma3_text and bert); required for
   * other architectures.
   */
  pooling: z.enum(["last_token", "mean"]).optional(),
  /** Prefix per input type; default: the architecture's (qwen3, gemma3_text, bert), else required. */
  prompts: z.strictObject({ query: z.string(), document: z.string() }).optional(),
  /** Weight quantization; default none (full precision). */
  quantization: z.strictObject({ bits: positiveInt, group_size: positiveInt }).nullable().default(null),
  /** SPDX id or name of the weights' license. Default `unknown`. */
  license: z.string().min(1).default("unknown"),
  /** Download size in MB, when known. */
  size_mb: z.number().positive().optional(),
});

export const configSchema = z.strictObject({
  embedding: embeddingSchema.prefault({}),
  collection: collectionSchema.prefault({}),
  server: serverSchema.prefault({}),
  storage: storageSchema.prefault({}),
  /** User registry entries, keyed by alias; they add to (or replace) the built-in entries. */
  models: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]*$/), modelEntrySchema).default({}),
});

export type AkidbConfig = z.infer<typeof configSchema>;
export type ModelEntryConfig = z.infer<typeof modelEntrySchema>;
