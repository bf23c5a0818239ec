// An upsert's body, from its bytes to checked documents: the JSON parse, the schema, the limits and
// the vectors decoded to float32. Pure (no HTTP, no store), so the upsert parser's thread runs it.
import type { Metadata } from "../collections/types.ts";
import type { AkidbConfig } from "../config/schema.ts";
import { AkidbError } from "../errors.ts";
import { checkBytes, checkCount, checkMetadata, vectorOf } from "./collection-checks.ts";
import { upsertSchema } from "./collection-schemas.ts";
import { checkInputTexts } from "./input-text.ts";
import { parseJsonWithVectors, validated } from "./json-body.ts";

/** The config an upsert is checked against (what the parser's thread is started with). */
export interface UpsertLimits {
  collection: AkidbConfig["collection"];
  embedding: { queue: Pick<AkidbConfig["embedding"]["queue"], "max_input_chars"> };
}

/** One document of an upsert, checked. A given vector is float32 of the collection's dimension. */
export interface CheckedDocument {
  id?: string;
  text?: string;
  vector?: Float32Array;
  metadata?: Metadata;
}

/**
 * The documents of an upsert body (UTF-8 JSON), or the AkidbError naming the first field at fault:
 * 400 for JSON that does not parse, 422 for a wrong shape, 413 over a `collection.*` limit, 400
 * for a vector of the wrong dimension or not finite in float32. The vectors given are views of one
 * Float32Array (one buffer to hand between threads).
 */
export function parseUpsertBody(
  bytes: Uint8Array,
  dimension: number,
  limits: UpsertLimits,
): CheckedDocument[] {
  const { documents } = validated(parseJsonWithVectors(bytes, dimension, "documents"), upsertSchema);
  const { collection } = limits;
  checkCount(
    "documents",
    documents.length,
    collection.max_documents_per_request,
    "collection.max_documents_per_request",
  );
  const vectors = new Float32Array(documents.filter((doc) => doc.vector !== undefined).length * dimension);
  let row = 0;
  const checked = documents.map((doc, i): CheckedDocument => {
    const at = `documents[${i}]`;
    if (doc.text === undefined && doc.vector === undefined) {
      throw new AkidbError(
        "AKIDB_ERR_INVALID_REQUEST",
        { param: at, problem: "needs text or vector" },
        { param: at },
      );
    }
    if (doc.id !== undefined)
      checkBytes(`${at}.id`, doc.id, collection.max_id_length, "collection.max_id_length");
    if (doc.text !== undefined)
      checkBytes(`${at}.text`, doc.text, collection.max_text_bytes, "collection.max_text_bytes");
    if (doc.metadata !== undefined) checkMetadata(`${at}.metadata`, doc.metadata, collection);
    const out: CheckedDocument = {};
    if (doc.id !== undefined) out.id = doc.id;
    if (doc.text !== undefined) out.text = doc.text;
    if (doc.metadata !== undefined) out.metadata = doc.metadata as Metadata;
    if (doc.vector !== undefined) {
      const into = vectors.subarray(row * dimension, (row + 1) * dimension);
      row++;
      out.vector = vectorOf(`${at}.vector`, doc.vector, dimension, into);
    }
    return out;
  });
  // The rules /v1/embeddings applies to its inputs, for every text (embedded now or stored).
  checkInputTexts(
    documents.flatMap((doc, i) =>
      doc.text === undefined ? [] : [{ param: `documents[${i}].text`, text: doc.text }],
    ),
    limits,
  );
  return checked;
}
