import type { components } from "../contract.ts";

/** Which of the model's prompts applies: queries get the query prompt, documents the document prompt. */
export type InputType = components["schemas"]["InputType"];

/** The loaded model as the inference process describes it. */
export type ModelInfo = components["schemas"]["InferenceModel"];

/**
 * One batch the batcher hands to an embedder: texts that share every option below. Inputs longer
 * than the model's max tokens are cut to it; the result says which were.
 */
export interface EmbedBatch {
  texts: string[];
  inputType: InputType;
  /** Matryoshka truncation (then re-normalisation when `normalize`); absent means the model's full size. */
  dimensions?: number;
  normalize: boolean;
  requestId: string;
  /** Aborts the computation when every client waiting on the batch went away or timed out. */
  signal?: AbortSignal;
}

/** Per text, in the batch's order: its vector, the tokens the model computed, and whether it was cut. */
export interface EmbedResult {
  vectors: Float32Array[];
  /** Prompt and special tokens included, after truncation (so at most the model's max tokens). */
  tokenCounts: number[];
  /** The text was cut at the model's max tokens (its token count is then that limit). */
  truncated: boolean[];
}

export type EmbedderStatus = "starting" | "ready" | "restarting" | "failed" | "stopped";

export interface EmbedderState {
  status: EmbedderStatus;
  /** Why the embedder is not ready (load failure, crash), for /health and /admin/v1/status. */
  reason?: string;
  pid?: number;
  model?: ModelInfo;
}

/**
 * What computes vectors: the mock embedder or the inference process, one call per batch. Errors
 * are `AkidbError`s (control-plane/src/errors.ts) so the HTTP layer maps them to a status without
 * guessing.
 */
export interface Embedder {
  /** Model id reported to clients. */
  readonly name: string;
  state(): EmbedderState;
  embed(batch: EmbedBatch): Promise<EmbedResult>;
}
