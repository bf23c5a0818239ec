// State-machine property test of the local CollectionStore against a brute-force model: random
// create, upsert (new and existing ids), delete (by ids or filter), get, search (plain and
// filtered) and restart (clean, as after a crash, or with the snapshot damaged). Snapshot,
// compaction and exact-search thresholds are tiny so snapshots, log compaction, graph rebuilds
// (compaction of dead nodes), replay and both filtered-search strategies run often.
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { parseFilter } from "../src/collections/filter.ts";
import { type LocalCollectionStore, SNAPSHOT_FORCE_FACTOR } from "../src/collections/local-store.ts";
import type { Metadata } from "../src/collections/types.ts";
import { openStore, tempDataDir } from "./collection-fixtures.ts";
import {
  bruteForce,
  type Metric,
  type ModelCollection,
  type ModelDocument,
  modelMatches,
  recallHits,
  sameDocument,
  searchProblems,
} from "./collections-invariants.ts";

const DIMENSION = 6;
const SNAPSHOT_EVERY = 3;
const EXACT_MAX = 4;
const COMPACT_DEAD_RATIO = 0.2;
const MAX_DOCS_PER_OP = 10;
const NAMES = ["a", "b"] as const;
const ALL = { vector: true, text: true, metadata: true };

interface Model {
  collections: Map<string, { metric: Metric; docs: ModelCollection }>;
  recall: { hits: number; expected: number };
}

interface Real {
  store: LocalCollectionStore;
  dataDir: string;
}

/** Graph rebuilds finished across the run (each logs "index compacted"). */
let compactions = 0;
/** The store as the property test opens it: every threshold lowered. */
function openTestStore(dataDir: string): Promise<LocalCollectionStore> {
  return openStore(dataDir, {
    snapshotEveryOps: SNAPSHOT_EVERY,
    exactSearchMaxMatches: EXACT_MAX,
    compactDeadRatio: COMPACT_DEAD_RATIO,
    logger: {
      info: (_fields, message) => {
        if (message === "index compacted") compactions++;
      },
      error: (fields, message) => {
        throw new Error(`${message}: ${JSON.stringify(fields)}`);
      },
    },
  });
}

const vectorArb = fc
  .array(fc.integer({ min: -3, max: 3 }), { minLength: DIMENSION, maxLength: DIMENSION })
  .map((v) => (v.every((x) => x === 0) ? [1, ...v.slice(1)] : v));
const metadataArb = fc.option(
  fc.record(
    { color: fc.constantFrom("red", "green", "blue"), n: fc.integer({ min: 0, max: 9 }), flag: fc.boolean() },
    { requiredKeys: ["color"] },
  ),
  { nil: null },
);
const idArb = fc.integer({ min: 0, max: 39 }).map((i) => `d${i}`);
const filterArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.constantFrom("red", "green", "blue").map((color) => ({ color })),
  fc.integer({ min: 0, max: 9 }).map((n) => ({ n: { $gt: n } })),
  fc.integer({ min: 0, max: 9 }).map((n) => ({ n: { $lte: n } })),
  fc.subarray(["red", "green", "blue"], { minLength: 1 }).map((colors) => ({ color: { $in: colors } })),
  fc.constantFrom("red", "blue").map((color) => ({ color: { $ne: color } })),
  fc.boolean().map((exists) => ({ flag: { $exists: exists } })),
  fc.tuple(fc.constantFrom("red", "green"), fc.integer({ min: 0, max: 9 })).map(([color, n]) => ({
    $or: [{ color }, { n: { $gte: n } }],
  })),
  fc.tuple(fc.constantFrom("green", "blue"), fc.boolean()).map(([color, flag]) => ({
    $and: [{ color: { $nin: [color] } }, { flag }],
  })),
);

class CreateCommand implements fc.AsyncCommand<Model, Real> {
  readonly name: string;
  readonly metric: Metric;
  readonly quantization: "f32" | "f16";
  constructor(name: string, metric: Metric, quantization: "f32" | "f16") {
    this.name = name;
    this.metric = metric;
    this.quantization = quantization;
  }
  check(m: Readonly<Model>) {
    return !m.collections.has(this.name);
  }
  async run(m: Model, r: Real) {
    const info = await r.store.create({
      name: this.name,
      dimension: DIMENSION,
      metric: this.metric,
      quantization: this.quantization,
      index: { M: 8, ef_construction: 64, ef_search: 32 },
      model: null,
    });
    expect(info.count).toBe(0);
    m.collections.set(this.name, { metric: this.metric, docs: new Map() });
  }
  toString() {
    return `create(${this.name}, ${this.metric}, ${this.quantization})`;
  }
}

class UpsertCommand implements fc.AsyncCommand<Model, Real> {
  readonly name: string;
  readonly docs: Array<{ id: string } & ModelDocument>;
  constructor(name: string, docs: Array<{ id: string } & ModelDocument>) {
    this.name = name;
    this.docs = docs;
  }
  check(m: Readonly<Model>) {
    return m.collections.has(this.name);
  }
  async run(m: Model, r: Real) {
    const model = m.collections.get(this.name)!.docs;
    const fresh = new Set(this.docs.map((d) => d.id).filter((id) => !model.has(id)));
    const result = await r.store.upsert(
      this.name,
      this.docs.map((d) => ({
        id: d.id,
        vector: Float32Array.from(d.vector),
        text: d.text,
        metadata: d.metadata as Metadata | null,
      })),
    );
    expect(result.inserted).toBe(fresh.size);
    for (const d of this.docs) model.set(d.id, { vector: d.vector, text: d.text, metadata: d.metadata });
    await checkCollection(m, r, this.name);
  }
  toString() {
    return `upsert(${this.name}, ${JSON.stringify(this.docs)})`;
  }
}

class DeleteCommand implements fc.AsyncCommand<Model, Real> {
  readonly name: string;
  readonly ids: string[] | undefined;
  readonly filter: Record<string, unknown> | undefined;
  constructor(name: string, ids: string[] | undefined, filter: Record<string, unknown> | undefined) {
    this.name = name;
    this.ids = ids;
    this.filter = filter;
  }
  check(m: Readonly<Model>) {
    return m.collections.has(this.name);
  }
  async run(m: Model, r: Real) {
    const model = m.collections.get(this.name)!.docs;
    const doomed = [...model.keys()].filter((id) => {
      if (this.ids && !this.ids.includes(id)) return false;
      return !this.filter || modelMatches(this.filter, model.get(id)!.metadata);
    });
    const deleted = await r.store.deleteDocuments(this.name, {
      ...(this.ids ? { ids: this.ids } : {}),
      ...(this.filter ? { filter: parseFilter(this.filter) } : {}),
    });
    expect(deleted).toBe(doomed.length);
    for (const id of doomed) model.delete(id);
    await checkCollection(m, r, this.name);
  }
  toString() {
    return `delete(${this.name}, ids=${JSON.stringify(this.ids)}, filter=${JSON.stringify(this.filter)})`;
  }
}

class GetCommand implements fc.AsyncCommand<Model, Real> {
  readonly name: string;
  readonly filter: Record<string, unknown> | undefined;
  readonly limit: number;
  readonly offset: number;
  constructor(name: string, filter: Record<string, unknown> | undefined, limit: number, offset: number) {
    this.name = name;
    this.filter = filter;
    this.limit = limit;
    this.offset = offset;
  }
  check(m: Readonly<Model>) {
    return m.collections.has(this.name);
  }
  async run(m: Model, r: Real) {
    const model = m.collections.get(this.name)!.docs;
    const got = await r.store.getDocuments(this.name, {
      ...(this.filter ? { filter: parseFilter(this.filter) } : {}),
      limit: this.limit,
      offset: this.offset,
      include: ALL,
    });
    const expected = [...model]
      .filter(([, doc]) => !this.filter || modelMatches(this.filter, doc.metadata))
      .map(([id]) => id)
      .slice(this.offset, this.offset + this.limit);
    expect(got.map((d) => d.id)).toEqual(expected);
    for (const doc of got) expect(sameDocument(doc, model.get(doc.id)!), doc.id).toBe(true);
  }
  toString() {
    return `get(${this.name}, ${JSON.stringify(this.filter)}, limit=${this.limit}, offset=${this.offset})`;
  }
}

class SearchCommand implements fc.AsyncCommand<Model, Real> {
  readonly name: string;
  readonly vector: number[];
  readonly k: number;
  readonly filter: Record<string, unknown> | undefined;
  constructor(name: string, vector: number[], k: number, filter: Record<string, unknown> | undefined) {
    this.name = name;
    this.vector = vector;
    this.k = k;
    this.filter = filter;
  }
  check(m: Readonly<Model>) {
    return m.collections.has(this.name);
  }
  async run(m: Model, r: Real) {
    const { metric, docs } = m.collections.get(this.name)!;
    const [hits] = await r.store.search(this.name, [
      {
        vector: Float32Array.from(this.vector),
        k: this.k,
        ...(this.filter ? { filter: parseFilter(this.filter) } : {}),
        include: { vector: false, text: false, metadata: false },
      },
    ]);
    const ids = hits!.map((h) => h.id);
    expect(searchProblems(ids, docs, this.k, this.filter)).toEqual([]);
    const { hits: correct, expected } = recallHits(
      ids,
      bruteForce(docs, metric, this.vector, this.filter),
      this.k,
      metric,
    );
    m.recall.hits += correct;
    m.recall.expected += expected;
  }
  toString() {
    return `search(${this.name}, ${JSON.stringify(this.vector)}, k=${this.k}, ${JSON.stringify(this.filter)})`;
  }
}

class RestartCommand implements fc.AsyncCommand<Model, Real> {
  readonly how: "clean" | "crash" | "damaged-snapshot" | "missing-snapshot";
  constructor(how: "clean" | "crash" | "damaged-snapshot" | "missing-snapshot") {
    this.how = how;
  }
  check() {
    return true;
  }
  async run(m: Model, r: Real) {
    if (this.how === "clean") await r.store.close();
    else await r.store.abandon();
    const indexes = path.join(r.dataDir, "indexes");
    const files = readdirSync(indexes).filter((f) => f.endsWith(".hnsw"));
    for (const file of files) {
      if (this.how === "damaged-snapshot") writeFileSync(path.join(indexes, file), "not an index");
      if (this.how === "missing-snapshot") rmSync(path.join(indexes, file));
    }
    r.store = await openTestStore(r.dataDir);
    for (const name of m.collections.keys()) await checkCollection(m, r, name);
  }
  toString() {
    return `restart(${this.how})`;
  }
}

/** Count, stored fields, and the log bound (compaction keeps it under the snapshot interval). */
async function checkCollection(m: Model, r: Real, name: string) {
  const model = m.collections.get(name)!.docs;
  expect((await r.store.get(name)).count).toBe(model.size);
  const got = await r.store.getDocuments(name, {
    ids: [...model.keys()],
    limit: 1000,
    offset: 0,
    include: ALL,
  });
  expect(got.map((d) => d.id)).toEqual([...model.keys()]);
  for (const doc of got) expect(sameDocument(doc, model.get(doc.id)!), doc.id).toBe(true);
  // An idle snapshot may not have run yet; a forced one bounds the log.
  expect(r.store.logSize()).toBeLessThan(
    m.collections.size * (SNAPSHOT_EVERY * SNAPSHOT_FORCE_FACTOR + MAX_DOCS_PER_OP),
  );
}

const nameArb = fc.constantFrom(...NAMES);
const commands = [
  fc
    .tuple(
      nameArb,
      fc.constantFrom<Metric>("cosine", "l2", "ip"),
      fc.constantFrom<"f32" | "f16">("f32", "f16"),
    )
    .map(([name, metric, q]) => new CreateCommand(name, metric, q)),
  fc
    .tuple(
      nameArb,
      fc.array(
        fc.record({
          id: idArb,
          vector: vectorArb,
          text: fc.option(fc.string({ maxLength: 8 }), { nil: null }),
          metadata: metadataArb,
        }),
        { minLength: 1, maxLength: MAX_DOCS_PER_OP },
      ),
    )
    .map(([name, docs]) => new UpsertCommand(name, docs)),
  fc
    .tuple(
      nameArb,
      fc.option(fc.array(idArb, { minLength: 1, maxLength: 4 }), { nil: undefined }),
      fc.option(filterArb, { nil: undefined }),
    )
    .filter(([, ids, filter]) => ids !== undefined || filter !== undefined)
    .map(([name, ids, filter]) => new DeleteCommand(name, ids, filter)),
  fc
    .tuple(
      nameArb,
      fc.option(filterArb, { nil: undefined }),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 0, max: 4 }),
    )
    .map(([name, filter, limit, offset]) => new GetCommand(name, filter, limit, offset)),
  fc
    .tuple(nameArb, vectorArb, fc.integer({ min: 1, max: 6 }), fc.option(filterArb, { nil: undefined }))
    .map(([name, vector, k, filter]) => new SearchCommand(name, vector, k, filter)),
  fc
    .tuple(nameArb, vectorArb, fc.integer({ min: 1, max: 6 }), fc.option(filterArb, { nil: undefined }))
    .map(([name, vector, k, filter]) => new SearchCommand(name, vector, k, filter)),
  fc
    .constantFrom<RestartCommand["how"]>("clean", "crash", "damaged-snapshot", "missing-snapshot")
    .map((how) => new RestartCommand(how)),
];

const dirs: Array<() => void> = [];
afterAll(() => {
  for (const remove of dirs) remove();
});

describe("LocalCollectionStore against a brute-force model", () => {
  it("keeps counts, fields, filters, recall >= 0.95 and a bounded log through restarts", async () => {
    const total = { hits: 0, expected: 0 };
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 50, size: "max" }), async (cmds) => {
        const data = tempDataDir();
        dirs.push(data.remove);
        const real: Real = {
          store: await openTestStore(data.dir),
          dataDir: data.dir,
        };
        const model: Model = { collections: new Map(), recall: { hits: 0, expected: 0 } };
        // One collection from the start, so most commands apply; the other one is created by a command.
        await new CreateCommand("a", "cosine", "f32").run(model, real);
        try {
          await fc.asyncModelRun(() => ({ model, real }), cmds);
        } finally {
          await real.store.close();
          data.remove();
        }
        total.hits += model.recall.hits;
        total.expected += model.recall.expected;
      }),
      { numRuns: 25 },
    );
    expect(total.expected).toBeGreaterThan(100);
    expect(total.hits / total.expected).toBeGreaterThanOrEqual(0.95);
    expect(compactions).toBeGreaterThan(0);
  }, 60_000);
});
