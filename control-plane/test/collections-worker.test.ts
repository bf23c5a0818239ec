// The store in its worker thread (what the server runs): every method crosses the thread and back
// with its values intact, errors arrive as the AkidbErrors the store threw, and the thread opens,
// refuses a held data_dir and closes like the local store.
import { describe, expect, it } from "vitest";
import { WorkerCollectionStore } from "../src/collections/worker-store.ts";
import { isAkidbError } from "../src/errors.ts";
import { openStore, tempDataDir } from "./collection-fixtures.ts";

const spec = {
  name: "w",
  dimension: 3,
  metric: "cosine" as const,
  quantization: "f32" as const,
  index: { M: 16, ef_construction: 64, ef_search: 32 },
  model: null,
};
const ALL = { vector: true, text: true, metadata: true };
const options = { snapshotEveryOps: 10_000, exactSearchMaxMatches: 2048, maxCollections: 10 };

describe("WorkerCollectionStore", () => {
  it("runs every method in the thread and keeps the data across a close", async () => {
    const data = tempDataDir();
    const logs: string[] = [];
    const store = await WorkerCollectionStore.open({
      dataDir: data.dir,
      ...options,
      logger: {
        info: (_fields, message) => logs.push(message),
        error: (_fields, message) => logs.push(`error: ${message}`),
      },
    });
    const info = await store.create(spec);
    expect(await store.get(info.id)).toMatchObject({ name: "w", count: 0, dimension: 3 });
    expect(
      await store.upsert("w", [
        { id: "x", vector: new Float32Array([1, 0, 0]), text: "ex", metadata: { n: 1 } },
        { id: "y", vector: new Float32Array([0, 1, 0]), text: null, metadata: null },
      ]),
    ).toEqual({ inserted: 2, updated: 0, ids: ["x", "y"] });
    const [hits] = await store.search("w", [{ vector: new Float32Array([0.9, 0.1, 0]), k: 1, include: ALL }]);
    expect(hits).toEqual([
      {
        id: "x",
        vector: new Float32Array([1, 0, 0]),
        text: "ex",
        metadata: { n: 1 },
        score: expect.any(Number),
      },
    ]);
    expect(await store.getDocuments("w", { ids: ["y"], limit: 10, offset: 0, include: ALL })).toEqual([
      { id: "y", vector: new Float32Array([0, 1, 0]), text: null, metadata: null },
    ]);
    expect(await store.deleteDocuments("w", { ids: ["y"] })).toBe(1);
    expect((await store.list()).map((c) => c.count)).toEqual([1]);
    await store.close();
    expect(logs).toContain("index snapshot written");
    expect(logs.filter((line) => line.startsWith("error"))).toEqual([]);

    const reopened = await openStore(data.dir);
    expect((await reopened.get("w")).count).toBe(1);
    await reopened.close();
  });

  it("rejects with the store's AkidbErrors, and with shutting-down after close", async () => {
    const data = tempDataDir();
    const store = await WorkerCollectionStore.open({ dataDir: data.dir, ...options });
    await store.create(spec);
    const taken = await store.create(spec).catch((error: unknown) => error);
    expect(isAkidbError(taken) && taken.code).toBe("AKIDB_ERR_COLLECTION_EXISTS");
    const missing = await store.get("nope").catch((error: unknown) => error);
    expect(isAkidbError(missing) && [missing.code, missing.status]).toEqual([
      "AKIDB_ERR_COLLECTION_NOT_FOUND",
      404,
    ]);
    await store.close();
    const closed = await store.list().catch((error: unknown) => error);
    expect(isAkidbError(closed) && closed.code).toBe("AKIDB_ERR_SHUTTING_DOWN");
  });

  it("refuses a data_dir another store holds, with the store's message", async () => {
    const data = tempDataDir();
    const holder = await openStore(data.dir);
    await expect(WorkerCollectionStore.open({ dataDir: data.dir, ...options })).rejects.toThrow(
      /storage.data_dir .* is in use by another AkiDB server/,
    );
    await holder.close();
  });
});

describe("WorkerCollectionStore when its thread dies", () => {
  it("fails the calls in flight with a retryable 503, logs it, and reopens the store from disk", async () => {
    const data = tempDataDir();
    const logs: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
    let reopened!: () => void;
    const reopen = new Promise<void>((resolve) => {
      reopened = resolve;
    });
    const store = await WorkerCollectionStore.open({
      dataDir: data.dir,
      ...options,
      logger: {
        info: (fields, message) => {
          logs.push({ level: "info", message, fields });
          if (message === "the collection store reopened") reopened();
        },
        error: (fields, message) => logs.push({ level: "error", message, fields }),
      },
    });
    await store.create(spec);
    await store.upsert("w", [
      { id: "x", vector: new Float32Array([1, 0, 0]), text: null, metadata: { n: 1 } },
    ]);
    const first = store.thread!;
    // A call in flight when the thread ends (sent once it is ending, so it is never answered), and
    // one made before a replacement is open.
    const ended = first.terminate();
    const inFlight = store.list().catch((error: unknown) => error);
    await ended;
    const during = await store.get("w").catch((error: unknown) => error);
    for (const error of [await inFlight, during]) {
      expect(isAkidbError(error) && [error.code, error.status, error.retryAfterSeconds]).toEqual([
        "AKIDB_ERR_STORE_RESTARTING",
        503,
        1,
      ]);
    }
    expect(logs.find((line) => line.level === "error")).toMatchObject({
      message: expect.stringMatching(/store thread stopped/),
      fields: { reason: expect.stringMatching(/exited/), inFlight: 1 },
    });
    await reopen;
    expect(store.thread).not.toBe(first);
    // The new thread serves the data written before the crash, and takes writes.
    expect(await store.getDocuments("w", { ids: ["x"], limit: 1, offset: 0, include: ALL })).toEqual([
      { id: "x", vector: new Float32Array([1, 0, 0]), text: null, metadata: { n: 1 } },
    ]);
    await store.upsert("w", [{ id: "y", vector: new Float32Array([0, 1, 0]), text: null, metadata: null }]);
    expect((await store.get("w")).count).toBe(2);
    await store.close();
    const closed = await store.list().catch((error: unknown) => error);
    expect(isAkidbError(closed) && closed.code).toBe("AKIDB_ERR_SHUTTING_DOWN");
  });
});
