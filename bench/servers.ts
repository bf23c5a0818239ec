// The servers bench/load.ts measures, as real child processes on real ports: `bin/akidb serve`
// and a bare inference process. Each runs in its own process group with its output in a log
// file (reading a pipe would cost the generator CPU on a small machine); every group is killed
// on stop, on SIGINT/SIGTERM and at exit, so a benchmark never leaves a process behind.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { isAlive, waitFor } from "../control-plane/test/helpers.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const PYTHON = path.join(ROOT, "inference", ".venv", "bin", "python");
const STOP_GRACE_MS = 15_000;
const START_TIMEOUT_MS = 300_000;

export interface RunningProcess {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  url: string;
  /** Processes whose CPU time is worth sampling, by role. */
  pids: Record<string, number>;
  /** Everything the process group wrote so far (JSON log lines). */
  log(): string;
  stop(): Promise<void>;
}

/** Process groups still running, killed outright if the benchmark exits without stopping them. */
const groups = new Set<number>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** How to stop each running server, for the signal handlers. */
const stopping = new Map<number, () => Promise<void>>();

process.on("exit", () => {
  for (const pid of groups) killGroup(pid, "SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping the servers\n`);
    void Promise.all([...stopping.values()].map((stop) => stop())).finally(() => process.exit(130));
  });
}

interface Spawned {
  child: ChildProcess;
  dir: string;
  log: () => string;
  exited: Promise<void>;
}

/** Starts `file args` as the leader of a new process group, its stdout and stderr in `dir/output.log`. */
function spawnGroup(file: string, args: string[], env: Record<string, string>, dir: string): Spawned {
  const logPath = path.join(dir, "output.log");
  const out = openSync(logPath, "w");
  const child = spawn(file, args, {
    detached: true,
    stdio: ["ignore", out, out],
    env: { PATH: process.env.PATH ?? "", HOME: dir, ...env },
  });
  closeSync(out); // the child holds its own copy
  groups.add(child.pid!);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { child, dir, log: () => readFileSync(logPath, "utf8"), exited };
}

/** The first JSON log line whose `msg` is `msg` and which no component re-logged. */
/** The JSON-line records of a process's log, in order (other lines skipped). */
export function logRecords(log: string): Record<string, unknown>[] {
  return log
    .split("\n")
    .filter((line) => line.startsWith("{") && line.endsWith("}"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function logLine(log: string, msg: string): Record<string, unknown> | undefined {
  return logRecords(log).find((record) => record.msg === msg && record.component === undefined);
}

/** SIGTERM the group, SIGKILL it after the grace period, then the other pids if they linger. */
function stopper(spawned: Spawned, others: () => number[]): () => Promise<void> {
  const pid = spawned.child.pid!;
  const stop = async () => {
    const leftovers = others();
    if (spawned.child.exitCode === null && spawned.child.signalCode === null) {
      killGroup(pid, "SIGTERM");
      const timer = setTimeout(() => killGroup(pid, "SIGKILL"), STOP_GRACE_MS);
      await spawned.exited;
      clearTimeout(timer);
    }
    groups.delete(pid);
    for (const other of leftovers) {
      await waitFor(() => !isAlive(other), `pid ${other} to exit`, STOP_GRACE_MS).catch(() =>
        process.kill(other, "SIGKILL"),
      );
    }
    stopping.delete(pid);
    rmSync(spawned.dir, { recursive: true, force: true });
  };
  stopping.set(pid, stop);
  return stop;
}

async function started<T>(spawned: Spawned, what: string, ready: () => Promise<T | undefined>): Promise<T> {
  try {
    return await waitFor(
      async () => {
        if (spawned.child.exitCode !== null) throw new Error(`exited with ${spawned.child.exitCode}`);
        return ready();
      },
      what,
      START_TIMEOUT_MS,
    );
  } catch (error) {
    const tail = spawned.log().split("\n").slice(-20).join("\n");
    await stopping.get(spawned.child.pid!)?.();
    throw new Error(`${what}: ${(error as Error).message}\n${tail}`);
  }
}

/**
 * `bin/akidb serve` on a free port with `config` (the port is 0; storage is a fresh directory unless given),
 * returned once `/health` says ok (in mlx mode: the model is loaded and warmed up).
 */
export async function startControlPlane(config: Record<string, unknown>): Promise<RunningProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), "akidb-bench-"));
  const file = path.join(dir, "akidb.yaml");
  // A `storage` section in `config` wins: a benchmark restarting on the same data passes its own.
  const full = {
    ...config,
    server: { port: 0 },
    storage: config.storage ?? { data_dir: path.join(dir, "data") },
  };
  // JSON is YAML.
  writeFileSync(file, JSON.stringify(full, null, 2));
  const spawned = spawnGroup(path.join(ROOT, "bin", "akidb"), ["serve", "--config", file], {}, dir);
  let inferencePid: number | undefined;
  const stop = stopper(spawned, () => (inferencePid === undefined ? [] : [inferencePid]));
  const url = await started(spawned, "the control plane's listening line", async () => {
    return logLine(spawned.log(), "listening")?.url as string | undefined;
  });
  await started(spawned, "the control plane's /health to say ok", async () => {
    const health = (await (await fetch(`${url}/health`)).json()) as {
      status: string;
      embedder: { status: string; reason?: string } | null;
    };
    // A model that cannot load will not load on a later try either: give up at once.
    if (health.embedder?.status === "failed") throw new Error(`the model failed: ${health.embedder.reason}`);
    return health.status === "ok" || undefined;
  });
  const status = (await (await fetch(`${url}/admin/v1/status`)).json()) as {
    inference: { pid: number | null } | null;
  };
  inferencePid = status.inference?.pid ?? undefined;
  const pids: Record<string, number> = { control_plane: spawned.child.pid! };
  if (inferencePid !== undefined) pids.inference = inferencePid;
  return { url, pids, log: spawned.log, stop };
}

/**
 * `python -m akidb_inference --model DIR [...options]` on a free port, with `token` required; returned
 * once ready. `options` are further flags, e.g. `["--backend", "onnx", "--onnx-precision", "int8"]`.
 */
export async function startInference(
  model: string,
  token: string,
  options: string[] = [],
): Promise<RunningProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), "akidb-bench-"));
  const args = ["-m", "akidb_inference", "--model", model, "--port", "0", "--offline", ...options];
  const spawned = spawnGroup(
    PYTHON,
    [...args, "--cache-dir", path.join(dir, "cache")],
    { AKIDB_INFERENCE_TOKEN: token, PYTHONUNBUFFERED: "1" },
    dir,
  );
  const stop = stopper(spawned, () => []);
  const url = await started(spawned, "the inference process's listening line", async () => {
    return logLine(spawned.log(), "listening")?.url as string | undefined;
  });
  await started(spawned, "the inference process to be ready", async () => {
    return (await fetch(`${url}/health`)).ok || undefined;
  });
  return { url, pids: { inference: spawned.child.pid! }, log: spawned.log, stop };
}
