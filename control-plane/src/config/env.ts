import { ConfigError } from "./errors.ts";
import { type ConfigLeaf, configLeaves } from "./keys.ts";
import { didYouMean } from "./suggest.ts";

const PREFIX = "AKIDB_";

/**
 * Other names of keys; each is equivalent to its long name. The product spec's names
 * (`AKIDB_EMBEDDING_*`) first, then the short names for the keys people set most.
 */
export const ENV_ALIASES: Readonly<Record<string, string>> = {
  AKIDB_EMBEDDING_MODEL: "embedding.mlx.model",
  AKIDB_EMBEDDING_CACHE_DIR: "embedding.mlx.cache_dir",
  AKIDB_EMBEDDING_BATCH_SIZE: "embedding.mlx.batch_size",
  AKIDB_EMBEDDING_BATCH_TIMEOUT_MS: "embedding.mlx.batch_timeout_ms",
  AKIDB_EMBEDDING_DEVICE: "embedding.mlx.device",
  AKIDB_MODEL: "embedding.mlx.model",
  AKIDB_CACHE_DIR: "embedding.mlx.cache_dir",
  AKIDB_BATCH_SIZE: "embedding.mlx.batch_size",
  AKIDB_BATCH_TIMEOUT_MS: "embedding.mlx.batch_timeout_ms",
  AKIDB_DEVICE: "embedding.mlx.device",
};

/** Variables with the prefix that are not config keys (set for the inference process). */
const NOT_CONFIG = new Set(["AKIDB_INFERENCE_TOKEN"]);

/** The one rule: `AKIDB_` + the key path upper-cased, `_` between segments. */
export function envName(path: readonly string[]): string {
  return PREFIX + path.join("_").toUpperCase();
}

export interface EnvOverride {
  path: string[];
  /** The variable it came from, for error messages. */
  variable: string;
  value: unknown;
}

export interface EnvOverrides {
  overrides: EnvOverride[];
  /** `AKIDB_*` variables that match no key (typos), each with a suggestion when one is close. */
  warnings: string[];
}

/**
 * The config values set in `env`. Values are parsed by the key's type (numbers, booleans as
 * true/false/1/0/yes/no/on/off, lists comma-separated); a value that does not parse is passed on
 * as the raw string so validation reports it with the key and what is allowed.
 */
export function envOverrides(env: NodeJS.ProcessEnv): EnvOverrides {
  const leaves = configLeaves();
  const byName = new Map<string, ConfigLeaf>(leaves.map((leaf) => [envName(leaf.path), leaf]));
  const byKey = new Map<string, ConfigLeaf>(leaves.map((leaf) => [leaf.path.join("."), leaf]));
  const overrides = new Map<string, EnvOverride>();
  const warnings: string[] = [];

  for (const [variable, raw] of Object.entries(env)) {
    if (!variable.startsWith(PREFIX) || raw === undefined || NOT_CONFIG.has(variable)) continue;
    const alias = ENV_ALIASES[variable];
    const leaf = alias ? byKey.get(alias) : byName.get(variable);
    if (!leaf) {
      const suggestion = didYouMean(variable, [...byName.keys(), ...Object.keys(ENV_ALIASES)]);
      warnings.push(
        `${variable} is not a config variable and is ignored${suggestion ? `; did you mean ${suggestion}?` : ""}`,
      );
      continue;
    }
    const key = leaf.path.join(".");
    const value = parseValue(leaf, raw);
    const earlier = overrides.get(key);
    if (earlier && JSON.stringify(earlier.value) !== JSON.stringify(value)) {
      throw new ConfigError(
        key,
        `${key}: ${earlier.variable}=${JSON.stringify(env[earlier.variable])} and ${variable}=${JSON.stringify(raw)} disagree; set only one of them.`,
      );
    }
    overrides.set(key, { path: leaf.path, variable, value });
  }
  return { overrides: [...overrides.values()], warnings };
}

function parseValue(leaf: ConfigLeaf, raw: string): unknown {
  const text = raw.trim();
  switch (leaf.kind) {
    case "number":
    case "integer":
      return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) ? Number(text) : raw;
    case "boolean": {
      const lower = text.toLowerCase();
      if (["true", "1", "yes", "on"].includes(lower)) return true;
      if (["false", "0", "no", "off"].includes(lower)) return false;
      return raw;
    }
    case "list":
      return text === ""
        ? []
        : text
            .split(",")
            .map((item) => item.trim())
            .filter((item) => item !== "");
    default:
      return raw;
  }
}
