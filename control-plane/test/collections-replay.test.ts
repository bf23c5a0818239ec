// A restart after a crash finds writes in the log that its index snapshot lacks. The store opens
// without waiting for them to be inserted into the graph: searches scan them exactly until they are.
import { describe, expect, it } from "vitest";
import type { LocalCollectionStore } from "../src/collections/local-store.ts";
import { openStore, seededUniform, storeLog, tempDataDir } from "./collection-fixtures.ts";

const DIMENSION = 8;
const SNAPSHOTTED = 300;
/** More than one insert chunk, so most of the tail is still unindexed when the first search runs. */
const TAIL = 200;
const none = { vector: false, text: false, metadata: false };

/** Ids whose own vector does not come back first, or that come back twice in a result. */
async function misses(store: LocalCollectionStore, current: Map<string, Float32Array>) {
  const ids = [...current.keys()];
  const results = await store.search(
    "c",
    ids.map((id) => ({ vector: current.get(id)!, k: 5, include: none })),
  );
  return ids.filter((id, i) => {
    const hits = results[i]!.map((hit) => hit.id);
    return hits[0] !== id || new Set(hits).size !== hits.length;
  });
}

describe("a crash restart's log tail", () => {
  it("is searched exactly until it is in the graph, then indexed in the background and snapshotted", async () => {
    const data = tempDataDir();
    const log = storeLog("log tail indexed");
    const random = seededUniform(11);
    const vector = () => Float32Array.from({ length: DIMENSION }, random);
    const open = () => openStore(data.dir, { snapshotEveryOps: 1e6, logger: log.logger });
    const current = new Map<string, Float32Array>();
    const write = async (store: LocalCollectionStore, ids: string[]) => {
      const documents = ids.map((id) => ({ id, vector: vector(), text: null, metadata: null }));
      for (const doc of documents) current.set(doc.id, doc.vector);
      await store.upsert("c", documents);
    };

    let store = await open();
    await store.create({
      name: "c",
      dimension: DIMENSION,
      metric: "cosine",
      quantization: "f32",
      index: { M: 8, ef_construction: 64, ef_search: 32 },
      model: null,
    });
    await write(
      store,
      Array.from({ length: SNAPSHOTTED }, (_, i) => `s${i}`),
    );
    await store.close();

    // After the snapshot: new documents, updates of snapshotted ones, deletes; then a crash.
    store = await open();
    await write(
      store,
      Array.from({ length: TAIL - 50 }, (_, i) => `t${i}`),
    );
    await write(
      store,
      Array.from({ length: 50 }, (_, i) => `s${i}`),
    );
    const deleted = Array.from({ length: 20 }, (_, i) => `s${100 + i}`);
    await store.deleteDocuments("c", { ids: deleted });
    for (const id of deleted) current.delete(id);
    await store.abandon();

    store = await open();
    expect(log.loads.at(-1)).toMatchObject({ index: "snapshot", unindexed: TAIL });
    // Searched at once: the tail is not all in the graph yet, and every live document is found.
    expect(log.events).toHaveLength(0);
    expect(await misses(store, current)).toEqual([]);
    expect((await store.get("c")).count).toBe(SNAPSHOTTED + TAIL - 50 - deleted.length);

    await log.logged(1);
    expect(log.events[0]).toMatchObject({ vectors: TAIL });
    expect(await misses(store, current)).toEqual([]);

    // The close snapshots the graph with the tail in it: the next open has nothing to replay.
    await store.close();
    store = await open();
    expect(log.loads.at(-1)).toMatchObject({ index: "snapshot", replayed: 0, unindexed: 0 });
    expect(await misses(store, current)).toEqual([]);

    // Closed while a tail is being indexed: no snapshot claims the tail unless it holds it.
    await write(
      store,
      Array.from({ length: TAIL }, (_, i) => `u${i}`),
    );
    await store.abandon();
    store = await open();
    expect(log.loads.at(-1)).toMatchObject({ unindexed: TAIL });
    await store.close();
    store = await open();
    expect(await misses(store, current)).toEqual([]);
    await store.close();
    data.remove();
  }, 60_000);
});
