// Start-up and recovery of a large collection (issue 8's goal: < 10 s for 1M vectors).
//
//   node bench/collections_recovery.ts [--n 1000000] [--dim 384] [--tail 20000] [--no-rebuild]
//                                      [--ef-construction 128] [--data DIR]
//
// Builds one collection of n clustered vectors through the store in-process (no HTTP: the HTTP
// ingest is bench/collections.ts's), closes it (the snapshot is written), then measures:
// * the server (`bin/akidb serve`) starting from that snapshot, until `/health` answers;
// * the server starting after a crash with `tail` updates in the log after the snapshot (they are
//   upserted over HTTP with snapshots held off, then the server is SIGKILLed): load, and the tail's
//   vectors read; then one search for a tail document while the tail is inserted into the graph in
//   the background, and the time until the store logs "log tail indexed";
// * the store opening with the snapshot deleted, so the index is rebuilt from SQLite (in-process,
//   as it may take minutes; --no-rebuild skips it).
// The snapshot file was just written, so it is read from the page cache: a cold disk adds its read
// time. Results go to bench/results/collections-recovery-<n>x<dim>.json.
// --ef-construction sets the build beam: start-up reads the same bytes whatever it is (the graph's
// size is set by n, dim and M), and a low one builds a 1M collection several times faster.
// --data keeps the built data directory in DIR and reuses it when it is there (no build), so code
// changes can be timed on the same data; --tail 0 then leaves it as built (no log tail, no crash).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { LocalCollectionStore } from "../control-plane/src/collections/local-store.ts";
import { bucketDocuments, bucketOf, clustered, row, vectorField } from "./collections_data.ts";
import { startControlPlane } from "./servers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const BATCH = 1000;
const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "1000000" },
    dim: { type: "string", default: "384" },
    tail: { type: "string", default: "20000" },
    "no-rebuild": { type: "boolean", default: false },
    "ef-construction": { type: "string", default: "128" },
    data: { type: "string" },
  },
});

const seconds = (since: number) => Math.round((performance.now() - since) / 10) / 100;
const log = (line: string) => process.stderr.write(`bench/collections_recovery: ${line}\n`);

const storeOptions = (dataDir: string) => ({
  dataDir,
  // No snapshot while building: the one written at close is the one measured.
  snapshotEveryOps: 1e9,
  exactSearchMaxMatches: 2048,
  maxCollections: 10,
  insertThreads: 2,
});

/** The store's "collection loaded" log line (its ms, heads_ms, snapshot_ms, replayed), from the server's output. */
function loadedLine(output: string): Record<string, unknown> | undefined {
  const line = output.split("\n").find((l) => l.includes('"collection loaded"'));
  if (!line) return undefined;
  const { ms, heads_ms, snapshot_ms, replayed, unindexed } = JSON.parse(line) as Record<string, unknown>;
  return { ms, heads_ms, snapshot_ms, replayed, unindexed };
}

/**
 * Seconds from `since` (epoch ms) to the server's "listening" line: from then on `/health` answers
 * (it needs nothing from the store), while `startControlPlane` also waits for `/admin/v1/status`.
 */
function listeningAfter(output: string, since: number): number | undefined {
  const line = output.split("\n").find((l) => l.includes('"msg":"listening"'));
  if (!line) return undefined;
  const { time } = JSON.parse(line) as { time: string };
  return Math.round((Date.parse(time) - since) / 10) / 100;
}

/** The store's "log tail indexed" line (its ms), once the server has written it. */
function tailIndexedLine(output: string): Record<string, unknown> | undefined {
  const line = output.split("\n").find((l) => l.includes('"log tail indexed"'));
  if (!line) return undefined;
  const { ms, vectors } = JSON.parse(line) as Record<string, unknown>;
  return { ms, vectors };
}

async function main() {
  const n = Number(args.n);
  const dim = Number(args.dim);
  const tail = Math.min(Number(args.tail), n);
  const efConstruction = Number(args["ef-construction"]);
  const work = mkdtempSync(path.join(os.tmpdir(), "akidb-bench-recovery-"));
  const dataDir = args.data ?? path.join(work, "data");
  const reuse = args.data !== undefined && existsSync(path.join(dataDir, "akidb.sqlite"));
  const results: Record<string, unknown> = {
    n,
    dim,
    tail,
    // Reused data was built by an earlier run, whose parameters are not known here.
    ...(reuse ? { data_reused: dataDir } : { ef_construction: efConstruction }),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "unknown", loadavg: os.loadavg() },
  };
  const out = path.join(ROOT, "bench", "results", `collections-recovery-${n}x${dim}.json`);
  // Written after every phase, so a run stopped early keeps what it measured.
  const save = () => {
    results.machine = { ...(results.machine as object), loadavg_after: os.loadavg() };
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  };
  try {
    let started = performance.now();
    // Reused data with no tail to write needs no vectors.
    const base = reuse && tail === 0 ? new Float32Array(0) : clustered(n, dim, 1);
    log(`data: ${n} x ${dim} in ${seconds(started)} s`);

    if (!reuse) {
      started = performance.now();
      const store = await LocalCollectionStore.open(storeOptions(dataDir));
      await store.create({
        name: "big",
        dimension: dim,
        metric: "cosine",
        quantization: "f32",
        index: { M: 16, ef_construction: efConstruction, ef_search: 64 },
        model: null,
      });
      for (let start = 0; start < n; start += BATCH) {
        await store.upsert("big", bucketDocuments(base, dim, start, Math.min(n, start + BATCH)));
        if (start % 100_000 === 0 && start > 0) log(`built ${start} in ${seconds(started)} s`);
      }
      results.build_in_process_s = seconds(started);
      results.build_docs_per_s = Math.round(n / (seconds(started) || 1));
      started = performance.now();
      await store.close();
      results.close_with_snapshot_s = seconds(started);
    }
    const snapshot = path.join(dataDir, "indexes");
    results.data_dir_bytes = {
      sqlite: statSync(path.join(dataDir, "akidb.sqlite")).size,
      snapshot: readdirSync(snapshot).reduce((sum, f) => sum + statSync(path.join(snapshot, f)).size, 0),
    };
    log(`built: ${JSON.stringify(results)}`);
    save();

    // Snapshots held off while the tail is written, so it stays in the log for the restart to replay.
    const config = {
      embedding: { mode: "user_provided" },
      storage: { data_dir: dataDir, snapshot_every_ops: 1e9 },
    };
    started = performance.now();
    let server = await startControlPlane(config);
    results.server_start_from_snapshot_s = seconds(started);
    results.server_start_from_snapshot_load = loadedLine(server.log());
    log(
      `server start from snapshot: ${results.server_start_from_snapshot_s} s (${JSON.stringify(results.server_start_from_snapshot_load)})`,
    );
    save();
    if (tail === 0) {
      await server.stop();
      return;
    }
    for (let start = 0; start < tail; start += BATCH) {
      const documents = [];
      for (let i = start; i < Math.min(tail, start + BATCH); i++) {
        documents.push({
          id: String(i),
          vector: vectorField(row(base, dim, (i + 7919) % n), "base64"),
          metadata: { bucket: bucketOf(i), version: 1 },
        });
      }
      const response = await fetch(`${server.url}/api/v1/collections/big/upsert`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ documents }),
      });
      if (!response.ok) throw new Error(`upsert: ${response.status} ${await response.text()}`);
    }
    // A crash: no snapshot at shutdown, the tail stays in the log.
    process.kill(-server.pids.control_plane!, "SIGKILL");
    await server.stop();
    started = performance.now();
    const startedAt = Date.now();
    server = await startControlPlane(config);
    results.server_start_with_log_tail_s = seconds(started);
    results.server_start_with_log_tail_listening_s = listeningAfter(server.log(), startedAt);
    results.server_start_with_log_tail_load = loadedLine(server.log());
    log(
      `server start after a crash with ${tail} updates in the log: ${results.server_start_with_log_tail_s} s (listening, /health answers, after ${results.server_start_with_log_tail_listening_s} s)`,
    );
    // Served at once: the last tail document, by its own vector, while the tail is being indexed.
    const searched = performance.now();
    const last = tail - 1;
    const response = await fetch(`${server.url}/api/v1/collections/big/search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ vector: vectorField(row(base, dim, (last + 7919) % n), "base64"), k: 10 }),
    });
    const found = ((await response.json()) as { results: Array<{ id: string; score: number }> }).results;
    results.first_search_after_crash_restart = {
      ms: Math.round(performance.now() - searched),
      // Among the best: document `(last + 7919) % n` holds the same vector (a tie).
      tail_document_found: found.some(
        (hit) => hit.id === String(last) && hit.score >= found[0]!.score - 1e-6,
      ),
      tail_indexed_yet: tailIndexedLine(server.log()) !== undefined,
    };
    // Code from before the tail was indexed in the background logs no such line: nothing to wait for.
    const load = results.server_start_with_log_tail_load as { unindexed?: number } | undefined;
    if (load?.unindexed) {
      while (!tailIndexedLine(server.log())) await new Promise((resolve) => setTimeout(resolve, 100));
      results.tail_indexed_after_start_s = seconds(started);
      results.tail_indexed = tailIndexedLine(server.log());
    }
    log(
      `first search ${JSON.stringify(results.first_search_after_crash_restart)}; tail indexed ${results.tail_indexed_after_start_s} s after the start began`,
    );
    await server.stop();
    save();

    if (!args["no-rebuild"]) {
      rmSync(snapshot, { recursive: true, force: true });
      started = performance.now();
      const rebuilt = await LocalCollectionStore.open(storeOptions(dataDir));
      results.rebuild_from_sqlite_s = seconds(started);
      log(`rebuild from SQLite (snapshot deleted): ${results.rebuild_from_sqlite_s} s`);
      await rebuilt.close();
    }
    save();
    process.stdout.write(`${JSON.stringify(results)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
