import { MockEmbedder } from "../src/embedding/mock.ts";
import type { EmbedBatch, Embedder, EmbedderState, EmbedResult } from "../src/embedding/types.ts";

/** A mock embedder whose batches the test releases by hand, recording what it was sent. */
export class GatedEmbedder implements Embedder {
  readonly name: string;
  readonly inner: MockEmbedder;
  readonly calls: Array<{ batch: EmbedBatch; release: () => void; fail: (error: unknown) => void }> = [];
  inFlight = 0;
  maxInFlight = 0;
  current: EmbedderState = { status: "ready" };
  /** When set, batches are computed at once instead of waiting for `release`. */
  open = false;

  constructor(dimension = 8, name = "gated") {
    this.inner = new MockEmbedder(dimension);
    this.name = name;
  }

  state(): EmbedderState {
    return this.current;
  }

  embed(batch: EmbedBatch): Promise<EmbedResult> {
    if (this.open) return this.inner.embed(batch);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise<EmbedResult>((resolve, reject) => {
      const done = () => {
        this.inFlight -= 1;
      };
      this.calls.push({
        batch,
        release: () => {
          done();
          resolve(this.inner.embed(batch));
        },
        fail: (error) => {
          done();
          reject(error);
        },
      });
    });
  }
}

/** An embedder that answers at once like the mock, or throws `failure` when it is set. */
export class ScriptedEmbedder implements Embedder {
  readonly name: string;
  readonly inner: MockEmbedder;
  current: EmbedderState = { status: "ready" };
  failure: unknown;

  constructor(dimension = 8, name = "scripted") {
    this.inner = new MockEmbedder(dimension);
    this.name = name;
  }

  state(): EmbedderState {
    return this.current;
  }

  async embed(batch: EmbedBatch): Promise<EmbedResult> {
    if (this.failure !== undefined) throw this.failure;
    return this.inner.embed(batch);
  }
}
