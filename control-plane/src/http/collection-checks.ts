// The checks on collection request fields that depend on config limits or the collection
// (collection-schemas.ts checks shape and type). No HTTP here: the upsert parser's thread runs them.
import type { AkidbConfig } from "../config/schema.ts";
import { AkidbError } from "../errors.ts";

export function checkCount(param: string, count: number, limit: number, key: string): void {
  if (count > limit) {
    throw new AkidbError(
      "AKIDB_ERR_LIMIT_EXCEEDED",
      { param, what: `${count} items`, limit, key },
      { param },
    );
  }
}

export function checkBytes(param: string, value: string, limit: number, key: string): void {
  const bytes = Buffer.byteLength(value);
  if (bytes > limit) {
    throw new AkidbError(
      "AKIDB_ERR_LIMIT_EXCEEDED",
      { param, what: `${bytes} bytes`, limit, key },
      { param },
    );
  }
}

/**
 * A request's vector as float32: a JSON array (or the Float32Array an upsert body's reader made of
 * one), or base64 of little-endian float32 bytes. Checked against the collection's dimension, and
 * for numbers float32 cannot hold (NaN, infinite, or a JSON number beyond float32's range).
 * Written into `into` (`dimension` floats) when given.
 */
export function vectorOf(
  param: string,
  value: number[] | Float32Array | string,
  dimension: number,
  into = new Float32Array(dimension),
): Float32Array {
  if (typeof value !== "string") {
    checkDimension(param, value.length, dimension);
    into.set(value);
  } else {
    const bytes = Buffer.from(value, "base64");
    if (bytes.length % 4 !== 0) {
      const problem = `decodes to ${bytes.length} bytes, not a whole number of float32 (4 bytes each)`;
      throw new AkidbError("AKIDB_ERR_INVALID_VECTOR", { param, problem }, { param });
    }
    checkDimension(param, bytes.length / 4, dimension);
    new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(bytes);
  }
  // A plain loop (findIndex's call per element cost ~3 ms per 1000 x 384 upsert); x - x is NaN
  // exactly for NaN and the infinities.
  let bad = -1;
  for (let i = 0; i < into.length; i++) {
    const x = into[i]!;
    if (x - x !== 0) {
      bad = i;
      break;
    }
  }
  if (bad >= 0) {
    const at = `${param}[${bad}]`;
    const problem = `${into[bad]} is not a finite float32 (NaN, infinite, or past float32's range)`;
    throw new AkidbError("AKIDB_ERR_INVALID_VECTOR", { param: at, problem }, { param: at });
  }
  return into;
}

function checkDimension(param: string, got: number, expected: number): void {
  if (got !== expected)
    throw new AkidbError("AKIDB_ERR_DIMENSION_MISMATCH", { param, expected, got }, { param });
}

export function checkMetadata(
  param: string,
  metadata: Record<string, unknown>,
  limits: AkidbConfig["collection"],
): void {
  checkBytes(param, JSON.stringify(metadata), limits.max_metadata_bytes, "collection.max_metadata_bytes");
  const depth = depthOf(metadata);
  if (depth > limits.max_metadata_depth) {
    throw new AkidbError(
      "AKIDB_ERR_LIMIT_EXCEEDED",
      {
        param,
        what: `${depth} levels of nesting`,
        limit: limits.max_metadata_depth,
        key: "collection.max_metadata_depth",
      },
      { param },
    );
  }
}

function depthOf(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  const children = Object.values(value);
  return 1 + (children.length === 0 ? 0 : Math.max(...children.map(depthOf)));
}
