import { closeSync, openSync, readdirSync, readSync, rmSync } from "node:fs";
import { type FileHandle, open, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import { addon, type HnswIndex } from "../native.ts";
import type { CollectionSpec, Metric } from "./types.ts";

/** Bytes read per step of a snapshot's checksum. */
const CRC_CHUNK = 1 << 22;

/**
 * The addon's metric for a collection. Cosine vectors are normalised before they reach the index
 * (the vectors in SQLite stay as given), so cosine is a dot product there; i8 keeps `cos`, the
 * cosine of the integer vectors (rounding moves their norms off 127).
 */
function indexMetric(spec: CollectionSpec): string {
  if (spec.metric === "l2") return "l2sq";
  if (spec.metric === "ip" || spec.quantization !== "i8") return "ip";
  return "cos";
}

/**
 * One HNSW graph in RAM (control-plane/native: an addon of our own), keyed by the integer key the
 * store gives each version of a document. Insert-only: a key's node is never removed or replaced
 * (see `add`), so the graph holds the live keys and dead ones; a search walks through dead nodes
 * but, given the live keys' bitset, never spends its beam on them.
 */
export class VectorIndex {
  readonly #index: HnswIndex;
  readonly #spec: CollectionSpec;
  readonly #normalize: boolean;
  /** A search's normalised query (searches run one at a time on the store's thread). */
  readonly #query: Float32Array;
  #outKeys = new Float64Array(64);
  #outDistances = new Float32Array(64);

  constructor(spec: CollectionSpec, loaded?: HnswIndex) {
    this.#spec = spec;
    this.#normalize = spec.metric === "cosine";
    this.#query = new Float32Array(spec.dimension);
    this.#index =
      loaded ??
      new (addon().HnswIndex)({
        dimensions: spec.dimension,
        metric: indexMetric(spec),
        scalar: spec.quantization,
        M: spec.index.M,
        efConstruction: spec.index.ef_construction,
      });
  }

  /** Nodes in the graph, live and dead. */
  get size(): number {
    return this.#index.size();
  }

  /**
   * Adds one vector under a key that is not in the graph yet; a key already there is left as it is.
   * Nothing is ever removed from a live graph: the store gives each new version of a document a new
   * key and leaves the old node dead in the graph until compaction rebuilds it (freeing a node's
   * slot for reuse, as usearch's `remove` did, stranded live nodes reached only through it).
   */
  add(key: number, vector: Float32Array): void {
    this.#index.add(key, this.#prepared(vector));
  }

  /**
   * `add` of several vectors (distinct keys), inserted concurrently on `threads` threads (the call
   * returns when all are in). Each node's neighbour list has its own lock and a node is linked
   * only after it is complete, so no insert strands another (usearch issue #735 did):
   * `collections-index.test.ts` checks recall and self-reachability against a one-by-one build.
   */
  addMany(entries: Array<{ key: number; vector: Float32Array }>, threads: number): void {
    if (entries.length === 0) return;
    const dim = this.#spec.dimension;
    const keys = new Float64Array(entries.length);
    const matrix = new Float32Array(entries.length * dim);
    entries.forEach(({ key, vector }, i) => {
      keys[i] = key;
      const row = matrix.subarray(i * dim, (i + 1) * dim);
      const prepared = this.#prepared(vector, row);
      if (prepared !== row) row.set(prepared);
    });
    this.#index.addMany(keys, matrix, threads);
  }

  /** The vector as the index holds it, in `into` when given: unit length for cosine (a zero vector stays zero). */
  #prepared(vector: Float32Array, into?: Float32Array): Float32Array {
    if (!this.#normalize) return vector;
    let norm = 0;
    for (let i = 0; i < vector.length; i++) norm += vector[i]! * vector[i]!;
    if (norm === 0) return vector;
    const scale = 1 / Math.sqrt(norm);
    const unit = into ?? new Float32Array(vector.length);
    for (let i = 0; i < vector.length; i++) unit[i] = vector[i]! * scale;
    return unit;
  }

  /**
   * The `limit` nearest keys with their scores, best first, searched with a beam of `beam`
   * (hnswlib's `ef`). When `admitted` is given (a bitset by key: `LiveKeys.bits`, or a filter's
   * `keyBits`), the graph walk returns only keys it admits and fills its beam with them alone, so
   * dead nodes and filtered-out ones cost steps but never places; `keep` then checks each hit.
   */
  search(
    vector: Float32Array,
    beam: number,
    limit: number,
    keep: (key: number) => boolean,
    admitted: Uint8Array | null = null,
  ): Array<{ key: number; score: number }> {
    if (this.#index.size() === 0 || limit <= 0) return [];
    // The whole beam comes back, so `keep` can reject some and `limit` still be met.
    const width = Math.max(beam, limit);
    if (this.#outKeys.length < width) {
      this.#outKeys = new Float64Array(width);
      this.#outDistances = new Float32Array(width);
    }
    const found = this.#index.search(
      this.#prepared(vector, this.#query),
      width,
      width,
      admitted,
      this.#outKeys,
      this.#outDistances,
    );
    const hits: Array<{ key: number; score: number }> = [];
    for (let i = 0; i < found && hits.length < limit; i++) {
      const key = this.#outKeys[i]!;
      if (keep(key)) hits.push({ key, score: scoreOf(this.#spec.metric, this.#outDistances[i]!) });
    }
    return hits;
  }

  /** RAM the graph holds: its node slots (vectors and base-layer links), upper levels and key map. */
  memoryBytes(): number {
    return this.#index.memoryBytes();
  }

  /**
   * Writes the index to `path` atomically (a temp file, fsync, rename, fsync of the directory) and
   * returns the file's checksum, which `load` checks: a torn or foreign file is never loaded. Only
   * the addon's `save` holds the event loop (a write of the graph's memory); the fsyncs and the
   * checksum's read-back run on libuv's thread pool.
   */
  async saveAtomically(path: string): Promise<{ checksum: string; bytes: number }> {
    const temp = `${path}.tmp`;
    this.#index.save(temp);
    const file = await open(temp, "r+");
    let checksum: string;
    try {
      await file.sync();
      checksum = await crc32Handle(file);
    } finally {
      await file.close();
    }
    const bytes = Number(checksum.split(":")[1]);
    await rename(temp, path);
    const dir = await open(dirname(path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return { checksum, bytes };
  }

  /**
   * The index saved at `path`, or null when the file is missing, its checksum differs, the addon
   * refuses it (not its format, e.g. a usearch snapshot from before the addon), or it was built
   * for other dimensions, metric or quantization.
   */
  static load(spec: CollectionSpec, path: string, checksum: string): VectorIndex | null {
    let actual: string;
    try {
      actual = crc32File(path);
    } catch {
      return null;
    }
    if (actual !== checksum) return null;
    let loaded: HnswIndex;
    try {
      loaded = addon().loadIndex(path);
    } catch {
      return null;
    }
    const info = loaded.info();
    const fits =
      info.dimensions === spec.dimension &&
      info.metric === indexMetric(spec) &&
      info.scalar === spec.quantization &&
      info.M === spec.index.M;
    return fits ? new VectorIndex(spec, loaded) : null;
  }

  static removeFile(path: string): void {
    rmSync(path, { force: true });
    rmSync(`${path}.tmp`, { force: true });
  }

  /**
   * Deletes snapshots of usearch, the index before this one (`<id>.usearch`): the store rebuilds
   * their collections from the stored vectors, as for any snapshot that does not load.
   */
  static removeOldSnapshots(dir: string): void {
    for (const name of readdirSync(dir)) {
      if (name.endsWith(".usearch") || name.endsWith(".usearch.tmp"))
        rmSync(join(dir, name), { force: true });
    }
  }
}

/** CRC-32 of a file and its size, e.g. `1a2b3c4d:1048576` (CRC-32 runs at GB/s, so a snapshot check is cheap). */
function crc32File(path: string): string {
  const buffer = Buffer.alloc(CRC_CHUNK);
  const fd = openSync(path, "r");
  let crc = 0;
  let size = 0;
  try {
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) {
      crc = crc32(buffer.subarray(0, n), crc);
      size += n;
    }
  } finally {
    closeSync(fd);
  }
  return checksumString(crc, size);
}

/** `crc32File` of an open file, read asynchronously: the loop holds only one chunk's CRC at a time. */
async function crc32Handle(file: FileHandle): Promise<string> {
  const buffer = Buffer.alloc(CRC_CHUNK);
  let crc = 0;
  let size = 0;
  for (;;) {
    const { bytesRead } = await file.read(buffer, 0, CRC_CHUNK, size);
    if (bytesRead === 0) break;
    crc = crc32(buffer.subarray(0, bytesRead), crc);
    size += bytesRead;
  }
  return checksumString(crc, size);
}

function checksumString(crc: number, size: number): string {
  return `${crc.toString(16).padStart(8, "0")}:${size}`;
}

/** cosine: similarity (the dot product of unit vectors); ip: dot product; l2: Euclidean distance. The index returns distances. */
function scoreOf(metric: Metric, distance: number): number {
  if (metric === "l2") return Math.sqrt(Math.max(0, distance));
  return 1 - distance;
}

/** The exact score `VectorIndex.search` approximates, in float32 inputs and float64 sums. */
export function exactScore(metric: Metric, a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let sq = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
    sq += (x - y) * (x - y);
  }
  if (metric === "ip") return dot;
  if (metric === "l2") return Math.sqrt(sq);
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Whether score `a` ranks before score `b` under the metric. */
export function better(metric: Metric, a: number, b: number): boolean {
  return metric === "l2" ? a < b : a > b;
}
