import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll } from "vitest";
import {
  LocalCollectionStore,
  type LocalStoreOptions,
  type StoreLogger,
} from "../src/collections/local-store.ts";
import type { CollectionStore } from "../src/collections/types.ts";
import { AkidbError } from "../src/errors.ts";

/** A store that holds no collections, for app tests about other routes. */
export const noCollections: CollectionStore = {
  create: async () => {
    throw new AkidbError("AKIDB_ERR_TOO_MANY_COLLECTIONS", { limit: 0 });
  },
  list: async () => [],
  get: async (name) => {
    throw new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: name });
  },
  drop: async (name) => {
    throw new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: name });
  },
  upsert: async (name) => {
    throw new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: name });
  },
  getDocuments: async (name) => {
    throw new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: name });
  },
  deleteDocuments: async (name) => {
    throw new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: name });
  },
  search: async (name) => {
    throw new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: name });
  },
  close: async () => {},
};

const created = new Set<string>();
// Registered while the importing test file is collected: runs after its last test.
afterAll(() => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
  created.clear();
});

/** A fresh temporary data directory; `remove` deletes it (else it goes after the test file). */
export function tempDataDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), "akidb-collections-"));
  created.add(dir);
  return {
    dir,
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
      created.delete(dir);
    },
  };
}

/** A local store over `dataDir` with test-sized thresholds unless overridden. */
export function openStore(
  dataDir: string,
  options: Partial<LocalStoreOptions> = {},
): Promise<LocalCollectionStore> {
  return LocalCollectionStore.open({
    dataDir,
    snapshotEveryOps: 10_000,
    exactSearchMaxMatches: 2048,
    maxCollections: 1000,
    // As the server's default (collection.insert_threads), so the property test covers threaded inserts.
    insertThreads: 2,
    ...options,
  });
}

/** Seeded uniform [-1, 1) (a linear congruential generator), so a test's vectors are the same each run. */
export function seededUniform(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return (state / 2147483648) * 2 - 1;
  };
}

/**
 * A store logger that keeps the "collection loaded" lines and the lines of `event` (e.g. "index
 * compacted"), fails the test on an error line, and lets a test wait until `event` was logged
 * `count` times (`logged`).
 */
export function storeLog(event: string) {
  const loads: Array<Record<string, unknown>> = [];
  const events: Array<Record<string, unknown>> = [];
  const waiting: Array<() => void> = [];
  const logger: StoreLogger = {
    info: (fields, message) => {
      if (message === "collection loaded") loads.push(fields);
      if (message !== event) return;
      events.push(fields);
      for (const wake of waiting.splice(0)) wake();
    },
    error: (fields, message) => {
      throw new Error(`${message}: ${JSON.stringify(fields)}`);
    },
  };
  const logged = async (count: number) => {
    while (events.length < count) await new Promise<void>((wake) => waiting.push(wake));
  };
  return { logger, loads, events, logged };
}
