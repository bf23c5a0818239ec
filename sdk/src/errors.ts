/** Every failure of an SDK call: an HTTP error answered by the server (`status` set, the fields of
 * its `{error: {message, type, code, param}}` body), or no answer at all (`status` undefined:
 * `code` is `AKIDB_ERR_CONNECTION` or `AKIDB_ERR_TIMEOUT`). A call aborted through its
 * `AbortSignal` rejects with the signal's reason instead, as `fetch` does. */
export class AkiDBError extends Error {
  override name = "AkiDBError";
  /** The HTTP status; undefined when no response arrived. */
  readonly status: number | undefined;
  /** Error class, e.g. `invalid_request_error`, `authentication_error`, `server_error`. */
  readonly type: string;
  /** Stable machine-readable code (`AKIDB_ERR_*`), when the server gave one. */
  readonly code: string | null;
  /** The request field at fault, e.g. `input[3]`. */
  readonly param: string | null;
  /** The `x-request-id` of the failed response (quote it when reporting a problem). */
  readonly requestId: string | undefined;

  constructor(fields: {
    status: number | undefined;
    type: string;
    code: string | null;
    message: string;
    param: string | null;
    requestId?: string | undefined;
    cause?: unknown;
  }) {
    super(fields.message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.status = fields.status;
    this.type = fields.type;
    this.code = fields.code;
    this.param = fields.param;
    this.requestId = fields.requestId;
  }
}

function stringOrNull(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** The AkiDBError for an HTTP error response whose body (parsed JSON, text, or undefined) is `body`.
 * A body that is not the contract's error shape (say, a proxy's HTML page) still gives an error
 * naming the status. */
export function errorFromResponse(response: Response, body: unknown): AkiDBError {
  const requestId = response.headers.get("x-request-id") ?? undefined;
  const error =
    typeof body === "object" && body !== null && "error" in body
      ? (body as { error: unknown }).error
      : undefined;
  if (
    typeof error === "object" &&
    error !== null &&
    "message" in error &&
    typeof error.message === "string"
  ) {
    const fields = error as { message: string; type?: unknown; code?: unknown; param?: unknown };
    return new AkiDBError({
      status: response.status,
      type: stringOrNull(fields.type) ?? "api_error",
      code: stringOrNull(fields.code),
      message: fields.message,
      param: stringOrNull(fields.param),
      requestId,
    });
  }
  const detail = typeof body === "string" && body !== "" ? `: ${body.slice(0, 200)}` : "";
  return new AkiDBError({
    status: response.status,
    type: "api_error",
    code: null,
    message: `HTTP ${response.status} ${response.statusText}${detail}`.trim(),
    param: null,
    requestId,
  });
}

/** The data of a 2xx answer. The transport already threw for every other status, so this only
 * guards against a response the transport let through without a body. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data === undefined) throw errorFromResponse(result.response, result.error);
  return result.data;
}
