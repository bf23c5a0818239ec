import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { components } from "../../../sdk/src/generated/schema.d.ts";
import { ConfigError } from "../config/errors.ts";
import type { AkidbConfig, ModelEntryConfig } from "../config/schema.ts";
import { repoCacheDir } from "./cache.ts";

export type Architecture = "qwen3" | "gemma3_text";
export type Pooling = "last_token" | "mean";

/** Sizes a vector may be truncated to: explicit ones (ascending, with the full size), or any in a range. */
export type MatryoshkaDimensions = components["schemas"]["MatryoshkaDimensions"];

/** A published benchmark result, as the model's authors report it. */
export interface MtebScore {
  benchmark: string;
  mean: number;
}

/** What the control plane knows about a model before (and without) loading it. */
export interface ModelEntry {
  alias: string;
  /** Hugging Face repo id or local checkpoint directory (absolute). */
  source: string;
  revision?: string;
  architecture: Architecture;
  dimension: number;
  /** Dimensions a vector may be truncated to (`dimension` among them). */
  matryoshka_dimensions: MatryoshkaDimensions;
  /** Longest input in tokens, prompt and special tokens included. */
  max_tokens: number;
  pooling: Pooling;
  /** Prefix per input type. */
  prompts: { query: string; document: string };
  quantization: { bits: number; group_size: number } | null;
  license: string;
  /** Download size in MB; null when unknown (ad-hoc entries). */
  size_mb: number | null;
  /** Published MTEB means; empty when none are published for this checkpoint. */
  mteb: MtebScore[];
  builtin: boolean;
}

const QWEN3_QUERY_TASK = "Given a web search query, retrieve relevant passages that answer the query";

/** What every checkpoint of an architecture shares: pooling, prompts and Matryoshka sizes. */
const architectureFacts: Record<
  Architecture,
  {
    pooling: Pooling;
    prompts: ModelEntry["prompts"];
    matryoshka: (dimension: number) => MatryoshkaDimensions;
  }
> = {
  // Qwen3-Embedding: last token (the appended <|endoftext|>), an instruction on queries only,
  // and any output size from 32 up (Qwen's model card: "user-defined output dimensions 32 to 1024").
  qwen3: {
    pooling: "last_token",
    prompts: { query: `Instruct: ${QWEN3_QUERY_TASK}\nQuery:`, document: "" },
    matryoshka: (dimension) => ({ min: Math.min(32, dimension), max: dimension }),
  },
  // EmbeddingGemma: mean pooling then the dense projection; MRL trained at 512, 256 and 128.
  gemma3_text: {
    pooling: "mean",
    prompts: { query: "task: search result | query: ", document: "title: none | text: " },
    matryoshka: (dimension) => [128, 256, 512].filter((d) => d < dimension).concat(dimension),
  },
};

/**
 * The built-in entries. MTEB means are the authors' published "Mean (Task)" figures for the
 * full-precision models: Qwen's model card for Qwen3-Embedding-0.6B (arXiv:2506.05176) and
 * Google's EmbeddingGemma model card (arXiv:2509.20354); quantization may cost a little.
 * Checked here against a copy of a model card: Qwen's 64.33 only. Qwen's 70.70 and Gemma's 61.15 and
 * 68.36 are as reported to us and still to be checked against the cards (no network here); the
 * Gemma 4-bit size is estimated from its parameter count (307M x 4.5 bits).
 * Sizes: ~335 MB is the Qwen3 DWQ conversion's download; Gemma's is estimated the same way that
 * figure is reproduced: parameters x 4.5 bits (4-bit weights plus a 16-bit scale and bias per
 * group of 64), 307M x 0.5625 B ~ 175 MB.
 */
const builtins: ModelEntry[] = [
  {
    alias: "qwen3-0.6b-4bit",
    source: "mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ",
    architecture: "qwen3",
    dimension: 1024,
    matryoshka_dimensions: architectureFacts.qwen3.matryoshka(1024),
    max_tokens: 32_768,
    pooling: architectureFacts.qwen3.pooling,
    prompts: architectureFacts.qwen3.prompts,
    quantization: { bits: 4, group_size: 64 },
    license: "Apache-2.0",
    size_mb: 335,
    mteb: [
      { benchmark: "MTEB(Multilingual, v2)", mean: 64.33 },
      { benchmark: "MTEB(eng, v2)", mean: 70.7 },
    ],
    builtin: true,
  },
  {
    alias: "gemma-300m-4bit",
    source: "mlx-community/embeddinggemma-300m-4bit",
    architecture: "gemma3_text",
    dimension: 768,
    matryoshka_dimensions: architectureFacts.gemma3_text.matryoshka(768),
    max_tokens: 2048,
    pooling: architectureFacts.gemma3_text.pooling,
    prompts: architectureFacts.gemma3_text.prompts,
    quantization: { bits: 4, group_size: 64 },
    license: "Gemma",
    size_mb: 175,
    mteb: [
      { benchmark: "MTEB(Multilingual, v2)", mean: 61.15 },
      { benchmark: "MTEB(eng, v2)", mean: 68.36 },
    ],
    builtin: true,
  },
];

/** The models this server knows by alias: the built-ins plus `models` from the config. */
export class ModelRegistry {
  readonly #entries = new Map<string, ModelEntry>();
  readonly #cacheDir: string;

  constructor(entries: ModelEntry[], cacheDir: string) {
    for (const entry of entries) this.#entries.set(entry.alias, entry);
    this.#cacheDir = cacheDir;
  }

  list(): ModelEntry[] {
    return [...this.#entries.values()];
  }

  get(alias: string): ModelEntry | undefined {
    return this.#entries.get(alias);
  }

  /**
   * The entry for `embedding.mlx.model`: an alias, the source of a known entry, a local checkpoint
   * directory, or a repo id already in the cache (its facts read from the checkpoint's
   * config.json). The control plane needs the facts before the model loads (to validate
   * `dimensions` and token budgets), so a repo it knows nothing about must be added under `models`.
   */
  resolve(setting: string): ModelEntry {
    const known = this.#entries.get(setting) ?? this.list().find((e) => sameSource(e.source, setting));
    if (known) return known;
    if (isPathLike(setting)) return this.#fromDirectory(setting, setting);
    if (isRepoId(setting)) {
      const snapshot = cachedSnapshot(this.#cacheDir, setting);
      if (snapshot) return this.#fromDirectory(snapshot, setting);
    }
    throw new ConfigError(
      "embedding.mlx.model",
      `embedding.mlx.model: unknown model "${setting}". Use a registry alias (${this.list()
        .map((e) => e.alias)
        .join(", ")}), a local checkpoint directory (starting with ./, ../, / or ~), ` +
        "or a Hugging Face repo id added under `models` with its architecture, dimension and max_tokens.",
    );
  }

  #fromDirectory(dir: string, source: string): ModelEntry {
    const configPath = path.join(dir, "config.json");
    if (!existsSync(configPath)) {
      throw new ConfigError(
        "embedding.mlx.model",
        `embedding.mlx.model: ${dir} has no config.json; point it at a checkpoint directory (config.json, tokenizer.json, *.safetensors).`,
      );
    }
    const checkpoint = readCheckpointConfig(configPath);
    const facts = architectureFacts[checkpoint.architecture];
    return {
      alias: source,
      source,
      architecture: checkpoint.architecture,
      dimension: checkpoint.dimension,
      matryoshka_dimensions: facts.matryoshka(checkpoint.dimension),
      max_tokens: checkpoint.maxTokens,
      pooling: facts.pooling,
      prompts: facts.prompts,
      quantization: checkpoint.quantization,
      license: "unknown",
      size_mb: null,
      mteb: [],
      builtin: false,
    };
  }
}

/** The built-in entries plus the config's `models` (a user entry replaces a built-in of the same alias). */
export function buildRegistry(config: AkidbConfig): ModelRegistry {
  const user = Object.entries(config.models).map(([alias, entry]) => fromConfig(alias, entry));
  return new ModelRegistry([...builtins, ...user], config.embedding.mlx.cache_dir);
}

function fromConfig(alias: string, entry: ModelEntryConfig): ModelEntry {
  const facts = architectureFacts[entry.architecture];
  return {
    alias,
    source: entry.source,
    ...(entry.revision ? { revision: entry.revision } : {}),
    architecture: entry.architecture,
    dimension: entry.dimension,
    matryoshka_dimensions: matryoshkaFromConfig(entry.matryoshka_dimensions, entry.dimension),
    max_tokens: entry.max_tokens,
    pooling: entry.pooling ?? facts.pooling,
    prompts: entry.prompts ?? facts.prompts,
    quantization: entry.quantization,
    license: entry.license,
    size_mb: entry.size_mb ?? null,
    mteb: [],
    builtin: false,
  };
}

interface CheckpointFacts {
  architecture: Architecture;
  dimension: number;
  maxTokens: number;
  quantization: ModelEntry["quantization"];
}

function readCheckpointConfig(configPath: string): CheckpointFacts {
  const raw: unknown = JSON.parse(readFileSync(configPath, "utf8"));
  const config = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  const modelType = config.model_type;
  if (modelType !== "qwen3" && modelType !== "gemma3_text") {
    throw new ConfigError(
      "embedding.mlx.model",
      `embedding.mlx.model: ${configPath} has model_type ${JSON.stringify(modelType)}; supported: qwen3, gemma3_text.`,
    );
  }
  const hidden = config.hidden_size;
  const positions = config.max_position_embeddings;
  if (typeof hidden !== "number" || typeof positions !== "number") {
    throw new ConfigError(
      "embedding.mlx.model",
      `embedding.mlx.model: ${configPath} lacks hidden_size or max_position_embeddings.`,
    );
  }
  const q = config.quantization as { bits?: unknown; group_size?: unknown } | undefined;
  const quantization =
    q && typeof q.bits === "number" && typeof q.group_size === "number"
      ? { bits: q.bits, group_size: q.group_size }
      : null;
  return { architecture: modelType, dimension: hidden, maxTokens: positions, quantization };
}

/**
 * The newest snapshot of `repoId` in a Hugging Face cache (`models--org--name/snapshots/<rev>`),
 * preferring the one `refs/main` points at.
 */
function cachedSnapshot(cacheDir: string, repoId: string): string | undefined {
  const repoDir = repoCacheDir(cacheDir, repoId);
  const snapshots = path.join(repoDir, "snapshots");
  if (!existsSync(snapshots)) return undefined;
  const mainRef = path.join(repoDir, "refs", "main");
  if (existsSync(mainRef)) {
    const dir = path.join(snapshots, readFileSync(mainRef, "utf8").trim());
    if (existsSync(path.join(dir, "config.json"))) return dir;
  }
  return readdirSync(snapshots)
    .map((name) => path.join(snapshots, name))
    .filter((dir) => existsSync(path.join(dir, "config.json")))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

function isPathLike(setting: string): boolean {
  return /^(\.{1,2}\/|\/|~)/.test(setting) || path.isAbsolute(setting);
}

function isRepoId(setting: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(setting);
}

// Hub repo ids are case-insensitive.
function sameSource(a: string, b: string): boolean {
  return isPathLike(a) ? a === b : a.toLowerCase() === b.toLowerCase();
}

/** A config's sizes, ascending with the full dimension; a range capped at it. Default only the full size. */
function matryoshkaFromConfig(
  sizes: MatryoshkaDimensions | undefined,
  dimension: number,
): MatryoshkaDimensions {
  if (sizes === undefined) return [dimension];
  if (!Array.isArray(sizes))
    return { min: Math.min(sizes.min, dimension), max: Math.min(sizes.max, dimension) };
  return [...new Set([...sizes, dimension])].filter((d) => d <= dimension).sort((a, b) => a - b);
}

/** Whether a vector of `dimension` may be truncated to `size`. */
export function allowsDimension(sizes: MatryoshkaDimensions, size: number): boolean {
  return Array.isArray(sizes) ? sizes.includes(size) : size >= sizes.min && size <= sizes.max;
}

/** `128, 256, 512, 768` or `32 to 1024`, for messages. */
export function describeDimensions(sizes: MatryoshkaDimensions): string {
  return Array.isArray(sizes) ? sizes.join(", ") : `${sizes.min} to ${sizes.max}`;
}
