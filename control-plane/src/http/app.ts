import { type Context, Hono } from "hono";
import { cors } from "hono/cors";
import type { Logger } from "pino";
import type { CollectionStore } from "../collections/types.ts";
import type { AkidbConfig } from "../config/schema.ts";
import type { EmbeddingService } from "../embedding/service.ts";
import { AkidbError, isAkidbError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { ModelRegistry } from "../models/registry.ts";
import { errorBody, errorStatus } from "./errors.ts";
import {
  type AppEnv,
  adminAuth,
  apiKeyAuth,
  clientWentAway,
  receiveBody,
  requestId,
  requestLog,
} from "./middleware.ts";
import { type AdminRoutesDeps, adminRoutes } from "./routes/admin.ts";
import { collectionRoutes } from "./routes/collections.ts";
import { embeddingRoutes } from "./routes/embeddings.ts";
import { healthRoutes } from "./routes/health.ts";
import type { UpsertParser } from "./upsert-parser.ts";

export interface AppDeps {
  config: AkidbConfig;
  registry: ModelRegistry;
  embedding: EmbeddingService;
  /** Where collections live (collections/local-store.ts, or another CollectionStore). */
  collections: CollectionStore;
  metrics: Metrics;
  logger: Logger;
  startedAt: Date;
  versions: AdminRoutesDeps["versions"];
  /** True once shutdown began. */
  closing: () => boolean;
  /** Parses upsert bodies off the HTTP thread (the server runs one); absent, they are parsed inline. */
  upsertParser?: UpsertParser;
}

/**
 * The public face: `/health` and `/metrics` (open), `/v1` and `/api/v1` (server.api_keys), `/admin/v1`
 * (server.admin_token). Every error, thrown anywhere below, leaves through `onError` as the
 * OpenAI-shaped body of its AKIDB_ERR_* code.
 */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const { config, logger } = deps;
  const app = new Hono<AppEnv>();

  app.use(requestId());
  app.use(requestLog(logger));
  const origins = config.server.cors_origins;
  if (origins.length > 0) {
    app.use(
      cors({
        origin: origins.includes("*") ? "*" : origins,
        allowHeaders: ["authorization", "content-type", "x-request-id"],
        exposeHeaders: ["x-request-id", "retry-after"],
      }),
    );
  }
  app.use("/v1/*", apiKeyAuth(config.server.api_keys));
  app.use("/api/*", apiKeyAuth(config.server.api_keys));
  app.use("/admin/*", adminAuth(config.server.admin_token));
  app.use(
    receiveBody({ maxBytes: config.server.max_body_bytes, msPerMiB: config.server.body_timeout_ms_per_mb }),
  );

  app.route("/", healthRoutes(deps));
  app.route("/", embeddingRoutes(deps));
  app.route("/", collectionRoutes(deps));
  app.route("/", adminRoutes(deps));

  app.notFound((c) => {
    const { method, path } = c.req;
    const allowed = allowedMethods(app, path);
    if (allowed.length === 0)
      return errorResponse(c, new AkidbError("AKIDB_ERR_NOT_FOUND", { method, path }));
    c.header("allow", allowed.join(", "));
    return errorResponse(c, new AkidbError("AKIDB_ERR_METHOD_NOT_ALLOWED", { method, path, allowed }));
  });
  app.onError((cause, c) => {
    if (isAkidbError(cause)) return errorResponse(c, cause);
    if (clientWentAway(c.req.raw, cause)) {
      // Not a server error: the answer has nowhere to go, and it is not counted as a failure.
      logger.info({ reqId: c.get("requestId"), reason: cause.message }, "the client closed the request");
      return errorResponse(c, new AkidbError("AKIDB_ERR_CANCELLED", {}, { cause }));
    }
    logger.error({ reqId: c.get("requestId"), err: cause }, "unexpected error");
    return errorResponse(c, new AkidbError("AKIDB_ERR_INTERNAL", { reason: cause.message }, { cause }));
  });
  return app;
}

function errorResponse(c: Context<AppEnv>, error: AkidbError): Response {
  c.set("errorCode", error.code);
  if (error.retryAfterSeconds !== undefined) c.header("retry-after", String(error.retryAfterSeconds));
  if (error.status === 401) c.header("www-authenticate", 'Bearer realm="akidb"');
  return c.json(errorBody(error), errorStatus(error));
}

/** The methods the app's routes take at `path` (middleware, registered for every method, aside). */
function allowedMethods(app: Hono<AppEnv>, path: string): string[] {
  const methods = app.routes
    .filter((route) => route.method !== "ALL" && routePattern(route.path).test(path))
    .map((route) => route.method);
  return [...new Set(methods)].sort();
}

/** `/admin/v1/models/:alias/load` -> a regex matching one path segment per parameter. */
function routePattern(route: string): RegExp {
  const source = route
    .split("/")
    .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${source}/?$`);
}
