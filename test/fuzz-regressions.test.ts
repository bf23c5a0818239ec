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
const schema = (name: string) => ajv.compile({ $ref: `urn:akidb:openapi#/components/schemas/${name}` });
const embeddingRequest = schema("EmbeddingRequest");

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

function post(
  route: string,
  body: unknown,
  headers: Record<string, string> = { "content-type": "application/json" },
) {
  return fetch(`${server!.url}${route}`, { method: "POST", headers, body: JSON.stringify(body) });
}

async function param(response: Response): Promise<string | null> {
  return ((await response.json()) as { error: { param: string | null } }).error.param;
}

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

describe("schemathesis regressions (collections)", () => {
  const base = "/api/v1/collections/fuzzed";
  beforeAll(async () => {
    expect((await post("/api/v1/collections", { name: "fuzzed", dimension: 3 })).status).toBe(201);
    expect(
      (await post(`${base}/upsert`, { documents: [{ id: "a", vector: [1, 0, 0], text: "x" }] })).status,
    ).toBe(200);
  });

  it("body_not_json_answered_an_unlisted_415: get and delete list it", async () => {
    // watchContract (afterAll) fails the file if 415 is not a status these operations list.
    for (const route of [`${base}/get`, `${base}/delete`]) {
      expect((await post(route, { ids: ["a"] }, {})).status).toBe(415);
    }
  });

  it("search_with_neither_or_both_of_text_and_vector_was_schema_valid", async () => {
    const searchRequest = schema("SearchRequest");
    for (const body of [{ k: 1 }, { text: "x", vector: [1, 0, 0] }]) {
      const response = await post(`${base}/search`, body);
      expect(response.status).toBe(422);
      expect(await param(response)).toBe("text");
      expect(searchRequest(body)).toBe(false);
    }
    expect(searchRequest({ vector: [1, 0, 0], k: 1 })).toBe(true);
  });

  it("document_without_text_or_vector_was_schema_valid", async () => {
    const body = { documents: [{ id: "b", metadata: { a: 1 } }] };
    const response = await post(`${base}/upsert`, body);
    expect(response.status).toBe(422);
    expect(await param(response)).toBe("documents[0]");
    expect(schema("UpsertRequest")(body)).toBe(false);
  });

  it("delete_without_ids_or_filter_was_schema_valid", async () => {
    const response = await post(`${base}/delete`, {});
    expect(response.status).toBe(422);
    expect(schema("DeleteDocumentsRequest")({})).toBe(false);
  });

  it("offset_beyond_a_safe_integer_was_schema_valid", async () => {
    const body = { ids: ["a"], offset: 1.2e28 };
    const response = await post(`${base}/get`, body);
    expect(response.status).toBe(422);
    expect(await param(response)).toBe("offset");
    expect(schema("GetDocumentsRequest")(body)).toBe(false);
  });

  it("repeated_include_field_was_declared_invalid: it counts once", async () => {
    const body = { ids: ["a"], include: ["text", "text"] };
    const response = await post(`${base}/get`, body);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { documents: Array<{ text: string }> }).documents).toEqual([
      { id: "a", text: "x" },
    ]);
    expect(schema("GetDocumentsRequest")(body)).toBe(true);
  });
});
