import { z } from "zod";
import type { components } from "../contract.ts";

type Schemas = components["schemas"];

// Request bodies of /api/v1/collections (openapi.yaml). Objects are strict so a typo is an error.
// Limits that are config keys (counts, bytes, k, dimension) are checked by the routes, which know
// the config; these schemas check shape and type.

const id = z.string({ error: "must be a string" }).min(1, { error: "must not be empty" });
/**
 * Padded standard base64, as openapi.yaml's Vector pattern (`[A-Za-z0-9+/]`, a length that is a
 * multiple of 4, at most two `=` at the end), checked by decoding: Node's decoder skips or stops at
 * any other character, so a string holding one decodes to fewer bytes than its length promises.
 * It also takes base64url's `-` and `_`, which are refused here. A regular expression cost 17 us
 * per 384-float vector (0.5 s of the parser thread's CPU in a 30k-document ingest); this, ~1 us.
 */
function isBase64(value: string): boolean {
  const length = value.length;
  if (length === 0 || length % 4 !== 0 || value.includes("-") || value.includes("_")) return false;
  const padding = value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0;
  return Buffer.from(value, "base64").length === (length / 4) * 3 - padding;
}

/**
 * A vector: a non-empty array of finite numbers, or a base64 string of little-endian float32 bytes
 * (decoded, and its numbers checked, by the route: `decodeVector`). An array is checked by one loop
 * rather than a zod schema per element, which costs ~75 ms of event-loop time for a 1000 x 384 upsert.
 * An upsert body's reader (`parseUpsertBody`) hands over the arrays it read as Float32Arrays of
 * the collection's dimension (finite doubles, checked as float32 by `vectorOf`); the type stays
 * the contract's, the JSON array each of them was.
 */
const vector = z
  .custom<number[] | string>(
    (value) => Array.isArray(value) || value instanceof Float32Array || typeof value === "string",
    { error: "must be an array of numbers or a base64 string of float32" },
  )
  .superRefine((values, context) => {
    if (values instanceof Float32Array) return;
    if (typeof values === "string") {
      if (!isBase64(values)) {
        const message = "must be padded base64 of little-endian float32 bytes";
        context.addIssue({ code: "custom", input: values, message });
      }
      return;
    }
    if (values.length === 0) {
      context.addIssue({ code: "custom", input: values, message: "must not be empty" });
      return;
    }
    // A plain loop: findIndex's call per element cost ~2 ms per 1000 x 384 upsert.
    let bad = -1;
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      if (typeof value !== "number" || !Number.isFinite(value)) {
        bad = i;
        break;
      }
    }
    if (bad >= 0) {
      context.addIssue({
        code: "custom",
        path: [bad],
        input: values[bad],
        message: "must be a finite number",
      });
    }
  });
const metadata = z.record(z.string(), z.unknown(), { error: "must be a JSON object" });
const filter = z.record(z.string(), z.unknown(), { error: "must be a JSON object" });
const include = z.array(
  z.enum(["metadata", "text", "vector"], { error: "must be metadata, text or vector" }),
  {
    error: "must be an array",
  },
);
const positive = z.int({ error: "must be an integer" }).min(1, { error: "must be at least 1" });

export const createCollectionSchema = z.strictObject(
  {
    name: z.string({ error: "must be a string" }).regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
      error: "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    }),
    dimension: positive.optional(),
    metric: z.enum(["cosine", "l2", "ip"], { error: "must be cosine, l2 or ip" }).optional(),
    model: z.string({ error: "must be a string" }).min(1, { error: "must not be empty" }).optional(),
    index: z
      .strictObject(
        {
          M: z.int({ error: "must be an integer" }).min(2, { error: "must be at least 2" }).max(128, {
            error: "must be at most 128",
          }),
          ef_construction: positive.max(4096, { error: "must be at most 4096" }),
          ef_search: positive.max(4096, { error: "must be at most 4096" }),
        },
        { error: "must be an object" },
      )
      .partial()
      .optional(),
    quantization: z.enum(["f32", "f16", "i8"], { error: "must be f32, f16 or i8" }).optional(),
  },
  { error: "must be a JSON object" },
);

const documentInput = z.strictObject(
  {
    id: id.optional(),
    text: z.string({ error: "must be a string" }).min(1, { error: "must not be empty" }).optional(),
    vector: vector.optional(),
    metadata: metadata.optional(),
  },
  { error: "must be an object" },
);

export const upsertSchema = z.strictObject(
  { documents: z.array(documentInput, { error: "must be an array" }).min(1, { error: "must not be empty" }) },
  { error: "must be a JSON object" },
);

const idList = z.array(id, { error: "must be an array of strings" }).min(1, { error: "must not be empty" });

export const getDocumentsSchema = z.strictObject(
  {
    ids: idList.optional(),
    filter: filter.optional(),
    limit: positive.optional(),
    offset: z.int({ error: "must be an integer" }).min(0, { error: "must be at least 0" }).optional(),
    include: include.optional(),
  },
  { error: "must be a JSON object" },
);

export const deleteDocumentsSchema = z.strictObject(
  { ids: idList.optional(), filter: filter.optional() },
  { error: "must be a JSON object" },
);

const searchQuery = z.strictObject(
  {
    text: z.string({ error: "must be a string" }).min(1, { error: "must not be empty" }).optional(),
    vector: vector.optional(),
    k: positive.optional(),
    filter: filter.optional(),
    include: include.optional(),
    ef: positive.max(4096, { error: "must be at most 4096" }).optional(),
  },
  { error: "must be a JSON object" },
);

export const searchSchema = searchQuery;

export const batchSearchSchema = z.strictObject(
  { queries: z.array(searchQuery, { error: "must be an array" }).min(1, { error: "must not be empty" }) },
  { error: "must be a JSON object" },
);

export type SearchBody = z.infer<typeof searchQuery>;

// Each zod schema and the contract's type must describe the same request, both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const contract: [
  Same<z.infer<typeof upsertSchema>, Schemas["UpsertRequest"]>,
  Same<z.infer<typeof getDocumentsSchema>, Schemas["GetDocumentsRequest"]>,
  Same<z.infer<typeof deleteDocumentsSchema>, Schemas["DeleteDocumentsRequest"]>,
  Same<SearchBody, Schemas["SearchRequest"]>,
  Same<z.infer<typeof createCollectionSchema>["metric"], Schemas["CreateCollectionRequest"]["metric"]>,
] = [true, true, true, true, true];
void contract;
