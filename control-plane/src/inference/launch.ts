import { existsSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import type { AkidbConfig } from "../config/schema.ts";
import type { ModelEntry } from "../models/registry.ts";

/** The inference process listens here only: it is reachable from this machine alone. */
export const INFERENCE_HOST = "127.0.0.1";

/** What to run for one launch of the inference process. */
export interface InferenceCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
}

export interface LaunchSpec {
  config: AkidbConfig;
  entry: ModelEntry;
  port: number;
}

/** A launch that can never succeed as configured (no Python environment): retrying is pointless. */
export class LaunchError extends Error {
  override name = "LaunchError";
}

const REPO_ROOT = path.resolve(import.meta.dirname, "../../..");

/** `inference/.venv/bin/python -m akidb_inference ...` of the checkout at `root` (default this one). */
export function pythonInferenceCommand(
  { config, entry, port }: LaunchSpec,
  root = REPO_ROOT,
): InferenceCommand {
  const python = path.join(root, "inference", ".venv", "bin", "python");
  if (!existsSync(python)) {
    throw new LaunchError(`The Python environment is missing (no ${python}); run make setup.`);
  }
  const mlx = config.embedding.mlx;
  const revision = mlx.revision ?? entry.revision;
  return {
    file: python,
    args: [
      "-m",
      "akidb_inference",
      "--model",
      entry.source,
      "--host",
      INFERENCE_HOST,
      "--port",
      String(port),
      "--cache-dir",
      mlx.cache_dir,
      "--device",
      mlx.device,
      "--max-batch-tokens",
      String(mlx.max_batch_tokens),
      // The supervisor keeps the child's stdin open: if the control plane dies, even by SIGKILL,
      // the pipe closes and the inference process shuts itself down.
      "--exit-with-stdin",
      ...(revision ? ["--revision", revision] : []),
      ...(mlx.offline ? ["--offline"] : []),
    ],
    env: { PYTHONUNBUFFERED: "1" },
  };
}

/** A port that was free a moment ago: the OS picks it when binding port 0. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, INFERENCE_HOST, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address for port 0");
  return address.port;
}
