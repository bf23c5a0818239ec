// The SQLite file's shape: what a start-up reads, and how a data directory from before a change is
// brought forward.
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { DATABASE_FILE, Database, HEADS_QUERY } from "../src/collections/database.ts";
import { tempDataDir } from "./collection-fixtures.ts";

const indexNames = (db: DatabaseSync) =>
  (
    db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'documents'")
      .all() as Array<{
      name: string;
    }>
  ).map((row) => row.name);

describe("the documents table", () => {
  it("answers a start-up's heads from one index, never the rows beside their vectors", () => {
    const { dir, remove } = tempDataDir();
    const database = new Database(dir);
    try {
      const plan = database.db.prepare(`EXPLAIN QUERY PLAN ${HEADS_QUERY}`).all("c") as Array<{
        detail: string;
      }>;
      expect(plan.map((step) => step.detail)).toEqual([
        expect.stringMatching(/USING COVERING INDEX documents_heads/),
      ]);
    } finally {
      database.close();
      remove();
    }
  });

  it("replaces the position index of an older data directory, keeping every head in order", () => {
    const { dir, remove } = tempDataDir();
    try {
      // The shape before documents_heads: the table, its key index and the position index.
      const old = new DatabaseSync(path.join(dir, DATABASE_FILE));
      old.exec(`CREATE TABLE documents (collection_id TEXT NOT NULL, id TEXT NOT NULL, key INTEGER NOT NULL,
          vector BLOB NOT NULL, text TEXT, metadata TEXT, position INTEGER, PRIMARY KEY (collection_id, id));
        CREATE UNIQUE INDEX documents_by_key ON documents (collection_id, key);
        CREATE INDEX documents_by_position ON documents (collection_id, position)`);
      const insert = old.prepare(
        "INSERT INTO documents (collection_id, id, key, vector, metadata, position) VALUES ('c', ?, ?, ?, ?, ?)",
      );
      // Updated documents: a new key, their first position.
      for (const [id, key, position] of [
        ["b", 5, 1],
        ["a", 2, 0],
        ["c", 4, 2],
      ] as const) {
        insert.run(id, key, new Uint8Array(new Float32Array([key]).buffer), JSON.stringify({ id }), position);
      }
      old.close();
      const database = new Database(dir);
      try {
        expect(indexNames(database.db)).toContain("documents_heads");
        expect(indexNames(database.db)).not.toContain("documents_by_position");
        const heads: unknown[] = [];
        database.forEachHead("c", (id, key, position, metadata) => heads.push([id, key, position, metadata]));
        expect(heads).toEqual([
          ["a", 2, 0, { id: "a" }],
          ["b", 5, 1, { id: "b" }],
          ["c", 4, 2, { id: "c" }],
        ]);
      } finally {
        database.close();
      }
    } finally {
      remove();
    }
  });
});
