import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { AkidbError, errorRegistry } from "../src/errors.ts";
import { errorBody } from "../src/http/errors.ts";

const codes = Object.keys(errorRegistry) as Array<keyof typeof errorRegistry>;

describe("the AKIDB_ERR_* registry", () => {
  it("gives every code an error status and an OpenAI error type", () => {
    for (const code of codes) {
      expect(code).toMatch(/^AKIDB_ERR_[A-Z_]+$/);
      const { status, type } = errorRegistry[code];
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
      expect(type.endsWith("_error"), code).toBe(true);
    }
  });

  it("uses only statuses the contract documents for the public API", () => {
    const contract = parse(readFileSync(new URL("../../openapi.yaml", import.meta.url), "utf8")) as {
      paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>;
    };
    const documented = new Set(
      Object.entries(contract.paths)
        .filter(([path]) => !path.startsWith("/inference"))
        // Path-level `parameters` sit beside the operations and have no responses.
        .flatMap(([, operations]) =>
          Object.values(operations).flatMap((op) => Object.keys(op.responses ?? {})),
        ),
    );
    // CANCELLED never reaches a client (it went away); INFERENCE_REJECTED carries the upstream 4xx.
    const answered = codes.filter((code) => code !== "AKIDB_ERR_CANCELLED");
    for (const code of answered) expect(documented.has(String(errorRegistry[code].status)), code).toBe(true);
  });

  it("is the table in docs/api.md", () => {
    const docs = readFileSync(new URL("../../docs/api.md", import.meta.url), "utf8");
    for (const code of codes) {
      const row = docs.split("\n").find((line) => line.startsWith(`| \`${code}\``));
      expect(row, `${code} in docs/api.md`).toBeDefined();
      expect(row).toContain(`| ${errorRegistry[code].status} |`);
    }
  });
});

describe("AkidbError", () => {
  it("renders the OpenAI error body with the registry's message, status and type", () => {
    const error = new AkidbError(
      "AKIDB_ERR_TOO_MANY_INPUTS",
      { count: 3000, limit: 2048 },
      { param: "input" },
    );
    expect(error.status).toBe(413);
    expect(errorBody(error)).toEqual({
      error: {
        message:
          "input has 3000 items, more than embedding.queue.max_inputs_per_request (2048); split the request.",
        type: "invalid_request_error",
        code: "AKIDB_ERR_TOO_MANY_INPUTS",
        param: "input",
      },
    });
  });

  it("keeps an upstream status only when told to", () => {
    const passed = new AkidbError(
      "AKIDB_ERR_INFERENCE_REJECTED",
      { message: "input[0] is too long" },
      { status: 422 },
    );
    expect(passed.status).toBe(422);
    expect(passed.message).toBe("input[0] is too long");
    expect(new AkidbError("AKIDB_ERR_INFERENCE_REJECTED", { message: "x" }).status).toBe(400);
  });

  it("withParam renames the field in the param and the message", () => {
    const error = new AkidbError(
      "AKIDB_ERR_INPUT_TOO_LONG",
      { param: "input[7]", limit: 8192 },
      { param: "input[7]" },
    );
    const moved = error.withParam("input[1]");
    expect(moved.param).toBe("input[1]");
    expect(moved.message).toBe(
      "input[1] is longer than the model's max_tokens (8192 tokens, prompt included); shorten it or send truncate: true.",
    );
    expect(moved.code).toBe(error.code);
    expect(moved.status).toBe(400);
  });

  it("carries Retry-After seconds", () => {
    const error = new AkidbError(
      "AKIDB_ERR_OVERLOADED",
      { pending: 10, limit: 10 },
      { retryAfterSeconds: 3 },
    );
    expect(error.retryAfterSeconds).toBe(3);
    expect(error.status).toBe(429);
  });
});
