import type { InputType } from "./types.ts";

/** What the token estimate needs to know about the model. */
export interface TokenLimits {
  max_tokens: number;
  prompts: { query: string; document: string };
}

/**
 * UTF-8 bytes per token assumed by the estimate. BPE vocabularies average about 4 bytes per token
 * on English and about 3 on CJK (one token per 3-byte character), so 3 over-estimates most text:
 * batches come out a little smaller than the budget allows, never much larger.
 */
const BYTES_PER_TOKEN = 3;

/** Special tokens a model adds around an input (Qwen3 appends one, Gemma3 prepends and appends). */
const SPECIAL_TOKENS = 2;

/**
 * Tokens an input will cost in a batch, without a tokenizer round trip per request: the estimate
 * feeds only the batch token budget (model setting `max_batch_tokens`), so it need not be exact.
 * Capped at the model's max_tokens because longer inputs are truncated to it.
 */
export function estimateTokens(text: string, inputType: InputType, limits: TokenLimits): number {
  const bytes = Buffer.byteLength(limits.prompts[inputType], "utf8") + Buffer.byteLength(text, "utf8");
  return Math.min(limits.max_tokens, Math.ceil(bytes / BYTES_PER_TOKEN) + SPECIAL_TOKENS);
}
