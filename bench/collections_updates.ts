// Disk and RAM of a collection whose every vector is replaced again and again: `rounds` rounds of
// upserting the same `n` ids with new random vectors (base64, 500 per request) through the real
// control plane (user_provided mode), the data directory's bytes and the collection's own
// bytes_on_disk / bytes_in_ram after each round, and the directory after a restart. Shows whether
// dead nodes and compaction (collection.compact_dead_ratio) keep them bounded.
//
//   node bench/collections_updates.ts [--n 20000] [--dim 384] [--rounds 8]
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { generator } from "./collections_data.ts";
import { startControlPlane } from "./servers.ts";

const BATCH = 500;
const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "20000" },
    dim: { type: "string", default: "384" },
    rounds: { type: "string", default: "8" },
  },
});
const n = Number(args.n);
const dim = Number(args.dim);

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

const random = generator(1);

const dataDir = mkdtempSync(path.join(tmpdir(), "akidb-updates-"));
const config = { embedding: { mode: "user_provided" }, storage: { data_dir: dataDir } };
const server = await startControlPlane(config);
async function post(route: string, body: unknown): Promise<void> {
  const response = await fetch(`${server.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${route}: ${response.status} ${await response.text()}`);
}
await post("/api/v1/collections", { name: "updates", dimension: dim, metric: "cosine" });
const rounds = [];
for (let round = 0; round <= Number(args.rounds); round++) {
  const started = performance.now();
  for (let start = 0; start < n; start += BATCH) {
    const documents = [];
    for (let i = start; i < Math.min(start + BATCH, n); i++) {
      const vector = Float32Array.from({ length: dim }, random);
      documents.push({
        id: String(i),
        vector: Buffer.from(vector.buffer).toString("base64"),
        metadata: { round },
      });
    }
    await post("/api/v1/collections/updates/upsert", { documents });
  }
  const collection = (await (await fetch(`${server.url}/api/v1/collections/updates`)).json()) as Record<
    string,
    number
  >;
  rounds.push({
    round,
    docs_per_s: Math.round(n / ((performance.now() - started) / 1000)),
    data_dir_bytes: dirBytes(dataDir),
    bytes_on_disk: collection.bytes_on_disk,
    bytes_in_ram: collection.bytes_in_ram,
  });
  process.stderr.write(`${JSON.stringify(rounds.at(-1))}\n`);
}
await server.stop();
const restarted = await startControlPlane(config);
await restarted.stop();
const result = { n, dim, rounds, data_dir_bytes_after_restart: dirBytes(dataDir) };
rmSync(dataDir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
