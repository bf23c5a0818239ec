import type { ModelEntry, ModelSource } from "./registry.ts";

/**
 * The offline fallback: when the built-in default model is neither in the cache nor downloadable
 * (a fresh or air-gapped machine), the server serves `embedding.fallback_model` instead, whose
 * weights are installed with the Python environment. An explicitly configured model is never
 * swapped: it stays a clear `degraded`.
 */
export interface FallbackPlan {
  /** The entry served instead. */
  entry: ModelEntry;
  /** Whether `entry`'s weights are on this machine (a failure then is no matter of availability). */
  isLocal(model: ModelSource): boolean;
}

/** Which model serves in place of which, and why; shown by /health, /admin/v1/status and /v1/models. */
export interface FallbackState {
  /** Alias of the configured model that could not be had. */
  configured_model: string;
  /** Alias of the model serving instead. */
  served_model: string;
  /** Why the configured model could not be loaded (the inference process's first line). */
  reason: string;
}

/**
 * The fallback for `configured` after its launch failed with `failure`, or undefined when none
 * applies: no plan, or the configured model's weights are on this machine (then the failure is
 * not about getting them, and serving another model would hide it).
 */
export function fallbackFor(
  plan: FallbackPlan | undefined,
  configured: ModelSource,
  failure: string,
): FallbackState | undefined {
  if (!plan || plan.entry.alias === configured.alias || plan.isLocal(configured)) return undefined;
  return { configured_model: configured.alias, served_model: plan.entry.alias, reason: firstLine(failure) };
}

/** The one log line that says a fallback serves, and how to get the configured model. */
export function fallbackMessage(state: FallbackState): string {
  const { configured_model: configured, served_model: served } = state;
  return (
    `serving ${served} instead of the default model ${configured}, which cannot be had (${state.reason}). ` +
    `To use ${configured}, ` +
    `start AkiDB once with access to the Hugging Face Hub (or POST /admin/v1/models/${configured}/load ` +
    'when it is back); set embedding.fallback_model to "" to stay degraded instead of falling back'
  );
}

function firstLine(text: string): string {
  const lines = text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  return lines[0] ?? "unknown error";
}
