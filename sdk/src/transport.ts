// The fetch that openapi-fetch calls: ky, for retries with backoff, per-attempt timeouts and
// aborts, and the one place where a failure becomes an AkiDBError.
import ky, { isHTTPError, isNetworkError, isTimeoutError } from "ky";
import { AkiDBError, errorFromResponse } from "./errors.ts";

/** Retry policy. Retries happen on 429 and 503 (the server refused the request before doing any
 * work, so repeating it is safe for every call; a `Retry-After` header sets the wait) and, for
 * idempotent calls only, on connection errors. */
export interface RetryOptions {
  /** Retries after the first attempt (default 2; 0 disables retries). */
  limit?: number;
  /** Backoff before retry n without Retry-After: baseDelayMs * 2^(n-1), with full jitter (default 300). */
  baseDelayMs?: number;
  /** Upper bound of one wait, Retry-After included (default 30 000). */
  maxDelayMs?: number;
}

export interface TransportOptions {
  /** Per-attempt timeout in ms for getting a response (default 60 000; false: none). */
  timeoutMs?: number | false;
  retry?: RetryOptions;
  /** The fetch to send requests with (default: the global fetch, looked up at call time). */
  fetch?: typeof globalThis.fetch;
}

/** How one operation may be retried and timed. */
export interface CallPolicy {
  /** Repeating the call after a lost connection cannot do anything twice. */
  idempotent: boolean;
  /** Statuses that are the operation's answer rather than an error (e.g. /health's 503). */
  answerStatuses?: readonly number[];
  /** Overrides the client's per-attempt timeout (long admin operations). */
  timeoutMs?: number | false | undefined;
}

const RETRY_STATUSES = [429, 503];
const ALL_METHODS = ["get", "put", "post", "patch", "delete", "head", "options"];

/** A fetch for one call under `policy`: rejects with AkiDBError for HTTP errors (after retries),
 * timeouts and connection errors; returns the response for 2xx and `answerStatuses`. */
export function transportFetch(
  options: TransportOptions,
  policy: CallPolicy,
): (request: Request) => Promise<Response> {
  const retry = options.retry ?? {};
  const baseDelayMs = retry.baseDelayMs ?? 300;
  const answers = policy.answerStatuses ?? [];
  return async (request) => {
    try {
      return await ky(request, {
        fetch: (input, init) => (options.fetch ?? globalThis.fetch)(input, init),
        timeout: policy.timeoutMs ?? options.timeoutMs ?? 60_000,
        throwHttpErrors: (status) => !answers.includes(status),
        retry: {
          limit: retry.limit ?? 2,
          methods: ALL_METHODS,
          statusCodes: RETRY_STATUSES.filter((status) => !answers.includes(status)),
          afterStatusCodes: RETRY_STATUSES,
          maxRetryAfter: retry.maxDelayMs ?? 30_000,
          backoffLimit: retry.maxDelayMs ?? 30_000,
          delay: (attempt) => baseDelayMs * 2 ** (attempt - 1),
          jitter: true,
          shouldRetry: ({ error }) => (isNetworkError(error) ? policy.idempotent : undefined),
        },
      });
    } catch (error) {
      throw toAkiDBError(error, request);
    }
  };
}

function toAkiDBError(error: unknown, request: Request): unknown {
  if (isHTTPError(error)) return errorFromResponse(error.response, error.data);
  if (isTimeoutError(error)) {
    return new AkiDBError({
      status: undefined,
      type: "timeout_error",
      code: "AKIDB_ERR_TIMEOUT",
      message: `${request.method} ${new URL(request.url).pathname} got no response within the timeout`,
      param: null,
      cause: error,
    });
  }
  if (isNetworkError(error)) {
    return new AkiDBError({
      status: undefined,
      type: "connection_error",
      code: "AKIDB_ERR_CONNECTION",
      message: `${request.method} ${request.url} failed to connect: ${String(error.cause ?? error.message)}`,
      param: null,
      cause: error,
    });
  }
  // An abort (the caller's signal) and anything unexpected propagate unchanged.
  return error;
}
