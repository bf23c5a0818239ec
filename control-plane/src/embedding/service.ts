import type { Batcher } from "../batching/batcher.ts";
import type { TokenLimits } from "../batching/tokens.ts";
import type { AkidbConfig } from "../config/schema.ts";
import { AkidbError } from "../errors.ts";
import type { InferenceSupervisor } from "../inference/supervisor.ts";
import type { ModelEntry, ModelRegistry } from "../models/registry.ts";
import { MOCK_MAX_TOKENS } from "./mock.ts";
import type { Embedder } from "./types.ts";

export type EmbeddingMode = AkidbConfig["embedding"]["mode"];

/** The inference process as the serving layer sees it: which model, its status, restart and switch. */
export type InferenceControl = Pick<InferenceSupervisor, "entry" | "status" | "restart" | "switchModel">;

/** What request validation needs to know about the served model. */
export interface ServedModelLimits extends TokenLimits {
  dimension: number;
  /** Dimensions `dimensions` may take; empty means any from 1 to `dimension`. */
  matryoshka_dimensions: number[];
}

const MOCK_PROMPTS = { query: "", document: "" };

/**
 * What the server embeds with in its mode, and which model that is: `mlx` serves a registry
 * entry through the inference process (an admin may switch it), `mock` hash vectors, and
 * `user_provided` nothing.
 */
export class Serving {
  readonly mode: EmbeddingMode;
  readonly embedder: Embedder | null;
  readonly batcher: Batcher | null;
  readonly inference: InferenceControl | null;
  /** The model loads on the first request that needs it (`embedding.mlx.preload: false`). */
  readonly loadsOnDemand: boolean;
  readonly #mockDimension: number;

  constructor(options: {
    mode: EmbeddingMode;
    embedder: Embedder | null;
    batcher: Batcher | null;
    inference: InferenceControl | null;
    mockDimension: number;
    loadsOnDemand?: boolean;
  }) {
    this.mode = options.mode;
    this.embedder = options.embedder;
    this.batcher = options.batcher;
    this.inference = options.inference;
    this.loadsOnDemand = options.loadsOnDemand ?? false;
    this.#mockDimension = options.mockDimension;
  }

  /** The served registry entry (mlx mode only). */
  get entry(): ModelEntry | null {
    return this.inference?.entry ?? null;
  }

  /** Whether the server can embed text now or on demand; false while the model is starting or failed. */
  canEmbed(): boolean {
    const state = this.embedder?.state();
    if (!state) return this.mode === "user_provided";
    return state.status === "ready" || (state.status === "stopped" && this.loadsOnDemand);
  }

  /** The registry's entries, plus the served one when it is ad hoc (a directory or repo id in the config). */
  catalog(registry: ModelRegistry): ModelEntry[] {
    const entries = registry.list();
    const served = this.entry;
    return served && !entries.some((e) => e.alias === served.alias) ? [served, ...entries] : entries;
  }

  /** Whether `entry` is the model being served. */
  serves(entry: ModelEntry): boolean {
    return this.entry?.alias === entry.alias;
  }

  /** The names a request's `model` may use: the served entry's alias and source, or `mock`. */
  modelNames(): string[] {
    if (this.mode === "mock") return [this.embedder?.name ?? "mock"];
    const entry = this.entry;
    if (!entry) return [];
    const loaded = this.embedder?.state().model?.id;
    return [...new Set([entry.alias, entry.source, ...(loaded ? [loaded] : [])])];
  }

  limits(): ServedModelLimits | null {
    if (this.mode === "mock") {
      return {
        dimension: this.#mockDimension,
        matryoshka_dimensions: [],
        max_tokens: MOCK_MAX_TOKENS,
        prompts: MOCK_PROMPTS,
      };
    }
    // The inference process's own facts win over the registry's once it has loaded the model.
    return this.embedder?.state().model ?? this.entry;
  }

  /** Switches the model once requests accepted so far are answered; later ones run on the new model. */
  async loadModel(entry: ModelEntry): Promise<void> {
    const { inference, batcher } = this.#requireInference("load a model");
    await batcher.exclusive(() => inference.switchModel(entry));
  }

  /** Restarts the inference process once requests accepted so far are answered. */
  async restartInference(): Promise<void> {
    const { inference, batcher } = this.#requireInference("restart the inference process");
    await batcher.exclusive(() => inference.restart());
  }

  #requireInference(action: string): { inference: InferenceControl; batcher: Batcher } {
    if (this.mode !== "mlx" || !this.inference || !this.batcher) {
      throw new AkidbError("AKIDB_ERR_MODE_CONFLICT", { mode: this.mode, action });
    }
    return { inference: this.inference, batcher: this.batcher };
  }
}
