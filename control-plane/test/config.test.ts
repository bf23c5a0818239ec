import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { ENV_ALIASES, envName } from "../src/config/env.ts";
import { ConfigError } from "../src/config/errors.ts";
import { allKeyPaths, configLeaves } from "../src/config/keys.ts";
import { type LoadConfigOptions, loadConfig } from "../src/config/load.ts";
import { redactConfig } from "../src/config/redact.ts";
import { configSchema } from "../src/config/schema.ts";
import { didYouMean, editDistance } from "../src/config/suggest.ts";

const REPO = path.resolve(import.meta.dirname, "../..");
const EXAMPLE = path.join(REPO, "akidb.example.yaml");

function writeConfig(
  yaml: string,
  name = "akidb.yaml",
  dir = mkdtempSync(path.join(tmpdir(), "akidb-config-")),
) {
  const file = path.join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/** The ConfigError `loadConfig` throws for these options. */
function configError(options: LoadConfigOptions): ConfigError {
  try {
    loadConfig({ env: {}, ...options });
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("defaults", () => {
  it("no file and no environment give the schema's defaults, paths made absolute", () => {
    const { config, warnings } = loadConfig({ env: {}, cwd: "/srv/akidb" });
    const defaults = configSchema.parse({});
    expect(warnings).toEqual([]);
    expect(config.storage.data_dir).toBe("/srv/akidb/data");
    expect(config.embedding.mlx.cache_dir).toBe(path.join(homedir(), ".cache/akidb/models"));
    expect({ ...config, storage: defaults.storage }).toEqual({
      ...defaults,
      embedding: {
        ...defaults.embedding,
        mlx: { ...defaults.embedding.mlx, cache_dir: config.embedding.mlx.cache_dir },
      },
    });
    expect(config.server).toMatchObject({ host: "127.0.0.1", port: 8080 });
  });

  it("an empty file and empty values mean the defaults", () => {
    const empty = writeConfig("");
    const blanks = writeConfig(
      "embedding:\n  mlx:\n    batch_size:\nserver:\n",
      "blanks.yaml",
      path.dirname(empty),
    );
    expect(loadConfig({ env: {}, file: blanks }).config).toEqual(loadConfig({ env: {}, file: empty }).config);
  });
});

describe("akidb.example.yaml", () => {
  it("parses to exactly the defaults", () => {
    const example = loadConfig({ env: {}, file: EXAMPLE }).config;
    expect(example).toEqual(loadConfig({ env: {}, cwd: REPO }).config);
  });

  it("documents every key of the schema (optional ones as comments)", () => {
    const text = readFileSync(EXAMPLE, "utf8");
    const doc = parseDocument(text);
    const missing = allKeyPaths().filter((keyPath) => {
      if (!keyPath.includes("<alias>") && doc.hasIn(keyPath)) return false;
      const key = keyPath.at(-1)!;
      return !new RegExp(`^\\s*#\\s*${key}:`, "m").test(text);
    });
    expect(missing.map((p) => p.join("."))).toEqual([]);
  });
});

it("docs/configuration.md describes every key", () => {
  const docs = readFileSync(path.join(REPO, "docs", "configuration.md"), "utf8");
  const missing = allKeyPaths()
    .map((keyPath) => keyPath.join("."))
    .filter((key) => key.split(".").length > 1 && !docs.includes(`\`${key}\``));
  expect(missing).toEqual([]);
});

describe("environment overrides", () => {
  it("every leaf has its own variable by the one rule", () => {
    const names = configLeaves().map((leaf) => envName(leaf.path));
    expect(new Set(names).size).toBe(names.length);
    expect(envName(["embedding", "mlx", "batch_size"])).toBe("AKIDB_EMBEDDING_MLX_BATCH_SIZE");
  });

  it("parses each value by the key's type", () => {
    const { config } = loadConfig({
      env: {
        AKIDB_EMBEDDING_MLX_BATCH_SIZE: "64",
        AKIDB_EMBEDDING_MLX_MAX_CACHE_GB: "2.5",
        AKIDB_EMBEDDING_MLX_PRELOAD: "no",
        AKIDB_EMBEDDING_MLX_NORMALIZE: "FALSE",
        AKIDB_EMBEDDING_MODE: "mock",
        AKIDB_SERVER_API_KEYS: "k1, k2,,",
        AKIDB_SERVER_CORS_ORIGINS: "",
        AKIDB_SERVER_ADMIN_TOKEN: "s3cret",
        AKIDB_EMBEDDING_MLX_RESTART_MAX_RESTARTS: "0",
      },
    });
    expect(config.embedding.mlx).toMatchObject({
      batch_size: 64,
      max_cache_gb: 2.5,
      preload: false,
      normalize: false,
    });
    expect(config.embedding.mode).toBe("mock");
    expect(config.server).toMatchObject({ api_keys: ["k1", "k2"], cors_origins: [], admin_token: "s3cret" });
    expect(config.embedding.mlx.restart.max_restarts).toBe(0);
  });

  it("parses an `auto | integer` key as either", () => {
    const pick = (value: string) =>
      loadConfig({ env: { AKIDB_EMBEDDING_MLX_BATCHES_IN_FLIGHT: value } }).config.embedding.mlx
        .batches_in_flight;
    expect(pick("2")).toBe(2);
    expect(pick("auto")).toBe("auto");
    expect(loadConfig({}).config.embedding.mlx.batches_in_flight).toBe("auto");
    expect(() => pick("9")).toThrow(/batches_in_flight/);
    expect(() => pick("many")).toThrow(/batches_in_flight/);
  });

  it("the short aliases set the same keys as their long names", () => {
    const short = {
      AKIDB_MODEL: "gemma-300m-4bit",
      AKIDB_CACHE_DIR: "/models",
      AKIDB_BATCH_SIZE: "8",
      AKIDB_BATCH_TIMEOUT_MS: "0",
      AKIDB_DEVICE: "cpu",
    };
    const long = Object.fromEntries(
      Object.entries(short).map(([name, value]) => [envName(ENV_ALIASES[name]!.split(".")), value]),
    );
    const viaShort = loadConfig({ env: short }).config;
    expect(viaShort.embedding.mlx).toMatchObject({
      model: "gemma-300m-4bit",
      cache_dir: "/models",
      batch_size: 8,
      batch_timeout_ms: 0,
      device: "cpu",
    });
    expect(viaShort).toEqual(loadConfig({ env: long }).config);
  });

  // The product spec names these; `AKIDB_EMBEDDING_MODE` is the key's own variable.
  it.each([
    ["AKIDB_EMBEDDING_MODE", "mock", "embedding.mode", "mock"],
    ["AKIDB_EMBEDDING_MODEL", "gemma-300m-4bit", "embedding.mlx.model", "gemma-300m-4bit"],
    ["AKIDB_EMBEDDING_CACHE_DIR", "/srv/models", "embedding.mlx.cache_dir", "/srv/models"],
    ["AKIDB_EMBEDDING_BATCH_SIZE", "12", "embedding.mlx.batch_size", 12],
    ["AKIDB_EMBEDDING_BATCH_TIMEOUT_MS", "0", "embedding.mlx.batch_timeout_ms", 0],
    ["AKIDB_EMBEDDING_DEVICE", "cpu", "embedding.mlx.device", "cpu"],
  ])("the spec's %s=%s sets %s", (variable, raw, key, expected) => {
    const { config, warnings } = loadConfig({ env: { [variable]: raw } });
    expect(warnings).toEqual([]);
    const valueAt = (root: unknown) =>
      key.split(".").reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], root);
    // The value differs from the default, so the variable (not the default) set it.
    expect(valueAt(configSchema.parse({}))).not.toEqual(expected);
    expect(valueAt(config)).toEqual(expected);
  });

  it("a spec name and the key's own variable that disagree are an error naming both", () => {
    const error = configError({
      env: { AKIDB_EMBEDDING_MODEL: "gemma-300m-4bit", AKIDB_EMBEDDING_MLX_MODEL: "qwen3-0.6b-4bit" },
    });
    expect(error.key).toBe("embedding.mlx.model");
    expect(error.message).toMatch(
      /AKIDB_EMBEDDING_MODEL="gemma-300m-4bit" and AKIDB_EMBEDDING_MLX_MODEL="qwen3-0.6b-4bit" disagree/,
    );
  });

  it("a short and a long name that disagree are an error naming both", () => {
    const error = configError({ env: { AKIDB_BATCH_SIZE: "8", AKIDB_EMBEDDING_MLX_BATCH_SIZE: "16" } });
    expect(error.key).toBe("embedding.mlx.batch_size");
    expect(error.message).toMatch(/AKIDB_BATCH_SIZE="8" and AKIDB_EMBEDDING_MLX_BATCH_SIZE="16" disagree/);
  });

  it("wins over the file, and flags win over both", () => {
    const file = writeConfig(
      "server:\n  port: 9000\n  host: 127.0.0.2\nembedding:\n  mlx:\n    batch_size: 4\n",
    );
    const envOnly = loadConfig({ file, env: { AKIDB_SERVER_PORT: "9100", AKIDB_BATCH_SIZE: "5" } }).config;
    expect(envOnly.server).toMatchObject({ port: 9100, host: "127.0.0.2" });
    expect(envOnly.embedding.mlx.batch_size).toBe(5);
    const flags = loadConfig({
      file,
      env: { AKIDB_SERVER_PORT: "9100" },
      flags: { port: "9200", host: "localhost" },
    });
    expect(flags.config.server).toMatchObject({ port: 9200, host: "localhost" });
  });

  it("an unknown AKIDB_ variable is a warning with a suggestion", () => {
    const { warnings } = loadConfig({ env: { AKIDB_EMBEDING_MODE: "mock", AKIDB_INFERENCE_TOKEN: "x" } });
    expect(warnings).toEqual([
      "AKIDB_EMBEDING_MODE is not a config variable and is ignored; did you mean AKIDB_EMBEDDING_MODE?",
    ]);
  });
});

describe("error messages name the key, the bad value, where it was set and what is allowed", () => {
  it("a value outside an enum, with a did-you-mean", () => {
    const error = configError({ file: writeConfig("embedding:\n  mode: mlxx\n") });
    expect(error.key).toBe("embedding.mode");
    expect(error.message).toBe(
      'embedding.mode: "mlxx" is not allowed (akidb.yaml line 2); allowed: mlx, user_provided, mock (did you mean mlx?).',
    );
  });

  it("a number below its minimum", () => {
    const error = configError({ file: writeConfig("embedding:\n  mlx:\n    batch_size: 0\n") });
    expect(error.message).toBe(
      "embedding.mlx.batch_size: 0 is too small (akidb.yaml line 3); allowed: an integer >= 1.",
    );
  });

  it("a request limit larger than the queue it must fit in", () => {
    const error = configError({
      file: writeConfig(
        "embedding:\n  queue:\n    max_pending_inputs: 100\n    max_inputs_per_request: 200\n",
      ),
    });
    expect(error.key).toBe("embedding.queue.max_inputs_per_request");
    expect(error.message).toBe(
      "embedding.queue.max_inputs_per_request: 200 is more than embedding.queue.max_pending_inputs (100), the most" +
        " inputs that can ever wait, so such a request could never be queued (akidb.yaml line 4).",
    );
  });

  it("a value of the wrong type from the environment names the variable", () => {
    const error = configError({ env: { AKIDB_BATCH_TIMEOUT_MS: "soon" } });
    expect(error.key).toBe("embedding.mlx.batch_timeout_ms");
    expect(error.message).toBe(
      'embedding.mlx.batch_timeout_ms: "soon" is not an integer (from AKIDB_BATCH_TIMEOUT_MS); allowed: an integer.',
    );
  });

  it("never echoes a secret's value in an error (server.api_keys, server.admin_token)", () => {
    const keys = configError({ file: writeConfig('server:\n  api_keys: "sk-live-12345"\n') });
    expect(keys.message).not.toContain("sk-live");
    expect(keys.message).toMatch(/^server\.api_keys: <redacted> is not /);
    const item = configError({ file: writeConfig("server:\n  api_keys: [sk-live-1, 42]\n") });
    expect(item.message).not.toContain("sk-live");
    const token = configError({ file: writeConfig("server:\n  admin_token: [sk-admin-secret]\n") });
    expect(token.message).not.toContain("sk-admin-secret");
    expect(token.message).toMatch(/^server\.admin_token: <redacted> is not /);
  });

  it("a fraction where an integer is needed, from a flag", () => {
    const error = configError({ flags: { port: 80.5 } });
    expect(error.message).toBe("server.port: 80.5 is not an integer (from --port); allowed: an integer.");
  });

  it("an unknown key, with a did-you-mean and the keys allowed there", () => {
    const error = configError({ file: writeConfig("embedding:\n  mlx:\n    batchsize: 3\n") });
    expect(error.key).toBe("embedding.mlx.batchsize");
    expect(error.message).toMatch(
      /^embedding\.mlx\.batchsize: unknown key \(akidb\.yaml line 3\); did you mean embedding\.mlx\.batch_size\? Allowed under embedding\.mlx: model, cache_dir, /,
    );
  });

  it("an unknown section at the top level", () => {
    const error = configError({ file: writeConfig("sever:\n  port: 1\n") });
    expect(error.message).toMatch(
      /^sever: unknown key \(akidb\.yaml line 1\); did you mean server\? Allowed under the top level: embedding, collection, server, storage, models\.$/,
    );
  });

  it("an unknown key far from every allowed one gets no suggestion", () => {
    const error = configError({ file: writeConfig("server:\n  telemetry: true\n") });
    expect(error.message).not.toMatch(/did you mean/);
    expect(error.message).toMatch(/^server\.telemetry: unknown key/);
  });

  it("every problem is reported, one per line", () => {
    const error = configError({
      file: writeConfig("embedding:\n  mode: gpu\nserver:\n  port: 70000\n  hots: x\n"),
    });
    const lines = error.message.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[1]).toBe("server.port: 70000 is too big (akidb.yaml line 4); allowed: an integer <= 65535.");
  });

  it("a user model entry: bad alias, missing and invalid fields", () => {
    const file = writeConfig(
      "models:\n  My Model: {source: x, architecture: qwen3, dimension: 8, max_tokens: 8}\n  ok: {source: x, architecture: qwen3, dimension: 0}\n",
    );
    const lines = configError({ file }).message.split("\n");
    expect(lines).toContain(
      'models.My Model: the alias "My Model" is not allowed (akidb.yaml line 2); allowed: lowercase letters, digits, ".", "_" and "-", starting with a letter or digit.',
    );
    expect(lines).toContain(
      "models.ok.dimension: 0 is too small (akidb.yaml line 3); allowed: a number >= 1.",
    );
    expect(lines).toContain("models.ok.max_tokens: required; allowed: a number.");
  });

  it("YAML syntax errors give the line", () => {
    const file = writeConfig("server:\n  port: 1\n  port: 2\n");
    expect(configError({ file }).message).toBe(
      `${file} line 3: not valid YAML: Map keys must be unique at line 3, column 3:`,
    );
  });

  it("a missing file and a file that is not a mapping", () => {
    expect(configError({ file: "/nonexistent/akidb.yaml" }).message).toBe(
      "config file /nonexistent/akidb.yaml does not exist; pass an existing YAML file to --config.",
    );
    expect(configError({ file: writeConfig("- a\n- b\n") }).message).toMatch(
      /the top level must be a mapping of sections \(embedding, collection, server, storage, models\)/,
    );
  });

  it("a host other machines can reach needs an admin token", () => {
    const error = configError({ flags: { host: "0.0.0.0" } });
    expect(error.key).toBe("server.admin_token");
    expect(error.message).toMatch(/server\.admin_token: required when server\.host is 0\.0\.0\.0/);
    expect(
      loadConfig({ env: { AKIDB_SERVER_ADMIN_TOKEN: "t" }, flags: { host: "0.0.0.0" } }).config.server.host,
    ).toBe("0.0.0.0");
    expect(loadConfig({ env: {}, flags: { host: "::1" } }).config.server.host).toBe("::1");
  });
});

describe("paths", () => {
  it("relative paths resolve against the config file's directory, ~ against the home directory", () => {
    const file = writeConfig(
      "storage:\n  data_dir: ./db\nembedding:\n  mlx:\n    model: ../ckpt\n    cache_dir: ~/models\nmodels:\n  mine: {source: ./mine, architecture: qwen3, dimension: 8, max_tokens: 8}\n",
    );
    const dir = path.dirname(file);
    const { config } = loadConfig({ file, env: {} });
    expect(config.storage.data_dir).toBe(path.join(dir, "db"));
    expect(config.embedding.mlx.model).toBe(path.resolve(dir, "../ckpt"));
    expect(config.embedding.mlx.cache_dir).toBe(path.join(homedir(), "models"));
    expect(config.models.mine!.source).toBe(path.join(dir, "mine"));
  });

  it("a model alias or repo id is left as it is", () => {
    const { config } = loadConfig({ env: { AKIDB_MODEL: "mlx-community/embeddinggemma-300m-4bit" } });
    expect(config.embedding.mlx.model).toBe("mlx-community/embeddinggemma-300m-4bit");
  });
});

describe("did-you-mean", () => {
  it("edit distance counts insertions, deletions and substitutions", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("same", "same")).toBe(0);
  });

  it("suggests the closest candidate only when it is a plausible typo", () => {
    const keys = ["batch_size", "batch_timeout_ms", "max_batch_tokens"];
    expect(didYouMean("batch-size", keys)).toBe("batch_size");
    expect(didYouMean("BATCH_TIMEOUT", keys)).toBe("batch_timeout_ms");
    expect(didYouMean("colour", keys)).toBeUndefined();
  });
});

it("redactConfig hides the admin token and API keys", () => {
  const { config } = loadConfig({
    env: { AKIDB_SERVER_ADMIN_TOKEN: "secret", AKIDB_SERVER_API_KEYS: "a,b" },
  });
  const shown = JSON.stringify(redactConfig(config));
  expect(shown).not.toMatch(/secret|"a"|"b"/);
  expect(redactConfig(config).server).toMatchObject({
    admin_token: "<redacted>",
    api_keys: ["<redacted>", "<redacted>"],
  });
  expect(redactConfig(loadConfig({ env: {} }).config).server.admin_token).toBeUndefined();
});
