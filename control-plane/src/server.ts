import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Logger } from "pino";
import { WorkerCollectionStore } from "./collections/worker-store.ts";
import type { AkidbConfig } from "./config/schema.ts";
import { createEmbeddingService } from "./embedding/service.ts";
import { createApp } from "./http/app.ts";
import { UpsertParser } from "./http/upsert-parser.ts";
import type { LogOutput } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { buildRegistry } from "./models/registry.ts";

export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:8080` (the real port when `server.port` is 0). */
  url: string;
  /**
   * Stops accepting connections, lets accepted requests finish within
   * `server.shutdown_timeout_ms` (then answers the rest 503), and stops the inference process.
   */
  close(): Promise<void>;
}

const packageJson = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** How long the 503s of requests cut off by the shutdown timeout get to reach their clients. */
const ABORTED_RESPONSES_GRACE_MS = 1000;

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Wires config -> registry -> embedding service + collection store -> app, and listens. Rejects when
 * another server holds `storage.data_dir` or the port is taken. `logOutput`, where `logger` writes
 * through one, has its dropped lines counted in the metrics.
 */
export async function startServer(
  config: AkidbConfig,
  logger: Logger,
  logOutput?: LogOutput,
): Promise<RunningServer> {
  const startedAt = new Date();
  const metrics = createMetrics();
  logOutput?.onDrop(() => metrics.logLinesDropped.inc());
  const registry = buildRegistry(config);
  const embedding = createEmbeddingService({ config, registry, metrics, logger });
  // Loads every collection (snapshot + log replay) before the port opens. The store runs in a worker
  // thread: its commits, index inserts and snapshot saves never hold this event loop.
  const collections = await WorkerCollectionStore.open({
    dataDir: config.storage.data_dir,
    snapshotEveryOps: config.storage.snapshot_every_ops,
    exactSearchMaxMatches: config.collection.exact_search_max_matches,
    maxCollections: config.collection.max_collections,
    insertThreads: config.collection.insert_threads,
    compactDeadRatio: config.collection.compact_dead_ratio,
    logger: logger.child({ component: "collections" }),
  });
  // Upsert bodies are parsed and checked in a thread of their own (one JSON body of 1000 vectors
  // is ~40 ms of parsing), so this event loop stays free for /health and other requests.
  const upsertParser = new UpsertParser(config);
  let closing = false;
  const app = createApp({
    config,
    collections,
    upsertParser,
    registry,
    embedding,
    metrics,
    logger,
    startedAt,
    versions: { akidb: packageJson.version, node: process.version },
    closing: () => closing,
  });

  const { headersTimeout, requestTimeout } = receiveTimeouts(config.server);
  // `[::1]` is how a URL writes an IPv6 host; the socket wants `::1`.
  const hostname = config.server.host.replace(/^\[(.*)\]$/, "$1");
  // Without `createServer` options @hono/node-server listens with node:http.
  const server = serve({
    fetch: app.fetch,
    hostname,
    port: config.server.port,
    // A slow or unfinished request holds a socket at most this long (Node's default is 300 s), and
    // is checked for it every second rather than every 30 s.
    serverOptions: { headersTimeout, requestTimeout, connectionsCheckingInterval: 1000 },
  }) as Server;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
  } catch (error) {
    await upsertParser.close();
    await collections.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const url = `http://${host}:${port}`;
  logger.info(
    { url, mode: config.embedding.mode, model: embedding.kind === "none" ? null : embedding.modelNames()[0] },
    "listening",
  );
  // The model loads in the background: /health and /admin answer meanwhile (`degraded`), and a
  // model that fails to load leaves the server up for vector traffic.
  embedding.start().catch((error: unknown) => {
    logger.error(
      { reason: error instanceof Error ? error.message : String(error) },
      "the model did not load",
    );
  });

  return {
    url,
    async close() {
      if (closing) return;
      closing = true;
      const timeoutMs = config.server.shutdown_timeout_ms;
      logger.info({ timeoutMs }, "shutting down: finishing accepted requests");
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const finished = (async () => {
        await embedding.close();
        // Keep-alive connections whose last response just went out.
        server.closeIdleConnections();
        await serverClosed;
      })();
      if (!(await settlesWithin(finished, timeoutMs))) {
        logger.warn({ timeoutMs }, "server.shutdown_timeout_ms passed: answering the remaining requests 503");
        embedding.abortAll();
        await settlesWithin(serverClosed, ABORTED_RESPONSES_GRACE_MS);
        server.closeAllConnections();
      }
      await serverClosed;
      await embedding.stop();
      await upsertParser.close();
      await collections.close();
      logger.info("stopped");
    },
  };
}

/**
 * How long a client may take to send a request's headers (`server.headers_timeout_ms`), and the
 * whole request: the headers plus `server.body_timeout_ms_per_mb` for each MiB of the largest body
 * allowed (`server.max_body_bytes`), at least one. Past either, Node answers a bare 408 and closes
 * the socket. For bodies this is a backstop: `receiveBody` (http/middleware.ts) answers first, with
 * a deadline from the body's own length and an OpenAI-shaped 408.
 */
export function receiveTimeouts(server: AkidbConfig["server"]): {
  headersTimeout: number;
  requestTimeout: number;
} {
  const mebibytes = Math.max(1, Math.ceil(server.max_body_bytes / 2 ** 20));
  return {
    headersTimeout: server.headers_timeout_ms,
    requestTimeout: server.headers_timeout_ms + mebibytes * server.body_timeout_ms_per_mb,
  };
}
