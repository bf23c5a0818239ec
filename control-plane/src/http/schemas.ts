import { z } from "zod";
import type { components } from "../contract.ts";

type Schemas = components["schemas"];

const text = z.string({ error: "must be a string" }).min(1, { error: "must not be empty" });

/**
 * `POST /v1/embeddings` (EmbeddingRequest in openapi.yaml). Unknown keys are refused so a typo
 * (`dimension`, `input_types`) is an error, not a silently ignored option.
 */
export const embeddingRequestSchema = z.strictObject(
  {
    input: z.union([text, z.array(text).min(1, { error: "must have at least one item" })], {
      error: "must be a string or an array of strings (token arrays are not supported)",
    }),
    model: z.string({ error: "must be a string" }).optional(),
    encoding_format: z.enum(["float", "base64"], { error: "must be float or base64" }).optional(),
    dimensions: z.int({ error: "must be an integer" }).min(1, { error: "must be at least 1" }).optional(),
    input_type: z.enum(["query", "document"], { error: "must be query or document" }).optional(),
    normalize: z.boolean({ error: "must be true or false" }).optional(),
    truncate: z.boolean({ error: "must be true or false" }).optional(),
    user: z.string({ error: "must be a string" }).optional(),
  },
  { error: "must be a JSON object" },
);

export type EmbeddingRequest = z.infer<typeof embeddingRequestSchema>;

// The zod schema and the contract's type must describe the same request, both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const requestMatchesContract: Same<EmbeddingRequest, Schemas["EmbeddingRequest"]> = true;
void requestMatchesContract;
