import { Worker } from "node:worker_threads";
import { AkidbError, type AkidbErrorCode, isAkidbError } from "../errors.ts";
import type { LocalStoreOptions, StoreLogger } from "./local-store.ts";
import type { CollectionStore } from "./types.ts";

/** The store's methods a caller may send to the thread. */
export type StoreMethod = keyof CollectionStore;

/** Main thread -> store thread: one call. */
export interface CallMessage {
  call: number;
  method: StoreMethod;
  args: unknown[];
}

/** An error as it crosses the thread boundary (structured clone keeps only an Error's message). */
export type SerializedError =
  | {
      code: AkidbErrorCode;
      params: unknown;
      param: string | null;
      status: number;
      retryAfterSeconds: number | undefined;
    }
  | { message: string };

/** Store thread -> main thread. */
export type ReplyMessage =
  | { call: number; value: unknown }
  | { call: number; error: SerializedError }
  | { ready: true }
  | { failed: SerializedError }
  | { log: { level: "info" | "error"; fields: Record<string, unknown>; message: string } };

export function serializeError(error: unknown): SerializedError {
  if (isAkidbError(error)) {
    return {
      code: error.code,
      params: error.params,
      param: error.param,
      status: error.status,
      retryAfterSeconds: error.retryAfterSeconds,
    };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}

function deserializeError(error: SerializedError): Error {
  if ("message" in error) return new Error(error.message);
  return new AkidbError(error.code, error.params as never, {
    ...(error.param === null ? {} : { param: error.param }),
    status: error.status,
    ...(error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds }),
  });
}

/** What the thread is opened with: LocalStoreOptions less the logger, which stays on this thread. */
export type StoreThreadOptions = Omit<LocalStoreOptions, "logger">;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * The local store (LocalCollectionStore: SQLite commits, usearch inserts, searches and snapshot
 * saves, all synchronous native calls) run in a worker thread, so the event loop that serves HTTP
 * only parses, validates and answers: `/health` stays responsive while an ingest commits and
 * indexes. Each method is one message each way (arguments and results are structured-cloned);
 * errors arrive as the AkidbErrors the store threw. Durability is the local store's: a write
 * resolves once its transaction committed and its changes are in the index.
 */
export class WorkerCollectionStore implements CollectionStore {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextCall = 0;
  /** Set once the thread is gone: every later call fails with it. */
  #gone: Error | null = null;
  #closing: Promise<void> | null = null;

  private constructor(worker: Worker, logger: StoreLogger | undefined) {
    this.#worker = worker;
    worker.on("message", (message: ReplyMessage) => {
      if ("log" in message) {
        logger?.[message.log.level](message.log.fields, message.log.message);
      } else if ("call" in message) {
        const pending = this.#pending.get(message.call);
        this.#pending.delete(message.call);
        if ("error" in message) pending?.reject(deserializeError(message.error));
        else pending?.resolve(message.value);
      }
    });
    const fail = (reason: string) => {
      if (!this.#gone && !this.#closing) {
        logger?.error(
          { reason },
          "the collection store thread stopped: collection requests fail until a restart",
        );
      }
      this.#gone ??= this.#closing
        ? new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {})
        : new AkidbError("AKIDB_ERR_INTERNAL", { reason });
      for (const pending of this.#pending.values()) pending.reject(this.#gone);
      this.#pending.clear();
    };
    worker.on("error", (error) => fail(`the collection store thread failed: ${error.message}`));
    worker.on("exit", (code) => fail(`the collection store thread exited (code ${code})`));
  }

  /**
   * Starts the thread and opens `options.dataDir` in it (loading every collection); rejects with the
   * store's own error (e.g. the data directory is held by another server).
   */
  static async open(options: StoreThreadOptions & { logger?: StoreLogger }): Promise<WorkerCollectionStore> {
    const { logger, ...threadOptions } = options;
    const worker = new Worker(new URL("./store-worker.ts", import.meta.url), { workerData: threadOptions });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: ReplyMessage) => {
        if ("ready" in message) {
          worker.off("message", onMessage);
          worker.off("error", reject);
          resolve();
        } else if ("failed" in message) {
          reject(deserializeError(message.failed));
        } else if ("log" in message) {
          logger?.[message.log.level](message.log.fields, message.log.message);
        }
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
      worker.once("exit", (code) =>
        reject(new Error(`the collection store thread exited (code ${code}) while opening`)),
      );
    });
    return new WorkerCollectionStore(worker, logger);
  }

  #call<T>(method: StoreMethod, args: unknown[]): Promise<T> {
    if (this.#gone) return Promise.reject(this.#gone);
    const call = this.#nextCall++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(call, { resolve: resolve as (value: unknown) => void, reject });
      this.#worker.postMessage({ call, method, args } satisfies CallMessage);
    });
  }

  create: CollectionStore["create"] = (spec) => this.#call("create", [spec]);
  list: CollectionStore["list"] = () => this.#call("list", []);
  get: CollectionStore["get"] = (nameOrId) => this.#call("get", [nameOrId]);
  drop: CollectionStore["drop"] = (nameOrId) => this.#call("drop", [nameOrId]);
  upsert: CollectionStore["upsert"] = (nameOrId, documents) => this.#call("upsert", [nameOrId, documents]);
  getDocuments: CollectionStore["getDocuments"] = (nameOrId, query) =>
    this.#call("getDocuments", [nameOrId, query]);
  deleteDocuments: CollectionStore["deleteDocuments"] = (nameOrId, query) =>
    this.#call("deleteDocuments", [nameOrId, query]);
  search: CollectionStore["search"] = (nameOrId, queries) => this.#call("search", [nameOrId, queries]);

  /** Closes the store in its thread (pending writes finish, snapshots are written), then ends the thread. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#gone) return;
      const exited = new Promise<void>((resolve) => this.#worker.once("exit", () => resolve()));
      await this.#call("close", []);
      await exited;
    })();
    return this.#closing;
  }
}
