import type { Logger } from "pino";
import { modelSettings } from "../config/model-settings.ts";
import type { AkidbConfig } from "../config/schema.ts";
import { AkidbError, isAkidbError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import { type Permit, Permits } from "./permits.ts";
import type { EmbedBatch, Embedder, EmbedResult, InputType } from "./types.ts";

/** The batching policy; each field is a config key (named beside it; model settings are `embedding.mlx.*`). */
export interface BatcherLimits {
  /** Most inputs in one batch (model setting `batch_size`). */
  batchSize: number;
  /**
   * How long the oldest input waits for its batch to fill while the embedder is idle (model setting
   * `batch_timeout_ms`); only while requests arrive closer together than that (see `Batcher`).
   */
  batchTimeoutMs: number;
  /** Most estimated tokens in one batch (model setting `max_batch_tokens`); a larger single input goes alone. */
  maxBatchTokens: number;
  /**
   * Batches sent to the embedder and not yet answered (model setting `batches_in_flight`); `auto`:
   * 2 when the loaded model computes on a GPU, 1 on a CPU (see `Batcher`).
   */
  batchesInFlight: number | "auto";
  /** Inputs accepted and not yet answered (`embedding.queue.max_pending_inputs`); beyond it, 429. */
  maxPendingInputs: number;
  /** Deadline of a request from enqueue to answer (`embedding.queue.request_timeout_ms`); beyond it, 504. */
  requestTimeoutMs: number;
  /**
   * Refuse (429 AKIDB_ERR_BACKLOGGED) a multi-input request that the measured pace says cannot be
   * answered before its deadline behind the work already accepted (`embedding.queue.refuse_doomed`);
   * off when unset.
   */
  refuseDoomed?: boolean;
}

/** The policy as the config names it. */
export function batcherLimits(config: AkidbConfig): BatcherLimits {
  const { queue } = config.embedding;
  const model = modelSettings(config);
  return {
    batchSize: model.batch_size,
    batchTimeoutMs: model.batch_timeout_ms,
    maxBatchTokens: model.max_batch_tokens,
    batchesInFlight: model.batches_in_flight,
    maxPendingInputs: queue.max_pending_inputs,
    requestTimeoutMs: queue.request_timeout_ms,
    refuseDoomed: queue.refuse_doomed,
  };
}

/**
 * One client request, with the options of a batch: its inputs may be split over several batches and
 * come back in order. Its `signal` aborts when the client goes away: its inputs leave the queue unsent.
 */
export interface EmbedRequest extends EmbedBatch {
  /** false: an input the model had to cut fails the request (AKIDB_ERR_INPUT_TOO_LONG) instead. */
  truncate: boolean;
}

export interface BatcherOptions {
  embedder: Embedder;
  limits: BatcherLimits;
  /** Tokens one input costs against `maxBatchTokens` (see batching/tokens.ts). */
  estimateTokens: (text: string, inputType: InputType) => number;
  metrics?: Pick<Metrics, "batchSize" | "latencyMs" | "queueDepth" | "tokens">;
  logger?: Logger;
}

interface Waiter {
  request: EmbedRequest;
  vectors: Float32Array[];
  tokenCounts: number[];
  truncated: boolean[];
  remaining: number;
  settled: boolean;
  resolve: (result: EmbedResult) => void;
  reject: (error: AkidbError) => void;
  cleanup: () => void;
}

/** One input waiting in the queue; `seq` is its arrival order. */
interface Slot {
  waiter: Waiter;
  index: number;
  tokens: number;
  key: string;
  seq: number;
  enqueuedAt: number;
}

interface Batch {
  slots: Slot[];
  controller: AbortController;
}

/** Inputs share a batch only when the embedder would treat them alike (`truncate` is checked after). */
function compatibilityKey(request: EmbedRequest): string {
  return `${request.inputType}|${request.dimensions ?? ""}|${request.normalize}`;
}

/**
 * Owns the embedding queue (like text-embeddings-inference's router queue): HTTP handlers
 * reserve capacity, enqueue and await; the batcher packs compatible inputs into batches bounded
 * by size and a token budget, drops inputs whose client went away before sending them, and
 * enforces each request's deadline.
 *
 * A batch is sent when fewer than `batchesInFlight` are at the embedder and either the oldest
 * input's group fills a batch or that input has waited `batchTimeoutMs`; while all are out, the next
 * one forms in the queue and is cut the moment one returns. With two in flight (`auto` on a GPU),
 * the next batch reaches the inference process and is tokenized there while the model computes the
 * current one, so the GPU does not idle between batches (see `#inFlightLimit`). Waiting for company
 * pays only when company comes: while requests arrive further apart than `batchTimeoutMs` on average
 * (a moving average of the gaps between arrivals), a free embedder takes the queue at once, so a lone request
 * at light load never waits out the timeout for nothing.
 */
export class Batcher {
  readonly limits: BatcherLimits;
  readonly #embedder: Embedder;
  readonly #estimateTokens: BatcherOptions["estimateTokens"];
  readonly #metrics: BatcherOptions["metrics"];
  readonly #logger: Logger | undefined;
  readonly #permits: Permits;
  #queue: Slot[] = [];
  readonly #inFlight = new Set<Batch>();
  #timer: NodeJS.Timeout | null = null;
  #seq = 0;
  /** Arrival numbers of pending exclusive tasks; only inputs before the first are sent (see `exclusive`). */
  #barriers: number[] = [];
  #drainWaiters: Array<{ barrier: number; done: () => void }> = [];
  #exclusiveTail: Promise<unknown> = Promise.resolve();
  #closed = false;
  #batchMsAverage: number | null = null;
  /** Moving average of the gaps between request arrivals (each gap capped at twice the timeout). */
  #arrivalGapMs = 0;
  #lastArrival: number | null = null;
  /** When the embedder last answered a batch. */
  #lastAnswered = 0;
  /** Recent milliseconds of compute per input (batch time over its size), for admission. */
  #inputMsAverage: number | null = null;

  constructor(options: BatcherOptions) {
    this.limits = options.limits;
    this.#embedder = options.embedder;
    this.#estimateTokens = options.estimateTokens;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#permits = new Permits(options.limits.maxPendingInputs);
  }

  /** Inputs waiting to be sent. */
  get queueDepth(): number {
    return this.#queue.length;
  }

  /** Inputs in the batches sent to the embedder and not yet answered. */
  get inFlightSize(): number {
    let inputs = 0;
    for (const batch of this.#inFlight) inputs += batch.slots.length;
    return inputs;
  }

  /** True while a model switch or restart waits for accepted inputs (later ones are held). */
  get draining(): boolean {
    return this.#barriers.length > 0;
  }

  /** Inputs accepted and not yet answered. */
  get pendingInputs(): number {
    return this.#permits.inUse;
  }

  /**
   * Takes one permit per input or throws AKIDB_ERR_OVERLOADED (429) with a Retry-After estimate.
   * With `refuseDoomed`, a request of several inputs that could not be answered before its deadline
   * behind the inputs already accepted (at the recently measured pace) is refused at once with
   * AKIDB_ERR_BACKLOGGED (429) instead of being accepted to time out having done nothing. A
   * one-input request is always taken: it rides in the next batch (see `#form`).
   */
  reserve(count: number): Permit {
    if (this.#closed) throw new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {});
    const pace = this.#inputMsAverage;
    const ahead = this.#permits.inUse;
    if (this.limits.refuseDoomed && pace !== null && count > 1 && ahead > 0) {
      const needMs = (ahead + count) * pace;
      if (needMs > this.limits.requestTimeoutMs) {
        throw new AkidbError(
          "AKIDB_ERR_BACKLOGGED",
          { count, aheadMs: Math.round(ahead * pace), timeoutMs: this.limits.requestTimeoutMs },
          { retryAfterSeconds: Math.max(1, Math.ceil((ahead * pace) / 1000)) },
        );
      }
    }
    const permit = this.#permits.tryAcquire(count);
    if (permit) return permit;
    throw new AkidbError(
      "AKIDB_ERR_OVERLOADED",
      { pending: this.#permits.inUse, limit: this.#permits.total },
      { retryAfterSeconds: this.#retryAfterSeconds() },
    );
  }

  /** Embeds one request's inputs, in order; settles with an AkidbError on timeout, abort or failure. */
  embed(request: EmbedRequest, permit: Permit): Promise<EmbedResult> {
    return new Promise<EmbedResult>((resolve, reject) => {
      if (this.#closed || request.signal?.aborted) {
        permit.release();
        reject(
          this.#closed
            ? new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {})
            : new AkidbError("AKIDB_ERR_CANCELLED", {}),
        );
        return;
      }
      const count = request.texts.length;
      const waiter: Waiter = {
        request,
        vectors: new Array<Float32Array>(count),
        tokenCounts: new Array<number>(count).fill(0),
        truncated: new Array<boolean>(count).fill(false),
        remaining: count,
        settled: false,
        resolve,
        reject,
        cleanup: () => {},
      };
      if (count === 0) {
        permit.release();
        resolve({ vectors: [], tokenCounts: [], truncated: [] });
        return;
      }
      const onAbort = () => this.#settle(waiter, new AkidbError("AKIDB_ERR_CANCELLED", {}));
      const timeoutMs = this.limits.requestTimeoutMs;
      const deadline = setTimeout(
        () => this.#settle(waiter, new AkidbError("AKIDB_ERR_TIMEOUT", { timeoutMs })),
        timeoutMs,
      );
      request.signal?.addEventListener("abort", onAbort, { once: true });
      waiter.cleanup = () => {
        clearTimeout(deadline);
        request.signal?.removeEventListener("abort", onAbort);
        permit.release();
      };
      const key = compatibilityKey(request);
      const enqueuedAt = performance.now();
      this.#arrived(enqueuedAt);
      request.texts.forEach((text, index) => {
        const tokens = this.#estimateTokens(text, request.inputType);
        this.#queue.push({ waiter, index, tokens, key, seq: this.#seq++, enqueuedAt });
      });
      this.#queueChanged();
      this.#schedule();
    });
  }

  /**
   * Runs `fn` (a model switch) once every input accepted before the call has been answered;
   * inputs arriving meanwhile wait and go to the embedder after `fn` settles.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const barrier = this.#seq;
    this.#barriers.push(barrier);
    const run = async (): Promise<T> => {
      try {
        await this.#drained(barrier);
        return await fn();
      } finally {
        this.#barriers.shift();
        this.#schedule();
      }
    };
    const result = this.#exclusiveTail.then(run, run);
    this.#exclusiveTail = result.catch(() => undefined);
    return result;
  }

  /** Stops accepting requests; resolves once every accepted input has been answered. */
  close(): Promise<void> {
    this.#closed = true;
    this.#schedule();
    return this.#drained(Number.POSITIVE_INFINITY);
  }

  /** Answers every waiting request with AKIDB_ERR_SHUTTING_DOWN and aborts the batches in flight. */
  abortAll(): void {
    this.#closed = true;
    const inFlight = [...this.#inFlight].flatMap((batch) => batch.slots);
    const waiters = new Set([...this.#queue, ...inFlight].map((slot) => slot.waiter));
    for (const waiter of waiters) this.#settle(waiter, new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {}));
  }

  #schedule(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const limit = this.#inFlightLimit();
    while (this.#inFlight.size < limit && this.#dispatchOrWait()) {}
    this.#resolveDrainWaiters();
  }

  /**
   * `batchesInFlight`, with `auto` resolved by the model's device. Measured: two in flight nearly
   * doubled batch-32 throughput on an H200 (1571 -> 2711 texts/s), while on a 2-core CPU they gained
   * 4% at batch 32 and raised single-text P95 at 1600 QPS from 22-25 to 38-44 ms: there the next
   * batch's tokenization takes CPU time from the model (docs/benchmarks.md).
   */
  #inFlightLimit(): number {
    const setting = this.limits.batchesInFlight;
    if (setting !== "auto") return setting;
    const device = this.#embedder.state().model?.device ?? "cpu";
    return device === "cpu" ? 1 : 2;
  }

  /** Sends the next batch if it is ready (true), else sets the timer for when it will be. */
  #dispatchOrWait(): boolean {
    const head = this.#queue[0];
    if (!head || !this.#eligible(head)) return false;
    const { slots, full } = this.#form(head);
    const waited = performance.now() - head.enqueuedAt;
    const flushing = this.#closed || this.#barriers.length > 0;
    const sparse = this.#arrivalGapMs >= this.limits.batchTimeoutMs;
    if (full || flushing || sparse || waited >= this.limits.batchTimeoutMs) {
      this.#dispatch(slots);
      return true;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#schedule();
    }, this.limits.batchTimeoutMs - waited);
    return false;
  }

  #arrived(now: number): void {
    if (this.#lastArrival !== null) {
      const gap = Math.min(now - this.#lastArrival, 2 * this.limits.batchTimeoutMs);
      this.#arrivalGapMs = 0.8 * this.#arrivalGapMs + 0.2 * gap;
    }
    this.#lastArrival = now;
  }

  #eligible(slot: Slot): boolean {
    const barrier = this.#barriers[0];
    return barrier === undefined || slot.seq < barrier;
  }

  /**
   * The next batch, from the head's group only, within batch_size and the token budget: first the
   * oldest queued input of every waiting request, then the rest in arrival order. So a small
   * request never waits behind the batches of a large one that came first (it rides in the next
   * batch), while large requests still finish one after another rather than all late together.
   */
  #form(head: Slot): { slots: Slot[]; full: boolean } {
    const { batchSize, maxBatchTokens } = this.limits;
    const firsts: Slot[] = [];
    const rest: Slot[] = [];
    const seen = new Set<Waiter>();
    for (const slot of this.#queue) {
      if (!this.#eligible(slot)) break;
      if (slot.key !== head.key) continue;
      if (seen.has(slot.waiter)) rest.push(slot);
      else {
        seen.add(slot.waiter);
        firsts.push(slot);
      }
    }
    const slots: Slot[] = [];
    let tokens = 0;
    let full = false;
    for (const slot of [...firsts, ...rest]) {
      if (slots.length === batchSize || (slots.length > 0 && tokens + slot.tokens > maxBatchTokens)) {
        full = true;
        break;
      }
      slots.push(slot);
      tokens += slot.tokens;
    }
    // Sent in arrival order (the choice above decides which inputs, not their order).
    slots.sort((a, b) => a.seq - b.seq);
    return { slots, full: full || slots.length === batchSize || tokens >= maxBatchTokens };
  }

  #dispatch(slots: Slot[]): void {
    const taken = new Set(slots);
    this.#queue = this.#queue.filter((slot) => !taken.has(slot));
    this.#queueChanged();
    const batch: Batch = { slots, controller: new AbortController() };
    this.#inFlight.add(batch);
    const first = slots[0]!.waiter.request;
    const now = performance.now();
    for (const slot of slots) this.#metrics?.latencyMs.observe({ stage: "queue" }, now - slot.enqueuedAt);
    this.#metrics?.batchSize.observe(slots.length);
    const requestIds = [...new Set(slots.map((slot) => slot.waiter.request.requestId))];
    this.#logger?.debug({ size: slots.length, requestIds }, "batch dispatched");
    void this.#run(batch, {
      texts: slots.map((slot) => slot.waiter.request.texts[slot.index]!),
      inputType: first.inputType,
      dimensions: first.dimensions,
      normalize: first.normalize,
      // The inference process logs one id per batch: the first request's (the debug line above maps the rest).
      requestId: first.requestId,
      signal: batch.controller.signal,
    });
  }

  async #run(batch: Batch, embedBatch: EmbedBatch): Promise<void> {
    const started = performance.now();
    try {
      const result = await this.#embedder.embed(embedBatch);
      if (result.vectors.length !== batch.slots.length) {
        throw new AkidbError("AKIDB_ERR_INTERNAL", {
          reason: `the embedder returned ${result.vectors.length} vectors for ${batch.slots.length} inputs`,
        });
      }
      const finished = performance.now();
      this.#metrics?.latencyMs.observe({ stage: "inference" }, finished - started);
      // The pace estimates want the batch's own compute, not its wait behind the batch sent before it:
      // the embedder answers in order, so that is the time since the later of its start and the last answer.
      const elapsed = finished - Math.max(started, this.#lastAnswered);
      this.#lastAnswered = finished;
      this.#batchMsAverage =
        this.#batchMsAverage === null ? elapsed : 0.8 * this.#batchMsAverage + 0.2 * elapsed;
      // Full batches only: a lone input's time says little about the cost of many.
      if (batch.slots.length >= this.limits.batchSize) {
        const perInput = elapsed / batch.slots.length;
        this.#inputMsAverage =
          this.#inputMsAverage === null ? perInput : 0.8 * this.#inputMsAverage + 0.2 * perInput;
      }
      this.#metrics?.tokens.inc(result.tokenCounts.reduce((sum, count) => sum + count, 0));
      batch.slots.forEach((slot, i) => {
        const waiter = slot.waiter;
        if (waiter.settled) return;
        const tokens = result.tokenCounts[i] ?? 0;
        const truncated = result.truncated[i] ?? false;
        if (truncated && !waiter.request.truncate) {
          // A cut input's count is the model's limit.
          const param = `input[${slot.index}]`;
          this.#settle(
            waiter,
            new AkidbError("AKIDB_ERR_INPUT_TOO_LONG", { param, limit: tokens }, { param }),
          );
          return;
        }
        waiter.vectors[slot.index] = result.vectors[i]!;
        waiter.tokenCounts[slot.index] = tokens;
        waiter.truncated[slot.index] = truncated;
        waiter.remaining -= 1;
        if (waiter.remaining === 0) this.#settle(waiter, null);
      });
    } catch (error) {
      this.#fail(batch.slots, error);
    } finally {
      this.#inFlight.delete(batch);
      this.#schedule();
    }
  }

  /**
   * An error naming one input (`input[k]` of the batch) fails only the request that sent it,
   * renumbered to that request's index; the batch's other inputs go back to the queue.
   */
  #fail(slots: Slot[], cause: unknown): void {
    const error = isAkidbError(cause)
      ? cause
      : new AkidbError("AKIDB_ERR_INFERENCE_FAILED", { reason: String(cause) }, { cause });
    const culprit = /^input\[(\d+)\]$/.exec(error.param ?? "")?.[1];
    const slot = culprit === undefined ? undefined : slots[Number(culprit)];
    if (slot) {
      this.#settle(slot.waiter, error.withParam(`input[${slot.index}]`));
      const retry = slots.filter((s) => !s.waiter.settled);
      this.#queue = [...retry, ...this.#queue].sort((a, b) => a.seq - b.seq);
      this.#queueChanged();
      return;
    }
    for (const waiter of new Set(slots.map((s) => s.waiter))) this.#settle(waiter, error);
  }

  /** Answers a request once: with its vectors (`error` null) or an error; frees its permits. */
  #settle(waiter: Waiter, error: AkidbError | null): void {
    if (waiter.settled) return;
    waiter.settled = true;
    waiter.cleanup();
    if (!error) {
      waiter.resolve({
        vectors: waiter.vectors,
        tokenCounts: waiter.tokenCounts,
        truncated: waiter.truncated,
      });
      return;
    }
    const before = this.#queue.length;
    this.#queue = this.#queue.filter((slot) => slot.waiter !== waiter);
    if (this.#queue.length !== before) this.#queueChanged();
    for (const batch of this.#inFlight) {
      if (batch.slots.every((slot) => slot.waiter.settled)) batch.controller.abort();
    }
    waiter.reject(error);
    this.#schedule();
  }

  #queueChanged(): void {
    this.#metrics?.queueDepth.set(this.#queue.length);
  }

  /** Resolves once nothing that arrived before `barrier` is queued or in flight. */
  #drained(barrier: number): Promise<void> {
    return new Promise((done) => {
      this.#drainWaiters.push({ barrier, done });
      this.#resolveDrainWaiters();
    });
  }

  #resolveDrainWaiters(): void {
    if (this.#inFlight.size > 0) return;
    this.#drainWaiters = this.#drainWaiters.filter(({ barrier, done }) => {
      if (this.#queue.some((slot) => slot.seq < barrier)) return true;
      done();
      return false;
    });
  }

  /** Batches ahead of a new request times the recent batch duration, at least one second. */
  #retryAfterSeconds(): number {
    const batchesAhead = Math.ceil(this.#permits.inUse / this.limits.batchSize);
    const batchMs = this.#batchMsAverage ?? 1000;
    return Math.max(1, Math.ceil((batchesAhead * batchMs) / 1000));
  }
}
