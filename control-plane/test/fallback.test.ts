// The offline fallback in the supervisor, over the fake inference process: the configured model's
// launch fails (as a download with no network does), so the fallback entry serves instead, said
// once in the log and in the status; never when the configured model's weights are on the machine.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../src/config/schema.ts";
import type { InferenceCommand } from "../src/inference/launch.ts";
import { InferenceSupervisor } from "../src/inference/supervisor.ts";
import { type FallbackPlan, fallbackFor, fallbackMessage } from "../src/models/fallback.ts";
import { buildRegistry, type ModelSource } from "../src/models/registry.ts";
import { captureLogger } from "./helpers.ts";

const FAKE = path.join(import.meta.dirname, "fixtures", "fake-inference.ts");
const registry = buildRegistry(configSchema.parse({}));
const configured = registry.get("qwen3-0.6b-4bit")!;
const fallback = registry.get("minilm-l6-v2")!;
const DOWNLOAD_FAILURE =
  "the model failed to load: mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ (revision main) is not in the cache " +
  "and the download failed after 3 retries: ConnectError: [Errno 111] Connection refused";

/** The fake inference process; the configured model's /health says `failed` like a failed download. */
function command({ entry }: { entry: ModelSource }): InferenceCommand {
  const env: Record<string, string> =
    entry.alias === configured.alias ? { FAKE_HEALTH_FAILED: DOWNLOAD_FAILURE } : {};
  return { file: process.execPath, args: [FAKE, "--port", "0", "--model", entry.source], env };
}

const supervisors: InferenceSupervisor[] = [];

function supervise(plan: FallbackPlan | undefined) {
  const { logger, lines } = captureLogger();
  const config = configSchema.parse({
    embedding: {
      mlx: {
        cache_dir: mkdtempSync(path.join(tmpdir(), "akidb-models-")),
        restart: { max_restarts: 3, backoff_initial_ms: 20, backoff_max_ms: 200 },
      },
    },
  });
  const supervisor = new InferenceSupervisor({
    config,
    entry: configured,
    logger,
    command,
    ...(plan ? { fallback: plan } : {}),
  });
  supervisors.push(supervisor);
  return { supervisor, lines };
}

afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.stop()));
});

describe("the offline fallback", () => {
  it("serves the fallback entry when the default model cannot be had, and says so once", async () => {
    const { supervisor, lines } = supervise({ entry: fallback, isLocal: () => false });
    await supervisor.start();
    const status = supervisor.status();
    expect(status).toMatchObject({ state: "ready", alias: "minilm-l6-v2", restarts: 0, lastError: null });
    expect(status.model?.id).toBe(fallback.source);
    expect(status.fallback).toEqual({
      configured_model: "qwen3-0.6b-4bit",
      served_model: "minilm-l6-v2",
      reason: DOWNLOAD_FAILURE,
    });
    const said = lines.filter((line) => String(line.msg).includes("instead of the default model"));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 40 });
    expect(String(said[0]!.msg)).toContain("POST /admin/v1/models/qwen3-0.6b-4bit/load");
  });

  it("does not fall back when the configured model is on this machine: the failure is the news", async () => {
    const { supervisor } = supervise({ entry: fallback, isLocal: () => true });
    await expect(supervisor.start()).rejects.toThrow("Connection refused");
    expect(supervisor.status()).toMatchObject({ alias: "qwen3-0.6b-4bit", fallback: null });
  });

  it('does not fall back without a plan (embedding.fallback_model "", or a model set explicitly)', async () => {
    const { supervisor } = supervise(undefined);
    await expect(supervisor.start()).rejects.toThrow("Connection refused");
    expect(supervisor.status()).toMatchObject({ alias: "qwen3-0.6b-4bit", fallback: null });
  });

  it("a model switch by the operator ends the fallback state", async () => {
    const { supervisor } = supervise({ entry: fallback, isLocal: () => false });
    await supervisor.start();
    await supervisor.switchModel(registry.get("gemma-300m-4bit")!);
    expect(supervisor.status()).toMatchObject({ state: "ready", alias: "gemma-300m-4bit", fallback: null });
  });
});

describe("fallbackFor / fallbackMessage", () => {
  it("keeps the first line of the failure and names both models and the way out", () => {
    const state = fallbackFor({ entry: fallback, isLocal: () => false }, configured, "first line\nstack")!;
    expect(state).toEqual({
      configured_model: "qwen3-0.6b-4bit",
      served_model: "minilm-l6-v2",
      reason: "first line",
    });
    expect(fallbackMessage(state)).toMatch(
      /^serving minilm-l6-v2 instead of the default model qwen3-0\.6b-4bit/,
    );
    expect(fallbackMessage(state)).toContain("embedding.fallback_model");
    expect(fallbackFor({ entry: fallback, isLocal: () => false }, fallback, "x")).toBeUndefined();
  });
});
