// Starts the real `bin/akidb serve` on a free port for a test file, with only the given AKIDB_*
// variables (the caller's environment cannot leak in) and a fresh data directory.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { waitFor } from "../control-plane/test/helpers.ts";

export const REPO = path.resolve(import.meta.dirname, "..");

export interface RunningAkiDB {
  url: string;
  /** The control plane's process id. */
  pid: number;
  /** Everything the server wrote to stdout (JSON lines) and stderr. */
  output(): string;
  /** Stops reading the server's stdout: once the pipe is full, its writes find no room. */
  pauseOutput(): void;
  /** Reads its stdout again. */
  resumeOutput(): void;
  /** Sends `signal` (default SIGTERM), then the exit code (undefined when a signal ended it). */
  stop(signal?: NodeJS.Signals): Promise<number | undefined>;
}

/** The control plane's own "listening" line (the inference process's is re-logged with a component). */
function listeningUrl(output: string): string | undefined {
  for (const line of output.split("\n")) {
    if (!line.startsWith("{") || !line.endsWith("}")) continue;
    const record = JSON.parse(line) as { msg?: string; url?: string; component?: string };
    if (record.msg === "listening" && !record.component) return record.url;
  }
  return undefined;
}

/** /health's body, as far as `startAkiDB`'s readiness test needs it. */
export interface HealthBody {
  status: string;
  embedder?: { status: string; reason?: string } | null;
}

export interface StartOptions {
  /** How long /health may take to say ready (default 120 s). */
  readyTimeoutMs?: number;
  /** When the server counts as ready (default: /health status `ok`). */
  ready?: (health: HealthBody) => boolean;
}

/** Starts the server and resolves once /health answers 200 and `options.ready` holds. */
export async function startAkiDB(
  env: Record<string, string>,
  options: StartOptions = {},
): Promise<RunningAkiDB> {
  const { readyTimeoutMs = 120_000, ready = (health) => health.status === "ok" } = options;
  const home = mkdtempSync(path.join(tmpdir(), "akidb-test-"));
  const server: ResultPromise<{ reject: false; buffer: false }> = execa(
    path.join(REPO, "bin/akidb"),
    ["serve", "--port", "0"],
    {
      reject: false,
      buffer: false,
      extendEnv: false,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        AKIDB_STORAGE_DATA_DIR: path.join(home, "data"),
        ...env,
      },
    },
  );
  let output = "";
  server.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  server.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    server.kill(signal); // a no-op when it has exited
    const result = await server;
    rmSync(home, { recursive: true, force: true });
    return result.exitCode;
  };
  try {
    const exited = server.then((result) => {
      throw new Error(
        `bin/akidb serve exited (${result.exitCode ?? result.signal}) before it was ready:\n${output}`,
      );
    });
    exited.catch(() => {}); // observed through the races below; later exits are stop()'s business
    const url = await Promise.race([
      waitFor(() => listeningUrl(output), "the listening line", 60_000),
      exited,
    ]);
    await Promise.race([
      waitFor(
        async () => ready((await (await fetch(`${url}/health`)).json()) as HealthBody),
        "/health to say the server is ready",
        readyTimeoutMs,
      ),
      exited,
    ]);
    return {
      url,
      pid: server.pid!,
      output: () => output,
      pauseOutput: () => server.stdout?.pause(),
      resumeOutput: () => server.stdout?.resume(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
