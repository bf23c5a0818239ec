// Upsert bodies parsed in the parser thread (what the server runs) answer exactly as when parsed
// inline: the same documents stored, the same 4xx bodies naming the same fields, nothing written.
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../src/config/schema.ts";
import { createEmbeddingService } from "../src/embedding/service.ts";
import { createApp } from "../src/http/app.ts";
import { UpsertParser } from "../src/http/upsert-parser.ts";
import { createMetrics } from "../src/metrics.ts";
import { buildRegistry } from "../src/models/registry.ts";
import { openStore, tempDataDir } from "./collection-fixtures.ts";
import { captureLogger } from "./helpers.ts";

const DIMENSION = 4;
const config = configSchema.parse({
  embedding: { mode: "mock", mock: { dimension: DIMENSION }, queue: { max_input_chars: 50 } },
  collection: { max_documents_per_request: 5, max_metadata_depth: 2 },
});
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function build(parser: UpsertParser | undefined) {
  const data = tempDataDir();
  const store = await openStore(data.dir);
  cleanups.push(async () => {
    await parser?.close();
    await store.close();
    data.remove();
  });
  const { logger } = captureLogger();
  const metrics = createMetrics();
  const registry = buildRegistry(config);
  const embedding = createEmbeddingService({ config, registry, metrics, logger });
  await embedding.start();
  cleanups.push(() => embedding.stop());
  const app = createApp({
    config,
    registry,
    embedding,
    collections: store,
    metrics,
    logger,
    startedAt: new Date(),
    versions: { akidb: "test", node: process.version },
    closing: () => false,
    ...(parser ? { upsertParser: parser } : {}),
  });
  const call = async (method: string, path: string, body?: string) => {
    const response = await app.request(path, {
      method,
      ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  await call("POST", "/api/v1/collections", JSON.stringify({ name: "c" }));
  return call;
}

const base64 = (values: number[]) => Buffer.from(new Float32Array(values).buffer).toString("base64");
const bodies: string[] = [
  JSON.stringify({
    documents: [
      { id: "json", vector: [1, 0.5, 0.25, 0.125], metadata: { kind: "a", n: [1, 2] } },
      { id: "b64", vector: base64([0, 1, 0, 0.1]), text: "kept with its vector" },
      { id: "text", text: "embedded by the mock model", metadata: { kind: "b" } },
      { vector: [0.3, 0.3, 0.3, 0.3] },
    ],
  }),
  JSON.stringify({ documents: [{ id: "ok", vector: [1, 0, 0, 0] }, { vector: [1, 0] }] }),
  '{"documents": [{"vector": [0, 1e39, 0, 0]}]}',
  JSON.stringify({ documents: [{ vector: base64([0, 0, Number.NaN, 0]) }] }),
  JSON.stringify({ documents: [{ vector: "AAAAAAA=" }] }),
  // Not padded standard base64: url-safe characters, padding inside, whitespace, no padding.
  JSON.stringify({ documents: [{ vector: base64([1, 0, 0, 0]).replace("A", "-") }] }),
  JSON.stringify({ documents: [{ vector: `AAAAAA==${base64([1, 0, 0, 0]).slice(8)}` }] }),
  JSON.stringify({ documents: [{ vector: ` ${base64([1, 0, 0, 0]).slice(1)}` }] }),
  JSON.stringify({ documents: [{ vector: base64([1, 0, 0, 0]).slice(0, -1) }] }),
  JSON.stringify({ documents: [{ id: "n" }] }),
  JSON.stringify({ documents: [{ vector: [1, 0, 0, 0], colour: "red" }] }),
  JSON.stringify({ documents: Array.from({ length: 6 }, () => ({ vector: [1, 0, 0, 0] })) }),
  JSON.stringify({ documents: [{ vector: [1, 0, 0, 0], metadata: { a: { b: { c: 1 } } } }] }),
  JSON.stringify({ documents: [{ text: "x".repeat(51) }] }),
  '{"documents": [',
];

describe("UpsertParser", () => {
  it("answers every upsert body as the inline parse does, and stores the same documents", async () => {
    const inline = await build(undefined);
    const threaded = await build(new UpsertParser(config));
    const statuses = [];
    for (const body of bodies) {
      const [a, b] = [
        await inline("POST", "/api/v1/collections/c/upsert", body),
        await threaded("POST", "/api/v1/collections/c/upsert", body),
      ];
      // Generated ids and durations differ between the two; everything else is the same.
      const stable = (r: { status: number; body: Record<string, unknown> }) => ({
        ...r,
        body: { ...r.body, ids: undefined, usage: undefined },
      });
      expect(stable(b)).toEqual(stable(a));
      statuses.push([a.status, (a.body.error as { param?: string } | undefined)?.param]);
    }
    expect(statuses).toEqual([
      [200, undefined],
      [400, "documents[1].vector"],
      [400, "documents[0].vector[1]"],
      [400, "documents[0].vector[2]"],
      [400, "documents[0].vector"],
      [422, "documents[0].vector"],
      [422, "documents[0].vector"],
      [422, "documents[0].vector"],
      [422, "documents[0].vector"],
      [422, "documents[0]"],
      [422, "documents[0].colour"],
      [413, "documents"],
      [413, "documents[0].metadata"],
      [413, "documents[0].text"],
      [400, null],
    ]);
    const include = JSON.stringify({ ids: ["json", "b64", "text"], include: ["vector", "text", "metadata"] });
    const [a, b] = [
      await inline("POST", "/api/v1/collections/c/get", include),
      await threaded("POST", "/api/v1/collections/c/get", include),
    ];
    expect(b).toEqual(a);
    expect((a.body.documents as unknown[]).length).toBe(3);
    expect((await threaded("GET", "/api/v1/collections/c")).body.count).toBe(4);
  });
});
