// Requests on which schemathesis (test/fuzz.test.ts) found the control plane and the contract
// disagreeing, each named after what it found, against the real server (mock mode). Each checks
// both sides: what the server answers, and that the contract's schema says the same.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type ContractWatch, watchContract } from "./contract.ts";
import { REPO, type RunningAkiDB, startAkiDB } from "./server.ts";

const CONTRACT = parse(readFileSync(path.join(REPO, "openapi.yaml"), "utf8")) as {
  components: { parameters: { RequestId: { schema: object } } };
};
const ajv = new Ajv2020({ strict: false });
ajv.addSchema({ $id: "urn:akidb:openapi", components: CONTRACT.components });
const embeddingRequest = ajv.compile({ $ref: "urn:akidb:openapi#/components/schemas/EmbeddingRequest" });

let server: RunningAkiDB | undefined;
const contract: ContractWatch = watchContract(() => server?.url);

beforeAll(async () => {
  server = await startAkiDB({ AKIDB_EMBEDDING_MODE: "mock" });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  contract.stop();
  expect(await contract.violations()).toEqual([]);
});

function embed(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server!.url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe("schemathesis regressions (control plane)", () => {
  it("unknown_field_was_allowed_by_the_contract: the server's 422 naming it, and the contract rejects it", async () => {
    const body = { input: "a", colour: "blue" };
    const response = await embed(body);
    expect(response.status).toBe(422);
    expect(((await response.json()) as { error: { param: string } }).error.param).toBe("colour");
    expect(embeddingRequest(body)).toBe(false);
  });

  it("long_request_id_was_declared_rejectable: replaced by a generated id, never rejected", async () => {
    const given = "x".repeat(129);
    const response = await embed({ input: "a" }, { "x-request-id": given });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).not.toBe(given);
    expect(ajv.validate(CONTRACT.components.parameters.RequestId.schema, given)).toBe(true);
  });

  it("huge_dimensions_was_schema_valid: a number beyond any model is a 4xx naming dimensions, and schema-invalid", async () => {
    for (const dimensions of [70_000, 6.6e23]) {
      const body = { input: "a", dimensions };
      const response = await embed(body);
      expect([400, 422]).toContain(response.status);
      expect(((await response.json()) as { error: { param: string } }).error.param).toBe("dimensions");
      expect(embeddingRequest(body)).toBe(false);
    }
  });
});
