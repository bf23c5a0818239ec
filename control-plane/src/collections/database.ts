import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { CollectionSpec, Metadata } from "./types.ts";

/** Name of the SQLite file under `storage.data_dir`. */
export const DATABASE_FILE = "akidb.sqlite";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS collections (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  spec TEXT NOT NULL,
  created_at TEXT NOT NULL,
  next_key INTEGER NOT NULL DEFAULT 0,
  snapshot_seq INTEGER NOT NULL DEFAULT 0,
  snapshot_checksum TEXT
);
-- key: the index key of the document's current version (a new one per upsert, never reused);
-- position: the key of its first version, so listings keep insertion order across updates.
CREATE TABLE IF NOT EXISTS documents (
  collection_id TEXT NOT NULL,
  id TEXT NOT NULL,
  key INTEGER NOT NULL,
  vector BLOB NOT NULL,
  text TEXT,
  metadata TEXT,
  position INTEGER,
  PRIMARY KEY (collection_id, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS documents_by_key ON documents (collection_id, key);
-- The operation log: one row per document an upsert or delete touched. Rows up to a collection's
-- snapshot_seq are in its index snapshot and are deleted after each snapshot (compaction).
CREATE TABLE IF NOT EXISTS log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  collection_id TEXT NOT NULL,
  op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
  key INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_by_collection ON log (collection_id, seq);
`;

/** Every document's head of one collection, in insertion order (`Database.forEachHead`). */
export const HEADS_QUERY =
  "SELECT id, key, position, metadata FROM documents WHERE collection_id = ? ORDER BY position";

export interface CollectionRow {
  id: string;
  name: string;
  spec: CollectionSpec;
  created_at: string;
  next_key: number;
  snapshot_seq: number;
  snapshot_checksum: string | null;
}

/** A row of `documents` as a document; `vector` is a copy (SQLite's buffer may be unaligned). */
export interface DocumentRow {
  id: string;
  key: number;
  /** The key of the document's first version: listings are in this order. */
  position: number;
  vector: Float32Array;
  text: string | null;
  metadata: Metadata | null;
}

function toVector(blob: Uint8Array): Float32Array {
  const copy = new Uint8Array(blob);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

/**
 * The SQLite file under `storage.data_dir`: collections, documents (vectors, text, metadata) and
 * the operation log. WAL with synchronous=FULL (a commit is on disk when it returns) and an
 * exclusive lock held for the life of the connection, so a second server on the same directory
 * fails to open it.
 */
export class Database {
  readonly db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    const path = join(dataDir, DATABASE_FILE);
    this.db = new DatabaseSync(path, { timeout: 0 });
    try {
      this.db.exec("PRAGMA locking_mode = EXCLUSIVE");
      this.db.exec("PRAGMA auto_vacuum = INCREMENTAL");
      this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec("PRAGMA synchronous = FULL");
      // Takes the exclusive lock now rather than at the first write.
      this.db.exec("BEGIN IMMEDIATE; COMMIT");
    } catch (error) {
      this.db.close();
      const message = error instanceof Error ? error.message : String(error);
      if (/locked|busy/i.test(message)) {
        throw new Error(
          `storage.data_dir ${dataDir} is in use by another AkiDB server (${path} is locked); stop that server or give this one its own storage.data_dir`,
          { cause: error },
        );
      }
      throw error;
    }
    this.db.exec(SCHEMA);
    const columns = this.db.prepare("PRAGMA table_info(documents)").all() as Array<{ name: string }>;
    if (!columns.some((column) => column.name === "position")) {
      // A data directory from before documents got a new key per update: their keys are their
      // first. Its index snapshots may hold slots that usearch's `remove` freed, which the next add
      // would reuse (stranding live nodes, see `VectorIndex.add`): forgotten, so they are rebuilt
      // from the stored vectors.
      this.db.exec(`BEGIN IMMEDIATE;
        ALTER TABLE documents ADD COLUMN position INTEGER;
        UPDATE documents SET position = key;
        UPDATE collections SET snapshot_checksum = NULL;
        COMMIT`);
    }
    // Every document's head in insertion order, read from this index alone: a start-up reads all
    // heads (`forEachHead`), and from the table that meant reading every row beside its vector
    // (2.2 GB at 1M x 384, against 73 MB of index). It also serves listings in position order.
    // Built once on a data directory from before it (1.4 s at 1M documents here), which then
    // drops the narrower index it replaces.
    this.db.exec(`CREATE INDEX IF NOT EXISTS documents_heads ON documents (collection_id, position, id, key, metadata);
      DROP INDEX IF EXISTS documents_by_position`);
  }

  #prepare(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Runs `work` in one transaction: committed (and fsynced) when it returns, rolled back when it throws. */
  transaction<T>(work: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      this.db.exec("COMMIT");
      return result;
    } catch (error) {
      if (this.db.isTransaction) this.db.exec("ROLLBACK");
      throw error;
    }
  }

  collections(): CollectionRow[] {
    const rows = this.#prepare("SELECT * FROM collections ORDER BY created_at, id").all() as Array<
      Omit<CollectionRow, "spec"> & { spec: string }
    >;
    return rows.map((row) => ({ ...row, spec: JSON.parse(row.spec) as CollectionSpec }));
  }

  insertCollection(id: string, spec: CollectionSpec, createdAt: string): void {
    this.#prepare("INSERT INTO collections (id, name, spec, created_at) VALUES (?, ?, ?, ?)").run(
      id,
      spec.name,
      JSON.stringify(spec),
      createdAt,
    );
  }

  deleteCollection(id: string): void {
    this.transaction(() => {
      this.#prepare("DELETE FROM documents WHERE collection_id = ?").run(id);
      this.#prepare("DELETE FROM log WHERE collection_id = ?").run(id);
      this.#prepare("DELETE FROM collections WHERE id = ?").run(id);
    });
    this.db.exec("PRAGMA incremental_vacuum");
  }

  setNextKey(collectionId: string, nextKey: number): void {
    this.#prepare("UPDATE collections SET next_key = ? WHERE id = ?").run(nextKey, collectionId);
  }

  /** Writes (or replaces) a document and logs the upsert; returns the log position. */
  putDocument(collectionId: string, doc: DocumentRow): number {
    this.#prepare(
      "INSERT OR REPLACE INTO documents (collection_id, id, key, vector, text, metadata, position) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ).run(
      collectionId,
      doc.id,
      doc.key,
      doc.vector,
      doc.text,
      doc.metadata === null ? null : JSON.stringify(doc.metadata),
      doc.position,
    );
    return this.#log(collectionId, "upsert", doc.key);
  }

  /** Deletes a document and logs the delete; returns the log position. */
  deleteDocument(collectionId: string, id: string, key: number): number {
    this.#prepare("DELETE FROM documents WHERE collection_id = ? AND id = ?").run(collectionId, id);
    return this.#log(collectionId, "delete", key);
  }

  #log(collectionId: string, op: "upsert" | "delete", key: number): number {
    const result = this.#prepare("INSERT INTO log (collection_id, op, key) VALUES (?, ?, ?)").run(
      collectionId,
      op,
      key,
    );
    return Number(result.lastInsertRowid);
  }

  /**
   * Calls `visit` with every document of a collection without its vector, in insertion order
   * (`position`). The rows are read in one call as arrays and no object is made per row here:
   * stepping the statement row by row, each row an object, took twice as long (3.8 s for 1M heads
   * against 1.9 s; the largest part of a 1M-document start-up). SQLite answers it from the
   * `documents_heads` index alone (a test checks the plan).
   */
  forEachHead(
    collectionId: string,
    visit: (id: string, key: number, position: number, metadata: Metadata | null) => void,
  ): void {
    const statement = this.#prepare(HEADS_QUERY);
    statement.setReturnArrays(true);
    const rows = statement.all(collectionId) as unknown as Array<[string, number, number, string | null]>;
    for (const [id, key, position, metadata] of rows) {
      visit(id, key, position, metadata === null ? null : (JSON.parse(metadata) as Metadata));
    }
  }

  /** Key and vector of every document of a collection after `afterKey`, at most `limit` of them. */
  vectorsAfter(
    collectionId: string,
    afterKey: number,
    limit: number,
  ): Array<{ key: number; vector: Float32Array }> {
    const rows = this.#prepare(
      "SELECT key, vector FROM documents WHERE collection_id = ? AND key > ? ORDER BY key LIMIT ?",
    ).all(collectionId, afterKey, limit) as Array<{ key: number; vector: Uint8Array }>;
    return rows.map((row) => ({ key: row.key, vector: toVector(row.vector) }));
  }

  documentByKey(collectionId: string, key: number): DocumentRow | undefined {
    const row = this.#prepare("SELECT * FROM documents WHERE collection_id = ? AND key = ?").get(
      collectionId,
      key,
    ) as
      | {
          id: string;
          key: number;
          position: number;
          vector: Uint8Array;
          text: string | null;
          metadata: string | null;
        }
      | undefined;
    if (!row) return undefined;
    return {
      id: row.id,
      key: row.key,
      position: row.position,
      vector: toVector(row.vector),
      text: row.text,
      metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Metadata),
    };
  }

  /** Key and vector of each of `keys` that is stored, in one statement. */
  vectorsByKeys(collectionId: string, keys: number[]): Array<{ key: number; vector: Float32Array }> {
    const rows = this.#prepare(
      "SELECT key, vector FROM documents WHERE collection_id = ? AND key IN (SELECT value FROM json_each(?))",
    ).all(collectionId, JSON.stringify(keys)) as Array<{ key: number; vector: Uint8Array }>;
    return rows.map((row) => ({ key: row.key, vector: toVector(row.vector) }));
  }

  /** Keys the log touched after `seq` (the snapshot's position), with the last position. */
  logAfter(collectionId: string, seq: number): { keys: Set<number>; lastSeq: number; entries: number } {
    const rows = this.#prepare(
      "SELECT seq, key FROM log WHERE collection_id = ? AND seq > ? ORDER BY seq",
    ).all(collectionId, seq) as Array<{ seq: number; key: number }>;
    return {
      keys: new Set(rows.map((row) => row.key)),
      lastSeq: rows.at(-1)?.seq ?? seq,
      entries: rows.length,
    };
  }

  /** Log entries of every collection (the property test bounds this). */
  logSize(): number {
    return (this.#prepare("SELECT count(*) AS n FROM log").get() as { n: number }).n;
  }

  /**
   * Records a snapshot covering the log up to `seq` and deletes those entries (compaction), then
   * returns freed pages to the file system and truncates the WAL.
   */
  recordSnapshot(collectionId: string, seq: number, checksum: string): void {
    this.transaction(() => {
      this.#prepare("UPDATE collections SET snapshot_seq = ?, snapshot_checksum = ? WHERE id = ?").run(
        seq,
        checksum,
        collectionId,
      );
      this.#prepare("DELETE FROM log WHERE collection_id = ? AND seq <= ?").run(collectionId, seq);
    });
    this.db.exec("PRAGMA incremental_vacuum");
    this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  close(): void {
    this.db.close();
  }
}
