// The spec's serving table through the real control plane: `bin/akidb serve` with one model on
// one device, measured from a client's side. bench/gpu_device.sh runs it on the GPU machine for
// the real-size Qwen3 and Gemma shapes ("GPU" in docs/benchmarks.md); it runs anywhere.
//
//   node bench/serving.ts --model DIR [--device gpu|cpu|auto] [--backend mlx|onnx|auto]
//                         [--batch-timeout-ms N] [--batches-in-flight N|auto]
//                         [--onnx-precision f32|int8|int4] [--out FILE]
//
// Measured, in order: start-up until /health says ok (load and warm-up included), the first
// single-text request after ready (cold) and the median of 30 more (warm), a batch of 10 and of
// 32 (medians of 20), 32-text requests from 4 clients at once (texts/s under load), the same batches to the control plane with base64 vectors and to a bare
// inference process (where the time beyond the model goes), single-text requests at a fixed 50 per second, the highest rate (doubling
// from 50) whose P95 stays under 25 ms, and the memory the two processes hold (RSS peak; GPU memory
// from nvidia-smi where there is one); then a restart on the same cache directory (compiled kernels
// kept). Prints one JSON object; `--out` also writes it to FILE.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { logRecords, type RunningProcess, startControlPlane, startInference } from "./servers.ts";
import { openLoop, type RunResult } from "./traffic.ts";

const TARGET_P95_MS = 25;
const FIRST_QPS = 50;
const MAX_QPS = 6400;
const SUSTAINED_S = 20;
const SWEEP_S = 8;
const WARMUP_S = 2;
const REQUEST_TIMEOUT_MS = 10_000;
/** Clients sending 32-text requests back to back for the throughput under load, and requests each. */
const LOADED_CLIENTS = 4;
const LOADED_REQUESTS = 16;
/** A typical short search query (about 12 tokens); numbered so no two requests are equal. */
const query = (i: number) => `query ${i}: which local vector database runs embeddings on an edge machine?`;
/** A passage of about 25 tokens, the batch requests' inputs. */
const passage = (i: number) =>
  `passage ${i}: AkiDB keeps embeddings and the HNSW index in memory, so that search stays private and fast.`;
/** The `count` passages numbered from `first`: the inputs of one batch request. */
const passages = (count: number, first: number) => [...Array(count).keys()].map((k) => passage(first + k));

function body(texts: string[], encoding?: "base64"): string {
  return JSON.stringify({ input: texts, ...(encoding && { encoding_format: encoding }) });
}

/** Milliseconds for one `/v1/embeddings` request; `token` for a bare inference process. */
async function embed(
  server: RunningProcess,
  texts: string[],
  encoding?: "base64",
  token?: string,
): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${server.url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token && { authorization: `Bearer ${token}` }) },
    body: body(texts, encoding),
  });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`/v1/embeddings answered ${response.status}`);
  return performance.now() - started;
}

/**
 * Texts per second with `LOADED_CLIENTS` clients each sending `LOADED_REQUESTS` 32-text requests back
 * to back: the server's throughput at batch 32 (batch_size 32 keeps every forward pass at 32 inputs)
 * when the next batch is already waiting, as under real load.
 */
async function loadedTextsPerS(server: RunningProcess, encoding?: "base64"): Promise<number> {
  const started = performance.now();
  await Promise.all(
    [...Array(LOADED_CLIENTS).keys()].map(async (client) => {
      for (let r = 0; r < LOADED_REQUESTS; r++) {
        await embed(server, passages(32, (client * LOADED_REQUESTS + r) * 32), encoding);
      }
    }),
  );
  const texts = LOADED_CLIENTS * LOADED_REQUESTS * 32;
  return Math.round(texts / ((performance.now() - started) / 1000));
}

async function medianMs(times: number, request: (i: number) => Promise<number>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) samples.push(await request(i));
  samples.sort((a, b) => a - b);
  return round(samples[Math.floor(samples.length / 2)]!);
}

const round = (value: number, digits = 1) => Number(value.toFixed(digits));

/** Peak and current resident memory of a process, from /proc (MiB). */
function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) / 1024;
  return { rss: round(field("VmRSS")), peak: round(field("VmHWM")) };
}

/** GPU memory each process holds (MiB), by pid; empty without nvidia-smi. */
function gpuMemoryMiB(): Record<number, number> {
  try {
    const csv = execFileSync(
      "nvidia-smi",
      ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
      { encoding: "utf8" },
    );
    return Object.fromEntries(
      csv
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((line) => line.split(",").map((field) => Number(field.trim())) as [number, number]),
    );
  } catch {
    return {};
  }
}

/** The inference process's "model ready" line, re-logged by the control plane. */
function modelReady(log: string): Record<string, unknown> | undefined {
  return logRecords(log).find((record) => record.msg === "model ready");
}

function fixedRate(server: RunningProcess, qps: number, measureS: number): Promise<RunResult> {
  return openLoop({
    endpoint: { url: `${server.url}/v1/embeddings`, headers: {} },
    body: (i) => body([query(i)]),
    qps,
    warmupS: WARMUP_S,
    measureS,
    timeoutMs: REQUEST_TIMEOUT_MS,
    cpu: server.pids,
    metricsUrl: `${server.url}/metrics`,
  });
}

function summary(run: RunResult) {
  const l = run.latency_ms;
  return {
    offered_qps: run.offered_qps,
    achieved_qps: round(run.achieved_qps),
    p50_ms: l && round(l.p50),
    p95_ms: l && round(l.p95),
    p99_ms: l && round(l.p99),
    errors: run.statuses,
    mean_batch: run.server && round(run.server.batch_size),
    /** The control plane's own means (its /metrics): an input's wait for its batch, the batch's
     * call to the inference process, the whole request inside the control plane. */
    server_ms: run.server && {
      queue: round(run.server.queue_ms),
      inference: round(run.server.inference_ms),
      total: round(run.server.total_ms),
    },
  };
}

function held(run: RunResult): boolean {
  const failed = run.sent - run.ok;
  return (
    failed === 0 &&
    run.achieved_qps >= 0.9 * run.offered_qps! &&
    (run.latency_ms?.p95 ?? Infinity) < TARGET_P95_MS
  );
}

/**
 * Where a request's time goes beyond the model: the same passages, 1, 10 and 32 per request (medians
 * of 20), to the control plane with float (JSON) and base64 vectors, and to a bare inference process
 * on the same backend and device (base64, what the control plane asks it for).
 */
async function breakdown(
  server: RunningProcess,
  values: { model?: string; device?: string; backend?: string; "onnx-precision"?: string },
): Promise<Record<string, Record<string, number>>> {
  const token = "bench";
  const bare = await startInference(values.model!, token, [
    ...["--device", values.device!, "--backend", values.backend!],
    ...(values["onnx-precision"] ? ["--onnx-precision", values["onnx-precision"]] : []),
  ]);
  const rows: Record<string, Record<string, number>> = {};
  try {
    for (const count of [1, 10, 32]) {
      const texts = (i: number) => passages(count, i * count);
      rows[`batch${count}_ms`] = {
        control_plane_float: await medianMs(20, (i) => embed(server, texts(i))),
        control_plane_base64: await medianMs(20, (i) => embed(server, texts(i), "base64")),
        inference_process_base64: await medianMs(20, (i) => embed(bare, texts(i), "base64", token)),
        ...processStages(bare.log(), 20),
      };
    }
  } finally {
    await bare.stop();
  }
  return rows;
}

/** Medians of the stage times (docs/inference.md, "Logs") on the last `count` embeddings request lines. */
function processStages(log: string, count: number): Record<string, number> {
  const lines = logRecords(log)
    .filter((record) => record.msg === "request" && record.path === "/v1/embeddings")
    .slice(-count);
  const median = (field: string) => {
    const values = lines
      .map((line) => (line[field] as number | undefined) ?? Number.NaN)
      .sort((a, b) => a - b);
    return round(values[Math.floor(values.length / 2)]!, 2);
  };
  return Object.fromEntries(
    ["duration_ms", "tokenize_ms", "queue_ms", "model_ms"].map((field) => [
      `inference_process_${field}`,
      median(field),
    ]),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      device: { type: "string", default: "auto" },
      backend: { type: "string", default: "auto" },
      "batch-timeout-ms": { type: "string" },
      "batches-in-flight": { type: "string" },
      "onnx-precision": { type: "string" },
      out: { type: "string" },
    },
  });
  if (values.model === undefined) throw new Error("--model DIR is required");
  const cacheDir = mkdtempSync(path.join(tmpdir(), "akidb-serving-"));
  const start = async () => {
    const started = performance.now();
    const server = await startControlPlane({
      embedding: {
        mode: "mlx",
        backend: values.backend,
        mlx: {
          model: values.model,
          device: values.device,
          offline: true,
          cache_dir: cacheDir,
          ...(values["batch-timeout-ms"] === undefined
            ? {}
            : { batch_timeout_ms: Number(values["batch-timeout-ms"]) }),
          ...(values["batches-in-flight"] === undefined
            ? {}
            : { batches_in_flight: Number(values["batches-in-flight"]) || values["batches-in-flight"] }),
        },
        queue: { request_timeout_ms: REQUEST_TIMEOUT_MS },
        ...(values["onnx-precision"] === undefined ? {} : { onnx: { precision: values["onnx-precision"] } }),
      },
    });
    return {
      server,
      readyS: round((performance.now() - started) / 1000, 2),
      ready: modelReady(server.log()),
    };
  };
  const { server, readyS, ready } = await start();
  const result: Record<string, unknown> = {
    model: values.model,
    batch_timeout_ms: values["batch-timeout-ms"] ?? "default",
    batches_in_flight: values["batches-in-flight"] ?? "default",
    onnx_precision: values["onnx-precision"],
  };
  try {
    result.ready_s = readyS;
    result.load_s = ready?.load_seconds;
    result.warm_up_s = ready?.warm_up_seconds;
    result.backend = ready?.backend;
    result.device = ready?.device;
    const progress = (what: string) => process.stderr.write(`${what}: ${JSON.stringify(result[what])}\n`);
    progress("ready_s");
    result.single_cold_ms = round(await embed(server, [query(-1)]));
    result.single_warm_ms = await medianMs(30, (i) => embed(server, [query(i)]));
    result.batch10_ms = await medianMs(20, (i) => embed(server, passages(10, i * 10)));
    const batch32 = await medianMs(20, (i) => embed(server, passages(32, i * 32)));
    result.batch32_ms = batch32;
    result.batch32_texts_per_s = round((32 / batch32) * 1000);
    result.batch32_loaded_texts_per_s = {
      clients: LOADED_CLIENTS,
      float: await loadedTextsPerS(server),
      base64: await loadedTextsPerS(server, "base64"),
    };
    for (const what of [
      "single_cold_ms",
      "single_warm_ms",
      "batch10_ms",
      "batch32_ms",
      "batch32_loaded_texts_per_s",
    ])
      progress(what);
    result.breakdown = await breakdown(server, values);
    progress("breakdown");
    const sustained = await fixedRate(server, FIRST_QPS, SUSTAINED_S);
    result.qps50 = summary(sustained);
    progress("qps50");
    let highest = held(sustained) ? FIRST_QPS : null;
    const sweep = [];
    for (let qps = FIRST_QPS * 2; highest !== null && qps <= MAX_QPS; qps *= 2) {
      const run = await fixedRate(server, qps, SWEEP_S);
      sweep.push(summary(run));
      process.stderr.write(`sweep: ${JSON.stringify(sweep.at(-1))}\n`);
      if (!held(run)) break;
      highest = qps;
    }
    result.sweep = sweep;
    result.highest_qps_p95_under_25ms = highest;
    const gpu = gpuMemoryMiB();
    result.memory_mib = Object.fromEntries(
      Object.entries(server.pids).map(([role, pid]) => [role, { ...memoryMiB(pid), gpu: gpu[pid] ?? null }]),
    );
  } finally {
    await server.stop();
  }
  const restart = await start();
  await restart.server.stop();
  result.restart = {
    ready_s: restart.readyS,
    load_s: restart.ready?.load_seconds,
    warm_up_s: restart.ready?.warm_up_seconds,
  };
  rmSync(cacheDir, { recursive: true, force: true });
  const json = JSON.stringify(result, null, 2);
  process.stdout.write(`${json}\n`);
  if (values.out) writeFileSync(values.out, json);
}

await main();
