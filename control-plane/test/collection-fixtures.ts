import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll } from "vitest";
import { LocalCollectionStore, type LocalStoreOptions } from "../src/collections/local-store.ts";
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
