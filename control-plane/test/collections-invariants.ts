// The brute-force model of a collection and the invariants the store must keep, as pure functions
// (the state-machine test and the crash test share them). The filter evaluator here is written
// independently of collections/filter.ts, so the two check each other.

export type Metric = "cosine" | "l2" | "ip";
export type Meta = Record<string, unknown> | null;

export interface ModelDocument {
  vector: number[];
  text: string | null;
  metadata: Meta;
}

/** A collection as a plain ordered map: insertion order is kept, an update keeps its place. */
export type ModelCollection = Map<string, ModelDocument>;

function valueAt(metadata: Meta, key: string): unknown {
  let current: unknown = metadata ?? undefined;
  for (const step of key.split(".")) {
    if (typeof current !== "object" || current === null || Array.isArray(current)) return undefined;
    current = (current as Record<string, unknown>)[step];
  }
  return current;
}

/** Chroma-syntax filter semantics as docs/api.md states them. */
export function modelMatches(filter: Record<string, unknown>, metadata: Meta): boolean {
  return Object.entries(filter).every(([key, operand]) => {
    if (key === "$and") return (operand as Record<string, unknown>[]).every((f) => modelMatches(f, metadata));
    if (key === "$or") return (operand as Record<string, unknown>[]).some((f) => modelMatches(f, metadata));
    const value = valueAt(metadata, key);
    if (typeof operand !== "object" || operand === null) return value === operand;
    return Object.entries(operand).every(([op, arg]) => {
      switch (op) {
        case "$eq":
          return value === arg;
        case "$ne":
          return value !== arg;
        case "$gt":
          return typeof value === "number" && value > (arg as number);
        case "$gte":
          return typeof value === "number" && value >= (arg as number);
        case "$lt":
          return typeof value === "number" && value < (arg as number);
        case "$lte":
          return typeof value === "number" && value <= (arg as number);
        case "$in":
          return (arg as unknown[]).includes(value);
        case "$nin":
          return !(arg as unknown[]).includes(value);
        case "$exists":
          return (value !== undefined) === arg;
        default:
          throw new Error(`model: unknown operator ${op}`);
      }
    });
  });
}

export function exactScore(metric: Metric, a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let sq = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
    sq += (a[i]! - b[i]!) ** 2;
  }
  if (metric === "ip") return dot;
  if (metric === "l2") return Math.sqrt(sq);
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Every document the filter admits, best first, with its exact score. */
export function bruteForce(
  collection: ModelCollection,
  metric: Metric,
  query: ArrayLike<number>,
  filter: Record<string, unknown> | undefined,
): Array<{ id: string; score: number }> {
  const scored = [...collection]
    .filter(([, doc]) => !filter || modelMatches(filter, doc.metadata))
    .map(([id, doc]) => ({ id, score: exactScore(metric, query, doc.vector) }));
  return scored.sort((a, b) => (metric === "l2" ? a.score - b.score : b.score - a.score));
}

/**
 * How many of `returned` belong in the true top k. Ties at the k-th score make several answers
 * right, so an id counts when its exact score is at least as good as the k-th best (within `eps`).
 */
export function recallHits(
  returned: string[],
  truth: Array<{ id: string; score: number }>,
  k: number,
  metric: Metric,
  eps = 1e-4,
): { hits: number; expected: number } {
  const expected = Math.min(k, truth.length);
  if (expected === 0) return { hits: 0, expected: 0 };
  const kth = truth[expected - 1]!.score;
  const scoreOf = new Map(truth.map((t) => [t.id, t.score]));
  const hits = returned.filter((id) => {
    const score = scoreOf.get(id);
    if (score === undefined) return false;
    return metric === "l2" ? score <= kth + eps : score >= kth - eps;
  }).length;
  return { hits: Math.min(hits, expected), expected };
}

/** Problems with one search answer: unknown or duplicate ids, ids the filter excludes, an unfilled page. */
export function searchProblems(
  returned: string[],
  collection: ModelCollection,
  k: number,
  filter: Record<string, unknown> | undefined,
): string[] {
  const problems: string[] = [];
  if (new Set(returned).size !== returned.length) problems.push(`duplicate ids in ${returned.join(",")}`);
  for (const id of returned) {
    const doc = collection.get(id);
    if (!doc) problems.push(`${id} is not in the collection`);
    else if (filter && !modelMatches(filter, doc.metadata)) problems.push(`${id} does not match the filter`);
  }
  const admitted = [...collection.values()].filter(
    (doc) => !filter || modelMatches(filter, doc.metadata),
  ).length;
  if (returned.length !== Math.min(k, admitted)) {
    problems.push(`${returned.length} results, expected ${Math.min(k, admitted)}`);
  }
  return problems;
}

/** Whether a stored document equals the model's (vectors compared as float32). */
export function sameDocument(
  stored: { vector?: ArrayLike<number>; text?: string | null; metadata?: Meta },
  expected: ModelDocument,
): boolean {
  const vector = stored.vector ? Array.from(stored.vector) : [];
  return (
    vector.length === expected.vector.length &&
    vector.every((x, i) => x === Math.fround(expected.vector[i]!)) &&
    (stored.text ?? null) === expected.text &&
    JSON.stringify(stored.metadata ?? null) === JSON.stringify(expected.metadata)
  );
}
