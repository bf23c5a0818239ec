// The contract checker itself: it must fail on each kind of drift it exists to catch.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { contractViolations } from "./contract.ts";

const CP = "http://127.0.0.1:8080";
const JSON_TYPE = "application/json; charset=utf-8";
const error = JSON.stringify({
  error: { message: "m", type: "invalid_request_error", code: null, param: "input" },
});

describe("contractViolations", () => {
  it("accepts a response that matches the operation's schema", () => {
    const health = JSON.stringify({ status: "ok", mode: "mock", embedder: { status: "ready" } });
    expect(contractViolations("GET", `${CP}/health`, 200, JSON_TYPE, health)).toEqual([]);
    expect(contractViolations("POST", `${CP}/v1/embeddings`, 400, JSON_TYPE, error)).toEqual([]);
    expect(
      contractViolations("GET", `${CP}/metrics`, 200, "text/plain; version=0.0.4", "akidb_x 1\n"),
    ).toEqual([]);
  });

  it("matches path templates", () => {
    expect(contractViolations("POST", `${CP}/admin/v1/models/none/load`, 404, JSON_TYPE, error)).toEqual([]);
  });

  it("reports a body that breaks the schema, naming the field", () => {
    const [violation] = contractViolations(
      "GET",
      `${CP}/health`,
      200,
      JSON_TYPE,
      JSON.stringify({ status: "ok" }),
    );
    expect(violation).toContain("GET /health -> 200");
    expect(violation).toContain("mode");
  });

  it("reports an error body that is not the OpenAI shape", () => {
    const body = JSON.stringify({ message: "bad" });
    expect(contractViolations("POST", `${CP}/v1/embeddings`, 400, JSON_TYPE, body)).toHaveLength(1);
  });

  it("reports a status the operation does not list", () => {
    const [violation] = contractViolations("GET", `${CP}/v1/models`, 418, JSON_TYPE, error);
    expect(violation).toContain("status not listed");
  });

  it("holds requests outside the contract to 404 (no such path) and 405 (no such method) with an error body", () => {
    expect(contractViolations("GET", `${CP}/nope`, 404, JSON_TYPE, error)).toEqual([]);
    expect(contractViolations("DELETE", `${CP}/health`, 405, JSON_TYPE, error)).toEqual([]);
    expect(contractViolations("GET", `${CP}/nope`, 200, JSON_TYPE, "{}")[0]).toContain("expected 404");
    expect(contractViolations("DELETE", `${CP}/health`, 404, JSON_TYPE, error)[0]).toContain("expected 405");
    expect(contractViolations("GET", `${CP}/nope`, 404, "text/html", "<p>")[0]).toContain("error body");
  });

  it("reports a media type the contract does not document, and non-JSON JSON", () => {
    expect(contractViolations("GET", `${CP}/health`, 200, "text/html", "<p>")[0]).toContain("media type");
    expect(contractViolations("GET", `${CP}/health`, 200, JSON_TYPE, "{")[0]).toContain("not JSON");
  });

  it("keeps the inference process's operations apart, under their /inference prefix", () => {
    const notReady = JSON.stringify({ status: "loading", reason: "loading weights" });
    expect(
      contractViolations("GET", "http://127.0.0.1:9/health", 503, JSON_TYPE, notReady, "/inference"),
    ).toEqual([]);
    // The control plane's /health is another schema: the same body breaks it.
    expect(contractViolations("GET", `${CP}/health`, 503, JSON_TYPE, notReady)).toHaveLength(1);
    // The control plane serves no /tokenize, and the inference process no /admin.
    expect(contractViolations("POST", `${CP}/tokenize`, 200, JSON_TYPE, "{}")[0]).toContain("no such path");
    expect(
      contractViolations("GET", "http://127.0.0.1:9/admin/v1/status", 200, JSON_TYPE, "{}", "/inference")[0],
    ).toContain("no such path");
  });
});

describe("openapi.yaml", () => {
  it("has an example of each operation's success response (redocly lint checks them against the schemas)", () => {
    const contract = parse(readFileSync(new URL("../openapi.yaml", import.meta.url), "utf8")) as {
      paths: Record<
        string,
        Record<string, { responses?: Record<string, { content?: Record<string, object> }> }>
      >;
    };
    const missing: string[] = [];
    for (const [path, item] of Object.entries(contract.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        if (operation.responses === undefined) continue; // path-level parameters
        const success = Object.entries(operation.responses).filter(([status]) => status.startsWith("2"));
        const examples = success.flatMap(([, response]) =>
          Object.values(response.content ?? {}).filter((media) => "example" in media || "examples" in media),
        );
        if (examples.length === 0) missing.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
