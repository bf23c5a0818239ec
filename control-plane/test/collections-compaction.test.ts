// Updates and deletes leave dead nodes in a collection's graph (a removal would strand live nodes);
// once they reach `compactDeadRatio` the graph is rebuilt from the live vectors and snapshotted.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { DATABASE_FILE } from "../src/collections/database.ts";
import type { LocalCollectionStore, StoreLogger } from "../src/collections/local-store.ts";
import type { CollectionSpec } from "../src/collections/types.ts";
import { VectorIndex } from "../src/collections/vector-index.ts";
import { openStore, seededUniform, storeLog, tempDataDir } from "./collection-fixtures.ts";

const DIMENSION = 8;
const DOCUMENTS = 400;
const BATCH = 100;
const ROUNDS = 6;

function open(dir: string, logger: StoreLogger): Promise<LocalCollectionStore> {
  return openStore(dir, { compactDeadRatio: 0.3, snapshotEveryOps: 100, logger });
}

/** Ids whose own vector does not come back first from a search (at distance 0). */
async function unreachable(store: LocalCollectionStore, current: Map<string, Float32Array>) {
  const ids = [...current.keys()];
  const results = await store.search(
    "c",
    ids.map((id) => ({
      vector: current.get(id)!,
      k: 1,
      include: { vector: false, text: false, metadata: false },
    })),
  );
  return ids.filter((id, i) => results[i]![0]?.id !== id || results[i]![0]!.score !== 0);
}

async function upsertAll(store: LocalCollectionStore, current: Map<string, Float32Array>) {
  const ids = [...current.keys()];
  for (let start = 0; start < ids.length; start += BATCH) {
    await store.upsert(
      "c",
      ids
        .slice(start, start + BATCH)
        .map((id) => ({ id, vector: current.get(id)!, text: null, metadata: { id } })),
    );
  }
}

describe("compaction of dead nodes", () => {
  it("rebuilds the graph as updates accumulate: every document stays findable, RAM and the snapshot shrink back, restarts keep it", async () => {
    const data = tempDataDir();
    const log = storeLog("index compacted");
    let store = await open(data.dir, log.logger);
    await store.create({
      name: "c",
      dimension: DIMENSION,
      metric: "l2",
      quantization: "f32",
      index: { M: 8, ef_construction: 64, ef_search: 32 },
      model: null,
    });
    const random = seededUniform(3);
    const fresh = () => Float32Array.from({ length: DIMENSION }, random);
    const current = new Map(Array.from({ length: DOCUMENTS }, (_, i) => [`d${i}`, fresh()] as const));
    await upsertAll(store, current);
    await store.close();
    store = await open(data.dir, log.logger);
    const baseline = await store.get("c");

    for (let round = 1; round <= ROUNDS; round++) {
      for (const id of current.keys()) current.set(id, fresh());
      await upsertAll(store, current);
      // A round adds DOCUMENTS dead nodes to a graph of at most DOCUMENTS / 0.7 + DOCUMENTS nodes:
      // the ratio is crossed in every round.
      await log.logged(round);
      expect(await unreachable(store, current)).toEqual([]);
    }
    for (const fields of log.events) {
      expect(fields.nodes_after).toBeLessThan(fields.nodes_before as number);
      // The new graph holds every live document at the swap except those of the one upsert that
      // may be committed but not yet applied (it is applied to the new graph right after): a
      // faster rebuild made that window show (396 of 400 once, under load).
      expect(fields.nodes_after).toBeGreaterThanOrEqual(DOCUMENTS - BATCH);
    }
    expect((await store.get("c")).count).toBe(DOCUMENTS);

    // After a clean restart: the snapshot is the compacted graph plus what came after it, and a
    // graph loaded with dead nodes over the ratio is compacted at once.
    await store.close();
    const compactedBefore = log.events.length;
    store = await open(data.dir, log.logger);
    const dead = log.loads.at(-1)!.dead as number;
    if (dead >= 0.3 * (dead + DOCUMENTS)) await log.logged(compactedBefore + 1);
    const reopened = await store.get("c");
    expect(reopened.count).toBe(DOCUMENTS);
    expect(reopened.bytes_on_disk).toBeLessThan(baseline.bytes_on_disk * 2);
    expect(reopened.bytes_in_ram).toBeLessThan(baseline.bytes_in_ram * 2);
    expect(dead).toBeLessThan(DOCUMENTS / 0.7);
    expect(await unreachable(store, current)).toEqual([]);

    // Deletes leave dead nodes too; after a crash the log is replayed over the snapshot.
    const deleted = [...current.keys()].slice(0, DOCUMENTS / 2);
    expect(await store.deleteDocuments("c", { ids: deleted })).toBe(deleted.length);
    for (const id of deleted) current.delete(id);
    await store.abandon();
    store = await open(data.dir, log.logger);
    expect((await store.get("c")).count).toBe(DOCUMENTS / 2);
    expect(await unreachable(store, current)).toEqual([]);
    await store.close();
    data.remove();
  }, 60_000);

  it("gives an id repeated in one upsert its last vector, and never inserts the earlier ones", async () => {
    const data = tempDataDir();
    const log = storeLog("index compacted");
    let store = await open(data.dir, log.logger);
    await store.create({
      name: "c",
      dimension: 2,
      metric: "l2",
      quantization: "f32",
      index: { M: 8, ef_construction: 64, ef_search: 32 },
      model: null,
    });
    const result = await store.upsert("c", [
      { id: "a", vector: new Float32Array([1, 0]), text: null, metadata: null },
      { id: "b", vector: new Float32Array([0, 1]), text: null, metadata: null },
      { id: "a", vector: new Float32Array([5, 5]), text: null, metadata: null },
    ]);
    expect(result).toMatchObject({ inserted: 2, updated: 0 });
    const none = { vector: false, text: false, metadata: false };
    const [hits] = await store.search("c", [{ vector: new Float32Array([1, 0]), k: 2, include: none }]);
    expect(hits).toEqual([
      { id: "b", score: Math.SQRT2 },
      { id: "a", score: Math.hypot(4, 5) },
    ]);
    await store.close();
    store = await open(data.dir, log.logger);
    // The first "a" was dead before its turn to be inserted: the graph holds two nodes, both live.
    expect(log.loads.at(-1)).toMatchObject({ documents: 2, dead: 0 });
    await store.close();
    data.remove();
  });

  // Before documents got a new key per version, a document's key was also its place in listings.
  it("opens a data directory from before the position column, keeping its listing order through updates", async () => {
    const data = tempDataDir();
    const old = new DatabaseSync(path.join(data.dir, DATABASE_FILE));
    old.exec(`
      CREATE TABLE collections (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL,
        created_at TEXT NOT NULL, next_key INTEGER NOT NULL DEFAULT 0,
        snapshot_seq INTEGER NOT NULL DEFAULT 0, snapshot_checksum TEXT);
      CREATE TABLE documents (collection_id TEXT NOT NULL, id TEXT NOT NULL, key INTEGER NOT NULL,
        vector BLOB NOT NULL, text TEXT, metadata TEXT, PRIMARY KEY (collection_id, id));
      CREATE UNIQUE INDEX documents_by_key ON documents (collection_id, key);`);
    const spec = {
      name: "c",
      dimension: 2,
      metric: "l2",
      quantization: "f32",
      index: { M: 8, ef_construction: 64, ef_search: 32 },
      model: null,
    };
    // A valid snapshot of it, which must not be loaded (it could hold slots freed by usearch's remove,
    // the index of that time).
    const snapshot = new VectorIndex(spec as CollectionSpec);
    snapshot.addMany(
      [0, 1, 2].map((key) => ({ key, vector: new Float32Array([key, 0]) })),
      1,
    );
    mkdirSync(path.join(data.dir, "indexes"));
    const { checksum } = await snapshot.saveAtomically(path.join(data.dir, "indexes", "id1.hnsw"));
    old
      .prepare(
        "INSERT INTO collections (id, name, spec, created_at, next_key, snapshot_checksum) VALUES ('id1', 'c', ?, '2026-11-30T00:00:00Z', 3, ?)",
      )
      .run(JSON.stringify(spec), checksum);
    const insert = old.prepare(
      "INSERT INTO documents (collection_id, id, key, vector) VALUES ('id1', ?, ?, ?)",
    );
    ["z", "a", "m"].forEach((id, key) => {
      insert.run(id, key, new Float32Array([key, 0]));
    });
    old.close();
    const log = storeLog("index compacted");
    let store = await open(data.dir, log.logger);
    const ids = async () =>
      (
        await store.getDocuments("c", {
          limit: 10,
          offset: 0,
          include: { vector: false, text: false, metadata: false },
        })
      ).map((doc) => doc.id);
    expect(log.loads.at(-1)).toMatchObject({ index: "built", documents: 3 });
    expect(await ids()).toEqual(["z", "a", "m"]);
    await store.upsert("c", [{ id: "z", vector: new Float32Array([9, 9]), text: null, metadata: null }]);
    await store.close();
    store = await open(data.dir, log.logger);
    expect(await ids()).toEqual(["z", "a", "m"]);
    const [hits] = await store.search("c", [
      { vector: new Float32Array([9, 9]), k: 1, include: { vector: false, text: false, metadata: false } },
    ]);
    expect(hits).toEqual([{ id: "z", score: 0 }]);
    await store.close();
    data.remove();
  });

  // Snapshots from before the index was AkiDB's own addon are usearch files (`<id>.usearch`, and a
  // format the addon refuses): the collection is rebuilt from its stored vectors, never refused.
  it("starts from a data directory with usearch snapshots, rebuilding them from the stored vectors", async () => {
    const fixture = path.join(import.meta.dirname, "fixtures", "usearch-2.26-snapshot.usearch");
    const bytes = readFileSync(fixture);
    const checksum = `${crc32(bytes).toString(16).padStart(8, "0")}:${bytes.length}`;
    for (const name of ["usearch", "hnsw"] as const) {
      const data = tempDataDir();
      const log = storeLog("index compacted");
      let store = await open(data.dir, log.logger);
      await store.create({
        name: "c",
        dimension: 2,
        metric: "l2",
        quantization: "f32",
        index: { M: 8, ef_construction: 64, ef_search: 32 },
        model: null,
      });
      await store.upsert(
        "c",
        ["a", "b", "z"].map((id, i) => ({
          id,
          vector: new Float32Array([i, 1]),
          text: null,
          metadata: null,
        })),
      );
      await store.close();
      const indexes = path.join(data.dir, "indexes");
      const [snapshot] = readdirSync(indexes);
      const id = snapshot!.replace(/\.hnsw$/, "");
      // As the usearch version left it: its file (by name, or only by content) and its checksum.
      rmSync(path.join(indexes, snapshot!));
      copyFileSync(fixture, path.join(indexes, `${id}.${name}`));
      const db = new DatabaseSync(path.join(data.dir, DATABASE_FILE));
      db.prepare("UPDATE collections SET snapshot_checksum = ? WHERE id = ?").run(checksum, id);
      db.close();
      store = await open(data.dir, log.logger);
      expect(log.loads.at(-1)).toMatchObject({
        index: "rebuilt (snapshot missing or damaged)",
        documents: 3,
      });
      const [hits] = await store.search("c", [
        { vector: new Float32Array([2, 1]), k: 3, include: { vector: false, text: false, metadata: false } },
      ]);
      expect(hits).toEqual([
        { id: "z", score: 0 },
        { id: "b", score: 1 },
        { id: "a", score: 2 },
      ]);
      expect(existsSync(path.join(indexes, `${id}.usearch`))).toBe(false);
      await store.close();
      store = await open(data.dir, log.logger);
      expect(log.loads.at(-1)).toMatchObject({ index: "snapshot", documents: 3 });
      await store.close();
      data.remove();
    }
  });
});
