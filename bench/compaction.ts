// Compaction of a collection's graph (collection.compact_dead_ratio): how long rebuilding n live
// vectors takes, what RAM does around it, and whether searches are answered meanwhile.
//
//   flock /tmp/akidb-bench.lock node bench/compaction.ts [--n 100000] [--dim 384] [--under-updates]
//
// In-process store (no HTTP), insert threads 2 (the server's default): n documents are inserted,
// then updated 500 at a time until the dead nodes cross the ratio (0.3: 0.43 n updates), then only
// searches run (one per turn of the event loop) until the compaction is logged. --under-updates
// then keeps updating (500 per call, back to back) through the next compaction, the worst case of
// a store that never pauses. Results go to bench/results/compaction-<n>x<dim>.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { LocalCollectionStore } from "../control-plane/src/collections/local-store.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const RATIO = 0.3;
const BATCH = 500;
const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "100000" },
    dim: { type: "string", default: "384" },
    "under-updates": { type: "boolean", default: false },
  },
});
const n = Number(args.n);
const dim = Number(args.dim);

let seed = 1;
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648 - 0.5;
};
const documents = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    id: `d${(from + i) % n}`,
    vector: Float32Array.from({ length: dim }, random),
    text: null,
    metadata: null,
  }));

type Fields = Record<string, unknown>;
let compacted: (fields: Fields) => void = () => {};
const nextCompaction = () => new Promise<Fields>((resolve) => (compacted = resolve));
const dataDir = mkdtempSync(path.join(os.tmpdir(), "akidb-compaction-"));
const store = await LocalCollectionStore.open({
  dataDir,
  snapshotEveryOps: 1e9,
  exactSearchMaxMatches: 2048,
  maxCollections: 1,
  insertThreads: 2,
  compactDeadRatio: RATIO,
  logger: {
    info: (fields, message) => {
      if (message === "index compacted") compacted(fields);
    },
    error: (fields, message) => console.error(message, fields),
  },
});
const results: Fields = { n, dim, ratio: RATIO, load_before: os.loadavg()[0] };
try {
  await store.create({
    name: "c",
    dimension: dim,
    metric: "cosine",
    quantization: "f32",
    index: { M: 16, ef_construction: 128, ef_search: 64 },
    model: null,
  });
  let started = performance.now();
  for (let i = 0; i < n; i += 2 * BATCH) {
    await Promise.all([
      store.upsert("c", documents(i, BATCH)),
      store.upsert("c", documents(i + BATCH, BATCH)),
    ]);
  }
  results.insert_ms = Math.round(performance.now() - started);
  results.bytes_in_ram_built = (await store.get("c")).bytes_in_ram;

  let compaction = nextCompaction();
  const crossing = Math.ceil((RATIO * n) / (1 - RATIO)) + BATCH;
  started = performance.now();
  for (let i = 0; i < crossing; i += BATCH) await store.upsert("c", documents(i, BATCH));
  results.updates = crossing;
  results.updates_ms = Math.round(performance.now() - started);
  results.bytes_in_ram_during = (await store.get("c")).bytes_in_ram;
  let done = false;
  void compaction.then(() => {
    done = true;
  });
  let searches = 0;
  while (!done) {
    const query = Float32Array.from({ length: dim }, random);
    await store.search("c", [
      { vector: query, k: 10, include: { vector: false, text: false, metadata: false } },
    ]);
    searches++;
    await new Promise((resolve) => setImmediate(resolve));
  }
  results.quiet = { ...(await compaction), searches_meanwhile: searches };
  results.bytes_in_ram_after = (await store.get("c")).bytes_in_ram;

  if (args["under-updates"]) {
    compaction = nextCompaction();
    done = false;
    void compaction.then(() => {
      done = true;
    });
    let updates = 0;
    let worst = 0;
    for (let i = 0; !done; i += BATCH) {
      const call = performance.now();
      await store.upsert("c", documents(i, BATCH));
      worst = Math.max(worst, performance.now() - call);
      updates += BATCH;
    }
    results.under_updates = {
      ...(await compaction),
      updates_meanwhile: updates,
      worst_upsert_ms: Math.round(worst),
    };
  }
  results.load_after = os.loadavg()[0];
} finally {
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 2));
mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
writeFileSync(
  path.join(ROOT, "bench", "results", `compaction-${n}x${dim}.json`),
  `${JSON.stringify(results, null, 2)}\n`,
);
