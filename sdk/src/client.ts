// The typed surface over the public API: a thin layer over openapi-fetch's typed `paths`.
import createFetchClient, { type Client } from "openapi-fetch";
import { type Collections, createCollections } from "./collections.ts";
import { decodeEmbeddings, type EmbeddingResult } from "./embeddings.ts";
import { errorFromResponse, unwrap } from "./errors.ts";
import type { components, paths } from "./generated/schema.d.ts";
import { type CallPolicy, type TransportOptions, transportFetch } from "./transport.ts";

type Schemas = components["schemas"];

/** The contract's public paths (the inference process's own API, under /inference, is internal). */
export type PublicPaths = { [P in keyof paths as P extends `/inference/${string}` ? never : P]: paths[P] };

export interface ClientOptions extends TransportOptions {
  /** The control plane's URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Bearer token for the public API (one of `server.api_keys`). */
  apiKey?: string;
  /** Bearer token for /admin/v1 (`server.admin_token`); defaults to `apiKey`. */
  adminToken?: string;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the call (its promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Per-attempt timeout in ms for this call (false: none). */
  timeoutMs?: number | false;
  /** Sent as `x-request-id` (1 to 128 of `A-Z a-z 0-9 _ . : @ / + = -`): the server logs it on
   * every line of this request, also in the inference process's. Default: the server makes one. */
  requestId?: string;
}

/** `embeddings.create`'s request: the contract's EmbeddingRequest. Without `encoding_format`, the
 * SDK asks for base64 (a third of the bytes, exact); vectors come back as Float32Array either way. */
export type EmbeddingRequest = Schemas["EmbeddingRequest"];

/** Admin calls that wait for a model to load or a process to restart get this per-attempt timeout
 * by default (a first load may download the weights). */
const ADMIN_ACTION_TIMEOUT_MS = 600_000;

export interface AkiDB {
  embeddings: {
    /** POST /v1/embeddings: one vector per input, in input order. */
    create(request: EmbeddingRequest, options?: CallOptions): Promise<EmbeddingResult>;
  };
  /** Collections of vectors with metadata, and their documents. */
  collections: Collections;
  models: {
    /** GET /v1/models: the registry's models (OpenAI-compatible list). */
    list(options?: CallOptions): Promise<Schemas["ModelList"]>;
  };
  admin: {
    /** GET /admin/v1/status: mode, model, inference process, queue, uptime, versions. */
    status(options?: CallOptions): Promise<Schemas["AdminStatus"]>;
    /** GET /admin/v1/config: the effective config, secrets redacted. */
    config(options?: CallOptions): Promise<Schemas["AdminConfig"]>;
    /** GET /admin/v1/models: the registry and what the inference process reports of the loaded model. */
    models(options?: CallOptions): Promise<Schemas["AdminModelList"]>;
    /** POST /admin/v1/models/{alias}/load: switches the served model; resolves once it is ready. */
    loadModel(alias: string, options?: CallOptions): Promise<Schemas["RegistryEntry"]>;
    /** POST /admin/v1/inference/restart: restarts the inference process; resolves once it is ready. */
    restartInference(options?: CallOptions): Promise<Schemas["InferenceStatus"]>;
  };
  /** GET /health: `ok`, `degraded` (text requests answer 503) or `shutting_down` (a 503 answer). */
  health(options?: CallOptions): Promise<Schemas["Health"]>;
  /** GET /metrics: Prometheus text. */
  metrics(options?: CallOptions): Promise<string>;
  /** The typed openapi-fetch client over every public path, for what the surface above lacks.
   * It sends requests through the same retrying transport (as an idempotent call). */
  raw: Client<PublicPaths>;
}

/** What each call passes to openapi-fetch besides its params and body (a type alias, not an
 * interface: openapi-fetch's init has an index signature). */
export type Init = {
  fetch: (request: Request) => Promise<Response>;
  headers: Record<string, string>;
  signal?: AbortSignal;
};

/** Builds a call's Init from how it may be retried and the caller's options. */
export type CallInit = (policy: CallPolicy, call: CallOptions | undefined) => Init;

/** A client for the AkiDB control plane at `options.baseUrl`. */
export function createAkiDB(options: ClientOptions): AkiDB {
  const raw = createFetchClient<PublicPaths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    fetch: transportFetch(options, { idempotent: true }),
    headers: bearer(options.apiKey),
  });
  const adminHeaders = bearer(options.adminToken ?? options.apiKey);

  const init = (
    policy: CallPolicy,
    call: CallOptions | undefined,
    headers = bearer(options.apiKey),
  ): Init => ({
    fetch: transportFetch(options, {
      ...policy,
      ...(call?.timeoutMs === undefined ? {} : { timeoutMs: call.timeoutMs }),
    }),
    headers: call?.requestId === undefined ? headers : { ...headers, "x-request-id": call.requestId },
    ...(call?.signal === undefined ? {} : { signal: call.signal }),
  });
  const read = (call: CallOptions | undefined) => init({ idempotent: true }, call);
  const admin = (policy: CallPolicy, call: CallOptions | undefined) => init(policy, call, adminHeaders);

  return {
    embeddings: {
      async create(request, call) {
        const body = { ...request, encoding_format: request.encoding_format ?? "base64" };
        // Embedding is a pure function of its input: safe to repeat after a lost connection.
        const result = await raw.POST("/v1/embeddings", { body, ...init({ idempotent: true }, call) });
        return decodeEmbeddings(unwrap(result));
      },
    },
    collections: createCollections(raw, init),
    models: {
      list: async (call) => unwrap(await raw.GET("/v1/models", read(call))),
    },
    admin: {
      status: async (call) => unwrap(await raw.GET("/admin/v1/status", admin({ idempotent: true }, call))),
      config: async (call) => unwrap(await raw.GET("/admin/v1/config", admin({ idempotent: true }, call))),
      models: async (call) => unwrap(await raw.GET("/admin/v1/models", admin({ idempotent: true }, call))),
      loadModel: async (alias, call) =>
        unwrap(
          await raw.POST("/admin/v1/models/{alias}/load", {
            params: { path: { alias } },
            // Loading the model that is already served changes nothing: safe to repeat.
            ...admin({ idempotent: true, timeoutMs: ADMIN_ACTION_TIMEOUT_MS }, call),
          }),
        ),
      restartInference: async (call) =>
        unwrap(
          await raw.POST(
            "/admin/v1/inference/restart",
            // A repeat after a lost connection would restart the process a second time.
            admin({ idempotent: false, timeoutMs: ADMIN_ACTION_TIMEOUT_MS }, call),
          ),
        ),
    },
    async health(call) {
      // 503 with a Health body is /health's answer while the server shuts down, not an error.
      const result = await raw.GET("/health", init({ idempotent: true, answerStatuses: [503] }, call));
      if (result.data !== undefined) return result.data;
      const body = result.error;
      if (result.response.status === 503 && body !== undefined && "status" in body) return body;
      throw errorFromResponse(result.response, result.error);
    },
    metrics: async (call) => unwrap(await raw.GET("/metrics", { ...read(call), parseAs: "text" })),
    raw,
  };
}

function bearer(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}
