// The SDK against the real control plane (mock mode: real server, real port, hash vectors), with
// every response the test's fetch receives checked against the contract; and sdk/README.md's
// examples, each run as a script against the same server.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AkiDB, AkiDBError, createAkiDB } from "../sdk/src/index.ts";
import { type ContractWatch, watchContract } from "./contract.ts";
import { REPO, type RunningAkiDB, startAkiDB } from "./server.ts";

const API_KEY = "sdk-key";
const ADMIN_TOKEN = "sdk-admin";

let server: RunningAkiDB | undefined;
let akidb: AkiDB;
const contract: ContractWatch = watchContract(() => server?.url);

beforeAll(async () => {
  server = await startAkiDB({
    AKIDB_EMBEDDING_MODE: "mock",
    AKIDB_SERVER_API_KEYS: API_KEY,
    AKIDB_SERVER_ADMIN_TOKEN: ADMIN_TOKEN,
  });
  akidb = createAkiDB({ baseUrl: server.url, apiKey: API_KEY, adminToken: ADMIN_TOKEN });
});

afterAll(async () => {
  const exitCode = await server?.stop();
  contract.stop();
  expect(await contract.violations()).toEqual([]);
  expect(contract.checked).toBeGreaterThan(10);
  expect(exitCode).toBe(0);
});

describe("the SDK against the real server", () => {
  it("embeds: base64 (the default) decodes to exactly the float format's vectors", async () => {
    const input = ["edge vector database", "a second text"];
    const base64 = await akidb.embeddings.create({ input, input_type: "document" });
    const float = await akidb.embeddings.create({ input, input_type: "document", encoding_format: "float" });
    expect(base64.data).toHaveLength(2);
    expect(base64.data[0]!.embedding).toBeInstanceOf(Float32Array);
    expect(base64.data[0]!.embedding.length).toBeGreaterThan(0);
    base64.data.forEach((item, i) => {
      expect(item.index).toBe(i);
      expect(Array.from(item.embedding)).toEqual(Array.from(float.data[i]!.embedding));
    });
    expect(base64.usage.total_tokens).toBeGreaterThan(0);
  });

  it("throws AkiDBError with the server's type, code and param for bad input", async () => {
    const error = await akidb.embeddings.create({ input: ["fine", ""] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AkiDBError);
    expect(error).toMatchObject({ status: 400, type: "invalid_request_error", param: "input[1]" });
    expect((error as AkiDBError).requestId).toBeTruthy();
  });

  it("throws 401 for a wrong key", async () => {
    const wrong = createAkiDB({ baseUrl: server!.url, apiKey: "wrong" });
    await expect(wrong.models.list()).rejects.toMatchObject({ status: 401, type: "authentication_error" });
  });

  it("reads health, models, status, config and admin models", async () => {
    expect(await akidb.health()).toMatchObject({ status: "ok", mode: "mock" });
    expect((await akidb.models.list()).object).toBe("list");
    const status = await akidb.admin.status();
    expect(status.mode).toBe("mock");
    expect(status.versions.akidb).toBeTruthy();
    const config = await akidb.admin.config();
    expect((config.server as { admin_token: string }).admin_token).toBe("<redacted>");
    expect((await akidb.admin.models()).object).toBe("list");
    expect(await akidb.metrics()).toMatch(/^akidb_/m);
  });

  it("maps the admin actions that mock mode refuses to 409s", async () => {
    await expect(akidb.admin.loadModel("qwen3-0.6b-4bit")).rejects.toMatchObject({ status: 409 });
    await expect(akidb.admin.restartInference()).rejects.toMatchObject({ status: 409 });
  });
});

describe("collections through the SDK", () => {
  it("create, upsert text and vectors, search, get, delete, list, delete the collection", async () => {
    const notes = await akidb.collections.create({ name: "sdk-notes", metric: "cosine" });
    const dimension = notes.info!.dimension;
    const written = await notes.upsert([
      { id: "a", text: "vectors live in RAM", metadata: { topic: "storage" } },
      { id: "b", text: "batches of embeddings", metadata: { topic: "embedding" } },
      { id: "c", vector: new Float32Array(dimension).fill(0.5), metadata: { topic: "storage" } },
    ]);
    expect(written).toMatchObject({ inserted: 3, ids: ["a", "b", "c"], embeddings_generated: 2 });

    // Mock vectors are hashes (no meaning), so text search is checked for shape and order only.
    const { results } = await notes.search({ text: "vectors live in RAM", k: 2 });
    expect(results).toHaveLength(2);
    expect(results[0]!.score).toBeGreaterThanOrEqual(results[1]!.score);
    const byVector = await notes.search({
      vector: new Float32Array(dimension).fill(1),
      k: 1,
      include: ["vector"],
    });
    expect(byVector.results[0]!.id).toBe("c");
    expect(byVector.results[0]!.vector).toBeInstanceOf(Float32Array);
    expect(byVector.results[0]!.vector![0]).toBeCloseTo(0.5, 6);
    const batch = await notes.searchBatch([
      { text: "batches of embeddings", k: 1 },
      { text: "x", k: 3, filter: { topic: "storage" } },
    ]);
    expect(batch.results[0]).toHaveLength(1);
    expect(batch.results[1]!.map((hit) => hit.id).sort()).toEqual(["a", "c"]);

    expect((await notes.get({ ids: ["b", "a"] })).map((doc) => doc.id)).toEqual(["b", "a"]);
    expect((await notes.getDocument("a")).text).toBe("vectors live in RAM");
    expect(await notes.delete({ filter: { topic: "embedding" } })).toBe(1);
    expect(await notes.deleteDocument("c")).toBe(1);
    await expect(notes.getDocument("c")).rejects.toMatchObject({ status: 404 });

    expect((await akidb.collections.list()).map((info) => info.name)).toContain("sdk-notes");
    expect((await akidb.collections.get("sdk-notes")).info?.count).toBe(1);
    await expect(akidb.collections.create({ name: "sdk-notes" })).rejects.toMatchObject({ status: 409 });
    expect(await akidb.collections.delete("sdk-notes")).toMatchObject({ name: "sdk-notes", deleted: true });
    await expect(akidb.collections.get("sdk-notes")).rejects.toMatchObject({ status: 404 });
  });

  it("examples/collections.ts runs against the server", async () => {
    const result = await execa(
      process.execPath,
      [path.join(REPO, "examples/collections.ts"), "example-run"],
      {
        reject: false,
        env: { AKIDB_URL: server!.url, AKIDB_API_KEY: API_KEY },
      },
    );
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain("upserted 5 documents (5 embedded by the server)");
    expect(result.stdout).toMatch(/with filter topic=storage: article-\d, article-\d/);
    expect(result.stdout).toContain("count: 5");
  });
});

/** The README's ```ts blocks, in order. */
function readmeExamples(): string[] {
  const readme = readFileSync(path.join(REPO, "sdk/README.md"), "utf8");
  return [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1]!);
}

describe("sdk/README.md", () => {
  const examples = readmeExamples();
  // Under the repository, so that `@akidb/sdk` resolves to the workspace package.
  const dir = path.join(REPO, ".cache", "sdk-readme");

  it("has examples", () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });

  it("type-checks", { timeout: 60_000 }, async () => {
    const checkDir = path.join(dir, `tsc-${process.pid}`);
    mkdirSync(checkDir, { recursive: true });
    const files = examples.map((source, i) => {
      const file = path.join(checkDir, `example-${i + 1}.ts`);
      writeFileSync(file, source);
      return file;
    });
    try {
      const tsc = path.join(REPO, "node_modules/typescript/bin/tsc");
      const flags = [
        "--noEmit",
        "--strict",
        "--noUncheckedIndexedAccess",
        "--skipLibCheck",
        "--types",
        "node",
      ];
      const module = ["--target", "es2023", "--module", "nodenext", "--moduleResolution", "nodenext"];
      const result = await execa(
        process.execPath,
        [tsc, ...flags, ...module, "--allowImportingTsExtensions", ...files],
        {
          reject: false,
        },
      );
      expect(result.stdout).toBe("");
      expect(result.exitCode).toBe(0);
    } finally {
      rmSync(checkDir, { recursive: true, force: true });
    }
  });

  it.each(examples.map((source, i) => [i + 1, source] as const))("example %i runs", async (i, source) => {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `example-${i}-${process.pid}.ts`);
    writeFileSync(file, source);
    try {
      const result = await execa(process.execPath, [file], {
        reject: false,
        env: { AKIDB_URL: server!.url, AKIDB_API_KEY: API_KEY, AKIDB_ADMIN_TOKEN: ADMIN_TOKEN },
      });
      expect(result.stderr).toBe("");
      expect(result.exitCode).toBe(0);
      expect(result.stdout).not.toBe("");
    } finally {
      rmSync(file, { force: true });
    }
  });
});
