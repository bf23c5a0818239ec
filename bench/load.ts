// Control plane load benchmark: open-loop arrival rates against the real `bin/akidb serve` (and a
// bare inference process), reporting P50/P95/P99 latency, achieved throughput and 429/504/other
// errors per run.
//
//   make bench-load   # or: $(scripts/node-path.sh)/node bench/load.ts [--warmup S] [--measure S]
//                     #       [--only mock|overhead|batching|onnx] [--batching-qps N] [--render]
//                     #       [--models minilm,qwen3,gemma] [--precisions f32,int8]   (onnx only)
//
// Scenarios:
//   mock      mock mode, 1-text and 8-text requests, 50 QPS doubling up to saturation;
//   overhead  the control plane (mlx mode) against the inference process it wraps, same fixture model,
//             same request stream, at 25/50/75% of the inference process's closed-loop capacity;
//   batching  embedding.mlx.batch_size x batch_timeout_ms on the fixture model at one rate near
//             saturation;
//   onnx      (only with --only onnx) the control plane against the inference process on real MiniLM
//             weights and the real-size Qwen3/Gemma shapes with the ONNX Runtime backend: fixed-rate
//             P50/P95/P99 and texts/s at batch 32 (bench/load_onnx.ts; minutes per model on 2 cores).
// Results go to bench/results/load.json and the "load" section of docs/benchmarks.md; `--only`
// runs one scenario and records nothing (but `--only onnx` records its cells in bench/results/load-onnx.json
// and the "load-onnx" section); `--render` rewrites the section from the recorded results.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { onnxScenario } from "./load_onnx.ts";
import { writeSection } from "./report.ts";
import { type RunningProcess, startControlPlane, startInference } from "./servers.ts";
import { closedLoop, type Endpoint, type LatencySummary, openLoop, type RunResult } from "./traffic.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const FIXTURE = path.join(ROOT, ".cache", "fixtures", "qwen3-4bit");
const RESULTS = path.join(ROOT, "bench", "results", "load.json");
const INFERENCE_TOKEN = "bench-inference-token";
/** Shorter than the default 30 s so that an overloaded run ends in 504s within a short window. */
const REQUEST_TIMEOUT_MS = 5000;
const CLIENT_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 5000;
const FIRST_QPS = 50;
const MAX_QPS = 25_600;
const BATCH_SIZES = [1, 8, 32, 64];
const BATCH_TIMEOUTS_MS = [0, 2, 5, 20];
/** The batching sweep's rate, as a share of the default settings' closed-loop capacity: near saturation. */
const BATCHING_LOAD = 0.75;
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

/** What every run against the control plane `server` shares. */
function controlPlaneTarget(server: RunningProcess, cpu: Record<string, number> = server.pids) {
  return {
    endpoint: embeddings(server),
    timeoutMs: CLIENT_TIMEOUT_MS,
    cpu,
    metricsUrl: `${server.url}/metrics`,
  };
}

function errorCount(run: RunResult): number {
  return run.errors["429"] + run.errors["504"] + run.errors.other;
}

/**
 * Past saturation: over 1% errors, under 90% of the offered rate achieved, or a P99 above both
 * 100 ms and 10x the lightest load's (a P99 of a few tens of ms is scheduling noise on 2 cores).
 */
function saturated(run: RunResult, baselineP99: number): boolean {
  const p99 = run.latency_ms?.p99 ?? Number.POSITIVE_INFINITY;
  return (
    errorCount(run) > 0.01 * run.sent ||
    run.achieved_qps < 0.9 * run.offered_qps! ||
    p99 > Math.max(100, 10 * baselineP99)
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
    const common = controlPlaneTarget(server);
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
      control_plane: controlPlaneTarget(controlPlane, cpu),
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
  runs: Array<{ batch_size: number; batch_timeout_ms: number; result: RunResult }>;
}

async function batchingScenario(timing: Timing, qps: number): Promise<BatchingResults> {
  const runs: BatchingResults["runs"] = [];
  for (const batchSize of BATCH_SIZES) {
    for (const batchTimeoutMs of BATCH_TIMEOUTS_MS) {
      const server = await startControlPlane(mlxConfig(batchSize, batchTimeoutMs));
      try {
        const result = await openLoop({
          ...controlPlaneTarget(server),
          ...timing,
          body: requestBody(1),
          qps,
        });
        progress(`batch_size ${batchSize} batch_timeout_ms ${batchTimeoutMs}`, result);
        runs.push({ batch_size: batchSize, batch_timeout_ms: batchTimeoutMs, result });
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
    /** The benchmark's scheduling priority (its servers inherit it): below 0 when run to outrank other work. */
    nice: os.getPriority(),
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
  value === undefined || Number.isNaN(value)
    ? "-"
    : Math.abs(value) < 10
      ? value.toFixed(1)
      : value.toFixed(0);
const qpsText = (value: number) => (value < 100 ? value.toFixed(1) : value.toFixed(0));
/** How the report names each process whose CPU is sampled. */
const ROLE_NAMES: Record<string, string> = {
  load_generator: "load generator",
  control_plane: "control plane",
  inference: "inference process",
  direct_inference: "bare inference process",
  other_processes: "other processes",
};
const roleName = (role: string) => ROLE_NAMES[role] ?? role;
const cpuText = (run: RunResult) =>
  Object.entries(run.cpu_percent)
    .filter(([, percent]) => percent > 0)
    .map(([role, percent]) => `${roleName(role)} ${percent}`)
    .join(", ");
const textsText = (texts: string) => (texts === "1" ? "1 text" : `${texts} texts`);

const RUN_HEADER =
  "achieved/s | P50 ms | P95 ms | P99 ms | 429 | 504 | other | mean batch | CPU % of one core (window)";
const RUN_COLUMNS = 9;

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
    run.server ? run.server.batch_size.toFixed(1) : "-",
    cpuText(run),
  ].join(" | ")} |`;
}

function tableHeader(first: string[]): string[] {
  return [`| ${first.join(" | ")} | ${RUN_HEADER} |`, `|${"---|".repeat(first.length + RUN_COLUMNS)}`];
}

function latencyLine(run: RunResult): string {
  const l = run.latency_ms;
  return `${qpsText(run.achieved_qps)} requests/s, P50 ${ms(l?.p50)} ms, P99 ${ms(l?.p99)} ms`;
}

/** The highest offered rate served without saturation, and the first that saturated. */
function saturation(runs: RunResult[]): { sustained?: RunResult; over?: RunResult } {
  const baseline = Math.min(...runs.map((run) => run.latency_ms?.p99 ?? Number.POSITIVE_INFINITY));
  return {
    sustained: runs.filter((run) => !saturated(run, baseline)).at(-1),
    over: runs.find((run) => saturated(run, baseline)),
  };
}

/** Why a process at one core's worth of CPU cannot go faster. */
const CEILINGS: Record<string, string> = {
  control_plane:
    "Node runs the JavaScript on one thread (beyond it only GC and I/O threads), so about one core is its ceiling",
  inference: "its one model thread computes one batch at a time",
  load_generator: "the load generator, not the server, was the limit",
};

/** What limited a saturated run, read from the CPU each process got. */
function bottleneck(run: RunResult, cores: number): string {
  const cpu = run.cpu_percent;
  const total = Object.values(cpu).reduce((sum, percent) => sum + percent, 0);
  const [role, percent] = Object.entries(cpu).sort((a, b) => b[1] - a[1])[0]!;
  const lag =
    run.send_lag_p99_ms > 5 ? `; the generator sent up to ${ms(run.send_lag_p99_ms)} ms late (P99)` : "";
  if (percent >= 90 && CEILINGS[role]) {
    return `the ${roleName(role)} used ${percent}% of one core (${cpuText(run)}): ${CEILINGS[role]}${lag}`;
  }
  if (total >= 90 * cores) return `the ${cores} cores were busy (${total}% in all: ${cpuText(run)})${lag}`;
  return `no process used a whole core (${cpuText(run)})${lag}`;
}

/** Where a saturated run's latency went when the handler itself was quick, and what never got an answer. */
function outsideHandler(run: RunResult): string {
  const notes: string[] = [];
  const inside = run.server?.total_ms;
  if (inside !== undefined && run.latency_ms && inside < run.latency_ms.p50 / 2 && run.errors["429"] === 0) {
    notes.push(
      ` Inside the control plane a request took ${ms(inside)} ms on average (its /metrics): the rest was spent` +
        " outside the handler (socket buffers, the event loop's backlog), where neither the 429 queue limit nor" +
        " the 504 deadline applies.",
    );
  }
  if (run.errors.other > 0) {
    notes.push(
      ` ${run.errors.other} requests got no answer within the client's ${CLIENT_TIMEOUT_MS / 1000} s.`,
    );
  }
  return notes.join("");
}

function renderMock(results: Results): string[] {
  const { mock } = results;
  const lines = [
    "### Mock mode",
    "",
    `\`embedding.mode: mock\` (hash vectors, ${mock.dimension} dims, JSON floats, default batching): everything but` +
      ` the model. Closed-loop probe, ${mock.probe.concurrency} clients, 1 text: ${latencyLine(mock.probe)}.`,
    "",
    ...tableHeader(["texts/request", "offered QPS"]),
  ];
  for (const [texts, runs] of Object.entries(mock.streams)) {
    for (const run of runs) lines.push(runRow([texts, String(run.offered_qps)], run));
  }
  return lines;
}

function overheads(results: Results) {
  return results.overhead.runs.map(({ qps, direct, control_plane: cp }) => {
    const delta = (key: keyof LatencySummary) =>
      (cp.latency_ms?.[key] ?? Number.NaN) - (direct.latency_ms?.[key] ?? Number.NaN);
    return { qps, p50: delta("p50"), p95: delta("p95"), p99: delta("p99"), server: cp.server };
  });
}

function renderOverhead(results: Results): string[] {
  const { overhead } = results;
  const lines = [
    "### Overhead: the control plane against the inference process it wraps",
    "",
    `Fixture model \`${results.settings.fixture}\` (tiny random weights, real Qwen3 tokenizer and layout), 1 text` +
      " per request, the same request stream to a bare inference process and to `bin/akidb serve` (mlx mode," +
      " default batching: batch_size 32, batch_timeout_ms 5) supervising its own.",
    `Inference process capacity (closed loop, ${overhead.direct_probe.concurrency} clients):` +
      ` ${latencyLine(overhead.direct_probe)}. The control plane, closed loop with` +
      ` ${overhead.control_plane_probe.concurrency} clients (so batches fill): ${latencyLine(overhead.control_plane_probe)},` +
      ` mean batch ${overhead.control_plane_probe.server?.batch_size.toFixed(1)}.`,
    "",
    ...tableHeader(["offered QPS", "target"]),
  ];
  for (const run of overhead.runs) {
    lines.push(runRow([String(run.qps), "inference process"], run.direct));
    lines.push(runRow([String(run.qps), "control plane"], run.control_plane));
  }
  lines.push(
    "",
    "Overhead (control plane minus inference process) and where the control plane's time went (its own" +
      " histogram means over the window: queue = an input's wait for its batch, inference = the batch's" +
      " `/v1/embeddings` call, total = the request inside the control plane):",
    "",
    "| offered QPS | overhead P50 ms | overhead P95 ms | overhead P99 ms | queue ms | inference ms | total ms |",
    "|---|---|---|---|---|---|---|",
  );
  for (const o of overheads(results)) {
    lines.push(
      `| ${o.qps} | ${ms(o.p50)} | ${ms(o.p95)} | ${ms(o.p99)} | ${ms(o.server?.queue_ms)} |` +
        ` ${ms(o.server?.inference_ms)} | ${ms(o.server?.total_ms)} |`,
    );
  }
  return lines;
}

function renderBatching(results: Results): string[] {
  const { batching } = results;
  const lines = [
    "### Batching: `embedding.mlx.batch_size` x `batch_timeout_ms`",
    "",
    `The control plane on the fixture model, 1 text per request at ${batching.qps} QPS` +
      ` (${BATCHING_LOAD * 100}% of the default settings' closed-loop capacity above), one fresh server per setting.`,
    "",
    ...tableHeader(["batch_size", "batch_timeout_ms"]),
  ];
  for (const run of batching.runs) {
    lines.push(runRow([String(run.batch_size), String(run.batch_timeout_ms)], run.result));
  }
  return lines;
}

/** Ranks batch settings: those that kept up by P99, then the rest by throughput. */
function rankedBatching(results: Results): BatchingResults["runs"] {
  const p99 = (run: RunResult) => run.latency_ms?.p99 ?? Number.POSITIVE_INFINITY;
  return results.batching.runs.toSorted(
    (a, b) =>
      Number(keptUp(b.result)) - Number(keptUp(a.result)) ||
      (keptUp(a.result) ? p99(a.result) - p99(b.result) : b.result.achieved_qps - a.result.achieved_qps),
  );
}

/** Whether a run kept up with its offered rate. */
function keptUp(run: RunResult): boolean {
  return errorCount(run) <= 0.01 * run.sent && run.achieved_qps >= 0.9 * run.offered_qps!;
}

/** How P99 moved with batch_timeout_ms, averaged over the batch sizes that kept up at every timeout. */
function timeoutTrend(runs: BatchingResults["runs"]): string {
  const sizes = BATCH_SIZES.filter((size) =>
    runs.filter((run) => run.batch_size === size).every((run) => keptUp(run.result)),
  );
  if (sizes.length === 0) return "";
  const meanP99 = BATCH_TIMEOUTS_MS.map((timeout) => {
    const p99s = runs
      .filter((run) => run.batch_timeout_ms === timeout && sizes.includes(run.batch_size))
      .map((run) => run.result.latency_ms?.p99 ?? Number.NaN);
    return p99s.reduce((sum, p99) => sum + p99, 0) / p99s.length;
  });
  const steps = meanP99.slice(1).map((p99, i) => Math.sign(p99 - meanP99[i]!));
  const trend = steps.every((step) => step > 0)
    ? "rises with"
    : steps.every((step) => step < 0)
      ? "falls with"
      : "shows no consistent trend in";
  return (
    `For batch_size ${sizes.join(", ")} the mean P99 ${trend} batch_timeout_ms` +
    ` (${BATCH_TIMEOUTS_MS.map((timeout, i) => `${timeout}: ${ms(meanP99[i])} ms`).join(", ")}).`
  );
}

/** Other processes' CPU, in % of one core, above which a run's numbers understate the machine. */
const CONTAMINATED_PERCENT = 25;

/** Every measured run with a label, for the check on other processes' CPU. */
function labelledRuns(results: Results): Array<[string, RunResult]> {
  return [
    ...Object.entries(results.mock.streams).flatMap(([texts, runs]) =>
      runs.map((run): [string, RunResult] => [`mock ${textsText(texts)} at ${run.offered_qps} QPS`, run]),
    ),
    ...results.overhead.runs.flatMap(
      ({ qps, direct, control_plane }): Array<[string, RunResult]> => [
        [`inference process at ${qps} QPS`, direct],
        [`control plane at ${qps} QPS`, control_plane],
      ],
    ),
    ...results.batching.runs.map((run): [string, RunResult] => [
      `batch_size ${run.batch_size} / batch_timeout_ms ${run.batch_timeout_ms}`,
      run.result,
    ]),
  ];
}

function renderInterpretation(results: Results): string[] {
  const lines = ["### What the numbers say", ""];
  const all = labelledRuns(results);
  const contaminated = all.filter(([, run]) => (run.cpu_percent.other_processes ?? 0) > CONTAMINATED_PERCENT);
  if (contaminated.length > 0) {
    lines.push(
      `* Other processes took over ${CONTAMINATED_PERCENT}% of a core during ${contaminated.length} of` +
        ` ${all.length} runs (${contaminated.map(([label]) => label).join("; ")}): those understate this machine.`,
    );
  }
  for (const [texts, runs] of Object.entries(results.mock.streams)) {
    const { sustained, over } = saturation(runs);
    const held = sustained
      ? `holds ${sustained.offered_qps} QPS (P50 ${ms(sustained.latency_ms?.p50)} ms, P99 ${ms(sustained.latency_ms?.p99)} ms)`
      : "saturates at the lowest rate";
    const broke = over
      ? `; at ${over.offered_qps} QPS it saturates (${latencyLine(over)}, ${errorCount(over)} errors):` +
        ` ${bottleneck(over, results.machine.cores)}.${outsideHandler(over)}`
      : ", the highest rate tried.";
    lines.push(`* Mock mode, ${textsText(texts)} per request: the control plane ${held}${broke}`);
  }
  const light = results.mock.streams["1"]?.[0];
  if (light?.server) {
    lines.push(
      `* At light load (${light.offered_qps} QPS) a request waits ${ms(light.server.queue_ms)} ms on average for` +
        " company in the batcher (`batch_timeout_ms`, default 5) before its batch of one goes out: that wait is" +
        " most of the latency a lone request sees.",
    );
  }
  lines.push(
    "* Overhead on the fixture model (the control plane's latency minus the inference process's own, same" +
      " stream): " +
      overheads(results)
        .map(
          (o) =>
            `${ms(o.p50)} ms at P50 and ${ms(o.p99)} ms at P99 at ${o.qps} QPS (the batcher's wait` +
            ` ${ms(o.server?.queue_ms)} ms of it on average, the call to the inference process` +
            ` ${ms(o.server?.inference_ms)} ms)`,
        )
        .join("; ") +
      "." +
      (overheads(results).some((o) => o.p99 < 0)
        ? " A negative overhead means the bare process queued a burst that the control plane's batching absorbed."
        : "") +
      " The control plane makes one `/v1/embeddings` call per batch (its answer carries each input's" +
      " token count) and re-encodes the vectors; in exchange it batches concurrent requests, which the bare process" +
      ` does not: closed loop it serves ${qpsText(results.overhead.control_plane_probe.achieved_qps)} requests/s` +
      ` against the bare process's ${qpsText(results.overhead.direct_probe.achieved_qps)}.`,
  );
  const runs = results.batching.runs;
  // What one call to the inference process cost at each configured size, from runs whose batches filled.
  const calls = [...runs.map((run) => run.result), results.overhead.control_plane_probe].flatMap((run) =>
    run.server ? [run.server] : [],
  );
  const costs = BATCH_SIZES.flatMap((size) => {
    const full = calls.filter((call) => Math.abs(call.batch_size - size) <= 0.1 * size);
    if (full.length === 0) return [];
    const callMs = full.reduce((sum, call) => sum + call.inference_ms, 0) / full.length;
    return [{ size, callMs, capacity: (1000 * size) / callMs }];
  });
  const ranked = rankedBatching(results);
  const [best, second] = [ranked[0]!, ranked[1]!];
  const behind = runs.filter((run) => !keptUp(run.result));
  const defaults = runs.find((run) => run.batch_size === 32 && run.batch_timeout_ms === 5) ?? best;
  const setting = (run: BatchingResults["runs"][number]) => `${run.batch_size}/${run.batch_timeout_ms}`;
  lines.push(
    `* Batching at ${results.batching.qps} QPS: the batcher keeps one batch in flight, so its capacity is about` +
      " batch size / time per call to the inference process. A call took " +
      costs
        .map(
          (c) =>
            `${ms(c.callMs)} ms for ${c.size} (${ms(c.callMs / c.size)} ms per input, ~${c.capacity.toFixed(0)}/s)`,
        )
        .join(", ") +
      "." +
      (behind.length > 0
        ? ` Could not keep up (batch_size/batch_timeout_ms): ${behind.map(setting).join(", ")}` +
          ` (achieved ${behind.map((run) => qpsText(run.result.achieved_qps)).join(", ")}/s, the rest 429/504 or queued).`
        : "") +
      ` Lowest P99 here: batch_size ${best.batch_size}, batch_timeout_ms ${best.batch_timeout_ms}` +
      ` (${latencyLine(best.result)}, mean batch ${best.result.server?.batch_size.toFixed(1)}); then` +
      ` ${setting(second)} (${latencyLine(second.result)}).` +
      ` ${timeoutTrend(runs)} The defaults (${setting(defaults)}): ${latencyLine(defaults.result)}.` +
      " Batches only fill once requests queue: below capacity a large `batch_size` costs nothing, and" +
      " `batch_timeout_ms` trades a lone request's latency for fuller batches.",
  );
  return lines;
}

function render(results: Results): string {
  const m = results.machine;
  return [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gib} GiB RAM, ${m.os}, Node ${m.node}; the load generator` +
      ` runs on the same machine${m.nice === 0 ? "" : `, all at nice ${m.nice}`}. Measured ${results.date}. Each run: ${results.settings.warmup_s} s warm-up` +
      ` (not counted), then ${results.settings.measure_s} s measured; \`embedding.queue.request_timeout_ms\`` +
      ` ${results.settings.request_timeout_ms}, other settings default. Latency counts from each request's` +
      " scheduled send time; achieved/s counts 200 answers completed inside the window; mean batch is inputs" +
      " per batch from the control plane's `/metrics`; CPU is per process, `other processes` is the rest of the" +
      " machine.",
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      warmup: { type: "string", default: "2" },
      measure: { type: "string", default: "5" },
      only: { type: "string" },
      "batching-qps": { type: "string" },
      render: { type: "boolean", default: false },
      models: { type: "string", default: "minilm,qwen3,gemma" },
      precisions: { type: "string", default: "f32,int8" },
    },
  });
  if (values.only === "onnx") {
    await onnxScenario(values.models.split(","), values.precisions.split(","), values.render);
    return;
  }
  if (values.render) {
    // Rewrites the docs section from the recorded results (after a change to the report's wording).
    const section = render(JSON.parse(readFileSync(RESULTS, "utf8")) as Results);
    writeSection("load", section);
    process.stdout.write(`${section}\n`);
    return;
  }
  const timing = { warmupS: Number(values.warmup), measureS: Number(values.measure) };
  const only = values.only;
  if (only !== undefined && !["mock", "overhead", "batching"].includes(only)) {
    throw new Error(`--only takes mock, overhead, batching or onnx, not ${only}`);
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
      : Math.round(overhead!.control_plane_probe.achieved_qps * BATCHING_LOAD);
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
  writeSection("load", section);
  process.stdout.write(`${section}\n`);
}

await main();
