import { Hono } from "hono";
import type { components } from "../../contract.ts";
import type { EmbeddingService } from "../../embedding/service.ts";
import type { EmbedderState } from "../../embedding/types.ts";
import type { Metrics } from "../../metrics.ts";
import type { AppEnv } from "../middleware.ts";

type Schemas = components["schemas"];

export interface HealthRoutesDeps {
  embedding: EmbeddingService;
  metrics: Metrics;
  /** True once shutdown began: the server can no longer take work. */
  closing: () => boolean;
}

/** `GET /health` and `GET /metrics`: open, for load balancers and Prometheus. */
export function healthRoutes(deps: HealthRoutesDeps): Hono<AppEnv> {
  const { embedding, metrics } = deps;
  const app = new Hono<AppEnv>();

  app.get("/health", (c) => {
    const health: Schemas["Health"] = {
      status: deps.closing() ? "shutting_down" : embedding.canEmbed() ? "ok" : "degraded",
      mode: embedding.mode,
      embedder: embedding.kind === "none" ? null : embedderState(embedding.state()),
      ...servingFallback(embedding),
    };
    return c.json(health, health.status === "shutting_down" ? 503 : 200);
  });

  app.get("/metrics", async (c) => {
    c.header("content-type", metrics.registry.contentType);
    return c.body(await metrics.registry.metrics());
  });

  return app;
}

/** `{fallback}` while `embedding.fallback_model` serves in place of the default model, else nothing. */
export function servingFallback(embedding: EmbeddingService): { fallback?: Schemas["ModelFallback"] } {
  const fallback = embedding.kind === "inference" ? embedding.inferenceStatus().fallback : null;
  return fallback ? { fallback } : {};
}

/** The embedder's state as the contract shows it (the model's facts are in /admin/v1/models). */
export function embedderState(state: EmbedderState): Schemas["EmbedderState"] {
  return {
    status: state.status,
    ...(state.reason === undefined ? {} : { reason: state.reason }),
    ...(state.pid === undefined ? {} : { pid: state.pid }),
  };
}
