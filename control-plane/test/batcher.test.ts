import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Batcher, type BatcherLimits, type EmbedRequest } from "../src/embedding/batcher.ts";
import { MOCK_MAX_TOKENS, MockEmbedder } from "../src/embedding/mock.ts";
import type { EmbedBatch, Embedder, EmbedderState, EmbedResult, InputType } from "../src/embedding/types.ts";
import { AkidbError } from "../src/errors.ts";
import { GatedEmbedder } from "./fakes.ts";

const LIMITS: BatcherLimits = {
  batchSize: 4,
  batchTimeoutMs: 5,
  maxBatchTokens: 1000,
  // One batch at a time keeps these tests' batch boundaries simple; pipelining has its own tests.
  batchesInFlight: 1,
  maxPendingInputs: 64,
  requestTimeoutMs: 10_000,
};

/** One token per character: makes token budgets easy to reason about. */
const charTokens = (text: string) => text.length;

function request(texts: string[], overrides: Partial<EmbedRequest> = {}): EmbedRequest {
  return { texts, inputType: "document", normalize: true, truncate: true, requestId: "r", ...overrides };
}

function submit(batcher: Batcher, req: EmbedRequest): Promise<EmbedResult> {
  return batcher.embed(req, batcher.reserve(req.texts.length));
}

async function unbatched(req: EmbedRequest): Promise<Float32Array[]> {
  const { vectors } = await new MockEmbedder(8).embed({ ...req });
  return vectors;
}

async function rejection(promise: Promise<unknown>): Promise<AkidbError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof AkidbError)) throw new Error(`expected an AkidbError, got ${String(error)}`);
  return error;
}

describe("Batcher", () => {
  it("groups concurrent requests into one batch and returns each request its own vectors", async () => {
    const embedder = new GatedEmbedder();
    // A full batch goes at once, however long the timeout.
    const limits = { ...LIMITS, batchTimeoutMs: 60_000 };
    const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
    const requests = [request(["a"]), request(["b", "c"]), request(["d"])];
    const results = requests.map((req) => submit(batcher, req));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    expect(embedder.calls[0]!.batch.texts).toEqual(["a", "b", "c", "d"]);
    embedder.calls[0]!.release();
    for (const [i, result] of results.entries()) {
      expect((await result).vectors).toEqual(await unbatched(requests[i]!));
    }
  });

  it("keeps batches_in_flight batches at the embedder: the next is sent while one computes", async () => {
    const embedder = new GatedEmbedder();
    const limits = { ...LIMITS, batchTimeoutMs: 60_000, batchesInFlight: 2 };
    const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
    const texts = Array.from({ length: 12 }, (_, i) => `t${i}`);
    const result = submit(batcher, request(texts));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    expect(batcher.inFlightSize).toBe(8);
    expect(batcher.queueDepth).toBe(4);
    // The third batch waits for a free place, not for the first batch in particular.
    embedder.calls[1]!.release();
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(3));
    expect(embedder.calls.map((call) => call.batch.texts)).toEqual([
      texts.slice(0, 4),
      texts.slice(4, 8),
      texts.slice(8),
    ]);
    embedder.calls[2]!.release();
    embedder.calls[0]!.release();
    expect((await result).vectors).toEqual(await unbatched(request(texts)));
    expect(embedder.maxInFlight).toBe(2);
  });

  it("batches_in_flight auto: two on a GPU, one on a CPU (the loaded model's device)", async () => {
    for (const [device, expected] of [
      ["cuda:NVIDIA H200", 2],
      ["metal", 2],
      ["cpu", 1],
    ] as const) {
      const embedder = new GatedEmbedder();
      embedder.current = { status: "ready", model: { device } as EmbedderState["model"] };
      const limits = { ...LIMITS, batchTimeoutMs: 60_000, batchesInFlight: "auto" as const };
      const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
      const result = submit(batcher, request(Array.from({ length: 12 }, (_, i) => `t${i}`)));
      // Full batches go out as the request is queued, as many as there are places.
      expect(embedder.calls).toHaveLength(expected);
      embedder.open = true;
      for (const call of embedder.calls) call.release();
      expect((await result).vectors).toHaveLength(12);
      expect(embedder.maxInFlight).toBe(expected);
    }
  });

  it("with a place free, sends a lone request at once at light load while another batch computes", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({
      embedder,
      limits: { ...LIMITS, batchesInFlight: 2 },
      estimateTokens: charTokens,
    });
    const first = submit(batcher, request(["first"]));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const second = submit(batcher, request(["second"]));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    expect(embedder.calls[1]!.batch.texts).toEqual(["second"]);
    for (const call of embedder.calls) call.release();
    expect((await first).vectors).toEqual(await unbatched(request(["first"])));
    expect((await second).vectors).toEqual(await unbatched(request(["second"])));
  });

  it("waits batch_timeout_ms for company only while requests come closer together than that", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    try {
      const embedder = new GatedEmbedder();
      embedder.open = true;
      const dispatchedAt: number[] = [];
      const embed = embedder.embed.bind(embedder);
      embedder.embed = (batch) => {
        dispatchedAt.push(performance.now());
        return embed(batch);
      };
      const limits = { ...LIMITS, batchTimeoutMs: 1000 };
      const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
      /** How long a lone request waited for its batch. */
      const wait = async (text: string) => {
        const arrived = performance.now();
        const result = submit(batcher, request([text]));
        await vi.advanceTimersByTimeAsync(1000);
        await result;
        return dispatchedAt.at(-1)! - arrived;
      };
      // The first request has no history: it waits out the timeout, as dense arrivals do.
      const waits = [await wait("first")];
      // Arrivals 5 s apart: the moving average of the gaps (each capped at 2 s) passes 1 s at the fifth.
      for (const text of ["second", "third", "fourth", "fifth"]) {
        await vi.advanceTimersByTimeAsync(5000);
        waits.push(await wait(text));
      }
      expect(waits).toEqual([1000, 1000, 1000, 1000, 0]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("splits a request larger than batch_size and reassembles it in order", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({ embedder, limits: LIMITS, estimateTokens: charTokens });
    const req = request(Array.from({ length: 10 }, (_, i) => `text ${i}`));
    const result = submit(batcher, req);
    for (let n = 1; n <= 3; n++) {
      await vi.waitFor(() => expect(embedder.calls).toHaveLength(n));
      expect(embedder.inFlight).toBe(1);
      embedder.calls[n - 1]!.release();
    }
    expect(embedder.calls.map((call) => call.batch.texts.length)).toEqual([4, 4, 2]);
    expect((await result).vectors).toEqual(await unbatched(req));
    expect(embedder.maxInFlight).toBe(1);
  });

  it("a small request rides in the next batch instead of waiting behind a large one that came first", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({ embedder, limits: LIMITS, estimateTokens: charTokens });
    const big = request(Array.from({ length: 12 }, (_, i) => `big ${i}`));
    const other = request(Array.from({ length: 12 }, (_, i) => `other ${i}`));
    const bigResult = submit(batcher, big);
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const otherResult = submit(batcher, other);
    const small = submit(batcher, request(["small"]));
    embedder.calls[0]!.release();
    // The second batch holds the oldest queued input of every waiting request, then fills in arrival order.
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    expect(embedder.calls[1]!.batch.texts).toEqual(["big 4", "big 5", "other 0", "small"]);
    embedder.calls[1]!.release();
    expect((await small).vectors).toHaveLength(1);
    // The rest: the first large request finishes (batch 4) long before the second (batch 7).
    for (let n = 3; n <= 7; n++) {
      await vi.waitFor(() => expect(embedder.calls).toHaveLength(n));
      embedder.calls[n - 1]!.release();
    }
    expect((await bigResult).vectors).toEqual(await unbatched(big));
    expect((await otherResult).vectors).toEqual(await unbatched(other));
    expect(embedder.calls.slice(2).map((c) => c.batch.texts)).toEqual([
      ["big 6", "big 7", "big 8", "other 1"],
      ["big 9", "big 10", "big 11", "other 2"],
      ["other 3", "other 4", "other 5", "other 6"],
      ["other 7", "other 8", "other 9", "other 10"],
      ["other 11"],
    ]);
  });

  it("refuses a multi-input request that could not finish before its deadline behind accepted work (refuse_doomed)", async () => {
    const embedder = new TimedEmbedder(); // 1 ms + 1 ms per input per batch: >= 1.25 ms per input
    const limits = { ...LIMITS, requestTimeoutMs: 25, refuseDoomed: true };
    const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
    await submit(batcher, request(["a", "b", "c", "d"])); // one full batch measures the pace
    const blocker = submit(batcher, request(Array.from({ length: 12 }, (_, i) => `blocker ${i}`))).catch(
      (e: unknown) => e,
    );
    // 12 accepted inputs ahead + 12 = 24 x >= 1.25 ms > 25 ms: refused now rather than a 504 later.
    const doomed = (() => {
      try {
        batcher.reserve(12);
        return undefined;
      } catch (error) {
        return error as AkidbError;
      }
    })();
    expect(doomed).toMatchObject({ code: "AKIDB_ERR_BACKLOGGED", status: 429 });
    expect(doomed!.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // One input always gets in: it rides in the next batch.
    expect((await submit(batcher, request(["single"]))).vectors).toHaveLength(1);
    await blocker;
  });

  it("keeps a batch within the token budget; a single larger input goes alone", async () => {
    const embedder = new GatedEmbedder();
    const limits = { ...LIMITS, batchSize: 8, maxBatchTokens: 10 };
    const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
    const req = request(["aaaa", "bbbb", "cccc", "dddddddddddddddd", "e"]);
    const result = submit(batcher, req);
    for (let n = 1; n <= 4; n++) {
      await vi.waitFor(() => expect(embedder.calls).toHaveLength(n));
      embedder.calls[n - 1]!.release();
    }
    expect((await result).vectors).toEqual(await unbatched(req));
    expect(embedder.calls.map((call) => call.batch.texts)).toEqual([
      ["aaaa", "bbbb"],
      ["cccc"],
      ["dddddddddddddddd"],
      ["e"],
    ]);
  });

  it("never mixes inputs with different input_type, dimensions or normalize", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({
      embedder,
      limits: { ...LIMITS, batchTimeoutMs: 0 },
      estimateTokens: charTokens,
    });
    // While this batch is in flight the others queue up, so the grouping does not depend on timing.
    const blocker = submit(batcher, request(["blocker"]));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const requests = [
      request(["a"]),
      request(["b"], { inputType: "query" }),
      request(["c"], { dimensions: 4 }),
      request(["d"], { normalize: false }),
      request(["e"], { truncate: false }),
    ];
    const results = requests.map((req) => submit(batcher, req));
    embedder.calls[0]!.release();
    await blocker;
    for (let n = 2; n <= 5; n++) {
      await vi.waitFor(() => expect(embedder.calls).toHaveLength(n));
      embedder.calls[n - 1]!.release();
    }
    // `truncate` is checked on the result, so truncate: false shares a batch with the rest.
    expect(embedder.calls.slice(1).map((call) => call.batch.texts)).toEqual([
      ["a", "e"],
      ["b"],
      ["c"],
      ["d"],
    ]);
    for (const [i, result] of results.entries()) {
      expect((await result).vectors).toEqual(await unbatched(requests[i]!));
    }
  });

  it("drops the inputs of a client that went away before they are sent", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({
      embedder,
      limits: { ...LIMITS, batchSize: 1 },
      estimateTokens: charTokens,
    });
    const first = submit(batcher, request(["first"]));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const controller = new AbortController();
    const gone = submit(batcher, request(["gone", "gone too"], { signal: controller.signal }));
    const last = submit(batcher, request(["last"]));
    expect(batcher.queueDepth).toBe(3);
    controller.abort();
    expect((await rejection(gone)).code).toBe("AKIDB_ERR_CANCELLED");
    expect(batcher.queueDepth).toBe(1);
    embedder.calls[0]!.release();
    await first;
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    embedder.calls[1]!.release();
    await last;
    expect(embedder.calls.map((call) => call.batch.texts)).toEqual([["first"], ["last"]]);
    expect(batcher.pendingInputs).toBe(0);
  });

  it("aborts the batch in flight when every client waiting on it went away", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({ embedder, limits: LIMITS, estimateTokens: charTokens });
    const controller = new AbortController();
    const gone = submit(batcher, request(["a"], { signal: controller.signal }));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const signal = embedder.calls[0]!.batch.signal!;
    expect(signal.aborted).toBe(false);
    controller.abort();
    expect((await rejection(gone)).code).toBe("AKIDB_ERR_CANCELLED");
    expect(signal.aborted).toBe(true);
  });

  it("answers 504 AKIDB_ERR_TIMEOUT when a request misses its deadline", async () => {
    const embedder = new GatedEmbedder();
    const limits = { ...LIMITS, requestTimeoutMs: 30 };
    const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
    const error = await rejection(submit(batcher, request(["slow"])));
    expect(error.code).toBe("AKIDB_ERR_TIMEOUT");
    expect(error.status).toBe(504);
    expect(error.message).toContain("embedding.queue.request_timeout_ms (30 ms)");
    expect(embedder.calls[0]!.batch.signal!.aborted).toBe(true);
    expect(batcher.pendingInputs).toBe(0);
  });

  it("refuses capacity beyond max_pending_inputs with 429 and a Retry-After", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({
      embedder,
      limits: { ...LIMITS, maxPendingInputs: 3 },
      estimateTokens: charTokens,
    });
    const held = submit(batcher, request(["a", "b"]));
    let error: unknown;
    try {
      batcher.reserve(2);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AkidbError);
    const overloaded = error as AkidbError;
    expect(overloaded.status).toBe(429);
    expect(overloaded.code).toBe("AKIDB_ERR_OVERLOADED");
    expect(overloaded.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(overloaded.message).toContain("embedding.queue.max_pending_inputs is 3");
    const permit = batcher.reserve(1);
    permit.release();
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    embedder.calls[0]!.release();
    await held;
    expect(batcher.pendingInputs).toBe(0);
  });

  it("fails only the request whose input the embedder rejected, with that request's index", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({ embedder, limits: LIMITS, estimateTokens: charTokens });
    const good = submit(batcher, request(["ok 1", "ok 2"]));
    const bad = submit(batcher, request(["fine", "bad"]));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    embedder.calls[0]!.fail(
      new AkidbError(
        "AKIDB_ERR_INFERENCE_REJECTED",
        { message: "input[3] is not valid UTF-8" },
        { param: "input[3]", status: 422 },
      ),
    );
    const error = await rejection(bad);
    expect(error.param).toBe("input[1]");
    expect(error.status).toBe(422);
    expect(error.message).toBe("input[1] is not valid UTF-8");
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    expect(embedder.calls[1]!.batch.texts).toEqual(["ok 1", "ok 2"]);
    embedder.calls[1]!.release();
    expect((await good).vectors).toHaveLength(2);
  });

  it("fails a truncate: false request whose input the model cut, naming it and the limit; the rest of the batch is answered", async () => {
    const embedder = new GatedEmbedder();
    const limits = { ...LIMITS, batchTimeoutMs: 60_000 };
    const batcher = new Batcher({ embedder, limits, estimateTokens: () => 1 });
    const long = "word ".repeat(MOCK_MAX_TOKENS);
    const strict = submit(batcher, request(["short", long], { truncate: false }));
    const lenient = submit(batcher, request(["x", long]));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    expect(embedder.calls[0]!.batch.texts).toEqual(["short", long, "x", long]);
    embedder.calls[0]!.release();
    const error = await rejection(strict);
    expect(error).toMatchObject({ code: "AKIDB_ERR_INPUT_TOO_LONG", status: 400, param: "input[1]" });
    expect(error.message).toBe(
      `input[1] is longer than the model's max_tokens (${MOCK_MAX_TOKENS} tokens, prompt included); shorten it or send truncate: true.`,
    );
    // The mock counts one token per 4 bytes plus one: "x" is 2; the long text is cut to the limit.
    expect(await lenient).toMatchObject({ tokenCounts: [2, MOCK_MAX_TOKENS], truncated: [false, true] });
    expect(batcher.pendingInputs).toBe(0);
  });

  it("fails every request of a batch the embedder could not compute", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({ embedder, limits: LIMITS, estimateTokens: charTokens });
    const results = [submit(batcher, request(["a"])), submit(batcher, request(["b"]))];
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    embedder.calls[0]!.fail(new Error("connection reset"));
    for (const result of results) {
      const error = await rejection(result);
      expect(error.code).toBe("AKIDB_ERR_INFERENCE_FAILED");
      expect(error.message).toContain("connection reset");
    }
  });

  it("runs an exclusive task after earlier inputs finish and before later ones start", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({
      embedder,
      limits: { ...LIMITS, batchSize: 1 },
      estimateTokens: charTokens,
    });
    const events: string[] = [];
    const before = submit(batcher, request(["before 1", "before 2"])).then(() => events.push("before done"));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    const switched = batcher.exclusive(async () => {
      events.push(`switch with ${embedder.calls.length} batches sent`);
    });
    const after = submit(batcher, request(["after"])).then(() => events.push("after done"));
    embedder.calls[0]!.release();
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(2));
    embedder.calls[1]!.release();
    await switched;
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(3));
    embedder.calls[2]!.release();
    await Promise.all([before, after]);
    expect(events).toEqual(["before done", "switch with 2 batches sent", "after done"]);
  });

  it("close() refuses new requests and resolves once accepted ones are answered", async () => {
    const embedder = new GatedEmbedder();
    const batcher = new Batcher({ embedder, limits: LIMITS, estimateTokens: charTokens });
    const accepted = submit(batcher, request(["a"]));
    await vi.waitFor(() => expect(embedder.calls).toHaveLength(1));
    let closed = false;
    const closing = batcher.close().then(() => {
      closed = true;
    });
    expect(() => batcher.reserve(1)).toThrow(/shutting down/);
    expect(closed).toBe(false);
    embedder.calls[0]!.release();
    await closing;
    expect((await accepted).vectors).toHaveLength(1);
  });
});

/** An embedder on fake timers: each batch takes 1 ms plus 1 ms per input. */
class TimedEmbedder implements Embedder {
  readonly name = "timed";
  readonly inner = new MockEmbedder(8);
  readonly batches: Array<{ texts: string[]; batch: EmbedBatch; startedAt: number }> = [];
  inFlight = 0;
  maxInFlight = 0;

  state(): EmbedderState {
    return { status: "ready" };
  }

  async embed(batch: EmbedBatch): Promise<EmbedResult> {
    this.batches.push({ texts: batch.texts, batch, startedAt: performance.now() });
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((resolve) => setTimeout(resolve, 1 + batch.texts.length));
    this.inFlight -= 1;
    return this.inner.embed(batch);
  }
}

const arrival = fc.record({
  at: fc.integer({ min: 0, max: 40 }),
  count: fc.integer({ min: 1, max: 12 }),
  length: fc.integer({ min: 1, max: 9 }),
  inputType: fc.constantFrom<InputType>("query", "document"),
  dimensions: fc.constantFrom(undefined, 4),
  normalize: fc.boolean(),
  abortAt: fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }),
});

describe("Batcher under random arrivals", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("answers every request with exactly its own vectors, in order, within every limit", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batchSize: fc.integer({ min: 1, max: 8 }),
          batchTimeoutMs: fc.integer({ min: 0, max: 10 }),
          maxBatchTokens: fc.integer({ min: 5, max: 60 }),
          requestTimeoutMs: fc.integer({ min: 20, max: 200 }),
          batchesInFlight: fc.integer({ min: 1, max: 3 }),
        }),
        fc.array(arrival, { minLength: 1, maxLength: 25 }),
        async (policy, arrivals) => {
          vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance", "Date"] });
          const limits = { ...policy, maxPendingInputs: 10_000 };
          const embedder = new TimedEmbedder();
          const batcher = new Batcher({ embedder, limits, estimateTokens: charTokens });
          const owner = new Map<string, number>();
          const outcomes: Array<{ vectors?: Float32Array[]; error?: AkidbError; at: number }> = [];
          const requests = arrivals.map((a, r) => {
            const texts = Array.from({ length: a.count }, (_, i) => `${r}:${i}:`.padEnd(a.length + 6, "x"));
            for (const text of texts) owner.set(text, r);
            const controller = new AbortController();
            const req = request(texts, {
              inputType: a.inputType,
              dimensions: a.dimensions,
              normalize: a.normalize,
              requestId: `req-${r}`,
              signal: controller.signal,
            });
            return { req, arrival: a, controller };
          });
          requests.forEach(({ req, arrival: a, controller }, r) => {
            setTimeout(() => {
              submit(batcher, req).then(
                (result) => {
                  outcomes[r] = { vectors: result.vectors, at: performance.now() };
                },
                (error: AkidbError) => {
                  outcomes[r] = { error, at: performance.now() };
                },
              );
            }, a.at);
            if (a.abortAt !== undefined) setTimeout(() => controller.abort(), a.abortAt);
          });
          await vi.runAllTimersAsync();
          vi.useRealTimers();

          expect(embedder.maxInFlight).toBeLessThanOrEqual(limits.batchesInFlight);
          expect(batcher.pendingInputs).toBe(0);
          expect(batcher.queueDepth).toBe(0);
          for (const { texts, batch } of embedder.batches) {
            expect(texts.length).toBeLessThanOrEqual(limits.batchSize);
            if (texts.length > 1) {
              expect(texts.reduce((sum, t) => sum + charTokens(t), 0)).toBeLessThanOrEqual(
                limits.maxBatchTokens,
              );
            }
            for (const text of texts) {
              const req = requests[owner.get(text)!]!.req;
              expect([req.inputType, req.dimensions, req.normalize]).toEqual([
                batch.inputType,
                batch.dimensions,
                batch.normalize,
              ]);
            }
          }
          for (const [r, { req, arrival: a }] of requests.entries()) {
            const outcome = outcomes[r]!;
            if (outcome.vectors) {
              expect(outcome.vectors).toEqual(await unbatched(req));
              continue;
            }
            const code = outcome.error?.code;
            if (code === "AKIDB_ERR_CANCELLED") {
              expect(a.abortAt).toBeDefined();
              const abortAt = Math.max(a.abortAt!, a.at);
              const sentLater = embedder.batches.filter((b) => b.startedAt > abortAt);
              expect(sentLater.flatMap((b) => b.texts).filter((t) => owner.get(t) === r)).toEqual([]);
            } else {
              expect(code).toBe("AKIDB_ERR_TIMEOUT");
              expect(outcome.at - a.at).toBeGreaterThanOrEqual(limits.requestTimeoutMs);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
