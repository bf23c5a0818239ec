import { describe, expect, it } from "vitest";
import { Batcher } from "../src/embedding/batcher.ts";
import { MockEmbedder } from "../src/embedding/mock.ts";
import { createMetrics, failureCause, METRIC_PREFIX } from "../src/metrics.ts";

/** The value of one sample line, e.g. `akidb_embedding_requests_total{status="200"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("metrics", () => {
  it("names every metric the issue lists under one prefix, with process metrics", async () => {
    const metrics = createMetrics();
    metrics.latencyMs.observe({ stage: "queue" }, 1);
    metrics.requests.inc({ status: "200" });
    metrics.failures.inc({ cause: "timeout" });
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    for (const name of [
      "embedding_batch_size",
      "embedding_latency_ms",
      "embedding_requests_total",
      "embedding_failures_total",
      "embedding_queue_depth",
      "embedding_tokens_total",
      "inference_restarts_total",
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
    ]) {
      expect(names).toContain(`${METRIC_PREFIX}${name}`);
    }
    expect(names.every((name) => name.startsWith(METRIC_PREFIX))).toBe(true);
  });

  it("buckets batch sizes in powers of two and latencies geometrically", async () => {
    const metrics = createMetrics();
    metrics.batchSize.observe(3);
    metrics.latencyMs.observe({ stage: "inference" }, 10);
    const text = await metrics.registry.metrics();
    const bounds = (name: string) =>
      [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"`, "gm"))].map((m) => m[1]);
    const batchBounds = bounds(`${METRIC_PREFIX}embedding_batch_size`);
    expect(batchBounds).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].map(String).concat("+Inf"));
    expect(sample(text, `${METRIC_PREFIX}embedding_batch_size_bucket{le="2"}`)).toBe(0);
    expect(sample(text, `${METRIC_PREFIX}embedding_batch_size_bucket{le="4"}`)).toBe(1);
    const latency = [
      ...text.matchAll(/^akidb_embedding_latency_ms_bucket\{le="([\d.]+)",stage="inference"/gm),
    ].map((m) => Number(m[1]));
    expect(latency.length).toBeGreaterThan(10);
    for (let i = 1; i < latency.length; i++) expect(latency[i]! / latency[i - 1]!).toBe(2);
  });

  it("lets servers in one process keep separate registries", async () => {
    const first = createMetrics();
    const second = createMetrics();
    expect(first.registry).not.toBe(second.registry);
    first.tokens.inc(5);
    const series = `${METRIC_PREFIX}embedding_tokens_total`;
    expect(sample(await first.registry.metrics(), series)).toBe(5);
    expect(sample(await second.registry.metrics(), series)).toBe(0);
  });

  it("records batch sizes, queue and inference latency and tokens from the batcher", async () => {
    const metrics = createMetrics();
    const embedder = new MockEmbedder(8);
    const limits = {
      batchSize: 4,
      batchTimeoutMs: 60_000,
      maxBatchTokens: 1000,
      batchesInFlight: 1,
      maxPendingInputs: 100,
      requestTimeoutMs: 10_000,
    };
    const batcher = new Batcher({ embedder, limits, estimateTokens: () => 1, metrics });
    const texts = ["one", "two", "three", "four", "five", "six", "seven", "eight"];
    const request = {
      texts,
      inputType: "document" as const,
      normalize: true,
      truncate: true,
      requestId: "m",
    };
    const result = await batcher.embed(request, batcher.reserve(texts.length));
    const text = await metrics.registry.metrics();
    expect(sample(text, `${METRIC_PREFIX}embedding_batch_size_count`)).toBe(2);
    expect(sample(text, `${METRIC_PREFIX}embedding_batch_size_sum`)).toBe(8);
    expect(sample(text, `${METRIC_PREFIX}embedding_latency_ms_count{stage="queue"}`)).toBe(8);
    expect(sample(text, `${METRIC_PREFIX}embedding_latency_ms_count{stage="inference"}`)).toBe(2);
    // The mock's count: one token per 4 UTF-8 bytes, rounded up, plus one.
    expect(result.tokenCounts).toEqual([2, 2, 3, 2, 2, 2, 3, 3]);
    expect(sample(text, `${METRIC_PREFIX}embedding_tokens_total`)).toBe(19);
    expect(sample(text, `${METRIC_PREFIX}embedding_queue_depth`)).toBe(0);
  });

  it("labels failures by cause", () => {
    expect(failureCause("AKIDB_ERR_TIMEOUT")).toBe("timeout");
    expect(failureCause("AKIDB_ERR_MODEL_NOT_FOUND")).toBe("model_not_found");
  });
});
