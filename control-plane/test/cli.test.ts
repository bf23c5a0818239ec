import { mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "../src/config/load.ts";
import { redactConfig } from "../src/config/redact.ts";
import { waitFor } from "./helpers.ts";

const AKIDB = path.resolve(import.meta.dirname, "../../bin/akidb");

/**
 * Runs bin/akidb with only the environment given (plus PATH, and for `serve` a fresh data directory
 * rather than `./data` under the test's working directory), so the caller's AKIDB_* cannot leak in.
 */
function akidb(args: string[], env: Record<string, string> = {}) {
  const storage =
    args[0] === "serve"
      ? { AKIDB_STORAGE_DATA_DIR: mkdtempSync(path.join(tmpdir(), "akidb-cli-data-")) }
      : {};
  return execa(AKIDB, args, {
    reject: false,
    env: { PATH: process.env.PATH ?? "", HOME: tmpdir(), ...storage, ...env },
    extendEnv: false,
  });
}

function configFile(yaml: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "akidb-cli-")), "akidb.yaml");
  writeFileSync(file, yaml);
  return file;
}

describe("bin/akidb", () => {
  it("--help prints the usage and exits 0", async () => {
    const result = await akidb(["--help"]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/akidb serve \[--config FILE\] \[--host HOST\] \[--port PORT\]/);
    expect(result.stdout).toMatch(/akidb config check \[--config FILE\]/);
  });

  it("config check prints the effective config with secrets redacted, and exits 0", async () => {
    const file = configFile(
      "server:\n  admin_token: hunter2\n  port: 9999\nembedding:\n  mode: mock\n  mlx:\n    cache_dir: /var/cache/akidb\n",
    );
    const result = await akidb(["config", "check", "--config", file], { AKIDB_BATCH_SIZE: "7" });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).not.toContain("hunter2");
    const printed = parse(result.stdout) as unknown;
    const expected = loadConfig({ file, env: { AKIDB_BATCH_SIZE: "7" } }).config;
    expect(printed).toEqual(JSON.parse(JSON.stringify(redactConfig(expected))));
    expect(printed).toMatchObject({
      server: { admin_token: "<redacted>" },
      embedding: { mlx: { batch_size: 7 } },
    });
  });

  it("config check of a bad file exits 2 naming the key, the value and what is allowed", async () => {
    const file = configFile("embedding:\n  mlx:\n    device: tpu\n");
    const result = await akidb(["config", "check", "--config", file]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe(
      'akidb: invalid configuration:\n  embedding.mlx.device: "tpu" is not allowed (akidb.yaml line 3); allowed: auto, gpu, cpu (did you mean gpu?).',
    );
  });

  it("an unknown model exits 2 before anything starts", async () => {
    const result = await akidb(["serve", "--port", "0"], { AKIDB_MODEL: "someone/unknown-model" });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/embedding\.mlx\.model: unknown model "someone\/unknown-model"/);
  });

  it("serve refuses a non-loopback host without an admin token (exit 2)", async () => {
    const result = await akidb(["serve", "--host", "0.0.0.0", "--port", "0"], {
      AKIDB_EMBEDDING_MODE: "mock",
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/server\.admin_token: required when server\.host is 0\.0\.0\.0/);
  });

  it("unknown commands and flags exit 2 with the usage", async () => {
    for (const args of [["start"], ["serve", "--verbose"], ["config", "check", "--port", "1"]]) {
      const result = await akidb(args);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(/Usage:/);
    }
  });

  it("serve (mock mode) answers on its port and exits 0 on SIGTERM", async () => {
    const server = akidb(["serve", "--port", "0"], { AKIDB_EMBEDDING_MODE: "mock" });
    let output = "";
    server.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const url = await waitFor(() => /"url":"([^"]+)"/.exec(output)?.[1], "the listening log line");
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    server.kill("SIGTERM");
    const result = await server;
    expect(result.exitCode).toBe(0);
    expect(output).toMatch(/"msg":"stopped"/);
  });

  it("a second signal during a graceful shutdown exits at once (code 1)", async () => {
    const server = akidb(["serve", "--port", "0"], {
      AKIDB_EMBEDDING_MODE: "mock",
      AKIDB_SERVER_SHUTDOWN_TIMEOUT_MS: "60000",
    });
    let output = "";
    server.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const url = new URL(await waitFor(() => /"url":"([^"]+)"/.exec(output)?.[1], "the listening log line"));
    // A request whose body never finishes keeps the graceful shutdown waiting.
    const socket = connect(Number(url.port), url.hostname);
    socket.on("error", () => undefined); // reset when the server exits with it open: expected
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(
      "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    );
    // Answered after the partial request reached the server, so the server has parsed its headers.
    expect((await fetch(`${url.origin}/health`)).status).toBe(200);
    server.kill("SIGTERM");
    await waitFor(() => /"msg":"shutting down"/.test(output), "the graceful shutdown to begin");
    server.kill("SIGTERM");
    const result = await server;
    socket.destroy();
    expect(result.exitCode).toBe(1);
    expect(output).toMatch(/"msg":"second signal: exiting now"/);
  });
});
