import { createHash } from "node:crypto";
import { AkidbError } from "../errors.ts";
import type { EmbedBatch, Embedder, EmbedderState, EmbedResult, InputType } from "./types.ts";

/** Pseudo-token limit of the mock model: longer inputs are cut as a real model cuts them. */
export const MOCK_MAX_TOKENS = 8192;

/** Pseudo-tokens: one per 4 UTF-8 bytes (about what BPE tokenizers give for English) plus one special token. */
function mockTokenCount(text: string): number {
  return Math.ceil(Buffer.byteLength(text, "utf8") / 4) + 1;
}

/**
 * Deterministic vectors for tests, demos and benchmarks of everything but the model: each is
 * expanded from SHA-256 of the input type and text, so equal inputs always get equal vectors,
 * queries and documents differ, and nothing depends on batching.
 */
export class MockEmbedder implements Embedder {
  readonly name = "mock";
  readonly dimension: number;

  constructor(dimension: number) {
    this.dimension = dimension;
  }

  state(): EmbedderState {
    return { status: "ready" };
  }

  async embed(batch: EmbedBatch): Promise<EmbedResult> {
    const dimensions = batch.dimensions ?? this.dimension;
    if (dimensions > this.dimension) {
      throw new AkidbError(
        "AKIDB_ERR_DIMENSIONS_UNSUPPORTED",
        { dimensions, allowed: `1 to ${this.dimension}` },
        { param: "dimensions" },
      );
    }
    const counts = batch.texts.map(mockTokenCount);
    const truncated = counts.map((count) => count > MOCK_MAX_TOKENS);
    const tokenCounts = counts.map((count) => Math.min(count, MOCK_MAX_TOKENS));
    const vectors = batch.texts.map((text) => {
      const full = hashVector(batch.inputType, text, this.dimension);
      const vector = full.subarray(0, dimensions);
      return batch.normalize ? l2Normalize(vector) : vector.slice();
    });
    return { vectors, tokenCounts, truncated };
  }
}

/** Uniform values in [-1, 1) from SHA-256 in counter mode, seeded by the input type and text. */
function hashVector(inputType: InputType, text: string, dimension: number): Float32Array {
  const seed = createHash("sha256").update(inputType).update("\0").update(text).digest();
  const vector = new Float32Array(dimension);
  for (let block = 0; block * 8 < dimension; block++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32LE(block);
    const bytes = createHash("sha256").update(seed).update(counter).digest();
    for (let i = 0; i < 8 && block * 8 + i < dimension; i++) {
      vector[block * 8 + i] = bytes.readUInt32LE(i * 4) / 2 ** 31 - 1;
    }
  }
  return vector;
}

function l2Normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum);
  return vector.map((value) => (norm > 0 ? value / norm : 0));
}
