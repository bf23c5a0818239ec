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
  /** Requests per second the schedule offered (open loop) or the client count (closed loop). */
  offered_qps: number | null;
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

/**
 * A keep-alive pool with room for `sockets` requests in flight: sized for the load, so that
 * requests wait in the server's queue (and meet its 429 and 504) rather than in the client's.
 */
export function keepAliveAgent(sockets: number): Agent {
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

function tally(
  outcomes: Outcome[],
  window: { start: number; end: number },
  cpu: { start: Record<string, number>; end: Record<string, number> },
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
  const percent = (role: string) =>
    Math.round((((cpu.end[role] ?? 0) - (cpu.start[role] ?? 0)) / measuredS) * 100);
  const cpuPercent: Record<string, number> = {};
  for (const role of Object.keys(cpu.end)) if (role !== "machine") cpuPercent[role] = percent(role);
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
  };
}

export interface OpenLoopOptions {
  endpoint: Endpoint;
  /** The body of the i-th request. */
  body: (i: number) => string;
  qps: number;
  warmupS: number;
  measureS: number;
  timeoutMs: number;
  cpu: CpuProbes;
}

/**
 * Sends `qps` requests per second for warm-up + measurement seconds on a fixed schedule (the
 * i-th at start + i / qps), then waits for every answer. Only requests scheduled inside the
 * measurement window count.
 */
export async function openLoop(options: OpenLoopOptions): Promise<RunResult> {
  const { endpoint, body, qps, warmupS, measureS, timeoutMs } = options;
  const agent = keepAliveAgent(Math.min(4096, Math.max(64, Math.ceil(qps * 2))));
  const intervalMs = 1000 / qps;
  const total = Math.round(qps * (warmupS + measureS));
  const start = performance.now() + 10;
  const window = { start: start + warmupS * 1000, end: start + (warmupS + measureS) * 1000 };
  const outcomes: Outcome[] = [];
  const pending: Promise<void>[] = [];
  const cpu = { start: {}, end: {} } as { start: Record<string, number>; end: Record<string, number> };
  // The send loop runs past the window's start, so a timer takes that snapshot; the end one follows the loop.
  setTimeout(() => (cpu.start = cpuSnapshot(options.cpu)), Math.max(0, window.start - performance.now()));
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
  await sleep(window.end - performance.now());
  cpu.end = cpuSnapshot(options.cpu);
  await Promise.all(pending);
  agent.destroy();
  return { offered_qps: qps, concurrency: null, ...tally(outcomes, window, cpu) };
}

export interface ClosedLoopOptions {
  endpoint: Endpoint;
  body: (i: number) => string;
  concurrency: number;
  warmupS: number;
  measureS: number;
  timeoutMs: number;
  cpu: CpuProbes;
}

/** `concurrency` clients, each sending its next request as soon as the last one is answered. */
export async function closedLoop(options: ClosedLoopOptions): Promise<RunResult> {
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
  const cpu = { start: {}, end: {} } as { start: Record<string, number>; end: Record<string, number> };
  const clients = Promise.all(Array.from({ length: concurrency }, client));
  await sleep(window.start - performance.now());
  cpu.start = cpuSnapshot(options.cpu);
  await sleep(window.end - performance.now());
  cpu.end = cpuSnapshot(options.cpu);
  await clients;
  agent.destroy();
  return { offered_qps: null, concurrency, ...tally(outcomes, window, cpu) };
}
