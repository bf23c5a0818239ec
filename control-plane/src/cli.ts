// The `akidb` command (run through bin/akidb): `serve` and `config check`.
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { stringify } from "yaml";
import { ConfigError } from "./config/errors.ts";
import { type LoadedConfig, loadConfig } from "./config/load.ts";
import { embeddingKind, modelSettings } from "./config/model-settings.ts";
import { redactConfig } from "./config/redact.ts";
import { createLogger, LogOutput } from "./log.ts";
import { buildRegistry } from "./models/registry.ts";
import { type RunningServer, startServer } from "./server.ts";

const USAGE = `Usage:
  akidb serve [--config FILE] [--host HOST] [--port PORT]
      Start the server. Without --config: the built-in defaults (127.0.0.1:8080, mode mlx,
      model qwen3-0.6b-4bit). AKIDB_* environment variables override the file; flags override both.
  akidb config check [--config FILE]
      Validate the configuration and print the effective one (secrets redacted).
  akidb --help

Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage.
Configuration keys: akidb.example.yaml and docs/configuration.md.`;

/** Invalid configuration or command line: the process exits 2 (like a usage error). */
const EXIT_CONFIG = 2;

class UsageError extends Error {}

function parseCommandLine(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      host: { type: "string" },
      port: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const command = positionals.join(" ");
  if (values.help || command === "" || command === "help") return { command: "help" as const, values };
  if (command !== "serve" && command !== "config check") throw new UsageError(`unknown command "${command}"`);
  if (command === "config check" && (values.host !== undefined || values.port !== undefined)) {
    throw new UsageError("--host and --port apply to serve only");
  }
  return { command, values };
}

function load(values: { config?: string; host?: string; port?: string }): LoadedConfig {
  const loaded = loadConfig({
    ...(values.config === undefined ? {} : { file: values.config }),
    flags: { host: values.host, port: values.port },
  });
  for (const warning of loaded.warnings) process.stderr.write(`akidb: warning: ${warning}\n`);
  // An unknown model is a configuration error too: report it before anything starts.
  if (embeddingKind(loaded.config.embedding.mode) === "inference")
    buildRegistry(loaded.config).resolve(modelSettings(loaded.config).model);
  return loaded;
}

async function serve(loaded: LoadedConfig): Promise<void> {
  // V8 then counts ArrayBuffer memory toward its ordinary heap-growth limit instead of a separate
  // small step above what the last full GC left. Upsert bodies are ArrayBuffers (socket chunks and
  // the joined copy: ~16 MB per 1000 x 384 JSON vectors), so each body or two forced a full GC on
  // the HTTP thread; with the flag a third as many (30 bodies: 21 -> 7 mark-compacts, 159 -> 40 ms
  // of pauses; docs/benchmarks.md, "Collections"). Process-wide, so set before any worker starts;
  // a V8 without the flag prints "unrecognized flag" on stderr and carries on.
  setFlagsFromString("--external-memory-accounted-in-global-limit");
  const { config } = loaded;
  const logOutput = new LogOutput(process.stdout, config.server.log_queue_bytes);
  const logger = createLogger(config.server.log_level, logOutput);
  for (const warning of loaded.warnings) logger.warn(warning);
  let server: RunningServer | undefined;
  let stopping = false;
  const shutdown = (running: RunningServer) =>
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  // Installed before the server starts, so a signal during start-up is never the default (abrupt) exit.
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    if (server) void shutdown(server);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  server = await startServer(config, logger, logOutput);
  if (stopping) void shutdown(server);
}

async function main(argv: string[]): Promise<void> {
  try {
    const { command, values } = parseCommandLine(argv);
    if (command === "help") {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    const loaded = load(values);
    if (command === "config check") {
      const source = values.config ?? "built-in defaults";
      process.stdout.write(
        `# Effective configuration (${source} + AKIDB_* environment); secrets redacted.\n${stringify(redactConfig(loaded.config))}`,
      );
      return;
    }
    await serve(loaded);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`akidb: invalid configuration:\n  ${error.message.replaceAll("\n", "\n  ")}\n`);
      process.exit(EXIT_CONFIG);
    }
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`akidb: ${(error as Error).message}\n\n${USAGE}\n`);
      process.exit(EXIT_CONFIG);
    }
    process.stderr.write(`akidb: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}

await main(process.argv.slice(2));
