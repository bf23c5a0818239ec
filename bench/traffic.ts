// Load generation for bench/load.ts: an open-loop generator (requests leave on a fixed schedule
// whatever the answers do, and latency counts from the scheduled time, so a stalled server shows
// up as latency instead of slowing the generator down: no coordinated omission) and a closed-loop
// probe (N clients back to back) that finds a server's capacity.
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";

/** Where requests go: a full URL and the headers every request carries. */
export interface Endpoint {
  url: string;
  headers: Record<string, string>;
}

/** One request's fate; status 0 is a transport error or the client's own timeout. */
interface Outcome {
  status: number;
  scheduledMs: number;
  sentMs: number;
  doneMs: number;
}

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface RunResult {
  /** Requests per second the schedule offered (open loop; null in closed loop). */
  offered_qps: number | null;
  /** Clients sending back to back (closed loop; null in open loop). */
  concurrency: number | null;
  measured_s: number;
  /** Requests scheduled inside the measurement window. */
  sent: number;
  ok: number;
  /** 200 answers completed inside the measurement window, per second. */
  achieved_qps: number;
  /** Latency of the window's 200 answers, from the scheduled send time, in ms. */
  latency_ms: LatencySummary | null;
  errors: { "429": number; "504": number; other: number };
  /** Every non-200 status seen in the window (0: connection error or client timeout). */
  statuses: Record<string, number>;
  /** How late the generator sent (actual minus scheduled), P99 in ms: large means the generator, not the server, was the limit. */
  send_lag_p99_ms: number;
  /** CPU used during the window, in % of one core, by process role. */
  cpu_percent: Record<string, number>;
  /** The control plane's own account of the window, from its /metrics; null for other servers. */
  server: ServerMeans | null;
}

/** Means over the window from the control plane's histograms (their _sum / _count deltas). */
export interface ServerMeans {
  /** Inputs per batch sent to the embedder. */
  batch_size: number;
  /** Per input: waiting in the batcher's queue. */
  queue_ms: number;
  /** Per batch: the embedder's call (for the inference process: its HTTP round trips). */
  inference_ms: number;
  /** Per request, inside the control plane. */
  total_ms: number;
}

/** Processes whose CPU time is sampled at the window's edges, by role (the generator is added). */
export type CpuProbes = Record<string, number>;

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux x86-64 (`getconf CLK_TCK`)

/** User + system CPU seconds of a process so far, from /proc (0 once it is gone). */
function cpuSeconds(pid: number): number {
  try {
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
function machineCpuSeconds(): number {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLOCK_TICKS_PER_S;
}

function cpuSnapshot(pids: CpuProbes): Record<string, number> {
  const usage = process.cpuUsage();
  const snapshot: Record<string, number> = { load_generator: (usage.user + usage.system) / 1e6 };
  for (const [role, pid] of Object.entries(pids)) snapshot[role] = cpuSeconds(pid);
  snapshot.machine = machineCpuSeconds();
  return snapshot;
}

const HISTOGRAM_LINE = /^akidb_embedding_(batch_size|latency_ms)_(sum|count)(?:\{stage="(\w+)"\})? (\S+)$/gm;

/** The `_sum` and `_count` of the batch size and latency histograms, keyed like `latency_ms.queue.sum`. */
async function histogramTotals(metricsUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const totals: Record<string, number> = {};
  for (const [, name, part, stage, value] of text.matchAll(HISTOGRAM_LINE)) {
    totals[[name, stage, part].filter(Boolean).join(".")] = Number(value);
  }
  return totals;
}

function serverMeans(start: Record<string, number>, end: Record<string, number>): ServerMeans {
  const mean = (key: string) =>
    ((end[`${key}.sum`] ?? 0) - (start[`${key}.sum`] ?? 0)) /
    ((end[`${key}.count`] ?? 0) - (start[`${key}.count`] ?? 0));
  return {
    batch_size: mean("batch_size"),
    queue_ms: mean("latency_ms.queue"),
    inference_ms: mean("latency_ms.inference"),
    total_ms: mean("latency_ms.total"),
  };
}

/** CPU and (for the control plane) histogram totals at one edge of the measurement window. */
interface Snapshot {
  cpu: Record<string, number>;
  histograms: Record<string, number> | null;
}

async function snapshot(pids: CpuProbes, metricsUrl: string | undefined): Promise<Snapshot> {
  const cpu = cpuSnapshot(pids);
  return { cpu, histograms: metricsUrl === undefined ? null : await histogramTotals(metricsUrl) };
}

/** The most connections one run opens: well under the usual 20k-65k open-files limit of both ends. */
const MAX_SOCKETS = 8192;

/**
 * A keep-alive pool with room for `sockets` requests in flight: sized for the load, so that
 * requests wait in the server's queue (and meet its 429 and 504) rather than in the client's.
 */
function keepAliveAgent(sockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
}

/** POSTs `body` and reads the whole answer; resolves with the status (0 on error or timeout). */
function post(agent: Agent, endpoint: Endpoint, body: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      endpoint.url,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          ...endpoint.headers,
        },
        timeout: timeoutMs,
      },
      (res) => {
        res.on("error", () => resolve(0));
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.resume();
      },
    );
    req.on("timeout", () => req.destroy(new Error("client timeout")));
    req.on("error", () => resolve(0));
    req.end(body);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

function summarise(values: number[]): LatencySummary | null {
  if (values.length === 0) return null;
  const sorted = values.toSorted((a, b) => a - b);
  return {
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1)!,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

interface Window {
  start: number;
  end: number;
}

/** Snapshots at the window's two edges, taken while the load runs. */
async function observe(window: Window, options: LoadOptions): Promise<{ start: Snapshot; end: Snapshot }> {
  await sleep(window.start - performance.now());
  const start = await snapshot(options.cpu, options.metricsUrl);
  await sleep(window.end - performance.now());
  return { start, end: await snapshot(options.cpu, options.metricsUrl) };
}

function tally(
  outcomes: Outcome[],
  window: Window,
  edges: { start: Snapshot; end: Snapshot },
): Omit<RunResult, "offered_qps" | "concurrency"> {
  const measuredS = (window.end - window.start) / 1000;
  const inWindow = outcomes.filter((o) => o.scheduledMs >= window.start && o.scheduledMs < window.end);
  const ok = inWindow.filter((o) => o.status === 200);
  const statuses: Record<string, number> = {};
  for (const o of inWindow) {
    if (o.status !== 200) statuses[o.status] = (statuses[o.status] ?? 0) + 1;
  }
  const failed = inWindow.length - ok.length;
  const errors = { "429": statuses["429"] ?? 0, "504": statuses["504"] ?? 0, other: 0 };
  errors.other = failed - errors["429"] - errors["504"];
  const completed = outcomes.filter(
    (o) => o.status === 200 && o.doneMs >= window.start && o.doneMs < window.end,
  );
  const lag = summarise(inWindow.map((o) => o.sentMs - o.scheduledMs));
  const { start, end } = edges;
  const percent = (role: string) =>
    Math.round((((end.cpu[role] ?? 0) - (start.cpu[role] ?? 0)) / measuredS) * 100);
  const cpuPercent: Record<string, number> = {};
  for (const role of Object.keys(end.cpu)) if (role !== "machine") cpuPercent[role] = percent(role);
  // What the rest of the machine used meanwhile: anything else running skews the numbers.
  const measured = Object.values(cpuPercent).reduce((sum, value) => sum + value, 0);
  cpuPercent.other_processes = Math.max(0, percent("machine") - measured);
  return {
    measured_s: measuredS,
    sent: inWindow.length,
    ok: ok.length,
    achieved_qps: completed.length / measuredS,
    latency_ms: summarise(ok.map((o) => o.doneMs - o.scheduledMs)),
    errors,
    statuses,
    send_lag_p99_ms: lag?.p99 ?? 0,
    cpu_percent: cpuPercent,
    server: start.histograms && end.histograms ? serverMeans(start.histograms, end.histograms) : null,
  };
}

interface LoadOptions {
  endpoint: Endpoint;
  /** The body of the i-th request. */
  body: (i: number) => string;
  warmupS: number;
  measureS: number;
  timeoutMs: number;
  cpu: CpuProbes;
  /** The control plane's /metrics, read at the window's edges. */
  metricsUrl?: string;
}

/**
 * Sends `qps` requests per second for warm-up + measurement seconds on a fixed schedule (the
 * i-th at start + i / qps), then waits for every answer. Only requests scheduled inside the
 * measurement window count.
 */
export async function openLoop(options: LoadOptions & { qps: number }): Promise<RunResult> {
  const { endpoint, body, qps, warmupS, measureS, timeoutMs } = options;
  // Room for every request of a whole client timeout in flight (within the file descriptor limit).
  const agent = keepAliveAgent(Math.min(MAX_SOCKETS, Math.max(64, Math.ceil((qps * timeoutMs) / 1000))));
  const intervalMs = 1000 / qps;
  const total = Math.round(qps * (warmupS + measureS));
  const start = performance.now() + 10;
  const window = { start: start + warmupS * 1000, end: start + (warmupS + measureS) * 1000 };
  const outcomes: Outcome[] = [];
  const pending: Promise<void>[] = [];
  const edges = observe(window, options);
  let next = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const now = performance.now();
      // Everything due by now leaves now: a late timer sends a burst instead of shifting the schedule.
      for (; next < total && start + next * intervalMs <= now; next++) {
        const outcome: Outcome = {
          status: 0,
          scheduledMs: start + next * intervalMs,
          sentMs: now,
          doneMs: 0,
        };
        outcomes.push(outcome);
        pending.push(
          post(agent, endpoint, body(next), timeoutMs).then((status) => {
            outcome.status = status;
            outcome.doneMs = performance.now();
          }),
        );
      }
      if (next >= total) return done();
      setTimeout(tick, Math.max(0, start + next * intervalMs - performance.now()));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
  const measured = await edges;
  await Promise.all(pending);
  agent.destroy();
  return { offered_qps: qps, concurrency: null, ...tally(outcomes, window, measured) };
}

/** `concurrency` clients, each sending its next request as soon as the last one is answered. */
export async function closedLoop(options: LoadOptions & { concurrency: number }): Promise<RunResult> {
  const { endpoint, body, concurrency, warmupS, measureS, timeoutMs } = options;
  const agent = keepAliveAgent(concurrency);
  const start = performance.now();
  const window = { start: start + warmupS * 1000, end: start + (warmupS + measureS) * 1000 };
  const outcomes: Outcome[] = [];
  let next = 0;
  const client = async () => {
    while (performance.now() < window.end) {
      const sentMs = performance.now();
      const outcome: Outcome = { status: 0, scheduledMs: sentMs, sentMs, doneMs: 0 };
      outcomes.push(outcome);
      outcome.status = await post(agent, endpoint, body(next++), timeoutMs);
      outcome.doneMs = performance.now();
    }
  };
  const [measured] = await Promise.all([
    observe(window, options),
    ...Array.from({ length: concurrency }, client),
  ]);
  agent.destroy();
  return { offered_qps: null, concurrency, ...tally(outcomes, window, measured) };
}
