import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import type { Logger } from "pino";
import { modelSettings } from "../config/model-settings.ts";
import type { AkidbConfig } from "../config/schema.ts";
import { AkidbError } from "../errors.ts";
import { pruneModelCache, recordDownload, repoCacheDir } from "../models/cache.ts";
import { type FallbackPlan, type FallbackState, fallbackFor, fallbackMessage } from "../models/fallback.ts";
import type { ModelSource } from "../models/registry.ts";
import { forwardOutput, OutputTail } from "./child-output.ts";
import { ImpostorError, InferenceClient, type InferenceModel } from "./client.ts";
import {
  INFERENCE_HOST,
  type InferenceCommand,
  LaunchError,
  type LaunchSpec,
  pythonInferenceCommand,
} from "./launch.ts";

export type SupervisorState = "stopped" | "starting" | "ready" | "restarting" | "failed";

export interface SupervisorStatus {
  state: SupervisorState;
  pid: number | null;
  port: number | null;
  /** Automatic relaunches (after a crash or a failed start) since the supervisor was created. */
  restarts: number;
  /** Why the last launch failed or the process died, and how to recover; null once it is ready again. */
  lastError: string | null;
  /** The last lines the process wrote before that failure (for /admin and the log only: they may quote inputs or paths). */
  lastOutput: string | null;
  /** Registry alias of the model being served. */
  alias: string;
  /** The loaded model as the process reports it; null until ready. */
  model: InferenceModel | null;
  /** When the running process became ready (ISO 8601). */
  startedAt: string | null;
  /** Set while `embedding.fallback_model` serves because the configured model cannot be had. */
  fallback: FallbackState | null;
}

export interface SupervisorOptions {
  config: AkidbConfig;
  entry: ModelSource;
  logger: Logger;
  metrics?: { restarts: { inc(): void } };
  /** What to run for a launch; default the project's `python -m akidb_inference`. */
  command?: (spec: LaunchSpec) => InferenceCommand;
  /** How long a stopping process may take after SIGTERM before its group gets SIGKILL. Default 5000 ms. */
  stopGraceMs?: number;
  /** What to serve when `entry` cannot be had (only for the built-in default model). */
  fallback?: FallbackPlan;
}

interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** Set when the process could not be spawned at all. */
  error: string | null;
}

interface Child {
  pid: number | undefined;
  /** The port the child bound, from its own "listening" line; null until then. */
  port: number | null;
  /** Resolves with that port (never rejects: an exit before it is raced separately). */
  listening: Promise<number>;
  /** Its client, once the port is known. */
  client: InferenceClient | undefined;
  stderr: OutputTail;
  exited: Promise<ExitInfo>;
  /** Sets `exitInfo` once exited, so loops can look without awaiting. */
  exitInfo: ExitInfo | undefined;
  /** SIGTERM to the process group, SIGKILL after the grace period (execa's cancelSignal). */
  cancel: AbortController;
  /** Aborted (with the reason) when the process is given up: its client's calls in flight fail at once. */
  gone: AbortController;
  /** Why the liveness check gave the process up, when it did. */
  hung: string | undefined;
  /** Signals the whole process group, even after the leader exited (stray descendants). */
  killGroup: (signal: NodeJS.Signals) => void;
}

/** First readiness poll delay; doubled up to `POLL_MAX_MS`. */
const POLL_INITIAL_MS = 50;
const POLL_MAX_MS = 1000;
/** `/health` answers within 100 ms even mid-batch; longer means the process is wedged. */
const HEALTH_TIMEOUT_MS = 2000;

/**
 * Runs the inference process like text-embeddings-inference's launcher and Playwright's
 * web-server plugin: spawns it with a per-launch token, in a process
 * group of its own that every exit path kills (stop, crash, parent exit via execa's cleanup);
 * `start()` races the readiness poll against the child's exit and a deadline; an unexpected exit
 * is followed by a relaunch after an exponential backoff, and too many failures within
 * `restart.window_ms` leave it `failed` with the reason in `status()`.
 *
 * No other local process can stand in for the child: the child binds port 0 itself and reports
 * the port on its own stderr pipe (there is no window between a port choice and the bind), and
 * every `/health` poll must carry the child's proof that it holds the per-launch token (an HMAC of
 * a fresh challenge) before the token or any text is sent to that port.
 *
 * Operations (start, stop, restart, switchModel, scheduled relaunches) run one at a time; stop
 * and restart pre-empt a launch that is still waiting for readiness.
 */
export class InferenceSupervisor {
  readonly #config: AkidbConfig;
  readonly #logger: Logger;
  readonly #metrics: SupervisorOptions["metrics"];
  readonly #command: (spec: LaunchSpec) => InferenceCommand;
  readonly #stopGraceMs: number;
  #entry: ModelSource;

  #state: SupervisorState = "stopped";
  #child: Child | undefined;
  #model: InferenceModel | null = null;
  #startedAt: string | null = null;
  #restarts = 0;
  #lastError: string | null = null;
  #lastOutput: string | null = null;
  /** Times of recent failures, for the restart window and the backoff exponent. */
  #failures: number[] = [];
  #retryTimer: NodeJS.Timeout | undefined;
  /** When the scheduled relaunch fires (epoch ms), while one is scheduled. */
  #retryAt: number | null = null;
  /** Bumped by every operator action so an already scheduled relaunch knows it is stale. */
  #generation = 0;
  #launching: AbortController | undefined;
  #ops: Promise<unknown> = Promise.resolve();
  readonly #fallbackPlan: FallbackPlan | undefined;
  #fallback: FallbackState | null = null;

  constructor(options: SupervisorOptions) {
    this.#config = options.config;
    this.#entry = options.entry;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#command = options.command ?? pythonInferenceCommand;
    this.#stopGraceMs = options.stopGraceMs ?? 5000;
    this.#fallbackPlan = options.fallback;
  }

  get entry(): ModelSource {
    return this.#entry;
  }

  status(): SupervisorStatus {
    return {
      state: this.#state,
      pid: this.#child?.pid ?? null,
      port: this.#child?.port ?? null,
      restarts: this.#restarts,
      lastError: this.#lastError,
      lastOutput: this.#lastOutput,
      alias: this.#entry.alias,
      model: this.#model,
      startedAt: this.#startedAt,
      fallback: this.#fallback,
    };
  }

  /** The running process's client, or undefined unless the state is `ready`. */
  client(): InferenceClient | undefined {
    return this.#state === "ready" ? this.#child?.client : undefined;
  }

  /**
   * Seconds until a text request is worth retrying while there is no ready process: until the
   * scheduled relaunch (also in `failed`, which retries every `backoff_max_ms`), at least 1; 1
   * while a launch is under way; undefined when nothing will happen without an operator.
   */
  retryAfterSeconds(): number | undefined {
    if (this.#retryAt !== null) return Math.max(1, Math.ceil((this.#retryAt - Date.now()) / 1000));
    return this.#state === "starting" || this.#state === "restarting" ? 1 : undefined;
  }

  /**
   * Launches the process and resolves once `/health` says ready. A failed first launch rejects
   * with the reason and, like a crash, is retried in the background with backoff (unless it can
   * never work, e.g. no Python environment: then the state is `failed` at once).
   */
  start(): Promise<void> {
    return this.#serial(async () => {
      if (this.#state === "ready") return;
      this.#cancelRetry();
      if (this.#state === "failed" || this.#state === "stopped") this.#failures = [];
      try {
        await this.#launch("starting");
      } catch (error) {
        if (!(await this.#fallBack(error))) throw error;
      }
    });
  }

  /**
   * After the first launch of the configured model failed: when the process said it could not
   * load a model whose weights are not on this machine and a fallback is planned, serve the
   * fallback instead (logged once) and return true; else false.
   */
  async #fallBack(error: unknown): Promise<boolean> {
    const plan = this.#fallbackPlan;
    if (!plan || this.#fallback || !(error instanceof Error) || !(error.cause instanceof LoadFailure))
      return false;
    const state = fallbackFor(plan, this.#entry, error.message);
    if (!state) return false;
    this.#cancelRetry(); // the configured model's relaunch, scheduled by the failure
    this.#failures = [];
    this.#fallback = state;
    this.#entry = plan.entry;
    this.#logger.warn(
      { configured_model: state.configured_model, served_model: state.served_model },
      fallbackMessage(state),
    );
    await this.#launch("starting");
    return true;
  }

  /** Stops the process group (SIGTERM, SIGKILL after the grace period); no relaunch follows. */
  stop(): Promise<void> {
    this.#generation++;
    this.#launching?.abort();
    return this.#serial(async () => {
      this.#cancelRetry();
      this.#setState("stopped");
      await this.#terminate();
    });
  }

  /**
   * Replaces the process (also out of `failed`: the failure history is cleared). A launch that
   * fails rejects with AKIDB_ERR_MODEL_UNAVAILABLE (503, the reason and Retry-After) and is
   * retried with backoff like a crash.
   */
  restart(): Promise<void> {
    const generation = ++this.#generation;
    this.#launching?.abort();
    return this.#serial(async () => {
      if (generation !== this.#generation) return;
      this.#cancelRetry();
      this.#failures = [];
      this.#setState("restarting");
      await this.#terminate();
      await this.#launch("restarting").catch((error: unknown) => {
        const reason = firstLine(error instanceof Error ? error.message : String(error));
        const retry = this.#state === "restarting" ? { retryAfterSeconds: 1 } : {};
        throw new AkidbError("AKIDB_ERR_MODEL_UNAVAILABLE", { model: this.#entry.alias, reason }, retry);
      });
    });
  }

  /**
   * Serves `entry` without an outage: while the current process keeps serving, a second one
   * starts beside it (both models are in memory for that time); once it is ready, `commit` runs
   * the swap (the service passes the batcher's `exclusive`, so requests accepted before finish on
   * the old model) and the old process is stopped. If the new one cannot get ready, it is killed,
   * the old one serves on, and the call rejects with AKIDB_ERR_MODEL_LOAD_FAILED and the reason.
   * Without a ready process there is nothing to keep: the new model is launched in its place, and
   * on failure the previous entry is restored (and relaunched unless stopped).
   */
  switchModel(
    entry: ModelSource,
    commit: (swap: () => Promise<void>) => Promise<void> = (swap) => swap(),
  ): Promise<void> {
    const generation = ++this.#generation;
    return this.#serial(async () => {
      if (generation !== this.#generation) return;
      const previous = this.#entry;
      if (this.#state !== "ready" || !this.#child) {
        const wasStopped = this.#state === "stopped";
        this.#cancelRetry();
        this.#failures = [];
        await this.#terminate();
        this.#entry = entry;
        try {
          await this.#launch("restarting");
          this.#fallback = null;
        } catch (error) {
          this.#cancelRetry();
          this.#entry = previous;
          this.#failures = [];
          if (wasStopped) this.#setState("stopped");
          else this.#recordFailure(this.#lastError ?? "the model switch failed");
          throw loadFailed(entry, error, `${previous.alias} is restored`);
        }
        return;
      }
      const began = performance.now();
      const abort = new AbortController();
      this.#launching = abort;
      let next: Child | undefined;
      let model: InferenceModel;
      const noteDownload = this.#downloadRecorder(entry);
      try {
        this.#pruneCache(entry);
        next = this.#spawn(this.#command({ config: this.#config, entry }), entry);
        model = await this.#waitReady(next, abort.signal).finally(noteDownload);
      } catch (error) {
        if (next) await this.#terminate(next);
        const output = next?.stderr.toString() || null;
        const reason = error instanceof Error ? error.message : String(error);
        this.#logger.error({ model: entry.alias, output }, `the switch to ${entry.alias} failed: ${reason}`);
        throw loadFailed(entry, error, `${previous.alias} is still serving`);
      } finally {
        if (this.#launching === abort) this.#launching = undefined;
      }
      const ready = next;
      await commit(async () => {
        const old = this.#child;
        this.#entry = entry;
        this.#fallback = null;
        this.#child = ready;
        this.#model = model;
        this.#startedAt = new Date().toISOString();
        this.#lastError = null;
        this.#lastOutput = null;
        this.#failures = [];
        this.#cancelRetry();
        this.#setState("ready");
        void ready.exited.then((info) => this.#onExit(ready, info));
        void this.#watchLiveness(ready);
        this.#logger.info(
          {
            inference_pid: ready.pid,
            port: ready.port,
            model: model.id,
            previous: previous.alias,
            ms: Math.round(performance.now() - began),
          },
          "inference process ready: model switched",
        );
        if (old) await this.#terminate(old);
      });
    });
  }

  #serial(operation: () => Promise<void>): Promise<void> {
    const result = this.#ops.then(operation);
    this.#ops = result.catch(() => undefined);
    return result;
  }

  async #launch(state: "starting" | "restarting"): Promise<void> {
    this.#setState(state);
    this.#model = null;
    this.#startedAt = null;
    const abort = new AbortController();
    this.#launching = abort;
    const began = performance.now();
    let child: Child | undefined;
    try {
      await this.#terminate(); // never two children
      // Not before a crash restart: a model a user just deleted files from must not vanish in a loop.
      if (state === "starting") this.#pruneCache(this.#entry);
      const noteDownload = this.#downloadRecorder(this.#entry);
      child = this.#spawn(this.#command({ config: this.#config, entry: this.#entry }), this.#entry);
      this.#child = child;
      const model = await this.#waitReady(child, abort.signal).finally(noteDownload);
      this.#model = model;
      this.#startedAt = new Date().toISOString();
      this.#lastError = null;
      this.#lastOutput = null;
      this.#setState("ready");
      this.#logger.info(
        {
          inference_pid: child.pid,
          port: child.port,
          model: model.id,
          ms: Math.round(performance.now() - began),
        },
        "inference process ready",
      );
      const running = child;
      void running.exited.then((info) => this.#onExit(running, info));
      void this.#watchLiveness(running);
    } catch (error) {
      if (child) await this.#terminate(child);
      if (abort.signal.aborted) throw new Error("the inference process was stopped before it was ready");
      const reason = error instanceof Error ? error.message : String(error);
      const output = child?.stderr.toString() || null;
      this.#lastOutput = output;
      if (error instanceof LaunchError) this.#fail(reason);
      else this.#recordFailure(reason);
      // The caller (server start, an admin action) gets the output too; /health and public errors do not.
      // A load failure the process reported says why itself.
      throw new Error(error instanceof LoadFailure ? reason : withOutput(reason, output), { cause: error });
    } finally {
      if (this.#launching === abort) this.#launching = undefined;
    }
  }

  /**
   * Called before a launch: returns what to call after it, which records `entry` as AkiDB's own
   * download when its repo directory was absent from the cache before and is there now (only such
   * repos are ever pruned).
   */
  #downloadRecorder(entry: { source: string }): () => void {
    const { cache_dir } = modelSettings(this.#config);
    const dir = repoCacheDir(cache_dir, entry.source);
    if (existsSync(dir)) return () => {};
    return () => {
      try {
        if (existsSync(dir)) recordDownload(cache_dir, entry.source);
      } catch (error) {
        this.#logger.warn({ err: error, cache_dir }, "could not record the download in the model cache");
      }
    };
  }

  #pruneCache(entry: ModelSource): void {
    const { cache_dir, max_cache_gb } = modelSettings(this.#config);
    try {
      pruneModelCache(cache_dir, max_cache_gb * 1e9, entry.source, this.#logger);
    } catch (error) {
      this.#logger.warn({ err: error, cache_dir }, "could not prune the model cache");
    }
  }

  #spawn(command: InferenceCommand, entry: ModelSource): Child {
    const token = randomBytes(32).toString("hex");
    const cancel = new AbortController();
    const subprocess = execa(command.file, command.args, {
      // The control plane's own AKIDB_* settings (admin token, API keys) are not the child's business.
      env: { ...withoutAkidbVariables(), ...command.env, AKIDB_INFERENCE_TOKEN: token },
      // A pipe the child can watch: it reaches EOF when this process dies, even by SIGKILL.
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      buffer: false,
      reject: false,
      // Own process group; every kill below (cancel, force kill, cleanup on exit) hits the group.
      killDescendants: true,
      cleanup: true,
      cancelSignal: cancel.signal,
      forceKillAfterDelay: this.#stopGraceMs,
    });
    const logger = this.#logger.child({ component: "inference" });
    const stderr = new OutputTail();
    const gone = new AbortController();
    let reportPort: (port: number) => void = () => {};
    const listening = new Promise<number>((resolve) => {
      reportPort = resolve;
    });
    forwardOutput(subprocess.stdout, "stdout", logger);
    // Only the child writes to this pipe: its first "listening" line names the port it bound.
    forwardOutput(subprocess.stderr, "stderr", logger, {
      tail: stderr,
      onRecord: (record) => {
        if (record.msg !== "listening" || child.port !== null) return;
        const port = record.port;
        if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65_535) return;
        child.port = port;
        child.client = new InferenceClient({
          baseUrl: `http://${INFERENCE_HOST}:${port}`,
          token,
          model: entry.alias,
          timeoutMs: this.#config.embedding.queue.request_timeout_ms,
          gone: gone.signal,
        });
        reportPort(port);
      },
    });
    const child: Child = {
      pid: subprocess.pid,
      port: null,
      listening,
      client: undefined,
      stderr,
      exitInfo: undefined,
      exited: subprocess.then((result) => {
        const spawned = result.exitCode !== undefined || result.signal !== undefined;
        const info: ExitInfo = {
          code: result.exitCode ?? null,
          signal: result.signal ?? null,
          error: spawned ? null : (result.shortMessage ?? "spawn failed"),
        };
        child.exitInfo = info;
        return info;
      }),
      cancel,
      gone,
      hung: undefined,
      killGroup: (signal) => {
        subprocess.kill(signal);
      },
    };
    this.#logger.info({ inference_pid: subprocess.pid, model: entry.source }, "inference process spawned");
    return child;
  }

  /** Polls `/health` with backoff until ready; rejects on exit, load failure, deadline or abort. */
  async #waitReady(child: Child, signal: AbortSignal): Promise<InferenceModel> {
    const timeoutMs = modelSettings(this.#config).startup_timeout_ms;
    const deadline = Date.now() + timeoutMs;
    const waited = new AbortController();
    const client = await Promise.race([
      child.listening.then(() => child.client),
      child.exited,
      sleep(timeoutMs, undefined, { signal: AbortSignal.any([signal, waited.signal]) }).catch(
        () => undefined,
      ),
    ]).finally(() => waited.abort());
    if (!(client instanceof InferenceClient)) {
      if (child.exitInfo) throw new Error(this.#describeExit(child, "before it was ready"));
      if (signal.aborted) throw new Error("stopped");
      throw new Error(`the inference process did not report a listening port within ${timeoutMs} ms`);
    }
    let delay = POLL_INITIAL_MS;
    let last = "no answer yet";
    for (;;) {
      if (child.exitInfo) throw new Error(this.#describeExit(child, "before it was ready"));
      if (signal.aborted) throw new Error("stopped");
      if (Date.now() >= deadline) {
        throw new Error(`the inference process was not ready within ${timeoutMs} ms (last /health: ${last})`);
      }
      try {
        const health = await client.health(AbortSignal.any([signal, AbortSignal.timeout(HEALTH_TIMEOUT_MS)]));
        if (health.status === "ready") return health.model;
        if (health.status === "failed") throw new LoadFailure(health.reason);
        last = `${health.status}: ${health.reason}`;
      } catch (error) {
        if (error instanceof LoadFailure || error instanceof ImpostorError) throw error;
        last =
          error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : "?";
      }
      const wait = Math.min(delay, Math.max(0, deadline - Date.now()));
      await Promise.race([sleep(wait, undefined, { signal }).catch(() => undefined), child.exited]);
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  /**
   * Asks the ready process `/health` every `liveness_interval_ms`; with no answer (or no valid
   * proof) for `liveness_timeout_ms` it is declared hung: requests in flight on it fail at once
   * with a retryable 503, its group gets SIGKILL (a stopped process cannot act on SIGTERM), and the
   * exit that follows is handled like a crash (restart with backoff).
   */
  async #watchLiveness(child: Child): Promise<void> {
    const { liveness_interval_ms: interval, liveness_timeout_ms: timeout } = modelSettings(this.#config);
    const client = child.client;
    const current = () => this.#child === child && this.#state === "ready" && !child.exitInfo;
    let answeredAt = Date.now();
    let last = "no answer";
    while (current()) {
      const stop = new AbortController();
      await Promise.race([
        sleep(interval, undefined, { signal: stop.signal }).catch(() => undefined),
        child.exited,
      ]).finally(() => stop.abort());
      if (!current() || !client) return;
      const left = Math.max(1, answeredAt + timeout - Date.now());
      try {
        const health = await Promise.race([client.health(AbortSignal.timeout(left)), child.exited]);
        if (!current()) return;
        if ("status" in health && health.status === "ready") {
          answeredAt = Date.now();
          continue;
        }
        last = "status" in health ? `${health.status}: ${health.reason}` : "exited";
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
        if (error instanceof ImpostorError) answeredAt = 0;
      }
      if (!current()) return;
      if (Date.now() - answeredAt >= timeout) {
        this.#giveUp(
          child,
          `the inference process did not answer /health within ${timeout} ms (${last}): declared hung and killed`,
        );
        return;
      }
    }
  }

  #giveUp(child: Child, reason: string): void {
    child.hung = reason;
    this.#logger.error({ inference_pid: child.pid }, reason);
    // New requests see the state at once; the exit that SIGKILL causes is handled by #onExit.
    this.#setState("restarting");
    child.gone.abort(new Error(reason));
    child.killGroup("SIGKILL");
  }

  #onExit(child: Child, info: ExitInfo): void {
    const hung = child.hung !== undefined && this.#state === "restarting";
    if (this.#child !== child || (this.#state !== "ready" && !hung)) return;
    this.#child = undefined;
    this.#model = null;
    this.#startedAt = null;
    child.killGroup("SIGKILL");
    const reason = child.hung ?? this.#describeExit(child, "unexpectedly");
    child.gone.abort(new Error(reason));
    this.#lastOutput = child.stderr.toString() || null;
    this.#logger.error({ code: info.code, signal: info.signal, output: this.#lastOutput }, reason);
    this.#recordFailure(reason);
  }

  #describeExit(child: Child, when: string): string {
    const info = child.exitInfo;
    const how = info?.error
      ? `could not be spawned (${info.error})`
      : `exited ${info?.signal ? `on signal ${info.signal}` : `with code ${info?.code}`} ${when}`;
    return `the inference process ${how}`;
  }

  #recordFailure(reason: string): void {
    const { max_restarts, window_ms, backoff_initial_ms, backoff_max_ms } = modelSettings(
      this.#config,
    ).restart;
    const now = Date.now();
    this.#failures = [...this.#failures.filter((time) => now - time < window_ms), now];
    this.#lastError = reason;
    const recovery =
      "fix the cause (the server log has the process's output), then POST /admin/v1/inference/restart";
    if (max_restarts === 0) {
      this.#fail(`${reason} (embedding.mlx.restart.max_restarts is 0: not restarting; ${recovery})`);
      return;
    }
    if (this.#failures.length > max_restarts) {
      // Gave up restarting quickly, not for good: a cause that goes away (a disk filled, a device
      // busy) heals without an operator.
      this.#fail(
        `${reason} (${this.#failures.length} failures within ${window_ms} ms: retrying only every ` +
          `${backoff_max_ms} ms; ${recovery} to retry now)`,
      );
      this.#scheduleRelaunch(backoff_max_ms, "failed");
      return;
    }
    const delay = Math.min(backoff_initial_ms * 2 ** (this.#failures.length - 1), backoff_max_ms);
    this.#setState("restarting");
    this.#logger.warn(
      { delayMs: delay, failures: this.#failures.length },
      "restarting the inference process",
    );
    this.#scheduleRelaunch(delay, "restarting");
  }

  /** Relaunches after `delay` unless an operator action or a state change came first. */
  #scheduleRelaunch(delay: number, state: "restarting" | "failed"): void {
    const generation = this.#generation;
    this.#retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#retryAt = null;
      void this.#serial(async () => {
        if (generation !== this.#generation || this.#state !== state) return;
        this.#restarts++;
        this.#metrics?.restarts.inc();
        await this.#launch("restarting").catch(() => undefined); // recorded by #launch
      });
    }, delay);
  }

  #fail(reason: string): void {
    this.#lastError = reason;
    this.#setState("failed");
    this.#logger.error({ reason }, "inference process failed");
  }

  #cancelRetry(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#retryAt = null;
  }

  async #terminate(child: Child | undefined = this.#child): Promise<void> {
    if (!child) return;
    if (this.#child === child) this.#child = undefined;
    child.cancel.abort();
    await child.exited;
  }

  #setState(state: SupervisorState): void {
    if (state !== this.#state) this.#logger.debug({ from: this.#state, to: state }, "inference state");
    this.#state = state;
  }
}

function firstLine(text: string): string {
  return text.split("\n", 1)[0]!;
}

/** The error of a model switch that did not happen; `serving` says what serves instead. */
function loadFailed(entry: ModelSource, error: unknown, serving: string): AkidbError {
  const reason = firstLine(error instanceof Error ? error.message : String(error));
  return new AkidbError(
    "AKIDB_ERR_MODEL_LOAD_FAILED",
    { model: entry.alias, reason, serving },
    { cause: error },
  );
}

function withOutput(reason: string, output: string | null): string {
  return output ? `${reason}; its last output:\n${output}` : reason;
}

/** Unsets (for execa's `extendEnv`) every inherited `AKIDB_*` variable. */
function withoutAkidbVariables(): Record<string, undefined> {
  return Object.fromEntries(
    Object.keys(process.env).flatMap((name) => (name.startsWith("AKIDB_") ? [[name, undefined]] : [])),
  );
}

/** `/health` said `failed`: the process is alive but will not load this model. */
class LoadFailure extends Error {}
