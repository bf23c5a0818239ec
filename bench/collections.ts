// Collections benchmark: AkiDB (the real `bin/akidb serve`, user_provided mode, over HTTP) beside
// hnswlib and Chroma (PersistentClient) on the same clustered synthetic data, in one run.
//
//   node bench/collections.ts [--n 100000] [--dim 384] [--queries 500] [--python PATH] [--render]
//                             [--ingest-only] [--http-only] [--insert-threads N]
//
// --python is an interpreter with hnswlib and chromadb installed (a throwaway venv, never the
// project's lock: see docs/benchmarks.md). Results go to bench/results/collections.json and the
// "Collections" section of docs/benchmarks.md; --render rewrites the section from the results.
// --ingest-only measures the HTTP ingests (and /health meanwhile), then the same documents into the
// store in-process, the index's add alone, hnswlib and Chroma (bench/results/collections-ingest.json);
// --http-only measures the three HTTP ingests (JSON, base64, JSON in float32 digits: VectorEncoding)
// alone (and /health meanwhile), for paired before/after runs of the server's ingest path
// (bench/results/collections-ingest-http[-dim].json);
// --insert-threads sets the server's collection.insert_threads (default: the server's).
//
// Measured: ingest throughput (documents/s, 1000 per request, 2 clients) and the worst /health
// latency meanwhile; search QPS and recall@10 for a sweep of ef, plain and with a 10%-selective
// metadata filter (ground truth: exact search); RAM per vector for f32/f16/i8 (RSS growth of a
// fresh process); start-up time from a snapshot and after losing it (rebuild); disk after three
// rounds of updating every vector.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { setImmediate } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { addon as nativeAddon } from "../control-plane/src/native.ts";
import {
  bucketDocuments,
  bucketOf,
  clustered,
  exactTopK,
  LATENT,
  row,
  sweepPoint,
  vectorField,
} from "./collections_data.ts";
import { type RunningProcess, startControlPlane } from "./servers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
/** 384 dimensions (the default) writes collections.json and the main section; another size its own. */
const resultsPath = (dim: number) =>
  path.join(ROOT, "bench", "results", dim === 384 ? "collections.json" : `collections-${dim}.json`);
const DOCS = path.join(ROOT, "docs", "benchmarks.md");
const K = 10;
const EFS = [16, 32, 64, 128, 256, 512];
/**
 * Passes over the queries per search point, the best kept (AkiDB and hnswlib; Chroma gets one, its
 * filtered search being ~20 QPS): this machine's speed moves by half within minutes.
 */
const SEARCH_PASSES = 3;
/** Documents per upsert: 1000 at 384 dimensions, fewer above so a JSON body stays ~7.6 MB. */
let BATCH = 1000;
const CLIENTS = 2;
const RAM_N = 20_000;
const UPDATE_N = 20_000;

/** A worker that GETs /health every 20 ms until told to stop, then posts every answer's ms. */
const HEALTH_PROBE = `
const { parentPort, workerData } = require("node:worker_threads");
const times = [];
let running = true;
parentPort.on("message", () => { running = false; });
(async () => {
  while (running) {
    const started = performance.now();
    await fetch(workerData.url + "/health");
    times.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  parentPort.postMessage(times);
})();
`;

const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "100000" },
    dim: { type: "string", default: "384" },
    queries: { type: "string", default: "500" },
    python: { type: "string", default: ".tools/bench-peers/bin/python" },
    render: { type: "boolean", default: false },
    "ingest-only": { type: "boolean", default: false },
    "http-only": { type: "boolean", default: false },
    "insert-threads": { type: "string" },
    "ram-child": { type: "string" },
  },
});

const FILTER_BUCKET = 3;

/** Exact top-K ids of each query among `ids` (cosine: the vectors are unit length). */
function groundTruth(base: Float32Array, ids: number[], queries: Float32Array, dim: number): number[][] {
  const subset = new Float32Array(ids.length * dim);
  ids.forEach((id, i) => {
    subset.set(row(base, dim, id), i * dim);
  });
  return exactTopK(subset, queries, dim, K).map((found) => found.map((i) => ids[i]!));
}

/** POSTs `body` (JSON bytes as they are, anything else through JSON.stringify) and returns the answer's JSON. */
async function post(url: string, route: string, body: unknown): Promise<unknown> {
  const response = await fetch(`${url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${route}: ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * A search sweep's requests: one kept-alive node:http connection. undici's `fetch` spent ~1 ms of
 * client CPU per small request on these 2 CPUs, which the server shares: it measured the client.
 */
const searchAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function postSearch(url: string, route: string, body: unknown): Promise<unknown> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${url}${route}`,
      {
        method: "POST",
        agent: searchAgent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const answer = Buffer.concat(chunks).toString("utf8");
          if (response.statusCode === 200) resolve(JSON.parse(answer));
          else reject(new Error(`${route}: ${response.statusCode} ${answer}`));
        });
      },
    );
    request.on("error", reject);
    request.end(text);
  });
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

/**
 * How a request writes its vectors: "json" is JSON.stringify of the float32 values widened to double
 * (17 significant digits, e.g. 0.10000000149011612: what a client holding float32 in a double array
 * sends, like numpy's tolist()); "json-float32" each value as the shortest decimal that reads back as
 * the same float32 (e.g. 0.1: what AkiDB's /v1/embeddings, TEI and OpenAI write, so what a client
 * forwarding their vectors sends; the addon's float32Json writes it); "base64" the little-endian
 * float32 bytes. The server stores the same float32 values from all three.
 */
type VectorEncoding = "json" | "json-float32" | "base64";

/** One upsert request's JSON text: documents `ids` of `base`, with their bucket and `version`. */
function upsertBody(
  base: Float32Array,
  dim: number,
  ids: number[],
  version: number,
  encoding: VectorEncoding,
) {
  if (encoding !== "json-float32") {
    return JSON.stringify({
      documents: ids.map((i) => ({
        id: String(i),
        vector: vectorField(row(base, dim, i), encoding),
        metadata: { bucket: bucketOf(i), version },
      })),
    });
  }
  const { float32Json } = nativeAddon();
  const documents = ids.map(
    (i) =>
      `{"id":"${i}","vector":${float32Json(row(base, dim, i))},"metadata":${JSON.stringify({ bucket: bucketOf(i), version })}}`,
  );
  return `{"documents":[${documents.join(",")}]}`;
}

async function ingest(
  url: string,
  base: Float32Array,
  dim: number,
  ids: number[],
  version: number,
  collection = "bench",
  encoding: VectorEncoding = "json",
) {
  // The bodies are written before the clock starts: the clients share the server's 2 CPUs, and
  // formatting numbers (JSON.stringify of 1000 x 384 doubles: ~60 ms) is the client's work, on its
  // own machine in a deployment. Kept as bytes (off the JS heap): up to ~2 GB at 1024 dimensions.
  const bodies: Buffer[] = [];
  for (let start = 0; start < ids.length; start += BATCH) {
    bodies.push(Buffer.from(upsertBody(base, dim, ids.slice(start, start + BATCH), version, encoding)));
    // A turn of the event loop per body: a keep-alive socket the server closed while this loop was
    // busy must be seen closed before fetch reuses it ("other side closed" otherwise).
    await setImmediate();
  }
  // /health is timed from a thread of its own, so the clients' turns do not delay the probes.
  const health = new Worker(HEALTH_PROBE, { eval: true, workerData: { url } });
  // Scraping /metrics restarts the server's event-loop delay histogram: the next scrape covers the ingest.
  await serverLoopDelayMaxMs(url);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      // Taken off the list as sent, so a body's memory goes once it is.
      for (let body = bodies.shift(); body; body = bodies.shift()) {
        await post(url, `/api/v1/collections/${collection}/upsert`, body);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const loopDelayMaxMs = await serverLoopDelayMaxMs(url);
  const healthMs = await new Promise<number[]>((resolve) => {
    health.once("message", resolve);
    health.postMessage("stop");
  });
  await health.terminate();
  healthMs.sort((a, b) => a - b);
  return {
    docs_per_s: Math.round(ids.length / seconds),
    seconds: round(seconds),
    worst_health_ms: round(healthMs.at(-1) ?? 0),
    p99_health_ms: round(healthMs[Math.floor(0.99 * (healthMs.length - 1))] ?? 0),
    health_probes: healthMs.length,
    server_loop_delay_max_ms: round(loopDelayMaxMs),
  };
}

/**
 * The longest the server's HTTP event loop was blocked since the previous scrape (prom-client's
 * event-loop delay monitor, reset by each scrape): the server's own share of a slow `/health`,
 * without the client's and the OS scheduler's.
 */
async function serverLoopDelayMaxMs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => /^\w*nodejs_eventloop_lag_max_seconds /.test(l));
  return line ? Number(line.split(" ")[1]) * 1000 : Number.NaN;
}

async function searchSweep(
  url: string,
  queries: Float32Array,
  dim: number,
  truth: number[][],
  filter: boolean,
) {
  const q = queries.length / dim;
  const sweep = [];
  for (const ef of EFS) {
    sweep.push(
      await sweepPoint(ef, q, SEARCH_PASSES, truth, async (i) => {
        const body = (await postSearch(url, "/api/v1/collections/bench/search", {
          vector: Array.from(row(queries, dim, i)),
          k: K,
          ef,
          include: [],
          ...(filter ? { filter: { bucket: FILTER_BUCKET } } : {}),
        })) as { results: Array<{ id: string }> };
        return body.results.map((hit) => Number(hit.id));
      }),
    );
  }
  return sweep;
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** `--ram-child q`: RSS growth of this fresh process for RAM_N vectors in an index of quantization q. */
async function ramChild(quantization: string, dim: number) {
  const { VectorIndex } = await import("../control-plane/src/collections/vector-index.ts");
  const base = clustered(RAM_N, dim, 7);
  const spec = {
    name: "ram",
    dimension: dim,
    metric: "cosine" as const,
    quantization: quantization as "f32",
    index: { M: 16, ef_construction: 128, ef_search: 64 },
    model: null,
  };
  global.gc?.();
  const before = process.memoryUsage().rss;
  const index = new VectorIndex(spec);
  for (let i = 0; i < RAM_N; i++) index.add(i, row(base, dim, i));
  const after = process.memoryUsage().rss;
  process.stdout.write(
    JSON.stringify({ bytes_per_vector: Math.round((after - before) / RAM_N), size: index.size }),
  );
}

async function main() {
  const n = Number(args.n);
  const dim = Number(args.dim);
  const q = Number(args.queries);
  if (args["ram-child"]) return ramChild(args["ram-child"], dim);
  BATCH = Math.min(1000, Math.floor(384_000 / dim));
  if (args.render) return render(JSON.parse(readFileSync(resultsPath(dim), "utf8")));

  const work = mkdtempSync(path.join(os.tmpdir(), "akidb-bench-collections-"));
  const dataDir = path.join(work, "data");
  let server: RunningProcess | undefined;
  try {
    const loadBefore = os.loadavg();
    const base = clustered(n, dim, 1);
    const queries = clustered(q, dim, 2);
    writeFileSync(path.join(work, "base.f32"), base);
    writeFileSync(path.join(work, "queries.f32"), queries);
    const all = Array.from({ length: n }, (_, i) => i);
    const filtered = all.filter((i) => bucketOf(i) === FILTER_BUCKET);
    // --http-only measures no search: no ground truth (an exact scan, minutes at 1024 dimensions).
    const truth = args["http-only"]
      ? { plain: [], filtered: [] }
      : {
          plain: groundTruth(base, all, queries, dim),
          filtered: groundTruth(base, filtered, queries, dim),
        };
    writeFileSync(path.join(work, "truth.json"), JSON.stringify(truth));
    log(`data: ${n} x ${dim}, ${q} queries, ground truth done`);

    const config = {
      embedding: { mode: "user_provided" },
      storage: { data_dir: dataDir },
      collection: {
        max_queries_per_search: 100,
        ...(args["insert-threads"] ? { insert_threads: Number(args["insert-threads"]) } : {}),
      },
    };
    server = await startControlPlane(config);
    await post(server.url, "/api/v1/collections", { name: "bench", dimension: dim, metric: "cosine" });
    const ingestResult = await ingest(server.url, base, dim, all, 0);
    log(`akidb ingest: ${JSON.stringify(ingestResult)}`);
    // The same documents again with base64 vectors, into a second collection dropped afterwards.
    await post(server.url, "/api/v1/collections", { name: "bench_b64", dimension: dim, metric: "cosine" });
    const ingestBase64 = await ingest(server.url, base, dim, all, 0, "bench_b64", "base64");
    log(`akidb ingest, base64 vectors: ${JSON.stringify(ingestBase64)}`);
    await fetch(`${server.url}/api/v1/collections/bench_b64`, { method: "DELETE" });
    // And with JSON vectors in float32's shortest digits, likewise.
    await post(server.url, "/api/v1/collections", { name: "bench_f32", dimension: dim, metric: "cosine" });
    const ingestFloat32 = await ingest(server.url, base, dim, all, 0, "bench_f32", "json-float32");
    log(`akidb ingest, JSON vectors in float32 digits: ${JSON.stringify(ingestFloat32)}`);
    await fetch(`${server.url}/api/v1/collections/bench_f32`, { method: "DELETE" });
    if (args["http-only"]) {
      const out = path.join(
        ROOT,
        "bench",
        "results",
        dim === 384 ? "collections-ingest-http.json" : `collections-ingest-http-${dim}.json`,
      );
      const results = {
        n,
        dim,
        batch: BATCH,
        clients: CLIENTS,
        loadavg: { before: loadBefore, after: os.loadavg() },
        akidb_http_json: ingestResult,
        akidb_http_base64: ingestBase64,
        akidb_http_json_float32: ingestFloat32,
      };
      writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
      log(`http ingests: ${JSON.stringify(results)}`);
      return;
    }
    if (args["ingest-only"]) {
      await server.stop();
      server = undefined;
      return await ingestComparison(work, base, dim, q, loadBefore, {
        ingestResult,
        ingestBase64,
        ingestFloat32,
      });
    }
    const plain = await searchSweep(server.url, queries, dim, truth.plain, false);
    log(`akidb search: ${JSON.stringify(plain)}`);
    const withFilter = await searchSweep(server.url, queries, dim, truth.filtered, true);
    log(`akidb filtered search: ${JSON.stringify(withFilter)}`);
    const statsBefore = (await (await fetch(`${server.url}/api/v1/collections/bench`)).json()) as Record<
      string,
      number
    >;
    await server.stop();
    server = undefined;
    const engine = await engineSweeps(dataDir, base, queries, dim, truth);
    log(`akidb engine in-process: ${JSON.stringify(engine)}`);

    let started = performance.now();
    server = await startControlPlane(config);
    const startFromSnapshotS = round((performance.now() - started) / 1000, 2);
    await server.stop();
    server = undefined;
    rmSync(path.join(dataDir, "indexes"), { recursive: true, force: true });
    started = performance.now();
    server = await startControlPlane(config);
    const startRebuildS = round((performance.now() - started) / 1000, 2);
    log(`akidb start: snapshot ${startFromSnapshotS} s, rebuild ${startRebuildS} s`);

    // Disk after three rounds of updating every vector of a UPDATE_N-document collection.
    await post(server.url, "/api/v1/collections", { name: "updates", dimension: dim, metric: "cosine" });
    const updateIds = all.slice(0, Math.min(UPDATE_N, n));
    const disk: number[] = [];
    for (let round = 0; round <= 3; round++) {
      await ingestInto(server.url, "updates", base, dim, updateIds, round);
      disk.push(dirBytes(dataDir));
    }
    await server.stop();
    server = undefined;
    log(`akidb disk after update rounds: ${disk.join(", ")}`);

    const ram: Record<string, number> = {};
    for (const quantization of ["f32", "f16", "i8"]) {
      const out = execFileSync(
        process.execPath,
        [import.meta.filename, "--ram-child", quantization, "--dim", String(dim)],
        {
          encoding: "utf8",
        },
      );
      ram[quantization] = (JSON.parse(out) as { bytes_per_vector: number }).bytes_per_vector;
    }
    log(`akidb RAM/vector: ${JSON.stringify(ram)}`);

    const others = baselines(work, n, dim, q, EFS);

    const results = {
      machine: {
        cpus: os.cpus().length,
        cpu: os.cpus()[0]?.model ?? "unknown",
        ram_gb: round(os.totalmem() / 2 ** 30),
      },
      n,
      dim,
      queries: q,
      k: K,
      batch: BATCH,
      search_passes: SEARCH_PASSES,
      search_client: "node:http, kept alive",
      loadavg: { before: loadBefore, after: os.loadavg() },
      akidb: {
        ingest: ingestResult,
        ingest_base64: ingestBase64,
        ingest_json_float32: ingestFloat32,
        search: plain,
        filtered_search: withFilter,
        bytes_in_ram: statsBefore.bytes_in_ram,
        engine_in_process: engine,
        start_from_snapshot_s: startFromSnapshotS,
        start_rebuild_s: startRebuildS,
        ram_bytes_per_vector: ram,
        disk_bytes_after_update_rounds: { documents: updateIds.length, bytes: disk },
      },
      ...others,
    };
    mkdirSync(path.dirname(resultsPath(dim)), { recursive: true });
    writeFileSync(resultsPath(dim), `${JSON.stringify(results, null, 2)}\n`);
    render(results);
  } finally {
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/** hnswlib and Chroma on the data in `work` (bench/collections_baselines.py); no efs: their ingests only. */
function baselines(work: string, n: number, dim: number, q: number, efs: number[]): Record<string, unknown> {
  const run = spawnSync(
    args.python,
    [
      path.join(ROOT, "bench", "collections_baselines.py"),
      work,
      String(n),
      String(dim),
      String(q),
      efs.join(","),
      String(BATCH),
      String(SEARCH_PASSES),
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  if (run.status !== 0) throw new Error(`collections_baselines.py exited ${run.status}`);
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

/**
 * `--ingest-only`: the HTTP ingests just measured beside, on the same data and in one run, where
 * their time goes and the peers: the store in-process (SQLite commits and index inserts, no HTTP or
 * JSON), the index's `addMany` alone at the same M, ef_construction and insert threads (the floor on
 * this machine), hnswlib and Chroma. Written to bench/results/collections-ingest[-dim].json.
 */
async function ingestComparison(
  work: string,
  base: Float32Array,
  dim: number,
  q: number,
  loadBefore: number[],
  http: { ingestResult: unknown; ingestBase64: unknown; ingestFloat32: unknown },
) {
  const n = base.length / dim;
  const threads = Number(args["insert-threads"] ?? 2);
  const { LocalCollectionStore } = await import("../control-plane/src/collections/local-store.ts");
  const store = await LocalCollectionStore.open({
    dataDir: path.join(work, "in-process"),
    snapshotEveryOps: 10_000,
    exactSearchMaxMatches: 2048,
    maxCollections: 10,
    insertThreads: threads,
  });
  const index = { M: 16, ef_construction: 128, ef_search: 64 };
  await store.create({
    name: "b",
    dimension: dim,
    metric: "cosine",
    quantization: "f32",
    index,
    model: null,
  });
  let next = 0;
  let started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < n) {
        const start = next;
        next += BATCH;
        await store.upsert("b", bucketDocuments(base, dim, start, Math.min(n, start + BATCH)));
      }
    }),
  );
  const inProcess = { docs_per_s: Math.round(n / ((performance.now() - started) / 1000)) };
  await store.close();
  log(`akidb store in-process: ${JSON.stringify(inProcess)}`);

  // The store's own index class, without SQLite, the log or the apply chunks around it.
  const { VectorIndex } = await import("../control-plane/src/collections/vector-index.ts");
  const floorIndex = new VectorIndex({
    name: "floor",
    dimension: dim,
    metric: "cosine",
    quantization: "f32",
    index,
    model: null,
  });
  started = performance.now();
  for (let start = 0; start < n; start += BATCH) {
    const end = Math.min(n, start + BATCH);
    floorIndex.addMany(
      Array.from({ length: end - start }, (_, i) => ({ key: start + i, vector: row(base, dim, start + i) })),
      threads,
    );
  }
  const floor = { docs_per_s: Math.round(n / ((performance.now() - started) / 1000)), threads };
  log(`index add alone: ${JSON.stringify(floor)}`);

  const peers = baselines(work, n, dim, q, []);
  const results = {
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "unknown" },
    n,
    dim,
    batch: BATCH,
    clients: CLIENTS,
    insert_threads: threads,
    loadavg: { before: loadBefore, after: os.loadavg() },
    akidb_http_json: http.ingestResult,
    akidb_http_base64: http.ingestBase64,
    akidb_http_json_float32: http.ingestFloat32,
    akidb_store_in_process: inProcess,
    index_add_alone: floor,
    hnswlib: (peers.hnswlib as EngineResult & { ingest_2_threads?: unknown }).ingest,
    hnswlib_2_threads: (peers.hnswlib as { ingest_2_threads?: unknown }).ingest_2_threads,
    chroma: (peers.chroma as EngineResult).ingest,
  };
  const out = path.join(
    ROOT,
    "bench",
    "results",
    dim === 384 ? "collections-ingest.json" : `collections-ingest-${dim}.json`,
  );
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  log(`ingest comparison: ${JSON.stringify(results)}`);
}

/**
 * The same sweeps through LocalCollectionStore in this process (no HTTP, no JSON): the engine
 * hnswlib compares with. Then the same data in an f16 index (ingested in-process), swept too.
 */
async function engineSweeps(
  dataDir: string,
  base: Float32Array,
  queries: Float32Array,
  dim: number,
  truth: { plain: number[][]; filtered: number[][] },
) {
  const { LocalCollectionStore } = await import("../control-plane/src/collections/local-store.ts");
  const { parseFilter } = await import("../control-plane/src/collections/filter.ts");
  const started = performance.now();
  const store = await LocalCollectionStore.open({
    dataDir,
    snapshotEveryOps: 10_000,
    exactSearchMaxMatches: 2048,
    maxCollections: 10,
  });
  const openS = round((performance.now() - started) / 1000, 2);
  const q = queries.length / dim;
  const include = { vector: false, text: false, metadata: false };
  const filter = parseFilter({ bucket: FILTER_BUCKET });
  const sweep = async (collection: string, filtered: boolean) => {
    const points = [];
    for (const ef of EFS) {
      points.push(
        await sweepPoint(ef, q, SEARCH_PASSES, filtered ? truth.filtered : truth.plain, async (i) => {
          const query = { vector: row(queries, dim, i), k: K, ef, include, ...(filtered ? { filter } : {}) };
          const [hits] = await store.search(collection, [query]);
          return hits!.map((hit) => Number(hit.id));
        }),
      );
    }
    return points;
  };
  try {
    const search = await sweep("bench", false);
    const filteredSearch = await sweep("bench", true);
    const { dimension, metric, index, model } = await store.get("bench");
    await store.create({ name: "bench_f16", dimension, metric, quantization: "f16", index, model });
    const n = base.length / dim;
    for (let start = 0; start < n; start += BATCH) {
      await store.upsert("bench_f16", bucketDocuments(base, dim, start, Math.min(n, start + BATCH)));
    }
    const f16 = { search: await sweep("bench_f16", false), filtered_search: await sweep("bench_f16", true) };
    // The start-up, rebuild and disk measurements that follow are of the f32 collection alone.
    await store.drop("bench_f16");
    return { open_s: openS, search, filtered_search: filteredSearch, f16 };
  } finally {
    await store.close();
  }
}

async function ingestInto(
  url: string,
  name: string,
  base: Float32Array,
  dim: number,
  ids: number[],
  version: number,
) {
  for (let start = 0; start < ids.length; start += BATCH) {
    await post(url, `/api/v1/collections/${name}/upsert`, {
      documents: ids.slice(start, start + BATCH).map((i) => ({
        id: String(i),
        vector: Array.from(row(base, dim, (i + version * 7919) % (base.length / dim))),
        metadata: { bucket: bucketOf(i), version },
      })),
    });
  }
}

function log(line: string) {
  process.stderr.write(`bench/collections: ${line}\n`);
}

type Sweep = Array<{ ef: number; qps: number; recall: number }>;

interface EngineResult {
  ingest?: { docs_per_s: number };
  search?: Sweep;
  filtered_search?: Sweep;
}

interface IngestResult {
  docs_per_s: number;
  worst_health_ms: number;
  p99_health_ms?: number;
  health_probes?: number;
  server_loop_delay_max_ms?: number;
}

interface Results {
  machine: { cpus: number; cpu: string; ram_gb: number };
  n: number;
  dim: number;
  queries: number;
  k: number;
  batch?: number;
  /** Passes per search point, the best kept (absent: one, as runs before 2026-12-01 12:40 UTC). */
  search_passes?: number;
  /** How the HTTP search sweep sent its requests (absent: undici's fetch). */
  search_client?: string;
  loadavg?: { before: number[]; after: number[] };
  akidb: EngineResult & {
    ingest: IngestResult;
    ingest_base64?: IngestResult;
    ingest_json_float32?: IngestResult;
    ram_bytes_per_vector: Record<string, number>;
    start_from_snapshot_s: number;
    start_rebuild_s: number;
    disk_bytes_after_update_rounds: { documents: number; bytes: number[] };
    engine_in_process: EngineResult & { open_s: number; f16?: EngineResult };
  };
  hnswlib?: EngineResult & { ingest_2_threads?: { docs_per_s: number } };
  chroma?: EngineResult;
}

const healthText = (i: IngestResult) =>
  `worst ${i.worst_health_ms} ms, P99 ${i.p99_health_ms ?? "-"} ms (${i.health_probes ?? "?"} probes, one every 20 ms)${i.server_loop_delay_max_ms === undefined ? "" : `; the server's event loop blocked ${i.server_loop_delay_max_ms} ms at most`}`;

const sweepText = (sweep: Sweep | undefined) =>
  (sweep ?? []).map((p) => `${p.ef}: ${p.qps} / ${p.recall}`).join("; ");

/** The best QPS among sweep points at recall >= 0.95, as text. */
function atRecall(sweep: Sweep | undefined): string {
  if (!sweep) return "-";
  const ok = (sweep ?? []).filter((p) => p.recall >= 0.95).sort((a, b) => b.qps - a.qps)[0];
  return ok ? `${ok.qps} (ef ${ok.ef}, recall ${ok.recall})` : "recall 0.95 not reached";
}

function title(dim: number): string {
  return dim === 384
    ? "## Collections (`bench/collections.ts`)"
    : `## Collections at ${dim} dimensions (\`bench/collections.ts --dim ${dim}\`)`;
}

function render(r: Results) {
  const batch = r.batch ?? 1000;
  const engines: Array<[string, EngineResult | undefined]> = [
    [
      `AkiDB (HTTP; ingest: JSON vectors, ${batch} per request, 2 clients, 2 insert threads; search: 1 client (${r.search_client ?? "fetch"}), 1 thread)`,
      r.akidb,
    ],
    ...(r.akidb.ingest_base64
      ? [
          ["AkiDB (HTTP; ingest: base64 vectors, otherwise the same)", { ingest: r.akidb.ingest_base64 }] as [
            string,
            EngineResult,
          ],
        ]
      : []),
    ...(r.akidb.ingest_json_float32
      ? [
          [
            "AkiDB (HTTP; ingest: JSON vectors in float32's shortest digits, as /v1/embeddings writes them)",
            { ingest: r.akidb.ingest_json_float32 },
          ] as [string, EngineResult],
        ]
      : []),
    ["AkiDB engine (in-process, no HTTP; search: 1 thread)", r.akidb.engine_in_process],
    ["AkiDB engine, f16 index (in-process, no HTTP; search: 1 thread)", r.akidb.engine_in_process.f16],
    ["hnswlib (in-process, in RAM only; insert and search: 1 thread)", r.hnswlib],
    ...(r.hnswlib?.ingest_2_threads
      ? [["hnswlib (insert: 2 threads)", { ingest: r.hnswlib.ingest_2_threads }] as [string, EngineResult]]
      : []),
    ["Chroma PersistentClient (in-process; its default insert threads, one per CPU)", r.chroma],
  ];
  const present = engines.filter((entry): entry is [string, EngineResult] => entry[1] !== undefined);
  const lines = [
    title(r.dim),
    "",
    `${r.n} x ${r.dim} clustered synthetic unit vectors (100 Gaussian clusters in ${LATENT} latent dimensions, projected), ${r.queries} queries, k = ${r.k},`,
    `cosine, HNSW M = 16, ef_construction = 128, on ${r.machine.cpus} CPUs (${r.machine.cpu}, ${r.machine.ram_gb} GB),`,
    `shared with other work while it ran (load average ${r.loadavg ? `${round(r.loadavg.before[0]!)} before, ${round(r.loadavg.after[0]!)} after` : "not recorded"}). AkiDB is measured end to end through its HTTP API`,
    "(user_provided mode); hnswlib and Chroma are called in-process from Python. The",
    "filtered search matches 10% of the documents (`{bucket: 3}`); recall is against exact search",
    "over the documents the filter admits.",
    r.search_passes
      ? `Each search QPS is the best of ${r.search_passes} passes over the queries (Chroma's: one). Re-run: \`make bench-collections\`.`
      : "Each search QPS is one pass over the queries. Re-run: `make bench-collections`.",
    "",
    "| Engine | Ingest (docs/s) | Search QPS at recall@10 >= 0.95 | Filtered (10%) QPS at recall >= 0.95 |",
    "|---|---|---|---|",
    ...present.map(
      ([name, e]) =>
        `| ${name} | ${e.ingest?.docs_per_s ?? "-"} | ${atRecall(e.search)} | ${atRecall(e.filtered_search)} |`,
    ),
    "",
    "Sweeps (ef: QPS / recall@10):",
    "",
    ...present.flatMap(([name, e]) =>
      e.search === undefined
        ? []
        : [`* ${name}: ${sweepText(e.search)}`, `  filtered: ${sweepText(e.filtered_search)}`],
    ),
    "",
    "| AkiDB | Value |",
    "|---|---|",
    `| \`/health\` latency during the ${r.n}-vector ingest, JSON vectors | ${healthText(r.akidb.ingest)} |`,
    ...(r.akidb.ingest_base64 ? [`| the same, base64 vectors | ${healthText(r.akidb.ingest_base64)} |`] : []),
    ...(r.akidb.ingest_json_float32
      ? [`| the same, JSON vectors in float32 digits | ${healthText(r.akidb.ingest_json_float32)} |`]
      : []),
    `| RAM per vector (index only, RSS growth for ${RAM_N} vectors) | f32 ${r.akidb.ram_bytes_per_vector.f32} B, f16 ${r.akidb.ram_bytes_per_vector.f16} B, i8 ${r.akidb.ram_bytes_per_vector.i8} B |`,
    `| start-up with ${r.n} vectors, from the snapshot (the server, until \`/health\` answers) | ${r.akidb.start_from_snapshot_s} s |`,
    `| opening the data directory in-process (snapshot load) | ${r.akidb.engine_in_process.open_s} s |`,
    `| start-up with ${r.n} vectors, snapshot deleted (rebuilt from SQLite) | ${r.akidb.start_rebuild_s} s |`,
    `| data_dir (the ${r.n}-vector collection and a second one) after inserting ${r.akidb.disk_bytes_after_update_rounds.documents} vectors into the second, then after each of 3 rounds updating all of them | ${r.akidb.disk_bytes_after_update_rounds.bytes.map((b: number) => `${round(b / 2 ** 20)} MiB`).join(" -> ")} |`,
    "",
  ];
  const docs = readFileSync(DOCS, "utf8");
  const startAt = docs.indexOf(title(r.dim));
  if (startAt < 0) {
    // A new section goes after the main collections section (or at the end).
    const main = docs.indexOf(title(384));
    const after = main < 0 ? -1 : docs.indexOf("\n## ", main + 3);
    const at = after < 0 ? docs.length : after + 1;
    writeFileSync(DOCS, `${docs.slice(0, at).trimEnd()}\n\n${lines.join("\n")}\n${docs.slice(at)}`);
    return;
  }
  const next = docs.indexOf("\n## ", startAt + 3);
  const old = docs.slice(startAt, next < 0 ? undefined : next + 1);
  // The written reading of the numbers is kept; the generated part above it is replaced.
  const reading = old.indexOf("### What the numbers say");
  const section = lines.join("\n") + (reading < 0 ? "" : `\n${old.slice(reading).trimEnd()}\n\n`);
  writeFileSync(DOCS, docs.slice(0, startAt) + section + (next < 0 ? "" : docs.slice(next + 1)));
}

await main();
