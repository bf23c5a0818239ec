import { AkidbError } from "../errors.ts";
import { decodeVector, type InferenceClient } from "../inference/client.ts";
import type { InferenceSupervisor } from "../inference/supervisor.ts";
import type { EmbedBatch, Embedder, EmbedderState, EmbedResult, InputType } from "./types.ts";

/**
 * The `Embedder` over the supervised inference process: a batch is one POST /v1/embeddings
 * (base64 vectors, a quarter of the JSON of floats) plus one POST /tokenize for per-input token
 * counts, which the embeddings response only gives in total.
 */
export class InferenceEmbedder implements Embedder {
  readonly supervisor: InferenceSupervisor;
  readonly #loadsOnDemand: boolean;

  /** `loadsOnDemand`: a stopped inference process is started by the first batch. */
  constructor(supervisor: InferenceSupervisor, options: { loadsOnDemand: boolean }) {
    this.supervisor = supervisor;
    this.#loadsOnDemand = options.loadsOnDemand;
  }

  /** The registry alias clients name in `model`. */
  get name(): string {
    return this.supervisor.entry.alias;
  }

  state(): EmbedderState {
    const status = this.supervisor.status();
    return {
      status: status.state,
      ...(status.lastError ? { reason: status.lastError } : {}),
      ...(status.pid === null ? {} : { pid: status.pid }),
      ...(status.model ? { model: status.model } : {}),
    };
  }

  async embed(batch: EmbedBatch): Promise<EmbedResult> {
    const client = await this.#client();
    const options = { requestId: batch.requestId, ...(batch.signal ? { signal: batch.signal } : {}) };
    const [embeddings, counts] = await Promise.all([
      client.embed(
        {
          input: batch.texts,
          input_type: batch.inputType,
          encoding_format: "base64",
          normalize: batch.normalize,
          truncate: batch.truncate,
          ...(batch.dimensions === undefined ? {} : { dimensions: batch.dimensions }),
        },
        options,
      ),
      client.tokenize({ input: batch.texts, input_type: batch.inputType }, options),
    ]);
    if (embeddings.data.length !== batch.texts.length || counts.data.length !== batch.texts.length) {
      throw new AkidbError("AKIDB_ERR_INFERENCE_FAILED", {
        reason: `${batch.texts.length} inputs sent, ${embeddings.data.length} embeddings and ${counts.data.length} token counts received`,
      });
    }
    const vectors = new Array<Float32Array>(batch.texts.length);
    for (const item of embeddings.data) {
      vectors[item.index] =
        typeof item.embedding === "string" ? decodeVector(item.embedding) : Float32Array.from(item.embedding);
    }
    // Truncation cuts an input to max_tokens, so that is what it cost.
    const tokenCounts = new Array<number>(batch.texts.length);
    for (const item of counts.data) {
      tokenCounts[item.index] = batch.truncate ? Math.min(item.tokens, counts.max_tokens) : item.tokens;
    }
    return { vectors, tokenCounts };
  }

  async countTokens(texts: string[], inputType: InputType, requestId: string): Promise<number[]> {
    const client = await this.#client();
    const counts = await client.tokenize({ input: texts, input_type: inputType }, { requestId });
    const tokens = new Array<number>(texts.length);
    for (const item of counts.data) tokens[item.index] = item.tokens;
    return tokens;
  }

  async #client(): Promise<InferenceClient> {
    const ready = this.supervisor.client();
    if (ready) return ready;
    const status = this.supervisor.status();
    if (status.state === "stopped" && this.#loadsOnDemand) {
      await this.supervisor.start().catch(() => undefined);
      const started = this.supervisor.client();
      if (started) return started;
    }
    const current = this.supervisor.status();
    const reason =
      current.state === "starting" || current.state === "restarting"
        ? `the inference process is ${current.state}${current.lastError ? ` after: ${firstLine(current.lastError)}` : ""}`
        : current.state === "failed"
          ? firstLine(current.lastError ?? "the inference process failed")
          : `the inference process is ${current.state}`;
    throw new AkidbError(
      "AKIDB_ERR_MODEL_UNAVAILABLE",
      { model: this.name, reason },
      current.state === "failed" || current.state === "stopped" ? {} : { retryAfterSeconds: 1 },
    );
  }
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0]!;
}
