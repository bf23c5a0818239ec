// Collections end to end: the real control plane with the real inference process on the Qwen3
// fixture checkpoint. Text is embedded through the batcher, the inference process is killed (text
// answers 503 and writes nothing, vectors still work), and a server restarted on the same data
// directory with another model keeps the documents and answers text 409.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../control-plane/test/helpers.ts";
import { type ContractWatch, watchContract } from "./contract.ts";
import { REPO, type RunningAkiDB, startAkiDB } from "./server.ts";

const QWEN = path.join(REPO, ".cache", "fixtures", "qwen3-4bit");
const GEMMA = path.join(REPO, ".cache", "fixtures", "gemma3-4bit");

let server: RunningAkiDB | undefined;
const contract: ContractWatch = watchContract(() => server?.url);
const dataDir = mkdtempSync(path.join(tmpdir(), "akidb-collections-e2e-"));

async function call(method: string, route: string, body?: unknown) {
  const response = await fetch(`${server!.url}${route}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the assertions
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

async function inferenceState(): Promise<{ state: string; pid: number | null }> {
  return (await call("GET", "/admin/v1/status")).body.inference;
}

const start = (model: string) =>
  startAkiDB({
    AKIDB_MODEL: model,
    AKIDB_STORAGE_DATA_DIR: dataDir,
    // A wide window between the kill and the restart, for the requests made meanwhile.
    AKIDB_EMBEDDING_MLX_RESTART_BACKOFF_INITIAL_MS: "60000",
  });

beforeAll(async () => {
  server = await start(QWEN);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  expect(await contract.violations()).toEqual([]);
  contract.stop();
});

describe("collections through the real inference process", () => {
  it("embeds text upserts as documents and text searches as queries", async () => {
    const created = await call("POST", "/api/v1/collections", { name: "notes" });
    expect(created.status).toBe(201);
    const model = created.body.model as string;
    expect(created.body.dimension).toBeGreaterThan(0);
    const upsert = await call("POST", "/api/v1/collections/notes/upsert", {
      documents: [
        { id: "fox", text: "The quick brown fox jumps over the lazy dog.", metadata: { kind: "animal" } },
        { id: "db", text: "A vector database stores embeddings for search.", metadata: { kind: "tech" } },
        { id: "tea", text: "Green tea is brewed at eighty degrees.", metadata: { kind: "food" } },
      ],
    });
    expect(upsert.status).toBe(200);
    expect(upsert.body).toMatchObject({ inserted: 3, embeddings_generated: 3, model });
    expect(upsert.body.usage.total_tokens).toBeGreaterThan(3);
    // The stored vector is the model's document embedding of the text.
    const direct = await call("POST", "/v1/embeddings", {
      input: "Green tea is brewed at eighty degrees.",
      input_type: "document",
    });
    const stored = await call("GET", "/api/v1/collections/notes/documents/tea");
    const cosine = dot(direct.body.data[0].embedding, stored.body.vector);
    expect(cosine).toBeGreaterThan(0.999);
    // A query is embedded with the query prompt: its vector is the query embedding's.
    const query = "Green tea is brewed at eighty degrees.";
    const queryVector = (await call("POST", "/v1/embeddings", { input: query, input_type: "query" })).body
      .data[0].embedding;
    const byText = await call("POST", "/api/v1/collections/notes/search", { text: query, k: 3, include: [] });
    const byVector = await call("POST", "/api/v1/collections/notes/search", {
      vector: queryVector,
      k: 3,
      include: [],
    });
    expect(byText.body.results.map((h: { id: string }) => h.id)).toEqual(
      byVector.body.results.map((h: { id: string }) => h.id),
    );
    expect(byText.body.results[0].score).toBeCloseTo(byVector.body.results[0].score, 3);
    const filtered = await call("POST", "/api/v1/collections/notes/search", {
      text: "animals",
      k: 3,
      filter: { kind: { $in: ["tech", "food"] } },
    });
    expect(filtered.body.results.map((h: { id: string }) => h.id).sort()).toEqual(["db", "tea"]);
  });

  it("answers text 503 with Retry-After and writes nothing while the inference process is down; vectors still work", async () => {
    const { pid } = await inferenceState();
    process.kill(pid!, "SIGKILL");
    await waitFor(
      async () => (await inferenceState()).state === "restarting",
      "the supervisor to see the exit",
    );
    const before = (await call("GET", "/api/v1/collections/notes")).body.count as number;
    const dimension = (await call("GET", "/api/v1/collections/notes")).body.dimension as number;
    const vector = Array.from({ length: dimension }, (_, i) => (i === 0 ? 1 : 0));
    const text = await call("POST", "/api/v1/collections/notes/upsert", {
      documents: [
        { id: "v1", vector },
        { id: "t1", text: "needs the model" },
      ],
    });
    expect(text.status).toBe(503);
    expect(text.body.error.code).toBe("AKIDB_ERR_MODEL_UNAVAILABLE");
    expect(Number(text.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await call("GET", "/api/v1/collections/notes")).body.count).toBe(before);
    expect((await call("GET", "/api/v1/collections/notes/documents/v1")).status).toBe(404);
    const search = await call("POST", "/api/v1/collections/notes/search", { text: "tea" });
    expect(search.status).toBe(503);
    const vectors = await call("POST", "/api/v1/collections/notes/upsert", {
      documents: [{ id: "v1", vector }],
    });
    expect(vectors.body).toMatchObject({ inserted: 1, embeddings_generated: 0 });
    const found = await call("POST", "/api/v1/collections/notes/search", { vector, k: 1, include: [] });
    expect(found.body.results[0].id).toBe("v1");
  });

  it("keeps the documents across a restart on another model, and answers text 409 naming both models", async () => {
    const qwenModel = (await call("GET", "/api/v1/collections/notes")).body.model as string;
    expect(await server!.stop()).toBe(0);
    server = await start(GEMMA);
    const collection = await call("GET", "/api/v1/collections/notes");
    expect(collection.body).toMatchObject({ count: 4, model: qwenModel });
    const text = await call("POST", "/api/v1/collections/notes/upsert", { documents: [{ text: "hello" }] });
    expect(text.status).toBe(409);
    expect(text.body.error.code).toBe("AKIDB_ERR_MODEL_MISMATCH");
    expect(text.body.error.message).toContain(qwenModel);
    expect(text.body.error.message).toMatch(/gemma/);
    const vector = Array.from({ length: collection.body.dimension as number }, (_, i) => (i === 1 ? 1 : 0));
    const upsert = await call("POST", "/api/v1/collections/notes/upsert", {
      documents: [{ id: "v2", vector }],
    });
    expect(upsert.status).toBe(200);
    const status = await call("GET", "/admin/v1/status");
    expect(status.body.collections).toEqual([expect.objectContaining({ name: "notes", count: 5 })]);
  }, 180_000);
});

function dot(a: number[], b: number[]): number {
  return a.reduce((sum, x, i) => sum + x * b[i]!, 0);
}
