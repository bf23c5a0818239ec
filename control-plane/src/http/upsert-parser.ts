import { Worker } from "node:worker_threads";
import { AkidbError, deserializeError, type SerializedError } from "../errors.ts";
import type { CheckedDocument, UpsertLimits } from "./upsert-body.ts";

/** HTTP thread -> parser thread: one body, its bytes transferred. */
export interface ParseMessage {
  call: number;
  bytes: Uint8Array;
  dimension: number;
}

/** Parser thread -> HTTP thread: the documents (their vectors' one buffer transferred), or the error. */
export type ParsedMessage =
  | { call: number; documents: CheckedDocument[] }
  | { call: number; error: SerializedError };

interface Pending {
  resolve: (documents: CheckedDocument[]) => void;
  reject: (error: Error) => void;
}

/**
 * Upsert bodies parsed and checked (`parseUpsertBody`) in a worker thread, so the HTTP event loop
 * never holds a large body's JSON.parse, schema check and float32 conversion (~40 ms for 1000 x 384
 * JSON vectors): `/health` and other requests are answered meanwhile. The body's bytes are
 * transferred to the thread and the vectors come back as one transferred Float32Array, so neither
 * is copied. Errors are the AkidbErrors `parseUpsertBody` threw, with their fields and statuses.
 * Bodies are parsed one at a time, in arrival order. A thread that dies fails its bodies in flight
 * (500) and is replaced at the next body.
 */
export class UpsertParser {
  readonly #limits: UpsertLimits;
  #worker: Worker | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextCall = 0;
  #closed = false;

  constructor(limits: UpsertLimits) {
    this.#limits = limits;
  }

  /** The checked documents of `bytes` (a UTF-8 JSON upsert body), which this call takes over (transfers). */
  parse(bytes: Uint8Array, dimension: number): Promise<CheckedDocument[]> {
    if (this.#closed) return Promise.reject(new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {}));
    const worker = this.#worker ?? this.#start();
    const call = this.#nextCall++;
    return new Promise((resolve, reject) => {
      this.#pending.set(call, { resolve, reject });
      const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
      worker.postMessage(
        { call, bytes, dimension } satisfies ParseMessage,
        whole && bytes.buffer instanceof ArrayBuffer ? [bytes.buffer] : [],
      );
    });
  }

  #start(): Worker {
    const worker = new Worker(new URL("./upsert-parser-worker.ts", import.meta.url), {
      workerData: {
        collection: this.#limits.collection,
        embedding: { queue: { max_input_chars: this.#limits.embedding.queue.max_input_chars } },
      } satisfies UpsertLimits,
    });
    // An idle parser does not keep the process alive.
    worker.unref();
    worker.on("message", (message: ParsedMessage) => {
      const pending = this.#pending.get(message.call);
      this.#pending.delete(message.call);
      if ("error" in message) pending?.reject(deserializeError(message.error));
      else pending?.resolve(message.documents);
    });
    const lost = (reason: string) => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      const error = new AkidbError("AKIDB_ERR_INTERNAL", { reason });
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
    };
    worker.on("error", (error) => lost(`the upsert parser thread failed: ${error.message}`));
    worker.on("exit", (code) => lost(`the upsert parser thread exited (code ${code})`));
    this.#worker = worker;
    return worker;
  }

  /** Ends the thread; bodies still being parsed fail with AKIDB_ERR_SHUTTING_DOWN. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = null;
    for (const pending of this.#pending.values())
      pending.reject(new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {}));
    this.#pending.clear();
    await worker?.terminate();
  }
}
