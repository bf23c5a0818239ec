// Control plane load benchmark: open-loop arrival rates against the real `bin/akidb serve` (and a
// bare inference process), reporting P50/P95/P99 latency, achieved throughput and 429/504/other
// errors per run.
//
//   make bench-load   # or: $(scripts/node-path.sh)/node bench/load.ts [--warmup S] [--measure S]
//                     #       [--only mock|overhead|batching] [--batching-qps N]
//
// Scenarios:
//   mock      mock mode, 1-text and 8-text requests, 50 QPS doubling up to saturation;
//   overhead  the control plane (mlx mode) against the inference process it wraps, same fixture model,
//             same request stream, at 25/50/75% of the inference process's closed-loop capacity;
//   batching  embedding.mlx.batch_size x batch_timeout_ms on the fixture model at one rate near
//             saturation.
// Results go to bench/results/load.json and the "load" section of docs/benchmarks.md; `--only`
// runs one scenario and records nothing.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type RunningProcess, startControlPlane, startInference } from "./servers.ts";
import { closedLoop, type Endpoint, openLoop, type RunResult } from "./traffic.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const FIXTURE = path.join(ROOT, ".cache", "fixtures", "qwen3-4bit");
const RESULTS = path.join(ROOT, "bench", "results", "load.json");
const DOCS = path.join(ROOT, "docs", "benchmarks.md");
const INFERENCE_TOKEN = "bench-inference-token";
/** Shorter than the default 30 s so that an overloaded run ends in 504s within a short window. */
const REQUEST_TIMEOUT_MS = 5000;
const CLIENT_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 5000;
const FIRST_QPS = 50;
const MAX_QPS = 25_600;
const BATCH_SIZES = [1, 8, 32, 64];
const BATCH_TIMEOUTS_MS = [0, 2, 5, 20];
/** A typical retrieval passage sentence (the one bench/inference.py uses); numbered so no two inputs are equal. */
const TEXT = "Edge devices keep embeddings close to the data so that search stays private and fast.";

/** The i-th request of a stream of `texts`-input requests; the same i gives the same body everywhere. */
function requestBody(texts: number): (i: number) => string {
  return (i) => JSON.stringify({ input: Array.from({ length: texts }, (_, k) => `${i}.${k} ${TEXT}`) });
}

interface Timing {
  warmupS: number;
  measureS: number;
}

function embeddings(server: RunningProcess, token?: string): Endpoint {
  return {
    url: `${server.url}/v1/embeddings`,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  };
}

function errorCount(run: RunResult): number {
  return run.errors["429"] + run.errors["504"] + run.errors.other;
}

/** Past saturation: over 1% errors, under 90% of the offered rate achieved, or P99 10x the lightest load's. */
function saturated(run: RunResult, baselineP99: number): boolean {
  const p99 = run.latency_ms?.p99 ?? Number.POSITIVE_INFINITY;
  return (
    errorCount(run) > 0.01 * run.sent ||
    run.achieved_qps < 0.9 * run.offered_qps! ||
    p99 > Math.max(50, 10 * baselineP99)
  );
}

function progress(label: string, run: RunResult): void {
  const l = run.latency_ms;
  const offered = run.offered_qps === null ? `${run.concurrency} clients` : `${run.offered_qps} QPS`;
  const latency = l
    ? `P50 ${l.p50.toFixed(1)} P95 ${l.p95.toFixed(1)} P99 ${l.p99.toFixed(1)} ms`
    : "no answers";
  process.stderr.write(
    `${label}: ${offered} -> ${run.achieved_qps.toFixed(0)}/s, ${latency}, errors ${JSON.stringify(run.statuses)},` +
      ` cpu ${JSON.stringify(run.cpu_percent)}\n`,
  );
}

/** FIRST_QPS doubling until saturated, then once more halfway between the last good rate and that one. */
async function sweep(label: string, run: (qps: number) => Promise<RunResult>): Promise<RunResult[]> {
  const runs: RunResult[] = [];
  let baselineP99 = Number.POSITIVE_INFINITY;
  for (let qps = FIRST_QPS; qps <= MAX_QPS; qps *= 2) {
    const result = await run(qps);
    progress(label, result);
    runs.push(result);
    baselineP99 = Math.min(baselineP99, result.latency_ms?.p99 ?? baselineP99);
    if (saturated(result, baselineP99)) {
      if (qps > FIRST_QPS) {
        const between = await run((qps * 3) / 4);
        progress(label, between);
        runs.push(between);
      }
      break;
    }
  }
  return runs.sort((a, b) => a.offered_qps! - b.offered_qps!);
}

interface MockResults {
  dimension: number;
  probe: RunResult;
  streams: Record<string, RunResult[]>;
}

async function mockScenario(timing: Timing): Promise<MockResults> {
  const dimension = 384;
  const server = await startControlPlane({
    embedding: { mode: "mock", mock: { dimension }, queue: { request_timeout_ms: REQUEST_TIMEOUT_MS } },
  });
  try {
    const endpoint = embeddings(server);
    const common = { endpoint, timeoutMs: CLIENT_TIMEOUT_MS, cpu: server.pids };
    const probe = await closedLoop({
      ...common,
      body: requestBody(1),
      concurrency: 64,
      warmupS: 1,
      measureS: 3,
    });
    progress("mock probe", probe);
    const streams: Record<string, RunResult[]> = {};
    for (const texts of [1, 8]) {
      streams[texts] = await sweep(`mock ${texts} text(s)`, (qps) =>
        openLoop({ ...common, ...timing, body: requestBody(texts), qps }),
      );
    }
    return { dimension, probe, streams };
  } finally {
    await server.stop();
  }
}

function mlxConfig(batchSize: number, batchTimeoutMs: number): Record<string, unknown> {
  return {
    embedding: {
      mode: "mlx",
      mlx: {
        model: FIXTURE,
        offline: true,
        cache_dir: path.join(os.tmpdir(), "akidb-bench-cache"),
        batch_size: batchSize,
        batch_timeout_ms: batchTimeoutMs,
      },
      queue: { request_timeout_ms: REQUEST_TIMEOUT_MS },
    },
  };
}

interface OverheadResults {
  direct_probe: RunResult;
  control_plane_probe: RunResult;
  runs: Array<{ qps: number; direct: RunResult; control_plane: RunResult }>;
}

/** The inference process's closed-loop capacity: enough clients to keep its one model thread busy. */
const DIRECT_PROBE_CLIENTS = 4;
/** Enough clients for the control plane to fill batches of the default size (32). */
const CONTROL_PLANE_PROBE_CLIENTS = 64;

async function overheadScenario(timing: Timing): Promise<OverheadResults> {
  const running: RunningProcess[] = [];
  try {
    const direct = await startInference(FIXTURE, INFERENCE_TOKEN);
    running.push(direct);
    const controlPlane = await startControlPlane(mlxConfig(32, 5));
    running.push(controlPlane);
    const cpu = { ...controlPlane.pids, direct_inference: direct.pids.inference! };
    const targets = {
      direct: { endpoint: embeddings(direct, INFERENCE_TOKEN), timeoutMs: CLIENT_TIMEOUT_MS, cpu },
      control_plane: { endpoint: embeddings(controlPlane), timeoutMs: CLIENT_TIMEOUT_MS, cpu },
    };
    const probe = { body: requestBody(1), warmupS: 1, measureS: 4 };
    const directProbe = await closedLoop({ ...targets.direct, ...probe, concurrency: DIRECT_PROBE_CLIENTS });
    progress("direct probe", directProbe);
    const controlPlaneProbe = await closedLoop({
      ...targets.control_plane,
      ...probe,
      concurrency: CONTROL_PLANE_PROBE_CLIENTS,
    });
    progress("control plane probe", controlPlaneProbe);
    const runs: OverheadResults["runs"] = [];
    for (const fraction of [0.25, 0.5, 0.75]) {
      const qps = Math.max(1, Math.round(directProbe.achieved_qps * fraction));
      const stream = { ...timing, body: requestBody(1), qps };
      const directRun = await openLoop({ ...targets.direct, ...stream });
      progress("direct", directRun);
      const controlPlaneRun = await openLoop({ ...targets.control_plane, ...stream });
      progress("control plane", controlPlaneRun);
      runs.push({ qps, direct: directRun, control_plane: controlPlaneRun });
    }
    return { direct_probe: directProbe, control_plane_probe: controlPlaneProbe, runs };
  } finally {
    for (const server of running) await server.stop();
  }
}

interface BatchingResults {
  qps: number;
  runs: Array<{ batch_size: number; batch_timeout_ms: number; mean_batch_size: number; result: RunResult }>;
}

/** Mean inputs per batch so far, from the server's `akidb_embedding_batch_size` histogram. */
async function meanBatchSize(server: RunningProcess): Promise<number> {
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const value = (name: string) =>
    Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? Number.NaN);
  return value("akidb_embedding_batch_size_sum") / value("akidb_embedding_batch_size_count");
}

async function batchingScenario(timing: Timing, qps: number): Promise<BatchingResults> {
  const runs: BatchingResults["runs"] = [];
  for (const batchSize of BATCH_SIZES) {
    for (const batchTimeoutMs of BATCH_TIMEOUTS_MS) {
      const server = await startControlPlane(mlxConfig(batchSize, batchTimeoutMs));
      try {
        const result = await openLoop({
          ...timing,
          endpoint: embeddings(server),
          body: requestBody(1),
          qps,
          timeoutMs: CLIENT_TIMEOUT_MS,
          cpu: server.pids,
        });
        progress(`batch_size ${batchSize} batch_timeout_ms ${batchTimeoutMs}`, result);
        runs.push({
          batch_size: batchSize,
          batch_timeout_ms: batchTimeoutMs,
          mean_batch_size: await meanBatchSize(server),
          result,
        });
      } finally {
        await server.stop();
      }
    }
  }
  return { qps, runs };
}

function machine() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

interface Results {
  date: string;
  machine: ReturnType<typeof machine>;
  settings: { warmup_s: number; measure_s: number; request_timeout_ms: number; fixture: string };
  mock: MockResults;
  overhead: OverheadResults;
  batching: BatchingResults;
}

// ---- the report -------------------------------------------------------------------------------

const ms = (value: number | undefined) =>
  value === undefined ? "-" : value < 10 ? value.toFixed(2) : value.toFixed(0);
const qpsText = (value: number) => (value < 100 ? value.toFixed(1) : value.toFixed(0));
const cpuText = (run: RunResult) =>
  Object.entries(run.cpu_percent)
    .map(([role, percent]) => `${role.replaceAll("_", " ")} ${percent}%`)
    .join(", ");

function runRow(first: string[], run: RunResult): string {
  const l = run.latency_ms;
  return `| ${[
    ...first,
    qpsText(run.achieved_qps),
    ms(l?.p50),
    ms(l?.p95),
    ms(l?.p99),
    run.errors["429"],
    run.errors["504"],
    run.errors.other,
    cpuText(run),
  ].join(" | ")} |`;
}

const RUN_HEADER = "achieved/s | P50 ms | P95 ms | P99 ms | 429 | 504 | other | CPU (% of one core)";

/** The highest offered rate served without saturation, and the first that saturated. */
function saturation(runs: RunResult[]): { sustained?: RunResult; saturated?: RunResult } {
  const baseline = Math.min(...runs.map((run) => run.latency_ms?.p99 ?? Number.POSITIVE_INFINITY));
  const sustained = runs.filter((run) => !saturated(run, baseline)).at(-1);
  return { sustained, saturated: runs.find((run) => saturated(run, baseline)) };
}

/** What limited a saturated run, read from the CPU each process used. */
function bottleneck(run: RunResult, cores: number): string {
  const cpu = run.cpu_percent;
  const total = Object.values(cpu).reduce((sum, percent) => sum + percent, 0);
  const busiest = Object.entries(cpu).sort((a, b) => b[1] - a[1])[0]!;
  const shares = cpuText(run);
  if (total >= 85 * cores)
    return `the ${cores} cores are used up (${shares}): the load generator competes with the server for them`;
  return `the busiest process is the ${busiest[0].replaceAll("_", " ")} at ${busiest[1]}% of one core (${shares})`;
}

function renderMock(results: Results): string[] {
  const { mock } = results;
  const lines = [
    "### Mock mode",
    "",
    `\`embedding.mode: mock\` (hash vectors, ${mock.dimension} dims, JSON floats): everything but the model.`,
    `Closed-loop probe, ${mock.probe.concurrency} clients, 1 text: ${qpsText(mock.probe.achieved_qps)} requests/s,` +
      ` P50 ${ms(mock.probe.latency_ms?.p50)} ms, P99 ${ms(mock.probe.latency_ms?.p99)} ms (${cpuText(mock.probe)}).`,
    "",
    `| texts/request | offered QPS | ${RUN_HEADER} |`,
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const [texts, runs] of Object.entries(mock.streams)) {
    for (const run of runs) lines.push(runRow([texts, String(run.offered_qps)], run));
  }
  return lines;
}

function renderOverhead(results: Results): string[] {
  const { overhead } = results;
  const probe = overhead.direct_probe;
  const lines = [
    "### Overhead: the control plane against the inference process it wraps",
    "",
    `Fixture model \`${results.settings.fixture}\` (tiny random weights, real Qwen3 tokenizer and layout),` +
      " 1 text per request, the same request stream to a bare inference process and to `bin/akidb serve`" +
      " (mlx mode, default batching: batch_size 32, batch_timeout_ms 5) supervising its own.",
    `Inference process capacity (closed loop, ${probe.concurrency} clients): ${qpsText(probe.achieved_qps)} requests/s,` +
      ` P50 ${ms(probe.latency_ms?.p50)} ms. The control plane, closed loop with` +
      ` ${overhead.control_plane_probe.concurrency} clients (so batches fill):` +
      ` ${qpsText(overhead.control_plane_probe.achieved_qps)} requests/s, P50 ${ms(overhead.control_plane_probe.latency_ms?.p50)} ms.`,
    "",
    `| offered QPS | target | ${RUN_HEADER} |`,
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const run of overhead.runs) {
    lines.push(runRow([String(run.qps), "inference process"], run.direct));
    lines.push(runRow([String(run.qps), "control plane"], run.control_plane));
  }
  lines.push(
    "",
    "| offered QPS | overhead P50 ms | overhead P95 ms | overhead P99 ms |",
    "|---|---|---|---|",
  );
  for (const run of overhead.runs) {
    const delta = (key: "p50" | "p95" | "p99") =>
      ms((run.control_plane.latency_ms?.[key] ?? Number.NaN) - (run.direct.latency_ms?.[key] ?? Number.NaN));
    lines.push(`| ${run.qps} | ${delta("p50")} | ${delta("p95")} | ${delta("p99")} |`);
  }
  return lines;
}

function renderBatching(results: Results): string[] {
  const { batching } = results;
  const lines = [
    "### Batching: `embedding.mlx.batch_size` x `batch_timeout_ms`",
    "",
    `The control plane on the fixture model, 1 text per request at ${batching.qps} QPS (near the default` +
      " settings' closed-loop capacity), one fresh server per setting.",
    "",
    `| batch_size | batch_timeout_ms | mean batch | ${RUN_HEADER} |`,
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const run of batching.runs) {
    lines.push(
      runRow(
        [String(run.batch_size), String(run.batch_timeout_ms), run.mean_batch_size.toFixed(1)],
        run.result,
      ),
    );
  }
  return lines;
}

/** Ranks batch settings: fewest errors, then highest throughput, then lowest P99. */
function bestBatching(results: Results): BatchingResults["runs"][number] {
  return results.batching.runs.toSorted(
    (a, b) =>
      errorCount(a.result) - errorCount(b.result) ||
      Math.round(b.result.achieved_qps) - Math.round(a.result.achieved_qps) ||
      (a.result.latency_ms?.p99 ?? Number.POSITIVE_INFINITY) -
        (b.result.latency_ms?.p99 ?? Number.POSITIVE_INFINITY),
  )[0]!;
}

function renderInterpretation(results: Results): string[] {
  const lines = ["### What the numbers say", ""];
  for (const [texts, runs] of Object.entries(results.mock.streams)) {
    const { sustained, saturated: over } = saturation(runs);
    const held = sustained
      ? `holds ${sustained.offered_qps} QPS (P99 ${ms(sustained.latency_ms?.p99)} ms)`
      : "saturates at the lowest rate";
    const broke = over
      ? `; at ${over.offered_qps} QPS it saturates (achieved ${qpsText(over.achieved_qps)}/s, P99 ${ms(over.latency_ms?.p99)} ms,` +
        ` ${errorCount(over)} errors): ${bottleneck(over, results.machine.cores)}.`
      : `, the highest rate tried.`;
    lines.push(`* Mock mode, ${texts} text(s) per request: the control plane ${held}${broke}`);
  }
  const overheads = results.overhead.runs.map((run) => ({
    qps: run.qps,
    p50: (run.control_plane.latency_ms?.p50 ?? Number.NaN) - (run.direct.latency_ms?.p50 ?? Number.NaN),
    p99: (run.control_plane.latency_ms?.p99 ?? Number.NaN) - (run.direct.latency_ms?.p99 ?? Number.NaN),
  }));
  lines.push(
    "* Overhead on the fixture model (what the control plane adds to the inference process's own latency: HTTP" +
      " hop, validation, batching wait, token counting, JSON re-encoding): " +
      overheads.map((o) => `${o.qps} QPS: ${ms(o.p50)} ms at P50, ${ms(o.p99)} ms at P99`).join("; ") +
      ".",
  );
  const best = bestBatching(results);
  lines.push(
    `* Batching at ${results.batching.qps} QPS: the best setting here is batch_size ${best.batch_size},` +
      ` batch_timeout_ms ${best.batch_timeout_ms} (${qpsText(best.result.achieved_qps)}/s,` +
      ` P50 ${ms(best.result.latency_ms?.p50)} ms, P99 ${ms(best.result.latency_ms?.p99)} ms, mean batch` +
      ` ${best.mean_batch_size.toFixed(1)} inputs).`,
  );
  return lines;
}

function render(results: Results): string {
  const m = results.machine;
  return [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gib} GiB RAM, ${m.os}, Node ${m.node}; the load generator` +
      ` runs on the same machine. Measured ${results.date}. Each run: ${results.settings.warmup_s} s warm-up` +
      ` (not counted), then ${results.settings.measure_s} s measured; \`embedding.queue.request_timeout_ms\`` +
      ` ${results.settings.request_timeout_ms}, other settings default. Latency counts from each request's` +
      " scheduled send time; achieved/s counts 200 answers completed inside the window.",
    "",
    ...renderMock(results),
    "",
    ...renderOverhead(results),
    "",
    ...renderBatching(results),
    "",
    ...renderInterpretation(results),
  ].join("\n");
}

/** Writes the section through bench/report.py, the one implementation of the docs' marker convention. */
function writeSection(body: string): void {
  execFileSync(
    path.join(ROOT, "inference", ".venv", "bin", "python"),
    [
      "-c",
      "import sys; from pathlib import Path; from bench.report import write_section;" +
        " write_section(Path(sys.argv[1]), 'load', sys.stdin.read())",
      DOCS,
    ],
    { cwd: ROOT, input: body },
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      warmup: { type: "string", default: "2" },
      measure: { type: "string", default: "5" },
      only: { type: "string" },
      "batching-qps": { type: "string" },
    },
  });
  const timing = { warmupS: Number(values.warmup), measureS: Number(values.measure) };
  const only = values.only;
  if (only !== undefined && !["mock", "overhead", "batching"].includes(only)) {
    throw new Error(`--only takes mock, overhead or batching, not ${only}`);
  }
  if (only === "batching" && values["batching-qps"] === undefined) {
    throw new Error(
      "--only batching needs --batching-qps (otherwise the overhead scenario's probe picks it)",
    );
  }
  const date = new Date().toISOString().slice(0, 10);
  const mock = only === undefined || only === "mock" ? await mockScenario(timing) : undefined;
  const overhead = only === undefined || only === "overhead" ? await overheadScenario(timing) : undefined;
  if (only === "mock" || only === "overhead") return;
  const batchingQps =
    values["batching-qps"] !== undefined
      ? Number(values["batching-qps"])
      : Math.round(overhead!.control_plane_probe.achieved_qps * 0.9);
  const batching = await batchingScenario(timing, batchingQps);
  if (only === "batching") return;
  const results: Results = {
    date,
    machine: machine(),
    settings: {
      warmup_s: timing.warmupS,
      measure_s: timing.measureS,
      request_timeout_ms: REQUEST_TIMEOUT_MS,
      fixture: path.relative(ROOT, FIXTURE),
    },
    mock: mock!,
    overhead: overhead!,
    batching,
  };
  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  const section = render(results);
  writeSection(section);
  process.stdout.write(`${section}\n`);
}

await main();
