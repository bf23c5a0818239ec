import { existsSync } from "node:fs";
import path from "node:path";
import { modelSettings } from "../config/model-settings.ts";
import type { AkidbConfig } from "../config/schema.ts";
import type { ModelSource } from "../models/registry.ts";

/** The inference process listens here only: it is reachable from this machine alone. */
export const INFERENCE_HOST = "127.0.0.1";

/** What to run for one launch of the inference process. */
export interface InferenceCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * What one launch serves. There is no port: the child binds port 0 itself and reports the port it
 * got in its "listening" log line on its own stderr pipe, so no other process can take the port
 * between a choice here and the bind there.
 */
export interface LaunchSpec {
  config: AkidbConfig;
  entry: ModelSource;
}

/** A launch that can never succeed as configured (no Python environment): retrying is pointless. */
export class LaunchError extends Error {
  override name = "LaunchError";
}

const REPO_ROOT = path.resolve(import.meta.dirname, "../../..");

/** `inference/.venv/bin/python -m akidb_inference ...` of the checkout at `root` (default this one). */
export function pythonInferenceCommand({ config, entry }: LaunchSpec, root = REPO_ROOT): InferenceCommand {
  const python = path.join(root, "inference", ".venv", "bin", "python");
  if (!existsSync(python)) {
    throw new LaunchError(`The Python environment is missing (no ${python}); run make setup.`);
  }
  const model = modelSettings(config);
  const { onnx } = config.embedding;
  const revision = model.revision ?? entry.revision;
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
      "0",
      "--cache-dir",
      model.cache_dir,
      "--device",
      model.device,
      "--backend",
      config.embedding.backend,
      "--onnx-precision",
      onnx.precision,
      ...(onnx.threads ? ["--onnx-threads", String(onnx.threads)] : []),
      "--max-batch-tokens",
      String(model.max_batch_tokens),
      // The supervisor keeps the child's stdin open: if the control plane dies, even by SIGKILL,
      // the pipe closes and the inference process shuts itself down.
      "--exit-with-stdin",
      ...(revision ? ["--revision", revision] : []),
      ...(model.offline ? ["--offline"] : []),
    ],
    env: { PYTHONUNBUFFERED: "1" },
  };
}
