import { Hono } from "hono";
import type { CollectionStore } from "../../collections/types.ts";
import { redactConfig } from "../../config/redact.ts";
import type { AkidbConfig } from "../../config/schema.ts";
import type { components } from "../../contract.ts";
import { type EmbeddingService, requireInference } from "../../embedding/service.ts";
import { AkidbError } from "../../errors.ts";
import type { SupervisorStatus } from "../../inference/supervisor.ts";
import type { ModelEntry, ModelRegistry } from "../../models/registry.ts";
import type { AppEnv } from "../middleware.ts";
import { embedderState, servingFallback } from "./health.ts";

type Schemas = components["schemas"];

export interface AdminRoutesDeps {
  config: AkidbConfig;
  registry: ModelRegistry;
  embedding: EmbeddingService;
  collections: CollectionStore;
  startedAt: Date;
  versions: Schemas["AdminStatus"]["versions"];
}

/** `/admin/v1/*`: the operator's view and controls (auth is applied by the app). */
export function adminRoutes(deps: AdminRoutesDeps): Hono<AppEnv> {
  const { config, registry, embedding } = deps;
  const app = new Hono<AppEnv>();
  const registryEntry = (entry: ModelEntry): Schemas["RegistryEntry"] => ({
    ...entry,
    loaded: embedding.serves(entry),
  });

  app.get("/admin/v1/status", async (c) => {
    const batcher = embedding.kind === "none" ? null : embedding.batcher;
    const status: Schemas["AdminStatus"] = {
      mode: embedding.mode,
      model: embedding.entry ? registryEntry(embedding.entry) : null,
      embedder: embedding.kind === "none" ? null : embedderState(embedding.state()),
      inference: embedding.kind === "inference" ? inferenceStatus(embedding.inferenceStatus()) : null,
      ...servingFallback(embedding),
      uptime_seconds: Math.round((Date.now() - deps.startedAt.getTime()) / 100) / 10,
      queue: {
        depth: batcher?.queueDepth ?? 0,
        in_flight: batcher?.inFlightSize ?? 0,
        pending_inputs: batcher?.pendingInputs ?? 0,
        max_pending_inputs: config.embedding.queue.max_pending_inputs,
        draining: batcher?.draining ?? false,
      },
      collections: (await deps.collections.list()).map(
        ({ id, name, count, bytes_in_ram, bytes_on_disk }) => ({
          id,
          name,
          count,
          bytes_in_ram,
          bytes_on_disk,
        }),
      ),
      versions: deps.versions,
    };
    return c.json(status);
  });

  app.get("/admin/v1/config", (c) => c.json(redactConfig(config)));

  app.get("/admin/v1/models", (c) => {
    const list: Schemas["AdminModelList"] = {
      object: "list",
      data: embedding.catalog(registry).map(registryEntry),
      loaded: (embedding.kind === "none" ? null : embedding.state().model) ?? null,
    };
    return c.json(list);
  });

  app.post("/admin/v1/models/:alias/load", async (c) => {
    const alias = c.req.param("alias");
    // The listing's names, so a configured directory or repo id loads by the name it is listed under.
    const catalog = embedding.catalog(registry);
    const entry = catalog.find((e) => e.alias === alias);
    if (!entry) {
      const available = catalog.map((e) => e.alias);
      throw new AkidbError("AKIDB_ERR_MODEL_NOT_FOUND", { model: alias, available }, { param: "alias" });
    }
    await requireInference(embedding, "load a model").loadModel(entry);
    return c.json(registryEntry(entry));
  });

  app.post("/admin/v1/inference/restart", async (c) => {
    const inference = requireInference(embedding, "restart the inference process");
    await inference.restartInference();
    return c.json(inferenceStatus(inference.inferenceStatus()));
  });

  return app;
}

function inferenceStatus(status: SupervisorStatus): Schemas["InferenceStatus"] {
  return {
    state: status.state,
    pid: status.pid,
    port: status.port,
    restarts: status.restarts,
    last_error: status.lastError,
    last_output: status.lastOutput,
    started_at: status.startedAt,
    model: status.alias,
    backend: status.model?.backend ?? null,
    device: status.model?.device ?? null,
  };
}
