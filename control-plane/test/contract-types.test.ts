// The contract's types reach the control plane through src/contract.ts alone, and the inference
// client's calls are typed by the contract's paths: a path or body the contract does not have
// fails `tsc` (the `@ts-expect-error` lines below fail it if they stop being errors).
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, expectTypeOf, it } from "vitest";
import type { InferencePostPath, InferenceRequest, InferenceResponse } from "../src/contract.ts";

const SRC = path.resolve(import.meta.dirname, "../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return entry.name.endsWith(".ts") ? [file] : [];
  });
}

/** Never called: each line is a call the contract does not allow. */
function wrongCalls(): unknown[] {
  // @ts-expect-error the inference process has no /tokenize (removed from the contract)
  const tokenize: InferenceRequest<"/tokenize"> = { input: "a" };
  // @ts-expect-error /health is a GET
  const health: InferencePostPath = "/health";
  // @ts-expect-error `inputs` is not a field of the contract's EmbeddingRequest
  const misspelt: InferenceRequest<"/v1/embeddings"> = { inputs: ["a"] };
  // @ts-expect-error input_type is query or document
  const inputType: InferenceRequest<"/v1/embeddings"> = { input: "a", input_type: "passage" };
  return [tokenize, health, misspelt, inputType];
}

describe("contract types in the control plane", () => {
  it("come from src/contract.ts only", () => {
    const importers = sourceFiles(SRC)
      .filter((file) => readFileSync(file, "utf8").includes("sdk/src/generated/"))
      .map((file) => path.relative(SRC, file));
    expect(importers).toEqual(["contract.ts"]);
  });

  it("type the inference process's paths as it serves them", () => {
    expectTypeOf<"/v1/embeddings">().toExtend<InferencePostPath>();
    expectTypeOf<InferenceResponse<"/v1/embeddings">["data"][number]["tokens"]>().toEqualTypeOf<number>();
    expect(wrongCalls).toBeTypeOf("function");
  });
});
