// End to end on a machine that cannot reach the Hugging Face Hub (HF_ENDPOINT points at a closed
// port) with an empty model cache: the real `bin/akidb serve` with the built-in default model
// serves all-MiniLM-L6-v2 from the installed package instead, says so once in its log and in
// /health, /admin/v1/status and /v1/models; a model chosen explicitly stays a clear `degraded`.
import { afterAll, describe, expect, it } from "vitest";
import { type ContractWatch, watchContract } from "./contract.ts";
import { type HealthBody, type RunningAkiDB, startAkiDB } from "./server.ts";

const API_KEY = "fallback-key";
const ADMIN_TOKEN = "fallback-admin";
/** Nothing listens on the discard port: every download is refused at once, as offline. */
const NO_HUB = { HF_ENDPOINT: "http://127.0.0.1:9" };
const FALLBACK_LINE = "instead of the default model";

const servers: RunningAkiDB[] = [];
let current: RunningAkiDB | undefined;
const contract: ContractWatch = watchContract(() => current?.url);

afterAll(async () => {
  const codes = await Promise.all(servers.map((server) => server.stop()));
  contract.stop();
  expect(await contract.violations()).toEqual([]);
  expect(codes).toEqual(servers.map(() => 0));
});

async function start(env: Record<string, string>, ready?: (health: HealthBody) => boolean) {
  const server = await startAkiDB(
    { ...NO_HUB, AKIDB_SERVER_API_KEYS: API_KEY, AKIDB_SERVER_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    { readyTimeoutMs: 180_000, ready },
  );
  servers.push(server);
  current = server;
  return server;
}

async function get(server: RunningAkiDB, route: string, token = API_KEY): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.url}${route}`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status, route).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

describe("the offline fallback of the default model", () => {
  it("serves minilm-l6-v2 and says which model serves and why everywhere", { timeout: 240_000 }, async () => {
    const server = await start({ AKIDB_EMBEDDING_MODE: "mlx" });
    const expected = {
      configured_model: "qwen3-0.6b-4bit",
      served_model: "minilm-l6-v2",
      reason: expect.stringContaining("download failed") as unknown,
    };
    expect(await get(server, "/health")).toMatchObject({ status: "ok", fallback: expected });
    const status = await get(server, "/admin/v1/status", ADMIN_TOKEN);
    expect(status).toMatchObject({ fallback: expected, model: { alias: "minilm-l6-v2", dimension: 384 } });
    const models = await get(server, "/v1/models");
    expect(models.fallback).toMatchObject(expected);
    expect(models.data).toContainEqual(expect.objectContaining({ id: "minilm-l6-v2", loaded: true }));

    const response = await fetch(`${server.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ input: ["offline and still embedding"], encoding_format: "float" }),
    });
    const body = (await response.json()) as { data: { embedding: number[] }[] };
    expect(response.status).toBe(200);
    expect(body.data[0]!.embedding).toHaveLength(384);

    const said = server
      .output()
      .split("\n")
      .filter((line) => line.includes(FALLBACK_LINE));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain("embedding.fallback_model");
  });

  it("stays degraded, without a fallback, when the model was chosen explicitly", {
    timeout: 240_000,
  }, async () => {
    const server = await start(
      { AKIDB_EMBEDDING_MODE: "mlx", AKIDB_EMBEDDING_MODEL: "gemma-300m-4bit" },
      (health) => health.status === "degraded" && (health.embedder?.reason ?? "").includes("download failed"),
    );
    const health = await get(server, "/health");
    expect(health).toMatchObject({ status: "degraded" });
    expect(health).not.toHaveProperty("fallback");
    expect(server.output()).not.toContain(FALLBACK_LINE);
  });

  it("stays degraded when the fallback is turned off", { timeout: 240_000 }, async () => {
    const server = await start(
      { AKIDB_EMBEDDING_MODE: "mlx", AKIDB_EMBEDDING_FALLBACK_MODEL: "" },
      (health) => health.status === "degraded" && (health.embedder?.reason ?? "").includes("download failed"),
    );
    expect(await get(server, "/health")).not.toHaveProperty("fallback");
    expect(server.output()).not.toContain(FALLBACK_LINE);
  });
});
