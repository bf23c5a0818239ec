import type { AkidbConfig } from "./schema.ts";

/**
 * The local model's settings (which model, its cache, batching, device, restarts), whichever
 * engine the inference process runs. They are the product spec's `embedding.mlx.*` keys, the
 * user's names, kept as documented; code outside config/ reads them through here, so it does not
 * name an engine.
 */
export type ModelSettings = AkidbConfig["embedding"]["mlx"];

/** Where the model settings live in the config file, for messages that name a key. */
export const MODEL_SETTINGS_KEY = "embedding.mlx";

export function modelSettings(config: AkidbConfig): ModelSettings {
  return config.embedding.mlx;
}

/**
 * How a mode embeds text: with a local model in the inference process (the spec's `mlx`), with
 * hash vectors (`mock`), or not at all (`user_provided`).
 */
export type EmbeddingKind = "inference" | "mock" | "none";

export function embeddingKind(mode: AkidbConfig["embedding"]["mode"]): EmbeddingKind {
  switch (mode) {
    case "mlx":
      return "inference";
    case "mock":
      return "mock";
    case "user_provided":
      return "none";
  }
}
