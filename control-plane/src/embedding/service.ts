import type { Logger } from "pino";
import { ConfigError } from "../config/errors.ts";
import { embeddingKind, modelSettings } from "../config/model-settings.ts";
import { type AkidbConfig, DEFAULT_MODEL } from "../config/schema.ts";
import { AkidbError } from "../errors.ts";
import { InferenceSupervisor, type SupervisorStatus } from "../inference/supervisor.ts";
import type { Metrics } from "../metrics.ts";
import type { FallbackPlan } from "../models/fallback.ts";
import {
  entryFromLoaded,
  isModelEntry,
  type MatryoshkaDimensions,
  type ModelEntry,
  type ModelRegistry,
  type ModelSource,
} from "../models/registry.ts";
import { Batcher, batcherLimits, type EmbedRequest } from "./batcher.ts";
import { InferenceEmbedder } from "./inference-embedder.ts";
import { MOCK_MAX_TOKENS, MockEmbedder } from "./mock.ts";
import { estimateTokens, type TokenLimits } from "./tokens.ts";
import type { Embedder, EmbedderState, EmbedResult } from "./types.ts";

export type EmbeddingMode = AkidbConfig["embedding"]["mode"];

/** The inference process as the embedding service drives it: which model, its status, start, stop, restart, switch. */
export type InferenceControl = Pick<
  InferenceSupervisor,
  "entry" | "status" | "start" | "stop" | "restart" | "switchModel"
>;

/** What request validation needs to know about the served model. */
export interface ServedModelLimits extends TokenLimits {
  dimension: number;
  /** Dimensions `dimensions` may take. */
  matryoshka_dimensions: MatryoshkaDimensions;
}

/**
 * How the server embeds text, one variant per `embedding.mode`: through the inference process
 * (`kind: "inference"`), with hash vectors (`"mock"`), or not at all (`"none"`, user_provided).
 * Routes narrow on `kind`; the variants with a model carry their embedder and batcher.
 */
export type EmbeddingService = InferenceEmbeddingService | MockEmbeddingService | NoEmbeddingService;

interface ServiceDeps {
  config: AkidbConfig;
  metrics: Pick<Metrics, "batchSize" | "latencyMs" | "queueDepth" | "tokens" | "inferenceRestarts">;
  logger: Logger;
}

/** Parts a test puts in place of the real ones. */
export interface ServiceOverrides {
  /** mock mode: the embedder instead of the hash one. */
  embedder?: Embedder;
  /** With the inference process: it and its embedder instead of the supervised Python process. */
  inference?: { control: InferenceControl; embedder: Embedder };
}

/** The service of the configured mode: the one constructor the server and the tests use. */
export function createEmbeddingService(
  deps: ServiceDeps & { registry: ModelRegistry },
  overrides: ServiceOverrides = {},
): EmbeddingService {
  const { config, registry, logger } = deps;
  const { mode, mock } = config.embedding;
  const settings = modelSettings(config);
  switch (embeddingKind(mode)) {
    case "none":
      return new NoEmbeddingService(mode);
    case "mock":
      return new MockEmbeddingService(deps, overrides.embedder ?? new MockEmbedder(mock.dimension));
    case "inference": {
      const loadsOnDemand = !settings.preload;
      if (overrides.inference) {
        const { control, embedder } = overrides.inference;
        return new InferenceEmbeddingService(deps, { control, embedder, loadsOnDemand });
      }
      const fallback = fallbackPlan(config, registry);
      const supervisor = new InferenceSupervisor({
        config,
        entry: registry.resolve(settings.model),
        logger,
        metrics: { restarts: deps.metrics.inferenceRestarts },
        ...(fallback ? { fallback } : {}),
      });
      const embedder = new InferenceEmbedder(supervisor, { loadsOnDemand });
      return new InferenceEmbeddingService(deps, { control: supervisor, embedder, loadsOnDemand });
    }
  }
}

/**
 * `embedding.fallback_model` when `embedding.mlx.model` is the built-in default (an explicitly
 * chosen model never falls back) and the fallback is not turned off ("").
 */
function fallbackPlan(config: AkidbConfig, registry: ModelRegistry): FallbackPlan | undefined {
  const alias = config.embedding.fallback_model;
  if (!alias || modelSettings(config).model !== DEFAULT_MODEL) return undefined;
  const entry = registry.get(alias);
  if (!entry) {
    throw new ConfigError(
      "embedding.fallback_model",
      `embedding.fallback_model: unknown model "${alias}"; use a registry alias (${registry
        .list()
        .map((e) => e.alias)
        .join(", ")}), or "" to turn the fallback off.`,
    );
  }
  return { entry, isLocal: (model) => registry.isLocal(model) };
}

/** What the modes with a model share: the batcher in front of an embedder, and its lifecycle. */
abstract class TextEmbedding {
  readonly mode: EmbeddingMode;
  readonly embedder: Embedder;
  readonly batcher: Batcher;
  /** The model loads on the first request that needs it (model setting `preload: false`). */
  readonly loadsOnDemand: boolean;

  constructor(mode: EmbeddingMode, deps: ServiceDeps, embedder: Embedder, loadsOnDemand: boolean) {
    this.mode = mode;
    this.embedder = embedder;
    this.loadsOnDemand = loadsOnDemand;
    this.batcher = new Batcher({
      embedder,
      limits: batcherLimits(deps.config),
      estimateTokens: (text, inputType) => estimateTokens(text, inputType, this.limits()),
      metrics: deps.metrics,
      logger: deps.logger.child({ component: "batcher" }),
    });
  }

  /** The served model's limits, for request validation and the batch token budget. */
  abstract limits(): ServedModelLimits;
  /** The names a request's `model` may use. */
  abstract modelNames(): string[];

  state(): EmbedderState {
    return this.embedder.state();
  }

  /** Whether the server can embed text now or on demand; false while the model is starting or failed. */
  canEmbed(): boolean {
    const { status } = this.embedder.state();
    return status === "ready" || (status === "stopped" && this.loadsOnDemand);
  }

  /** Takes one permit per input (429 when none are free) and embeds the request's texts, in order. */
  async embed(request: EmbedRequest): Promise<EmbedResult> {
    const permit = this.batcher.reserve(request.texts.length);
    return this.batcher.embed(request, permit);
  }

  /** Stops taking requests; resolves once every accepted one is answered. */
  close(): Promise<void> {
    return this.batcher.close();
  }

  /** Answers every waiting request AKIDB_ERR_SHUTTING_DOWN. */
  abortAll(): void {
    this.batcher.abortAll();
  }
}

const NO_PROMPTS = { query: "", document: "" };

/** `embedding.mode: mock`: deterministic hash vectors (control-plane/src/embedding/mock.ts). */
export class MockEmbeddingService extends TextEmbedding {
  readonly kind = "mock";
  readonly entry = null;
  readonly #dimension: number;

  constructor(deps: ServiceDeps, embedder: Embedder) {
    super("mock", deps, embedder, false);
    this.#dimension = deps.config.embedding.mock.dimension;
  }

  limits(): ServedModelLimits {
    return {
      dimension: this.#dimension,
      matryoshka_dimensions: { min: 1, max: this.#dimension },
      max_tokens: MOCK_MAX_TOKENS,
      prompts: NO_PROMPTS,
    };
  }

  modelNames(): string[] {
    return [this.embedder.name];
  }

  catalog(registry: ModelRegistry): ModelEntry[] {
    return registry.list();
  }

  serves(_entry: ModelEntry): boolean {
    return false;
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}
}

/**
 * A local model (`embedding.mode: mlx`): a registry entry served by the supervised inference process; an admin may
 * switch the model or restart the process, each once the requests accepted so far are answered.
 */
export class InferenceEmbeddingService extends TextEmbedding {
  readonly kind = "inference";
  readonly #inference: InferenceControl;
  /** Ad hoc entries served so far (see `catalog`). */
  readonly #adHoc: ModelEntry[] = [];

  constructor(
    deps: ServiceDeps,
    parts: { control: InferenceControl; embedder: Embedder; loadsOnDemand: boolean },
  ) {
    super(deps.config.embedding.mode, deps, parts.embedder, parts.loadsOnDemand);
    this.#inference = parts.control;
  }

  /** What the inference process serves: a registry entry, or a directory or repo id given in the config. */
  get served(): ModelSource {
    return this.#inference.entry;
  }

  /**
   * The served model's entry: the registry's, or for a model outside the registry the facts the
   * inference process reported once it loaded it (null before).
   */
  get entry(): ModelEntry | null {
    const served = this.served;
    if (isModelEntry(served)) return served;
    const loaded = this.embedder.state().model;
    return loaded ? entryFromLoaded(served, loaded) : null;
  }

  /**
   * The inference process's own facts once it has loaded the model, else the registry's. A model
   * outside the registry has none before it loads: 503 until then.
   */
  limits(): ServedModelLimits {
    const limits = this.embedder.state().model ?? this.entry;
    if (limits) return limits;
    throw new AkidbError(
      "AKIDB_ERR_MODEL_UNAVAILABLE",
      {
        model: this.served.alias,
        reason: "it has not loaded yet (its facts come from the inference process)",
      },
      { retryAfterSeconds: 1 },
    );
  }

  /** The served model's alias and source, and the id the inference process reports. */
  modelNames(): string[] {
    const loaded = this.embedder.state().model?.id;
    return [...new Set([this.served.alias, this.served.source, ...(loaded ? [loaded] : [])])];
  }

  /**
   * The registry's entries, plus every ad hoc one (a directory or repo id in the config) this
   * server has served, so each listed model can be loaded again by the name it is listed under.
   */
  catalog(registry: ModelRegistry): ModelEntry[] {
    const entries = registry.list();
    const served = this.entry;
    if (
      served &&
      !entries.some((e) => e.alias === served.alias) &&
      !this.#adHoc.some((e) => e.alias === served.alias)
    ) {
      this.#adHoc.unshift(served);
    }
    return [...this.#adHoc.filter((e) => !entries.some((r) => r.alias === e.alias)), ...entries];
  }

  serves(entry: ModelEntry): boolean {
    return this.served.alias === entry.alias;
  }

  inferenceStatus(): SupervisorStatus {
    return this.#inference.status();
  }

  /**
   * Launches the inference process, unless the model loads on the first request. A model outside
   * the registry always loads at start: requests are validated against the facts it reports.
   */
  async start(): Promise<void> {
    if (!this.loadsOnDemand || !isModelEntry(this.served)) await this.#inference.start();
  }

  stop(): Promise<void> {
    return this.#inference.stop();
  }

  /**
   * Loads `entry` beside the serving model, which keeps answering meanwhile; once it is ready,
   * requests accepted so far finish on the old model and later ones run on the new one. A failed
   * load changes nothing (AKIDB_ERR_MODEL_LOAD_FAILED).
   */
  loadModel(entry: ModelEntry): Promise<void> {
    return this.#inference.switchModel(entry, (swap) => this.batcher.exclusive(swap));
  }

  /** Restarts the inference process once requests accepted so far are answered. */
  restartInference(): Promise<void> {
    return this.batcher.exclusive(() => this.#inference.restart());
  }
}

/** `embedding.mode: user_provided`: no model; requests must carry their vectors. */
export class NoEmbeddingService {
  readonly kind = "none";
  readonly mode: EmbeddingMode;
  readonly entry = null;

  constructor(mode: EmbeddingMode) {
    this.mode = mode;
  }

  /** Vector traffic needs no model, so the server is always able to serve it. */
  canEmbed(): boolean {
    return true;
  }

  catalog(registry: ModelRegistry): ModelEntry[] {
    return registry.list();
  }

  serves(_entry: ModelEntry): boolean {
    return false;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}

  abortAll(): void {}

  async stop(): Promise<void> {}
}

/** The AKIDB_ERR_MODE_CONFLICT of an admin action that needs the inference process. */
export function requireInference(service: EmbeddingService, action: string): InferenceEmbeddingService {
  if (service.kind !== "inference")
    throw new AkidbError("AKIDB_ERR_MODE_CONFLICT", { mode: service.mode, action });
  return service;
}
