import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { type Document, isMap, isScalar, LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { envOverrides } from "./env.ts";
import { ConfigError } from "./errors.ts";
import { childKeys, configLeaves } from "./keys.ts";
import { isSecretPath, REDACTED } from "./redact.ts";
import { type AkidbConfig, configSchema } from "./schema.ts";
import { didYouMean } from "./suggest.ts";

export interface LoadConfigOptions {
  /** YAML file; absent means built-in defaults (plus the environment and flags). */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Base of relative paths when there is no file. Default: the process's working directory. */
  cwd?: string;
  /** Command-line flags, which win over the file and the environment. */
  flags?: { host?: string; port?: string | number };
}

export interface LoadedConfig {
  config: AkidbConfig;
  /** Problems that do not stop the server (unknown `AKIDB_*` variables). */
  warnings: string[];
}

type Path = readonly PropertyKey[];

/**
 * The effective config: defaults < YAML file < `AKIDB_*` environment < flags, validated.
 * Throws `ConfigError` whose message names every bad key, its value, where it was set and what
 * is allowed. Paths (`cache_dir`, `data_dir`, a local model directory) come back absolute,
 * resolved against the config file's directory.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const file = options.file === undefined ? undefined : readYaml(options.file);
  const raw: Record<string, unknown> = file ? file.data : {};

  const sources = new Map<string, string>();
  const { overrides, warnings } = envOverrides(options.env ?? process.env);
  for (const override of overrides) {
    setPath(raw, override.path, override.value);
    sources.set(override.path.join("."), `from ${override.variable}`);
  }
  for (const [flag, value] of Object.entries(options.flags ?? {})) {
    if (value === undefined) continue;
    const parsed =
      typeof value === "string" && flag === "port" && /^\d+$/.test(value) ? Number(value) : value;
    setPath(raw, ["server", flag], parsed);
    sources.set(`server.${flag}`, `from --${flag}`);
  }

  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const locate = (issuePath: Path, key?: string): string | undefined =>
      sources.get([...issuePath, ...(key ? [key] : [])].map(String).join(".")) ??
      (file ? file.locate(issuePath, key) : undefined);
    const lines = result.error.issues.flatMap((issue) => describeIssue(issue, locate));
    const first = result.error.issues[0]!;
    const firstKey = [...first.path, ...(first.code === "unrecognized_keys" ? first.keys.slice(0, 1) : [])]
      .map(String)
      .join(".");
    throw new ConfigError(firstKey, lines.join("\n"));
  }

  const baseDir = options.file ? path.dirname(path.resolve(options.file)) : (options.cwd ?? process.cwd());
  const config = resolvePaths(result.data, baseDir);
  checkExposure(config);
  return { config, warnings };
}

interface YamlFile {
  data: Record<string, unknown>;
  /** `file line N` of the key at `issuePath` (or its child `key`), when the file sets it. */
  locate(issuePath: Path, key?: string): string | undefined;
}

function readYaml(file: string): YamlFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : String(error);
    throw new ConfigError(
      "--config",
      `config file ${file} ${reason}; pass an existing YAML file to --config.`,
    );
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0].line;
    throw new ConfigError(
      "--config",
      `${file}${line ? ` line ${line}` : ""}: not valid YAML: ${syntax.message.split("\n")[0]}`,
    );
  }
  const data: unknown = withoutNulls(doc.toJS());
  if (data !== undefined && !isPlainObject(data)) {
    throw new ConfigError(
      "--config",
      `${file}: the top level must be a mapping of sections (${childKeys([]).join(", ")}), not ${typeof data}.`,
    );
  }
  const name = path.basename(file);
  return {
    data: data ?? {},
    locate(issuePath, key) {
      const node = keyNode(doc, issuePath, key);
      return node === undefined ? undefined : `${name} line ${lineCounter.linePos(node).line}`;
    },
  };
}

/** Offset of the key (or value) node at `issuePath`, or of its child key `key`. */
function keyNode(doc: Document, issuePath: Path, key?: string): number | undefined {
  const target = key === undefined ? issuePath : [...issuePath, key];
  const parent = target.length > 1 ? doc.getIn(target.slice(0, -1), true) : doc.contents;
  if (!isMap(parent)) return undefined;
  const pair = parent.items.find(
    (item) => isScalar(item.key) && String(item.key.value) === String(target.at(-1)),
  );
  return isScalar(pair?.key) ? pair.key.range?.[0] : undefined;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  locate: (path: Path, key?: string) => string | undefined,
): string[] {
  const key = issue.path.map(String).join(".");
  const where = (at?: string) => (at ? ` (${at})` : "");
  if (issue.code === "unrecognized_keys") {
    const allowed = childKeys(issue.path);
    const section = key || "the top level";
    return issue.keys.map((unknown) => {
      const suggestion = didYouMean(unknown, allowed);
      const full = key ? `${key}.${unknown}` : unknown;
      return (
        `${full}: unknown key${where(locate(issue.path, unknown))}` +
        `${suggestion ? `; did you mean ${key ? `${key}.` : ""}${suggestion}?` : ""}` +
        ` Allowed under ${section}: ${allowed.join(", ")}.`
      );
    });
  }
  const at = where(locate(issue.path));
  // A secret's value is never echoed (config errors reach terminals, CI logs and issue reports).
  const value =
    "input" in issue && issue.input !== undefined
      ? isSecretPath(issue.path)
        ? REDACTED
        : JSON.stringify(issue.input)
      : undefined;
  const domain = leafDomain(issue.path);
  switch (issue.code) {
    case "invalid_value": {
      if (value === undefined) return [`${key}: required${at}; allowed: ${issue.values.join(", ")}.`];
      const suggestion = isSecretPath(issue.path)
        ? undefined
        : didYouMean(String(issue.input), issue.values.map(String));
      return [
        `${key}: ${value} is not allowed${at}; allowed: ${issue.values.join(", ")}` +
          `${suggestion ? ` (did you mean ${suggestion}?)` : ""}.`,
      ];
    }
    case "invalid_type":
      return value === undefined
        ? [`${key}: required${at}; allowed: ${typeName(issue.expected)}.`]
        : [
            `${key}: ${value} is not ${domain ?? typeName(issue.expected)}${at}; allowed: ${domain ?? typeName(issue.expected)}.`,
          ];
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_small" ? issue.minimum : issue.maximum;
      const op = issue.code === "too_small" ? (issue.inclusive ? ">=" : ">") : issue.inclusive ? "<=" : "<";
      const size = issue.origin === "string" ? " characters" : issue.origin === "array" ? " items" : "";
      const noun = issue.origin === "number" ? (domain ?? "a number") : `${issue.origin} length`;
      return [
        `${key}: ${value} is too ${issue.code === "too_small" ? "small" : "big"}${at}; allowed: ${noun} ${op} ${bound}${size}.`,
      ];
    }
    case "invalid_key": {
      const alias = String(issue.path.at(-1));
      return [
        `${key}: the alias ${JSON.stringify(alias)} is not allowed${at}; allowed: lowercase letters, digits, ".", "_" and "-", starting with a letter or digit.`,
      ];
    }
    default:
      return [`${key}: ${value ?? ""} ${issue.message}${at}.`];
  }
}

function leafDomain(issuePath: Path): string | undefined {
  const leaf = configLeaves().find((l) => l.path.join(".") === issuePath.map(String).join("."));
  if (!leaf) return undefined;
  return leaf.kind === "integer" ? "an integer" : leaf.kind === "number" ? "a number" : undefined;
}

function typeName(expected: string): string {
  const names: Record<string, string> = {
    int: "an integer",
    number: "a number",
    boolean: "true or false",
    string: "a string",
    array: "a list",
    object: "a mapping",
  };
  return names[expected] ?? expected;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/i;

function checkExposure(config: AkidbConfig): void {
  if (!LOOPBACK.test(config.server.host) && !config.server.admin_token) {
    throw new ConfigError(
      "server.admin_token",
      `server.admin_token: required when server.host is ${config.server.host} (reachable from other machines); ` +
        "set server.admin_token (or AKIDB_SERVER_ADMIN_TOKEN) to protect /admin/v1, or bind server.host 127.0.0.1.",
    );
  }
}

function resolvePaths(config: AkidbConfig, baseDir: string): AkidbConfig {
  const resolve = (p: string) =>
    p === "~" || p.startsWith("~/") ? path.join(homedir(), p.slice(1)) : path.resolve(baseDir, p);
  const isPath = (p: string) => /^(\.{1,2}\/|\/|~)/.test(p);
  const mlx = config.embedding.mlx;
  return {
    ...config,
    embedding: {
      ...config.embedding,
      mlx: {
        ...mlx,
        cache_dir: resolve(mlx.cache_dir),
        model: isPath(mlx.model) ? resolve(mlx.model) : mlx.model,
      },
    },
    storage: { ...config.storage, data_dir: resolve(config.storage.data_dir) },
    models: Object.fromEntries(
      Object.entries(config.models).map(([alias, entry]) => [
        alias,
        { ...entry, source: isPath(entry.source) ? resolve(entry.source) : entry.source },
      ]),
    ),
  };
}

function setPath(target: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next === undefined) node[key] = {};
    else if (!isPlainObject(next)) return; // validation reports the file's value
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1)!] = value;
}

/** An empty YAML value (`key:`) means "the default", as if the key were absent. */
function withoutNulls(value: unknown): unknown {
  if (value === null) return undefined;
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .map(([k, v]) => [k, withoutNulls(v)] as const)
      .filter(([, v]) => v !== undefined),
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
