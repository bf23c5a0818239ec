import { AkidbError } from "../errors.ts";
import type { Metadata, MetadataValue } from "./types.ts";

type Scalar = string | number | boolean;

/** A parsed metadata filter (Chroma's syntax); `path` is the dotted key split into steps. */
export type Filter =
  | { kind: "and" | "or"; clauses: Filter[] }
  | { kind: "eq" | "ne"; path: string[]; value: Scalar }
  | { kind: "gt" | "gte" | "lt" | "lte"; path: string[]; value: number }
  | { kind: "in" | "nin"; path: string[]; values: Scalar[] }
  | { kind: "exists"; path: string[]; value: boolean };

const COMPARISONS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"] as const;

function invalid(param: string, problem: string): AkidbError {
  return new AkidbError("AKIDB_ERR_INVALID_FILTER", { param, problem }, { param });
}

function isScalar(value: unknown): value is Scalar {
  return (
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses a filter in Chroma's syntax: `{key: value}` (shorthand for `$eq`), `{key: {$op: operand}}`,
 * `{$and: [...]}`, `{$or: [...]}`. Several keys in one object must all hold. A dotted key
 * (`author.name`) reaches into nested metadata. Throws AKIDB_ERR_INVALID_FILTER naming the
 * part at fault under `param`.
 */
export function parseFilter(raw: unknown, param = "filter"): Filter {
  if (!isObject(raw)) throw invalid(param, "must be an object");
  const entries = Object.entries(raw);
  if (entries.length === 0) throw invalid(param, "must not be empty");
  const clauses = entries.map(([key, operand]): Filter => {
    const at = `${param}.${key}`;
    if (key === "$and" || key === "$or") {
      if (!Array.isArray(operand) || operand.length === 0)
        throw invalid(at, "must be a non-empty array of filters");
      return {
        kind: key === "$and" ? "and" : "or",
        clauses: operand.map((f, i) => parseFilter(f, `${at}[${i}]`)),
      };
    }
    if (key.startsWith("$")) throw invalid(at, "unknown operator (only $and and $or may be keys)");
    if (key.length === 0 || key.split(".").some((step) => step.length === 0)) throw invalid(at, "bad key");
    return parseField(key.split("."), operand, at);
  });
  return clauses.length === 1 ? clauses[0]! : { kind: "and", clauses };
}

function parseField(path: string[], operand: unknown, at: string): Filter {
  if (isScalar(operand)) return { kind: "eq", path, value: operand };
  if (!isObject(operand))
    throw invalid(at, "must be a string, a finite number, a boolean or an {$operator: operand}");
  const ops = Object.entries(operand);
  if (ops.length === 0) throw invalid(at, "must not be empty");
  const clauses = ops.map(([op, value]): Filter => {
    const opAt = `${at}.${op}`;
    switch (op as (typeof COMPARISONS)[number]) {
      case "$eq":
      case "$ne":
        if (!isScalar(value)) throw invalid(opAt, "must be a string, a finite number or a boolean");
        return { kind: op === "$eq" ? "eq" : "ne", path, value };
      case "$gt":
      case "$gte":
      case "$lt":
      case "$lte":
        if (typeof value !== "number" || !Number.isFinite(value))
          throw invalid(opAt, "must be a finite number");
        return { kind: op.slice(1) as "gt" | "gte" | "lt" | "lte", path, value };
      case "$in":
      case "$nin":
        if (!Array.isArray(value) || value.length === 0 || !value.every(isScalar)) {
          throw invalid(opAt, "must be a non-empty array of strings, numbers or booleans");
        }
        return { kind: op === "$in" ? "in" : "nin", path, values: value };
      case "$exists":
        if (typeof value !== "boolean") throw invalid(opAt, "must be true or false");
        return { kind: "exists", path, value };
      default:
        throw invalid(opAt, `unknown operator; use one of ${COMPARISONS.join(" ")}`);
    }
  });
  return clauses.length === 1 ? clauses[0]! : { kind: "and", clauses };
}

function lookup(metadata: Metadata | null, path: string[]): MetadataValue | undefined {
  let current: MetadataValue | undefined = metadata ?? undefined;
  for (const step of path) {
    if (!isObject(current)) return undefined;
    current = (current as Record<string, MetadataValue>)[step];
  }
  return current;
}

/**
 * Whether a document's metadata satisfies the filter. Values compare by type and value (`1` does not
 * equal `"1"` or `true`); ordering operators hold only for numbers; `$ne` and `$nin` also hold
 * where the key is missing (they are the negations of `$eq` and `$in`).
 */
export function matches(filter: Filter, metadata: Metadata | null): boolean {
  switch (filter.kind) {
    case "and":
      return filter.clauses.every((clause) => matches(clause, metadata));
    case "or":
      return filter.clauses.some((clause) => matches(clause, metadata));
    case "eq":
      return lookup(metadata, filter.path) === filter.value;
    case "ne":
      return lookup(metadata, filter.path) !== filter.value;
    case "in":
      return filter.values.includes(lookup(metadata, filter.path) as Scalar);
    case "nin":
      return !filter.values.includes(lookup(metadata, filter.path) as Scalar);
    case "exists":
      return (lookup(metadata, filter.path) !== undefined) === filter.value;
    default: {
      const value = lookup(metadata, filter.path);
      if (typeof value !== "number") return false;
      if (filter.kind === "gt") return value > filter.value;
      if (filter.kind === "gte") return value >= filter.value;
      if (filter.kind === "lt") return value < filter.value;
      return value <= filter.value;
    }
  }
}
