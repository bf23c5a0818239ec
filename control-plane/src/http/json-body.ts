// A request body's JSON (its vectors read natively) and its check against a zod schema, as errors
// in the registry's shapes. No HTTP here: the upsert parser's thread (http/upsert-parser.ts) runs it too.
import type { z } from "zod";
import { didYouMean } from "../config/suggest.ts";
import { AkidbError } from "../errors.ts";
import { addon } from "../native.ts";

/** `input.2` -> `input[2]`: the OpenAI `param` spelling of a zod issue path. */
function paramName(path: readonly PropertyKey[]): string {
  return path
    .map((key, i) => (typeof key === "number" ? `[${key}]` : `${i === 0 ? "" : "."}${String(key)}`))
    .join("");
}

/** `text` parsed as JSON; 400 AKIDB_ERR_INVALID_JSON when it does not parse. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const detail = error instanceof SyntaxError ? error.message : String(error);
    throw new AkidbError("AKIDB_ERR_INVALID_JSON", { detail });
  }
}

const utf8 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");

/**
 * `bytes` parsed as JSON, its vectors read natively where they are plain arrays of `dimension`
 * numbers (`extractVectors`: JSON.parse then spends nothing on them) and set back as Float32Arrays,
 * the values JSON.parse and a Float32Array would give: `list[i].vector` (an upsert's documents, a
 * batch search's queries), or the body's own `vector` when `list` is null. Anything else is
 * JSON.parse's, as it is. A body that does not parse is parsed again as sent, so its error names
 * the place in what was sent.
 */
export function parseJsonWithVectors(bytes: Uint8Array, dimension: number, list: string | null): unknown {
  const extracted = addon().extractVectors(bytes, dimension, list);
  if (!extracted) return parseJson(utf8(bytes));
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(utf8(extracted.text));
  } catch {
    return parseJson(utf8(bytes));
  }
  const holders = list === null ? [body] : (body[list] as Array<Record<string, unknown>>);
  extracted.documents.forEach((index, i) => {
    holders[index]!.vector = extracted.vectors.subarray(i * dimension, (i + 1) * dimension);
  });
  return body;
}

/** A parsed JSON body checked by `schema`: 422 (or 400 for an empty string) naming the first field at fault. */
export function validated<S extends z.ZodObject>(body: unknown, schema: S): z.infer<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  // An unknown key first: `{inputs: [...]}` is a typo of `input`, not a missing `input`.
  const issues = result.error.issues;
  const issue = issues.find((i) => i.code === "unrecognized_keys") ?? issues[0]!;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const param = paramName([...issue.path, key]);
    const suggestion = issue.path.length === 0 ? didYouMean(key, Object.keys(schema.shape)) : undefined;
    const problem = suggestion
      ? `unknown field (did you mean \`${suggestion}\`?)`
      : "unknown field; see docs/api.md for the fields this endpoint takes";
    throw new AkidbError("AKIDB_ERR_INVALID_REQUEST", { param, problem }, { param });
  }
  const param = paramName(issue.path) || "body";
  if (issue.code === "too_small" && issue.origin === "string") {
    throw new AkidbError("AKIDB_ERR_EMPTY_INPUT", { param }, { param });
  }
  const problem = valueAt(body, issue.path) === undefined ? "is required" : issue.message;
  throw new AkidbError("AKIDB_ERR_INVALID_REQUEST", { param, problem }, { param });
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}
