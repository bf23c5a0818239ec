/**
 * The control plane's one error registry. It knows nothing of HTTP frameworks: each code carries
 * its status as plain data, and only `http/` turns an error into a response.
 */

/** The status a client gets for an error (4xx or 5xx). */
export type ErrorStatus = number;

/** OpenAI's error classes: clients branch on these. */
export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "timeout_error"
  | "server_error";

interface ErrorSpec<P> {
  status: ErrorStatus;
  type: ErrorType;
  /** A message a user can act on: it names the field, the limit and what to do. */
  message: (params: P) => string;
}

const spec = <P>(s: ErrorSpec<P>): ErrorSpec<P> => s;

/** Every error the server answers with, and the one place its HTTP status is decided. */
export const errorRegistry = {
  AKIDB_ERR_INVALID_JSON: spec<{ detail: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) => `The request body is not valid JSON (${p.detail}); send a JSON object.`,
  }),
  AKIDB_ERR_UNSUPPORTED_MEDIA_TYPE: spec<{ contentType: string }>({
    status: 415,
    type: "invalid_request_error",
    message: (p) =>
      `Content-Type ${p.contentType || "(none)"} is not supported; send the body as application/json.`,
  }),
  AKIDB_ERR_BODY_TOO_LARGE: spec<{ limitBytes: number }>({
    status: 413,
    type: "invalid_request_error",
    message: (p) =>
      `The request body is larger than server.max_body_bytes (${p.limitBytes} bytes); send fewer or shorter inputs.`,
  }),
  AKIDB_ERR_BODY_TIMEOUT: spec<{ timeoutMs: number }>({
    status: 408,
    type: "timeout_error",
    message: (p) =>
      `The request body did not arrive within ${p.timeoutMs} ms (server.body_timeout_ms_per_mb per MiB of its content-length); send it faster, or in smaller requests.`,
  }),
  AKIDB_ERR_INVALID_REQUEST: spec<{ param: string; problem: string }>({
    status: 422,
    type: "invalid_request_error",
    message: (p) => `Invalid ${p.param}: ${p.problem}.`,
  }),
  AKIDB_ERR_EMPTY_INPUT: spec<{ param: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) => `${p.param} is empty; every input must be a non-empty string.`,
  }),
  AKIDB_ERR_TOO_MANY_INPUTS: spec<{ count: number; limit: number }>({
    status: 413,
    type: "invalid_request_error",
    message: (p) =>
      `input has ${p.count} items, more than embedding.queue.max_inputs_per_request (${p.limit}); split the request.`,
  }),
  AKIDB_ERR_INPUT_TOO_LONG: spec<{ param: string; limit: number }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) =>
      `${p.param} is longer than the model's max_tokens (${p.limit} tokens, prompt included); shorten it or send truncate: true.`,
  }),
  AKIDB_ERR_DIMENSIONS_UNSUPPORTED: spec<{ dimensions: number; allowed: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) => `dimensions ${p.dimensions} is not supported by the model; allowed: ${p.allowed}.`,
  }),
  AKIDB_ERR_MODEL_NOT_FOUND: spec<{ model: string; available: string[] }>({
    status: 404,
    type: "invalid_request_error",
    message: (p) =>
      `The model \`${p.model}\` does not exist or is not loaded; use one of ${p.available.join(", ") || "(none)"} or omit model.`,
  }),
  AKIDB_ERR_TEXT_NEEDS_MODEL: spec<{ mode: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) =>
      `embedding.mode is ${p.mode}: this server has no embedding model, so text cannot be embedded; send vectors with your documents, or run with embedding.mode mlx.`,
  }),
  AKIDB_ERR_MODEL_UNAVAILABLE: spec<{ model: string; reason: string }>({
    status: 503,
    type: "server_error",
    message: (p) =>
      `The embedding model ${p.model} is not available: ${p.reason}. Vector requests still work; see /admin/v1/status.`,
  }),
  /** A model switch failed before any traffic moved (TEI answers a backend failure 424 too). */
  AKIDB_ERR_MODEL_LOAD_FAILED: spec<{ model: string; reason: string; serving: string }>({
    status: 424,
    type: "server_error",
    message: (p) =>
      `The model ${p.model} could not be loaded: ${p.reason}. Nothing changed: ${p.serving}. Fix the cause (e.g. put the model in embedding.mlx.cache_dir, or allow downloads) and retry; the server log has the process's output.`,
  }),
  AKIDB_ERR_OVERLOADED: spec<{ pending: number; limit: number }>({
    status: 429,
    type: "rate_limit_error",
    message: (p) =>
      `The embedding queue is full (${p.pending} inputs pending, embedding.queue.max_pending_inputs is ${p.limit}); retry after the Retry-After delay.`,
  }),
  AKIDB_ERR_BACKLOGGED: spec<{ count: number; aheadMs: number; timeoutMs: number }>({
    status: 429,
    type: "rate_limit_error",
    message: (p) =>
      `The ${p.count} inputs of this request could not be answered within embedding.queue.request_timeout_ms (${p.timeoutMs} ms): about ${p.aheadMs} ms of accepted work is ahead of them. Retry after the Retry-After delay, or send fewer inputs per request.`,
  }),
  AKIDB_ERR_TIMEOUT: spec<{ timeoutMs: number }>({
    status: 504,
    type: "timeout_error",
    message: (p) =>
      `The request did not finish within embedding.queue.request_timeout_ms (${p.timeoutMs} ms); retry, send fewer inputs, or raise the limit.`,
  }),
  /** Settles the promise of a client that went away; no response reaches it. */
  AKIDB_ERR_CANCELLED: spec<Record<string, never>>({
    status: 400,
    type: "invalid_request_error",
    message: () => "The client closed the request before it was computed.",
  }),
  AKIDB_ERR_INFERENCE_FAILED: spec<{ reason: string }>({
    status: 502,
    type: "server_error",
    message: (p) =>
      `The inference process failed: ${p.reason}. Retry; the supervisor restarts it if it died.`,
  }),
  /** The inference process refused the input (4xx); its message is kept, its status via `options.status`. */
  AKIDB_ERR_INFERENCE_REJECTED: spec<{ message: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) => p.message,
  }),
  AKIDB_ERR_UNAUTHORIZED: spec<{ credential: "server.api_keys" | "server.admin_token" }>({
    status: 401,
    type: "authentication_error",
    message: (p) =>
      `Missing bearer token: send the header Authorization: Bearer <token> with a token from ${p.credential}.`,
  }),
  AKIDB_ERR_INVALID_API_KEY: spec<Record<string, never>>({
    status: 401,
    type: "authentication_error",
    message: () => "Incorrect API key: the bearer token is not one of server.api_keys.",
  }),
  AKIDB_ERR_FORBIDDEN: spec<Record<string, never>>({
    status: 403,
    type: "permission_error",
    message: () => "The bearer token is not server.admin_token; the admin API needs the admin token.",
  }),
  AKIDB_ERR_NOT_FOUND: spec<{ method: string; path: string }>({
    status: 404,
    type: "not_found_error",
    message: (p) => `No route ${p.method} ${p.path}; see docs/api.md for the API.`,
  }),
  AKIDB_ERR_METHOD_NOT_ALLOWED: spec<{ method: string; path: string; allowed: string[] }>({
    status: 405,
    type: "invalid_request_error",
    message: (p) =>
      `${p.path} does not take ${p.method}; it takes ${p.allowed.join(", ")} (see the Allow header).`,
  }),
  AKIDB_ERR_MODE_CONFLICT: spec<{ mode: string; action: string }>({
    status: 409,
    type: "invalid_request_error",
    message: (p) =>
      `Cannot ${p.action}: embedding.mode is ${p.mode}, which runs no inference process; set embedding.mode to mlx.`,
  }),
  AKIDB_ERR_COLLECTION_NOT_FOUND: spec<{ collection: string }>({
    status: 404,
    type: "not_found_error",
    message: (p) => `No collection named or with id \`${p.collection}\`; GET /api/v1/collections lists them.`,
  }),
  AKIDB_ERR_COLLECTION_EXISTS: spec<{ name: string }>({
    status: 409,
    type: "invalid_request_error",
    message: (p) => `A collection named \`${p.name}\` already exists; pick another name or delete it first.`,
  }),
  AKIDB_ERR_TOO_MANY_COLLECTIONS: spec<{ limit: number }>({
    status: 409,
    type: "invalid_request_error",
    message: (p) =>
      `This server already holds collection.max_collections (${p.limit}) collections; delete one or raise the limit.`,
  }),
  AKIDB_ERR_DOCUMENT_NOT_FOUND: spec<{ collection: string; id: string }>({
    status: 404,
    type: "not_found_error",
    message: (p) => `Collection \`${p.collection}\` has no document with id \`${p.id}\`.`,
  }),
  AKIDB_ERR_DIMENSION_REQUIRED: spec<{ mode: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) =>
      `dimension is required: embedding.mode is ${p.mode}, so vectors come from the client and the dimension must be given (or set collection.default_dimension).`,
  }),
  AKIDB_ERR_DIMENSION_MISMATCH: spec<{ param: string; expected: number; got: number }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) =>
      `${p.param}: expected ${p.expected} dimensions, got ${p.got}; the collection's dimension is fixed at creation.`,
  }),
  /** A vector the contract admits but float32 cannot hold (a JSON number past its range, NaN bits, a partial float). */
  AKIDB_ERR_INVALID_VECTOR: spec<{ param: string; problem: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) => `${p.param}: ${p.problem}; send finite float32 values, as numbers or as base64 float32.`,
  }),
  AKIDB_ERR_LIMIT_EXCEEDED: spec<{ param: string; what: string; limit: number; key: string }>({
    status: 413,
    type: "invalid_request_error",
    message: (p) => `${p.param}: ${p.what}, more than ${p.key} (${p.limit}); split or shorten it.`,
  }),
  AKIDB_ERR_INVALID_FILTER: spec<{ param: string; problem: string }>({
    status: 400,
    type: "invalid_request_error",
    message: (p) =>
      `${p.param}: ${p.problem}; filters use Chroma's syntax ($eq $ne $gt $gte $lt $lte $in $nin $exists $and $or), see docs/api.md.`,
  }),
  AKIDB_ERR_MODEL_MISMATCH: spec<{ collection: string; collectionModel: string; servedModel: string }>({
    status: 409,
    type: "invalid_request_error",
    message: (p) =>
      `Collection \`${p.collection}\` embeds text with ${p.collectionModel}, but this server serves ${p.servedModel}; send vectors, or serve ${p.collectionModel}.`,
  }),
  AKIDB_ERR_SHUTTING_DOWN: spec<Record<string, never>>({
    status: 503,
    type: "server_error",
    message: () => "The server is shutting down; retry against another instance or after it restarts.",
  }),
  /** The collection store's thread stopped and a new one is reopening the data directory. */
  AKIDB_ERR_STORE_RESTARTING: spec<{ reason: string }>({
    status: 503,
    type: "server_error",
    message: (p) =>
      `The collection store is restarting (${p.reason}); retry after Retry-After seconds. A write in flight may or may not have been committed: repeat it with the same ids.`,
  }),
  AKIDB_ERR_INTERNAL: spec<{ reason: string }>({
    status: 500,
    type: "server_error",
    message: (p) =>
      `Internal error: ${p.reason}. This is a bug; the request id is in the x-request-id header.`,
  }),
} as const;

export type AkidbErrorCode = keyof typeof errorRegistry;
export type AkidbErrorParams<C extends AkidbErrorCode> = Parameters<(typeof errorRegistry)[C]["message"]>[0];

export interface AkidbErrorOptions {
  /** The request field at fault, e.g. `input[2]`. */
  param?: string | null;
  /** Overrides the registry's status; only for errors passed through from the inference process. */
  status?: ErrorStatus;
  /** Seconds a client should wait before retrying (sent as Retry-After). */
  retryAfterSeconds?: number;
  cause?: unknown;
}

/** The one error type of the control plane: a registry code, its status and an actionable message. */
export class AkidbError<C extends AkidbErrorCode = AkidbErrorCode> extends Error {
  readonly code: C;
  readonly status: ErrorStatus;
  readonly type: ErrorType;
  readonly param: string | null;
  readonly retryAfterSeconds: number | undefined;
  readonly params: AkidbErrorParams<C>;

  constructor(code: C, params: AkidbErrorParams<C>, options: AkidbErrorOptions = {}) {
    const entry = errorRegistry[code] as ErrorSpec<AkidbErrorParams<C>>;
    super(entry.message(params), { cause: options.cause });
    this.name = "AkidbError";
    this.code = code;
    this.params = params;
    this.status = options.status ?? entry.status;
    this.type = entry.type;
    this.param = options.param ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The same error about another field: a batch numbers inputs its own way, a client needs its own. */
  withParam(param: string): AkidbError<C> {
    const moved = new AkidbError(this.code, this.params, {
      param,
      status: this.status,
      retryAfterSeconds: this.retryAfterSeconds,
      cause: this.cause,
    });
    if (this.param) moved.message = this.message.split(this.param).join(param);
    return moved;
  }
}

export function isAkidbError(value: unknown): value is AkidbError {
  return value instanceof AkidbError;
}

/** An error as it crosses a thread boundary (structured clone keeps only an Error's message). */
export type SerializedError =
  | {
      code: AkidbErrorCode;
      params: unknown;
      param: string | null;
      status: number;
      retryAfterSeconds: number | undefined;
    }
  | { message: string };

/** An error as a worker thread posts it: an AkidbError keeps its code, params, field and Retry-After. */
export function serializeError(error: unknown): SerializedError {
  if (isAkidbError(error)) {
    return {
      code: error.code,
      params: error.params,
      param: error.param,
      status: error.status,
      retryAfterSeconds: error.retryAfterSeconds,
    };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}

/** The error `serializeError` was given, rebuilt on the receiving thread. */
export function deserializeError(error: SerializedError): Error {
  if ("message" in error) return new Error(error.message);
  return new AkidbError(error.code, error.params as never, {
    ...(error.param === null ? {} : { param: error.param }),
    status: error.status,
    ...(error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds }),
  });
}
