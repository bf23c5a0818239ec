import { randomUUID } from "node:crypto";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { AkidbError } from "../errors.ts";
import { Database } from "./database.ts";
import { type Filter, matches } from "./filter.ts";
import { keyBits, LiveKeys } from "./live-keys.ts";
import type {
  CollectionInfo,
  CollectionSpec,
  CollectionStore,
  DeleteQuery,
  DocumentWrite,
  GetQuery,
  Include,
  Metadata,
  SearchHit,
  SearchQuery,
  StoredDocument,
  UpsertResult,
} from "./types.ts";
import { better, exactScore, VectorIndex } from "./vector-index.ts";

/** Where the store reports loads and snapshots (a pino logger fits; the worker thread forwards to one). */
export interface StoreLogger {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface LocalStoreOptions {
  /** `storage.data_dir`. */
  dataDir: string;
  /** `storage.snapshot_every_ops`: index changes after which a collection is snapshotted and its log compacted. */
  snapshotEveryOps: number;
  /** `collection.exact_search_max_matches`: a filter with at most this many matches is searched exactly. */
  exactSearchMaxMatches: number;
  /** `collection.max_collections`. */
  maxCollections: number;
  /** `collection.insert_threads`: threads one batch of index inserts runs on. Default 1. */
  insertThreads?: number;
  /** `collection.compact_dead_ratio`: the share of dead nodes at which a graph is rebuilt from the live vectors. Default 0.3. */
  compactDeadRatio?: number;
  logger?: StoreLogger;
}

/**
 * Index changes applied between two yields to the event loop (an index add is synchronous, and
 * searches wait behind it): with one insert thread, few; with several, enough to keep them busy.
 */
const APPLY_CHUNK = 8;
const THREADED_APPLY_CHUNK = 64;
/** Vectors read from SQLite per page while an index is rebuilt. */
const REBUILD_PAGE = 1024;
/** Log-tail vectors inserted between two updates of the unindexed set while a restart's tail is replayed. */
const REPLAY_SLICE = 1024;
/**
 * A due snapshot waits until its collection has had no write for this long (each write restarts
 * the wait): saving an index is one synchronous call (hundreds of ms for 100k vectors), which would
 * stall writes and searches mid-ingest.
 */
const SNAPSHOT_IDLE_MS = 1000;
/** ...unless writes never pause: at this many times `snapshotEveryOps` it is written anyway, bounding the log. */
export const SNAPSHOT_FORCE_FACTOR = 8;
/** Filters whose matching documents are remembered per collection (until the next write to it). */
const FILTER_CACHE_SIZE = 16;
/** The bitset of a cached filter's matching keys, made once per key set (see `#matchingKeys`). */
const matchingBitsCache = new WeakMap<Set<number>, Uint8Array>();

function matchingBits(keys: Set<number>): Uint8Array {
  let bits = matchingBitsCache.get(keys);
  if (!bits) {
    bits = keyBits(keys);
    matchingBitsCache.set(keys, bits);
  }
  return bits;
}

/** `compactDeadRatio` when none is given (the config's default). */
const DEFAULT_COMPACT_DEAD_RATIO = 0.3;
/** How long a compaction inserts before it yields to the event loop (writes and searches go on meanwhile). */
const COMPACT_SLICE_MS = 10;
/**
 * Vectors per threaded insert call of a compaction: the slice ends after a whole call, so a search
 * waits up to one more call. 20k x 384 (bench/compaction.ts, load 1.7): 64 per call, a search
 * every 26 ms; 16, every 15 ms; the compaction took 7.5 s either way.
 */
const COMPACT_THREADED_CHUNK = 16;

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A vector to add to an index under a new key (keys are never reused; an update or a delete adds nothing else). */
interface IndexAdd {
  key: number;
  vector: Float32Array;
}

/** A graph being rebuilt from the live vectors, and the rebuild's end. */
interface Compaction {
  fresh: VectorIndex;
  done: Promise<void>;
}

interface DocumentHead {
  /** The index key of the current version. */
  key: number;
  /** The key of the first version: where the document sits in listings. */
  position: number;
  metadata: Metadata | null;
}

/**
 * A collection in RAM: its documents' ids, keys and metadata (what filters read) and its index.
 * `idByKey` holds the live keys only; the index also holds dead ones (older versions and deleted
 * documents), `index.size - docs.size` of them once every committed write is applied.
 */
interface Collection {
  id: string;
  spec: CollectionSpec;
  createdAt: string;
  docs: Map<string, DocumentHead>;
  idByKey: LiveKeys;
  index: VectorIndex;
  /** The rebuild of `index` under way, if any. */
  compaction: Compaction | null;
  /**
   * Vectors of the log tail a start-up found after the snapshot, by key, until they are inserted
   * into `index` (in the background: see `#load`); searches scan them exactly meanwhile. Null once
   * none is left.
   */
  unindexed: Map<number, Float32Array> | null;
  /** The next key to give a document version: keys only grow, so none is ever reused. */
  nextKey: number;
  /** The last log position whose change is in `index`. */
  appliedSeq: number;
  changesSinceSnapshot: number;
  /** Committed writes whose index changes are not applied yet. */
  unapplied: number;
  /** The idle snapshot waiting for writes to pause. */
  snapshotTimer: NodeJS.Timeout | null;
  snapshotBytes: number;
  dropped: boolean;
  /** Bumped by every write: cached filter matches of an older version are stale. */
  version: number;
  /** Keys matching recently used filters (by the filter's JSON), so repeated filtered searches skip the scan. */
  filterCache: Map<string, { version: number; keys: Set<number> }>;
}

type Operation =
  | { kind: "upsert"; documents: DocumentWrite[] }
  | { kind: "delete"; ids?: string[]; filter?: Filter };

interface PendingOperation {
  collection: Collection;
  operation: Operation;
  resolve: (result: UpsertResult | number) => void;
  reject: (error: unknown) => void;
}

/**
 * Collections in this process: each an HNSW index in RAM (control-plane/native) over documents kept in SQLite.
 *
 * Writes: operations wait in a queue that is flushed on the next turn of the event loop, so
 * concurrent requests share one transaction (group commit: one fsync for all of them). The flush
 * updates SQLite (documents + the operation log) and the in-RAM document heads in one synchronous
 * step, then the index changes are applied in commit order, in chunks that yield to the event
 * loop. A request resolves once its transaction committed and its changes are in the index.
 *
 * Updates and deletes: every upserted document gets a new key, and its previous key (like a
 * deleted document's) stays in the graph as a dead node that searches pass through without
 * giving it a place in the beam (the live keys' bitset): removing nodes from a graph strands live
 * ones (see `VectorIndex.add`). Once dead nodes reach `compactDeadRatio` of the graph, it is
 * rebuilt from the live vectors beside the serving one, in slices that yield, and swapped in and
 * snapshotted, so RAM and the snapshot shrink back (`#compact`).
 *
 * Recovery: a collection's index snapshot records the log position it covers; at start the
 * snapshot is loaded (checksum checked) and the log after it replayed through the same
 * `#applyChanges` that serving uses; a missing or damaged snapshot is rebuilt from the documents.
 * After each snapshot the log up to it is deleted, so updates do not grow the disk.
 */
export class LocalCollectionStore implements CollectionStore {
  readonly #db: Database;
  readonly #options: LocalStoreOptions;
  readonly #snapshotDir: string;
  readonly #collections = new Map<string, Collection>();
  #pending: PendingOperation[] = [];
  #flushScheduled = false;
  /** Index application and snapshots, one at a time, in commit order. */
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(db: Database, options: LocalStoreOptions) {
    this.#db = db;
    this.#options = options;
    this.#snapshotDir = join(options.dataDir, "indexes");
    mkdirSync(this.#snapshotDir, { recursive: true });
    VectorIndex.removeOldSnapshots(this.#snapshotDir);
  }

  /** Opens `dataDir` (refusing one another server holds) and loads every collection. */
  static async open(options: LocalStoreOptions): Promise<LocalCollectionStore> {
    const store = new LocalCollectionStore(new Database(options.dataDir), options);
    try {
      for (const row of store.#db.collections()) await store.#load(row);
    } catch (error) {
      store.#db.close();
      throw error;
    }
    return store;
  }

  async #load(row: ReturnType<Database["collections"]>[number]): Promise<void> {
    const started = performance.now();
    const docs = new Map<string, DocumentHead>();
    const idByKey = new LiveKeys();
    this.#db.forEachHead(row.id, (id, key, position, metadata) => {
      docs.set(id, { key, position, metadata });
      idByKey.set(key, id);
    });
    const headsMs = Math.round(performance.now() - started);
    const path = this.#snapshotPath(row.id);
    const loaded = row.snapshot_checksum ? VectorIndex.load(row.spec, path, row.snapshot_checksum) : null;
    const indexMs = Math.round(performance.now() - started) - headsMs;
    const collection: Collection = {
      id: row.id,
      spec: row.spec,
      createdAt: row.created_at,
      docs,
      idByKey,
      index: loaded ?? new VectorIndex(row.spec),
      compaction: null,
      unindexed: null,
      nextKey: row.next_key,
      appliedSeq: row.snapshot_seq,
      changesSinceSnapshot: 0,
      unapplied: 0,
      snapshotTimer: null,
      snapshotBytes: loaded ? statSync(path).size : 0,
      dropped: false,
      version: 0,
      filterCache: new Map(),
    };
    const log = this.#db.logAfter(row.id, loaded ? row.snapshot_seq : 0);
    let tail: IndexAdd[] = [];
    if (loaded) {
      // Keys never change their vector, so only the live ones the snapshot lacks are added; dead
      // keys need nothing (a dead node in the snapshot stays, one born after it is not added).
      tail = this.#db.vectorsByKeys(
        row.id,
        [...log.keys].filter((key) => idByKey.has(key)),
      );
      if (tail.length > 0) collection.unindexed = new Map(tail.map(({ key, vector }) => [key, vector]));
    } else {
      for (let after = -1; ; ) {
        const page = this.#db.vectorsAfter(row.id, after, REBUILD_PAGE);
        if (page.length === 0) break;
        await this.#applyChanges(collection, page);
        after = page.at(-1)!.key;
      }
    }
    collection.appliedSeq = log.lastSeq;
    this.#collections.set(row.id, collection);
    // The tail is inserted after the store opens, first in the chain, so every write and snapshot
    // queued later waits for it (a snapshot records the log position `appliedSeq` as covered). It
    // starts a turn of the event loop later: the store's thread reports itself open first (the
    // first insert into a loaded graph grows it, seconds at 1M vectors, and held that report back).
    if (tail.length > 0)
      this.#chain = this.#chain.then(yieldToLoop).then(() => this.#replayTail(collection, tail));
    if (!loaded) {
      await this.#snapshot(collection);
    } else {
      // The replayed changes count toward the next snapshot like served ones: it is written after
      // the store opens (when due, or by a compaction), so a restart does not wait for a save of
      // the whole index.
      collection.changesSinceSnapshot = log.entries;
      if (this.#compactionDue(collection)) this.#startCompaction(collection);
      else if (log.entries > 0) this.#chain = this.#chain.then(() => this.#considerSnapshot(collection));
    }
    this.#options.logger?.info(
      {
        collection: row.spec.name,
        documents: docs.size,
        index: loaded
          ? "snapshot"
          : row.snapshot_checksum
            ? "rebuilt (snapshot missing or damaged)"
            : "built",
        // Log entries after the snapshot, and the live vectors among them still to insert (after this line).
        replayed: loaded ? log.entries : 0,
        unindexed: tail.length,
        dead: collection.index.size - docs.size,
        ms: Math.round(performance.now() - started),
        // Of `ms`: reading the documents' ids, keys and metadata, and checking and loading the snapshot.
        heads_ms: headsMs,
        snapshot_ms: loaded ? indexMs : 0,
      },
      "collection loaded",
    );
  }

  /**
   * Inserts a start-up's log tail into the index in slices, dropping each slice from `unindexed`
   * once it is in: a crash restart with 20k updates in the log waited ~20 s for these inserts into
   * a 1M graph before serving; now searches are served meanwhile, scanning the rest exactly. Stops
   * when the store closes: the tail stays in the log (no snapshot is written without it).
   */
  async #replayTail(collection: Collection, tail: IndexAdd[]): Promise<void> {
    const started = performance.now();
    for (let start = 0; start < tail.length; start += REPLAY_SLICE) {
      if (collection.dropped || this.#closed) return;
      const slice = tail.slice(start, start + REPLAY_SLICE);
      await this.#applyChanges(collection, slice);
      for (const { key } of slice) collection.unindexed?.delete(key);
      await yieldToLoop();
    }
    collection.unindexed = null;
    this.#options.logger?.info(
      { collection: collection.spec.name, vectors: tail.length, ms: Math.round(performance.now() - started) },
      "log tail indexed",
    );
  }

  #snapshotPath(id: string): string {
    return join(this.#snapshotDir, `${id}.hnsw`);
  }

  #resolve(nameOrId: string): Collection {
    const byId = this.#collections.get(nameOrId);
    if (byId) return byId;
    for (const collection of this.#collections.values()) {
      if (collection.spec.name === nameOrId) return collection;
    }
    throw new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: nameOrId });
  }

  #info(collection: Collection): CollectionInfo {
    return {
      ...collection.spec,
      id: collection.id,
      count: collection.docs.size,
      // A graph being rebuilt sits beside the serving one until the swap.
      bytes_in_ram: collection.index.memoryBytes() + (collection.compaction?.fresh.memoryBytes() ?? 0),
      // Vectors as SQLite stores them (float32) plus the index snapshot.
      bytes_on_disk: collection.snapshotBytes + collection.docs.size * collection.spec.dimension * 4,
      created_at: collection.createdAt,
    };
  }

  async create(spec: CollectionSpec): Promise<CollectionInfo> {
    this.#assertOpen();
    for (const collection of this.#collections.values()) {
      if (collection.spec.name === spec.name)
        throw new AkidbError("AKIDB_ERR_COLLECTION_EXISTS", { name: spec.name });
    }
    if (this.#collections.size >= this.#options.maxCollections) {
      throw new AkidbError("AKIDB_ERR_TOO_MANY_COLLECTIONS", { limit: this.#options.maxCollections });
    }
    const id = randomUUID();
    const createdAt = new Date().toISOString();
    this.#db.insertCollection(id, spec, createdAt);
    const collection: Collection = {
      id,
      spec,
      createdAt,
      docs: new Map(),
      idByKey: new LiveKeys(),
      index: new VectorIndex(spec),
      compaction: null,
      unindexed: null,
      nextKey: 0,
      appliedSeq: 0,
      changesSinceSnapshot: 0,
      unapplied: 0,
      snapshotTimer: null,
      snapshotBytes: 0,
      dropped: false,
      version: 0,
      filterCache: new Map(),
    };
    this.#collections.set(id, collection);
    return this.#info(collection);
  }

  async list(): Promise<CollectionInfo[]> {
    return [...this.#collections.values()].map((c) => this.#info(c));
  }

  async get(nameOrId: string): Promise<CollectionInfo> {
    return this.#info(this.#resolve(nameOrId));
  }

  async drop(nameOrId: string): Promise<void> {
    this.#assertOpen();
    const collection = this.#resolve(nameOrId);
    collection.dropped = true;
    if (collection.snapshotTimer) clearTimeout(collection.snapshotTimer);
    this.#collections.delete(collection.id);
    this.#db.deleteCollection(collection.id);
    VectorIndex.removeFile(this.#snapshotPath(collection.id));
  }

  upsert(nameOrId: string, documents: DocumentWrite[]): Promise<UpsertResult> {
    return this.#enqueue(nameOrId, { kind: "upsert", documents }) as Promise<UpsertResult>;
  }

  deleteDocuments(nameOrId: string, query: DeleteQuery): Promise<number> {
    return this.#enqueue(nameOrId, { kind: "delete", ...query }) as Promise<number>;
  }

  #enqueue(nameOrId: string, operation: Operation): Promise<UpsertResult | number> {
    this.#assertOpen();
    const collection = this.#resolve(nameOrId);
    return new Promise((resolve, reject) => {
      this.#pending.push({ collection, operation, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Commits every pending operation in one transaction, then queues their index changes. */
  #flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    // A due snapshot waits for writes to pause: every write restarts its wait.
    for (const { collection } of batch) collection.snapshotTimer?.refresh();
    const undo: Array<() => void> = [];
    const outcomes: Array<
      { adds: IndexAdd[]; logged: number; seq: number; result: UpsertResult | number } | AkidbError
    > = [];
    try {
      this.#db.transaction(() => {
        for (const { collection, operation } of batch) {
          if (collection.dropped) {
            outcomes.push(
              new AkidbError("AKIDB_ERR_COLLECTION_NOT_FOUND", { collection: collection.spec.name }),
            );
          } else {
            outcomes.push(this.#write(collection, operation, undo));
          }
        }
      });
    } catch (error) {
      for (const step of undo.reverse()) step();
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, i) => {
      const outcome = outcomes[i]!;
      if (outcome instanceof AkidbError) {
        pending.reject(outcome);
        return;
      }
      pending.collection.unapplied++;
      this.#chain = this.#chain
        .then(async () => {
          try {
            await this.#applyChanges(pending.collection, outcome.adds);
          } finally {
            pending.collection.unapplied--;
          }
          pending.collection.appliedSeq = Math.max(pending.collection.appliedSeq, outcome.seq);
          pending.collection.changesSinceSnapshot += outcome.logged;
          if (this.#compactionDue(pending.collection)) this.#startCompaction(pending.collection);
          await this.#considerSnapshot(pending.collection);
        })
        .then(
          () => pending.resolve(outcome.result),
          (error: unknown) => pending.reject(error),
        );
    });
  }

  /** One operation's rows and document heads, inside the flush's transaction; `undo` reverts the heads. */
  #write(
    collection: Collection,
    operation: Operation,
    undo: Array<() => void>,
  ): { adds: IndexAdd[]; logged: number; seq: number; result: UpsertResult | number } {
    const { docs, idByKey } = collection;
    collection.version++;
    const adds: IndexAdd[] = [];
    let seq = collection.appliedSeq;
    // The document's previous key (if any) leaves `idByKey`: its node in the graph is dead from now.
    const setHead = (id: string, head: DocumentHead | undefined) => {
      const before = docs.get(id);
      undo.push(() => {
        if (head) idByKey.delete(head.key);
        if (before) {
          docs.set(id, before);
          idByKey.set(before.key, id);
        } else {
          docs.delete(id);
        }
      });
      if (before) idByKey.delete(before.key);
      if (head) {
        docs.set(id, head);
        idByKey.set(head.key, id);
      } else {
        docs.delete(id);
      }
    };
    if (operation.kind === "upsert") {
      const nextKey = collection.nextKey;
      undo.push(() => {
        collection.nextKey = nextKey;
      });
      let inserted = 0;
      for (const doc of operation.documents) {
        // New documents and new versions alike: a key is never reused (see `VectorIndex.add`).
        const key = collection.nextKey++;
        const position = docs.get(doc.id)?.position ?? key;
        if (position === key) inserted++;
        seq = this.#db.putDocument(collection.id, { ...doc, key, position });
        setHead(doc.id, { key, position, metadata: doc.metadata });
        adds.push({ key, vector: doc.vector });
      }
      this.#db.setNextKey(collection.id, collection.nextKey);
      const ids = operation.documents.map((doc) => doc.id);
      return {
        adds,
        logged: operation.documents.length,
        seq,
        result: { inserted, updated: new Set(ids).size - inserted, ids },
      };
    }
    const { ids, filter } = operation;
    const targets = ids
      ? [...new Set(ids)].filter((id) => {
          const head = docs.get(id);
          return head !== undefined && (!filter || matches(filter, head.metadata));
        })
      : [...docs].filter(([, head]) => !filter || matches(filter, head.metadata)).map(([id]) => id);
    for (const id of targets) {
      seq = this.#db.deleteDocument(collection.id, id, docs.get(id)!.key);
      setHead(id, undefined);
    }
    return { adds, logged: targets.length, seq, result: targets.length };
  }

  /**
   * Adds vectors to the index in chunks, yielding to the event loop between them. Serving and
   * recovery share it. Keys already dead (an id repeated in one upsert, a document replaced or
   * deleted by a later commit) are skipped, and so are keys the graph has (a snapshot or a
   * compaction took them in already), so applying twice changes nothing. While a compaction runs,
   * its new graph gets the same vectors.
   */
  async #applyChanges(collection: Collection, adds: IndexAdd[]): Promise<void> {
    const threads = this.#options.insertThreads ?? 1;
    const chunk = threads > 1 ? THREADED_APPLY_CHUNK : APPLY_CHUNK;
    for (let start = 0; start < adds.length; start += chunk) {
      if (start > 0) await yieldToLoop();
      if (collection.dropped) return;
      const live = adds.slice(start, start + chunk).filter(({ key }) => collection.idByKey.has(key));
      collection.index.addMany(live, threads);
      collection.compaction?.fresh.addMany(live, threads);
    }
  }

  /** Whether dead nodes reached `compactDeadRatio` of a collection's graph (and no rebuild is under way). */
  #compactionDue(collection: Collection): boolean {
    if (collection.compaction || collection.dropped || this.#closed) return false;
    const size = collection.index.size;
    const dead = size - collection.docs.size;
    return dead > 0 && dead >= size * (this.#options.compactDeadRatio ?? DEFAULT_COMPACT_DEAD_RATIO);
  }

  /** Starts `#compact` beside the write chain: writes keep being applied while the new graph is built. */
  #startCompaction(collection: Collection): void {
    const fresh = new VectorIndex(collection.spec);
    const compaction: Compaction = { fresh, done: Promise.resolve() };
    collection.compaction = compaction;
    compaction.done = this.#compact(collection, fresh)
      .catch((error: unknown) => {
        this.#options.logger?.error(
          { collection: collection.spec.name, error: error instanceof Error ? error.message : String(error) },
          "index compaction failed",
        );
      })
      .finally(() => {
        if (collection.compaction === compaction) collection.compaction = null;
      });
  }

  /**
   * Rebuilds a collection's graph from its live vectors and swaps it in, then snapshots it (the
   * snapshot shrinks by the dead nodes). Every key below `nextKey` at the start that is still live
   * when its page is read is inserted here, in slices of `COMPACT_SLICE_MS` that yield; every key
   * from `nextKey` on is committed later, so `#applyChanges` adds it to this graph too (it is
   * registered before the first yield). So when the scan ends, the new graph holds every live key
   * and the swap needs no catch-up. RAM holds both graphs until the swap. Stops, discarding the
   * new graph, when the collection is dropped or the store closes.
   */
  async #compact(collection: Collection, fresh: VectorIndex): Promise<void> {
    const started = performance.now();
    const nodesAtStart = collection.index.size;
    const end = collection.nextKey;
    const threads = this.#options.insertThreads ?? 1;
    const chunk = threads > 1 ? COMPACT_THREADED_CHUNK : APPLY_CHUNK;
    let sliceStart = performance.now();
    for (let after = -1; after < end - 1; ) {
      const page = this.#db.vectorsAfter(collection.id, after, REBUILD_PAGE).filter(({ key }) => key < end);
      if (page.length === 0) break;
      after = page.at(-1)!.key;
      for (let start = 0; start < page.length; start += chunk) {
        if (performance.now() - sliceStart >= COMPACT_SLICE_MS) {
          await yieldToLoop();
          sliceStart = performance.now();
        }
        if (collection.dropped || this.#closed) return;
        const live = page.slice(start, start + chunk).filter(({ key }) => collection.idByKey.has(key));
        fresh.addMany(live, threads);
      }
    }
    if (collection.dropped || this.#closed) return;
    const replaced = collection.index;
    collection.index = fresh;
    collection.compaction = null;
    this.#options.logger?.info(
      {
        collection: collection.spec.name,
        documents: collection.docs.size,
        // The serving graph's nodes when the rebuild started and when it was replaced (writes went on).
        nodes_at_start: nodesAtStart,
        nodes_before: replaced.size,
        nodes_after: fresh.size,
        ms: Math.round(performance.now() - started),
      },
      "index compacted",
    );
    const snapshot = this.#chain.then(() => this.#snapshot(collection));
    // A failed save is logged by `#startCompaction`; the writes queued behind it still run.
    this.#chain = snapshot.catch(() => {});
    await snapshot;
  }

  /** Snapshots a collection whose log reached `snapshotEveryOps`: once writes pause, or now if they never do. */
  async #considerSnapshot(collection: Collection): Promise<void> {
    const every = this.#options.snapshotEveryOps;
    if (collection.changesSinceSnapshot < every) return;
    if (collection.snapshotTimer) clearTimeout(collection.snapshotTimer);
    collection.snapshotTimer = null;
    if (collection.changesSinceSnapshot >= every * SNAPSHOT_FORCE_FACTOR) {
      await this.#snapshot(collection);
      return;
    }
    collection.snapshotTimer = setTimeout(() => {
      collection.snapshotTimer = null;
      // Writes still being applied: the last one's `#considerSnapshot` starts a new wait.
      if (collection.unapplied > 0) return;
      this.#chain = this.#chain.then(async () => {
        if (!this.#closed && collection.changesSinceSnapshot >= every) await this.#snapshot(collection);
      });
    }, SNAPSHOT_IDLE_MS);
    collection.snapshotTimer.unref();
  }

  /**
   * Saves the index atomically at the applied log position, then compacts the log up to it. Runs
   * in the chain, so no index change lands between the save and the position it records.
   */
  async #snapshot(collection: Collection): Promise<void> {
    if (collection.snapshotTimer) clearTimeout(collection.snapshotTimer);
    collection.snapshotTimer = null;
    // A graph still missing a replayed tail would record the tail's log position as covered.
    if (collection.dropped || collection.unindexed) return;
    const started = performance.now();
    const seq = collection.appliedSeq;
    const path = this.#snapshotPath(collection.id);
    let saved: { checksum: string; bytes: number };
    try {
      saved = await collection.index.saveAtomically(path);
    } catch (error) {
      // A drop while the file was being synced removes it under the save.
      if (collection.dropped) return;
      throw error;
    }
    if (collection.dropped) {
      // Dropped while the file was being synced: its row is gone, so is the file.
      VectorIndex.removeFile(path);
      return;
    }
    const { checksum, bytes } = saved;
    this.#db.recordSnapshot(collection.id, seq, checksum);
    collection.changesSinceSnapshot = 0;
    collection.snapshotBytes = bytes;
    this.#options.logger?.info(
      {
        collection: collection.spec.name,
        seq,
        bytes,
        ms: Math.round(performance.now() - started),
      },
      "index snapshot written",
    );
  }

  async getDocuments(nameOrId: string, query: GetQuery): Promise<StoredDocument[]> {
    const collection = this.#resolve(nameOrId);
    const { docs } = collection;
    const { filter, limit, offset, include } = query;
    const selected: Array<[string, DocumentHead]> = [];
    if (query.ids) {
      for (const id of query.ids) {
        const head = docs.get(id);
        if (head && (!filter || matches(filter, head.metadata))) selected.push([id, head]);
      }
    } else {
      let skipped = 0;
      for (const entry of docs) {
        if (selected.length >= limit) break;
        if (filter && !matches(filter, entry[1].metadata)) continue;
        if (skipped++ < offset) continue;
        selected.push(entry);
      }
    }
    const page = query.ids ? selected.slice(offset, offset + limit) : selected;
    return page.map(([id, head]) => this.#document(collection, id, head, include));
  }

  #document(collection: Collection, id: string, head: DocumentHead, include: Include): StoredDocument {
    const doc: StoredDocument = { id };
    if (include.metadata) doc.metadata = head.metadata;
    if (include.vector || include.text) {
      const row = this.#db.documentByKey(collection.id, head.key);
      if (include.vector && row) doc.vector = row.vector;
      if (include.text) doc.text = row?.text ?? null;
    }
    return doc;
  }

  async search(nameOrId: string, queries: SearchQuery[]): Promise<SearchHit[][]> {
    const collection = this.#resolve(nameOrId);
    return queries.map((query) => {
      const hits = query.filter
        ? this.#filteredSearch(collection, query, query.filter)
        : this.#indexSearch(collection, query, query.k, () => true);
      return hits.map(({ key, score }) => {
        const id = collection.idByKey.get(key)!;
        return { ...this.#document(collection, id, collection.docs.get(id)!, query.include), score };
      });
    });
  }

  /**
   * A filter with few matches is searched exactly over them (the graph would rarely reach them); one
   * with many searches the graph with the matching keys' bitset, which the walk fills its beam from.
   */
  #filteredSearch(
    collection: Collection,
    query: SearchQuery,
    filter: Filter,
  ): Array<{ key: number; score: number }> {
    const matching = this.#matchingKeys(collection, filter);
    if (matching.size === 0) return [];
    if (matching.size <= this.#options.exactSearchMaxMatches) {
      const { metric } = collection.spec;
      const scored = this.#db
        .vectorsByKeys(collection.id, [...matching])
        .map(({ key, vector }) => ({ key, score: exactScore(metric, query.vector, vector) }));
      scored.sort((a, b) =>
        better(metric, a.score, b.score) ? -1 : better(metric, b.score, a.score) ? 1 : 0,
      );
      return scored.slice(0, query.k);
    }
    // The graph walk admits only matching keys into its beam (they are live: `#matchingKeys` reads
    // the heads), so no oversampling by the selectivity is needed.
    return this.#indexSearch(collection, query, query.k, (key) => matching.has(key), matchingBits(matching));
  }

  /** Keys of the documents the filter admits: a scan of the metadata in RAM, remembered until the next write. */
  #matchingKeys(collection: Collection, filter: Filter): Set<number> {
    const cacheKey = JSON.stringify(filter);
    const cached = collection.filterCache.get(cacheKey);
    if (cached && cached.version === collection.version) return cached.keys;
    const keys = new Set<number>();
    for (const head of collection.docs.values()) {
      if (matches(filter, head.metadata)) keys.add(head.key);
    }
    collection.filterCache.delete(cacheKey);
    collection.filterCache.set(cacheKey, { version: collection.version, keys });
    if (collection.filterCache.size > FILTER_CACHE_SIZE) {
      collection.filterCache.delete(collection.filterCache.keys().next().value!);
    }
    return keys;
  }

  /**
   * The graph's nearest live keys that `keep` admits. The walk fills its beam only with keys in
   * `admitted` (default: the live keys' bitset, when the graph has dead nodes), so dead nodes cost
   * steps but no places and the beam needs no widening by nodes / live documents.
   */
  #indexSearch(
    collection: Collection,
    query: SearchQuery,
    candidates: number,
    keep: (key: number) => boolean,
    admitted: Uint8Array | null = collection.index.size > collection.docs.size
      ? collection.idByKey.bits
      : null,
  ): Array<{ key: number; score: number }> {
    const beam = Math.max(candidates, query.k, query.ef ?? collection.spec.index.ef_search);
    // Dead keys, and keys whose delete is committed but not yet applied, are not in `idByKey`.
    const admit = (key: number) => collection.idByKey.has(key) && keep(key);
    const limit = Math.max(candidates, query.k);
    const hits = collection.index.search(query.vector, beam, limit, admit, admitted);
    return collection.unindexed ? this.#withUnindexed(collection, query.vector, hits, limit, admit) : hits;
  }

  /** `hits` merged with an exact scan of the vectors not in the graph yet (a key in both counts once). */
  #withUnindexed(
    collection: Collection,
    vector: Float32Array,
    hits: Array<{ key: number; score: number }>,
    limit: number,
    admit: (key: number) => boolean,
  ): Array<{ key: number; score: number }> {
    const { metric } = collection.spec;
    const merged = new Map(hits.map((hit) => [hit.key, hit.score]));
    for (const [key, stored] of collection.unindexed!) {
      if (!merged.has(key) && admit(key)) merged.set(key, exactScore(metric, vector, stored));
    }
    return [...merged]
      .map(([key, score]) => ({ key, score }))
      .sort((a, b) => (better(metric, a.score, b.score) ? -1 : better(metric, b.score, a.score) ? 1 : 0))
      .slice(0, limit);
  }

  /** Log entries waiting for compaction, across collections. */
  logSize(): number {
    return this.#db.logSize();
  }

  #assertOpen(): void {
    if (this.#closed) throw new AkidbError("AKIDB_ERR_SHUTTING_DOWN", {});
  }

  /** Waits for the queued index work and for running compactions (which stop at their next slice once the store is closed). */
  async #settle(): Promise<void> {
    await Promise.all([...this.#collections.values()].map((c) => c.compaction?.done));
    await this.#chain;
  }

  /**
   * Releases the data directory without writing snapshots, as a crash would leave it (writes
   * already acknowledged are committed): restart tests use it to exercise log replay.
   */
  async abandon(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending.length > 0) this.#flush();
    await this.#settle();
    for (const collection of this.#collections.values()) {
      if (collection.snapshotTimer) clearTimeout(collection.snapshotTimer);
    }
    this.#db.close();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending.length > 0) this.#flush();
    await this.#settle();
    for (const collection of this.#collections.values()) {
      if (collection.changesSinceSnapshot > 0) await this.#snapshot(collection);
    }
    this.#db.close();
  }
}
