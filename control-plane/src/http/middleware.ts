import { randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Context, MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { z } from "zod";
import { AkidbError } from "../errors.ts";
import { parseJson, parseJsonWithVectors, validated } from "./json-body.ts";

/** Per-request values the middleware hands to routes. */
export interface AppEnv {
  /** What @hono/node-server passes: the Node request (absent under `app.request`, as in tests). */
  Bindings: { incoming?: IncomingMessage } | undefined;
  Variables: {
    requestId: string;
    /** The AKIDB_ERR_* code of the error answered, for the request log and metrics. */
    errorCode?: string;
    /** The whole request body, as `receiveBody` read it (routes read it with `bodyBytes`). */
    body?: Buffer;
  };
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/** Takes the client's `x-request-id` when it is a sane token, else a new UUID; echoes it back. */
export function requestId(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const given = c.req.header("x-request-id");
    const id = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set("requestId", id);
    c.header("x-request-id", id);
    await next();
  };
}

/** One JSON line per request: `{reqId, method, path, status, ms}` (plus the error code, if any). */
export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const ms = Math.round((performance.now() - started) * 10) / 10;
    const { status } = c.res;
    const line = { reqId: c.get("requestId"), method: c.req.method, path: c.req.path, status, ms };
    const code = c.get("errorCode");
    if (status >= 500) logger.warn({ ...line, code }, "request");
    else logger.info(code ? { ...line, code } : line, "request");
  };
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearerToken(c: Context): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
  return match?.[1];
}

/** The public API: open when `server.api_keys` is empty, else one of them as a bearer token. */
export function apiKeyAuth(apiKeys: readonly string[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (apiKeys.length > 0) {
      const token = bearerToken(c);
      if (token === undefined)
        throw new AkidbError("AKIDB_ERR_UNAUTHORIZED", { credential: "server.api_keys" });
      if (!apiKeys.some((key) => sameToken(token, key)))
        throw new AkidbError("AKIDB_ERR_INVALID_API_KEY", {});
    }
    await next();
  };
}

/** The admin API: open when `server.admin_token` is unset (the config allows that on loopback only). */
export function adminAuth(adminToken: string | undefined): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (adminToken !== undefined) {
      const token = bearerToken(c);
      if (token === undefined) {
        throw new AkidbError("AKIDB_ERR_UNAUTHORIZED", { credential: "server.admin_token" });
      }
      if (!sameToken(token, adminToken)) throw new AkidbError("AKIDB_ERR_FORBIDDEN", {});
    }
    await next();
  };
}

const MIB = 2 ** 20;

/** Bodies longer than this (bytes of JSON) are parsed and validated in separate turns of the event loop. */
const YIELD_AFTER_PARSE_BYTES = 1 << 20;

export interface BodyLimits {
  /** `server.max_body_bytes`: larger is 413. */
  maxBytes: number;
  /** `server.body_timeout_ms_per_mb`: per MiB of the body's declared length, at least one MiB's worth. */
  msPerMiB: number;
}

/**
 * How long a body of `declaredBytes` (undefined: chunked, so the largest allowed) may take to arrive.
 * A small body gets a short deadline, so a slow sender cannot hold a socket for the largest body's.
 */
export function bodyDeadlineMs(limits: BodyLimits, declaredBytes: number | undefined): number {
  return limits.msPerMiB * Math.max(1, Math.ceil((declaredBytes ?? limits.maxBytes) / MIB));
}

/**
 * Reads the whole request body before any route sees it (routes then read it from memory), within
 * both limits: 413 for a body larger than `maxBytes` (before reading, when content-length says so),
 * 408 when it has not all arrived by `bodyDeadlineMs`. The 408 closes the connection: the rest of
 * the body is never read.
 */
export function receiveBody(limits: BodyLimits): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    // Read from the Node request itself where there is one: `c.req.raw.body` would first build a
    // web Request and a ReadableStream around it, which cost a small search request more CPU (~0.4
    // ms at 1024 dimensions) than the rest of its handling.
    const source = c.env?.incoming ?? c.req.raw.body;
    if (!source || c.req.method === "GET" || c.req.method === "HEAD") return next();
    const length = c.req.header("content-length");
    const declared = length !== undefined && !c.req.header("transfer-encoding") ? Number(length) : undefined;
    if (declared !== undefined && declared > limits.maxBytes) {
      throw new AkidbError("AKIDB_ERR_BODY_TOO_LARGE", { limitBytes: limits.maxBytes });
    }
    const timeoutMs = bodyDeadlineMs(limits, declared);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        c.header("connection", "close");
        reject(new AkidbError("AKIDB_ERR_BODY_TIMEOUT", { timeoutMs }));
      }, timeoutMs);
    });
    const chunks: Uint8Array[] = [];
    let size = 0;
    // Each read races the deadline (a `for await` loop could not).
    const reader = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const { done, value } = await Promise.race([reader.next(), deadline]);
        if (done) break;
        size += value.length;
        if (size > limits.maxBytes) {
          c.header("connection", "close");
          throw new AkidbError("AKIDB_ERR_BODY_TOO_LARGE", { limitBytes: limits.maxBytes });
        }
        chunks.push(value);
      }
    } finally {
      clearTimeout(timer);
    }
    // Kept as the one copy routes read (a Request rebuilt around it would copy it again: for a
    // 7.6 MB upsert, each copy is external memory the HTTP thread's GC has to account for).
    c.set("body", Buffer.concat(chunks, size));
    await next();
  };
}

/** The request body `receiveBody` read (empty when there was none). */
export function bodyBytes(c: Context<AppEnv>): Buffer {
  return c.get("body") ?? Buffer.alloc(0);
}

/** 415 unless the request's content type is JSON. */
export function checkJsonContentType(c: Context): void {
  const contentType = c.req.header("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(contentType)) {
    throw new AkidbError("AKIDB_ERR_UNSUPPORTED_MEDIA_TYPE", { contentType });
  }
}

/**
 * The JSON body validated by `schema`. 415 unless it is application/json, 400 when it does not
 * parse, 422 (or 400 for an empty string) naming the first field at fault. The body's size and
 * time limits are a middleware of their own (`receiveBody`), which has read it before this runs.
 * With `vectors`, the body's vectors of that dimension are read natively (`parseJsonWithVectors`).
 */
export async function readJson<S extends z.ZodObject>(
  c: Context<AppEnv>,
  schema: S,
  vectors?: { dimension: number; list: string | null },
): Promise<z.infer<S>> {
  checkJsonContentType(c);
  const bytes = bodyBytes(c);
  const body = vectors
    ? parseJsonWithVectors(bytes, vectors.dimension, vectors.list)
    : parseJson(bytes.toString("utf8"));
  // A large body's parse and its validation each hold the event loop for tens of ms: other
  // requests, /health among them, are answered between the two. (Upserts, the largest bodies, are
  // parsed in a thread of their own: http/upsert-parser.ts.)
  if (bytes.length > YIELD_AFTER_PARSE_BYTES) await new Promise((resolve) => setImmediate(resolve));
  return validated(body, schema);
}

/** Whether `error` means the client disconnected (its request aborted, or the socket was reset mid-body). */
export function clientWentAway(request: Request, error: unknown): boolean {
  if (request.signal.aborted) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return (
    code === "ECONNRESET" ||
    code === "ECONNABORTED" ||
    (error instanceof Error && error.message === "aborted")
  );
}
