import { Worker } from "node:worker_threads";
import { AkidbError, deserializeError, type SerializedError } from "../errors.ts";
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

/** Store thread -> main thread. */
export type ReplyMessage =
  | { call: number; value: unknown }
  | { call: number; error: SerializedError }
  | { ready: true }
  | { failed: SerializedError }
  | { log: { level: "info" | "error"; fields: Record<string, unknown>; message: string } };

/** What the thread is opened with: LocalStoreOptions less the logger, which stays on this thread. */
export type StoreThreadOptions = Omit<LocalStoreOptions, "logger">;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** Seconds a client waits before retrying a collection request that a store thread restart failed. */
const RESTART_RETRY_AFTER_SECONDS = 1;

/**
 * Starts a store thread on `options` and resolves once it has opened the data directory (loading
 * every collection); rejects with the store's own error (e.g. the data directory is held by another
 * server), or when the thread dies while opening.
 */
async function startThread(options: StoreThreadOptions, logger: StoreLogger | undefined): Promise<Worker> {
  const worker = new Worker(new URL("./store-worker.ts", import.meta.url), { workerData: options });
  await new Promise<void>((resolve, reject) => {
    const onMessage = (message: ReplyMessage) => {
      if ("ready" in message) {
        worker.off("message", onMessage);
        worker.off("error", reject);
        worker.off("exit", onExit);
        resolve();
      } else if ("failed" in message) {
        reject(deserializeError(message.failed));
      } else if ("log" in message) {
        logger?.[message.log.level](message.log.fields, message.log.message);
      }
    };
    const onExit = (code: number) =>
      reject(new Error(`the collection store thread exited (code ${code}) while opening`));
    worker.on("message", onMessage);
    worker.once("error", reject);
    worker.once("exit", onExit);
  });
  return worker;
}

/**
 * The local store (LocalCollectionStore: SQLite commits, HNSW inserts, searches and snapshot
 * saves, all synchronous native calls) run in a worker thread, so the event loop that serves HTTP
 * only parses, validates and answers: `/health` stays responsive while an ingest commits and
 * indexes. Each method is one message each way (arguments and results are structured-cloned);
 * errors arrive as the AkidbErrors the store threw. Durability is the local store's: a write
 * resolves once its transaction committed and its changes are in the index.
 *
 * A thread that dies (a native crash, an uncaught error) is replaced: its calls in flight fail with
 * a retryable 503 (AKIDB_ERR_STORE_RESTARTING: a write among them may or may not have committed,
 * and an upsert by id can be repeated safely), and a new thread reopens the data directory as a
 * restart would (snapshot + log replay). Calls made while it opens fail the same way.
 */
export class WorkerCollectionStore implements CollectionStore {
  readonly #options: StoreThreadOptions;
  readonly #logger: StoreLogger | undefined;
  /** The thread serving calls; null while a replacement opens (or after one failed to). */
  #worker: Worker | null;
  #reopening: Promise<void> | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextCall = 0;
  /** Set once the store is closed: every later call fails with it. */
  #gone: Error | null = null;
  #closing: Promise<void> | null = null;

  private constructor(worker: Worker, options: StoreThreadOptions, logger: StoreLogger | undefined) {
    this.#options = options;
    this.#logger = logger;
    this.#worker = worker;
    this.#attach(worker);
  }

  /** Starts the thread and opens `options.dataDir` in it (loading every collection); rejects with the store's own error. */
  static async open(options: StoreThreadOptions & { logger?: StoreLogger }): Promise<WorkerCollectionStore> {
    const { logger, ...threadOptions } = options;
    return new WorkerCollectionStore(await startThread(threadOptions, logger), threadOptions, logger);
  }

  /** The thread now serving calls (tests end it to exercise the replacement); null while one opens. */
  get thread(): Worker | null {
    return this.#worker;
  }

  #attach(worker: Worker): void {
    worker.on("message", (message: ReplyMessage) => {
      if ("log" in message) {
        this.#logger?.[message.log.level](message.log.fields, message.log.message);
      } else if ("call" in message) {
        const pending = this.#pending.get(message.call);
        this.#pending.delete(message.call);
        if ("error" in message) pending?.reject(deserializeError(message.error));
        else pending?.resolve(message.value);
      }
    });
    // An uncaught error is followed by the exit: the first of the two is handled.
    worker.on("error", (error) => this.#lost(worker, `the collection store thread failed: ${error.message}`));
    worker.on("exit", (code) => this.#lost(worker, `the collection store thread exited (code ${code})`));
  }

  /** The thread `worker` is gone: its calls fail, and (unless the store is closing) a new one opens. */
  #lost(worker: Worker, reason: string): void {
    if (worker !== this.#worker) return;
    this.#worker = null;
    const inFlight = this.#pending.size;
    const error = this.#closing
      ? new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {})
      : new AkidbError(
          "AKIDB_ERR_STORE_RESTARTING",
          { reason },
          { retryAfterSeconds: RESTART_RETRY_AFTER_SECONDS },
        );
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    if (this.#closing) {
      this.#gone ??= error;
      return;
    }
    this.#logger?.error(
      { reason, inFlight },
      "the collection store thread stopped: its requests in flight failed with a retryable 503; reopening the store",
    );
    this.#reopen();
  }

  /** Opens the data directory in a new thread; until it is open, calls fail with a retryable 503. */
  #reopen(): void {
    const started = performance.now();
    this.#reopening = startThread(this.#options, this.#logger).then(
      (worker) => {
        // Also when the store began closing meanwhile: `close` then closes this thread.
        this.#reopening = null;
        this.#worker = worker;
        this.#attach(worker);
        this.#logger?.info({ ms: Math.round(performance.now() - started) }, "the collection store reopened");
      },
      (error: unknown) => {
        // The next call tries again: a client retrying is the backoff.
        this.#reopening = null;
        const reason = error instanceof Error ? error.message : String(error);
        this.#logger?.error(
          { reason },
          "the collection store could not be reopened; the next request tries again",
        );
      },
    );
  }

  #call<T>(method: StoreMethod, args: unknown[]): Promise<T> {
    if (this.#gone) return Promise.reject(this.#gone);
    const worker = this.#worker;
    if (!worker) {
      if (!this.#reopening && !this.#closing) this.#reopen();
      const reason = "the collection store is reopening after its thread stopped";
      return Promise.reject(
        new AkidbError(
          this.#closing ? "AKIDB_ERR_SHUTTING_DOWN" : "AKIDB_ERR_STORE_RESTARTING",
          this.#closing ? {} : { reason },
          { retryAfterSeconds: RESTART_RETRY_AFTER_SECONDS },
        ) as Error,
      );
    }
    const call = this.#nextCall++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(call, { resolve: resolve as (value: unknown) => void, reject });
      worker.postMessage({ call, method, args } satisfies CallMessage);
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
      // A replacement still opening is closed once it is open.
      await this.#reopening;
      const worker = this.#worker;
      if (this.#gone || !worker) {
        this.#gone ??= new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {});
        return;
      }
      const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
      await this.#call("close", []);
      await exited;
    })();
    return this.#closing;
  }
}
