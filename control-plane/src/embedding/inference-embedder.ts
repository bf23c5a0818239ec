import { AkidbError } from "../errors.ts";
import { decodeVector, type InferenceClient } from "../inference/client.ts";
import type { InferenceSupervisor } from "../inference/supervisor.ts";
import type { EmbedBatch, Embedder, EmbedderState, EmbedResult } from "./types.ts";

/**
 * The `Embedder` over the supervised inference process: a batch is one POST /v1/embeddings
 * (base64 vectors, a quarter of the JSON of floats) whose items carry their token counts and
 * whether they were truncated. The inference process always truncates; a request's
 * `truncate: false` is checked by the batcher on the `truncated` flags.
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
    const embeddings = await client.embed(
      {
        input: batch.texts,
        input_type: batch.inputType,
        encoding_format: "base64",
        normalize: batch.normalize,
        truncate: true,
        ...(batch.dimensions === undefined ? {} : { dimensions: batch.dimensions }),
      },
      options,
    );
    if (embeddings.data.length !== batch.texts.length) {
      throw new AkidbError("AKIDB_ERR_INFERENCE_FAILED", {
        reason: `${batch.texts.length} inputs sent, ${embeddings.data.length} embeddings received`,
      });
    }
    const vectors = new Array<Float32Array>(batch.texts.length);
    const tokenCounts = new Array<number>(batch.texts.length);
    const truncated = new Array<boolean>(batch.texts.length);
    for (const item of embeddings.data) {
      vectors[item.index] =
        typeof item.embedding === "string" ? decodeVector(item.embedding) : Float32Array.from(item.embedding);
      tokenCounts[item.index] = item.tokens;
      truncated[item.index] = item.truncated;
    }
    return { vectors, tokenCounts, truncated };
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
    const retryAfterSeconds = this.supervisor.retryAfterSeconds();
    throw new AkidbError(
      "AKIDB_ERR_MODEL_UNAVAILABLE",
      { model: this.name, reason },
      retryAfterSeconds === undefined ? {} : { retryAfterSeconds },
    );
  }
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0]!;
}
