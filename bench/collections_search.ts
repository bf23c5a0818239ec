// Collections search, taken apart: on bench/collections.ts's data (clustered synthetic, cosine, HNSW
// M 16, ef_construction 128, k 10), the QPS and recall@10 of
//   * hnswlib (bench/collections_search_hnswlib.py, in-process, 1 thread),
//   * AkiDB's HNSW addon alone (control-plane/native, `HnswIndex.search`, f32 and f16),
//   * the AkiDB engine (`LocalCollectionStore.search`, one query per call, f32 and f16 indexes: what
//     the store's thread runs for a search request, without HTTP and the hop to that thread).
// Every QPS is the best of --passes passes (the machine is shared). Each graph's build rate (2
// threads, batches of 1000) is recorded beside it.
//
//   node bench/collections_search.ts [--n 100000] [--dim 384] [--queries 500] [--passes 3]
//                                    [--python .tools/bench-peers/bin/python] [--render]
//
// Results: bench/results/collections-search.json and the "Collections search" section of
// docs/benchmarks.md (--render rewrites the section from the results).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { addon as hnswAddon } from "../control-plane/src/native.ts";
import { bucketDocuments, clustered, exactTopK, row, sweepPoint } from "./collections_data.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const RESULTS = path.join(ROOT, "bench", "results", "collections-search.json");
const DOCS = path.join(ROOT, "docs", "benchmarks.md");
const TITLE = "## Collections search: where the time goes (`bench/collections_search.ts`)";
const K = 10;
const EFS = [10, 16, 32, 64, 128];
const BATCH = 1000;
const INDEX = { M: 16, ef_construction: 128, ef_search: 64 };
const QUANTIZATIONS = ["f32", "f16"] as const;
const BUILD_THREADS = 2;

const addon = hnswAddon();

const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "100000" },
    dim: { type: "string", default: "384" },
    queries: { type: "string", default: "500" },
    passes: { type: "string", default: "3" },
    python: { type: "string", default: ".tools/bench-peers/bin/python" },
    render: { type: "boolean", default: false },
  },
});
const n = Number(args.n);
const dim = Number(args.dim);
const q = Number(args.queries);
const passes = Number(args.passes);

type Point = { ef: number; qps: number; recall: number };
interface Results {
  machine: { cpus: number; cpu: string };
  n: number;
  dim: number;
  queries: number;
  passes: number;
  loadavg: { before: number[]; after: number[] };
  hnswlib: Point[];
  addon: Record<(typeof QUANTIZATIONS)[number], Point[]>;
  engine: Record<(typeof QUANTIZATIONS)[number], Point[]>;
  /** Vectors inserted per second on BUILD_THREADS threads, batches of BATCH, by each graph alone. */
  build: { hnswlib: number; addon: Record<(typeof QUANTIZATIONS)[number], number> };
  simd: string;
}

const log = (message: string) => console.error(`[bench] ${message}`);

async function openStore(work: string, insertThreads: number) {
  const { LocalCollectionStore } = await import("../control-plane/src/collections/local-store.ts");
  return LocalCollectionStore.open({
    dataDir: path.join(work, "data"),
    snapshotEveryOps: 10_000,
    exactSearchMaxMatches: 2048,
    maxCollections: 10,
    insertThreads,
  });
}

/** The engine, swept over the collections `main` built in `work`. */
async function sweeps(work: string, queries: Float32Array, truth: number[][]) {
  const store = await openStore(work, 1);
  const include = { vector: false, text: false, metadata: false };
  const engine = {} as Results["engine"];
  try {
    for (const quantization of QUANTIZATIONS) {
      engine[quantization] = [];
      for (const ef of EFS) {
        engine[quantization].push(
          await sweepPoint(ef, q, passes, truth, async (i) => {
            const [hits] = await store.search(quantization, [
              { vector: row(queries, dim, i), k: K, ef, include },
            ]);
            return hits!.map((hit) => Number(hit.id));
          }),
        );
      }
    }
  } finally {
    await store.close();
  }
  return engine;
}

/** The addon's graphs built alone from `base`, their build rates, and their sweeps. */
async function addonSweeps(base: Float32Array, queries: Float32Array, truth: number[][]) {
  const points = {} as Results["addon"];
  const build = {} as Results["build"]["addon"];
  const keys = Float64Array.from({ length: n }, (_, i) => i);
  const outKeys = new Float64Array(K);
  const outDistances = new Float32Array(K);
  for (const scalar of QUANTIZATIONS) {
    const index = new addon.HnswIndex({
      dimensions: dim,
      metric: "ip",
      scalar,
      M: INDEX.M,
      efConstruction: INDEX.ef_construction,
    });
    const started = performance.now();
    for (let start = 0; start < n; start += BATCH) {
      const end = Math.min(n, start + BATCH);
      index.addMany(keys.subarray(start, end), base.subarray(start * dim, end * dim), BUILD_THREADS);
    }
    build[scalar] = Math.round(n / ((performance.now() - started) / 1000));
    points[scalar] = [];
    for (const ef of EFS) {
      points[scalar].push(
        await sweepPoint(ef, q, passes, truth, (i) => {
          const found = index.search(row(queries, dim, i), K, ef, null, outKeys, outDistances);
          return Array.from(outKeys.subarray(0, found));
        }),
      );
    }
  }
  return { points, build };
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg();
  const work = mkdtempSync(path.join(os.tmpdir(), "akidb-search-bench-"));
  try {
    const base = clustered(n, dim, 1);
    const queries = clustered(q, dim, 2);
    writeFileSync(path.join(work, "base.f32"), base);
    writeFileSync(path.join(work, "queries.f32"), queries);
    log(`exact top ${K} of ${q} queries`);
    const plain = exactTopK(base, queries, dim, K);
    writeFileSync(path.join(work, "truth.json"), JSON.stringify({ plain }));

    log(`building the f32 and f16 collections of ${n} x ${dim}`);
    const store = await openStore(work, 2);
    for (const quantization of QUANTIZATIONS) {
      await store.create({
        name: quantization,
        dimension: dim,
        metric: "cosine",
        quantization,
        index: INDEX,
        model: null,
      });
      for (let start = 0; start < n; start += BATCH) {
        await store.upsert(quantization, bucketDocuments(base, dim, start, Math.min(n, start + BATCH)));
      }
    }
    await store.close();
    log(`building the addon's f32 and f16 graphs of ${n} x ${dim} (${addon.simd} kernels)`);
    const addonResults = await addonSweeps(base, queries, plain);
    log(`addon alone: ${JSON.stringify(addonResults)}`);

    const engine = await sweeps(work, queries, plain);
    log(`engine: ${JSON.stringify(engine)}`);
    const peer = spawnSync(
      args.python,
      [
        path.join(ROOT, "bench", "collections_search_hnswlib.py"),
        work,
        String(n),
        String(dim),
        String(q),
        EFS.join(","),
        String(passes),
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    if (peer.status !== 0) throw new Error(`collections_search_hnswlib.py exited ${peer.status}`);
    const peerResults = JSON.parse(peer.stdout) as { search: Point[]; build: number };
    const hnswlib = peerResults.search;
    log(`hnswlib: ${JSON.stringify(peerResults)}`);

    const results: Results = {
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "unknown" },
      n,
      dim,
      queries: q,
      passes,
      loadavg: { before: loadBefore, after: os.loadavg() },
      hnswlib,
      addon: addonResults.points,
      engine,
      build: { hnswlib: peerResults.build, addon: addonResults.build },
      simd: addon.simd,
    };
    writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
    render(results);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Writes the section into docs/benchmarks.md, keeping its "What the numbers say" part. */
function render(r: Results): void {
  const cell = (points: Point[], ef: number) => {
    const point = points.find((p) => p.ef === ef);
    return point ? `${point.qps} / ${point.recall}` : "-";
  };
  const columns: Array<[string, Point[]]> = [
    ["hnswlib", r.hnswlib],
    ["AkiDB HNSW addon alone, f32", r.addon.f32],
    ["AkiDB HNSW addon alone, f16", r.addon.f16],
    ["AkiDB engine, f32 index", r.engine.f32],
    ["AkiDB engine, f16 index", r.engine.f16],
  ];
  const load = (values: number[]) => values.map((v) => v.toFixed(1)).join(" / ");
  const table = [
    `${r.n} x ${r.dim} clustered synthetic unit vectors and ${r.queries} queries (bench/collections.ts's data), k = 10,`,
    `cosine, HNSW M = 16, ef_construction = 128, one query per call on 1 thread, on ${r.machine.cpus} CPUs`,
    `(${r.machine.cpu}; load average (1, 5, 15 min) ${load(r.loadavg.before)} before, ${load(r.loadavg.after)} after: shared with other work).`,
    `Each QPS is the best of ${r.passes} passes over the queries. Re-run:`,
    "`node bench/collections_search.ts --python <venv with hnswlib>`.",
    "",
    `Build rate alone (${BUILD_THREADS} threads, batches of ${BATCH}): hnswlib ${r.build.hnswlib}/s,`,
    `AkiDB HNSW addon ${r.build.addon.f32}/s (f32), ${r.build.addon.f16}/s (f16); the addon's distance kernels: ${r.simd}.`,
    "",
    "QPS / recall@10 by ef:",
    "",
    `| ef | ${columns.map(([name]) => name).join(" | ")} |`,
    `|---|${columns.map(() => "---").join("|")}|`,
    ...EFS.map((ef) => `| ${ef} | ${columns.map(([, points]) => cell(points, ef)).join(" | ")} |`),
  ].join("\n");
  const docs = readFileSync(DOCS, "utf8");
  const start = docs.indexOf(TITLE);
  let reading = "\n\n### What the numbers say\n\n(not yet written)\n";
  let updated: string;
  if (start < 0) {
    const next = docs.indexOf("\n## Retrieval quality");
    const at = next < 0 ? docs.length : next + 1;
    updated = `${docs.slice(0, at)}${TITLE}\n\n${table}${reading}\n${docs.slice(at)}`;
  } else {
    const end = docs.indexOf("\n## ", start + 3);
    const old = docs.slice(start, end < 0 ? docs.length : end + 1);
    const kept = old.indexOf("\n### What the numbers say");
    if (kept >= 0) reading = `${old.slice(kept).trimEnd()}\n`;
    updated = `${docs.slice(0, start)}${TITLE}\n\n${table}\n${reading}${end < 0 ? "" : `\n${docs.slice(end + 1)}`}`;
  }
  writeFileSync(DOCS, updated);
}

if (args.render) render(JSON.parse(readFileSync(RESULTS, "utf8")) as Results);
else await main();
