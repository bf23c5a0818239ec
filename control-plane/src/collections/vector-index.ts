import { closeSync, openSync, readSync, rmSync } from "node:fs";
import { type FileHandle, open, rename } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import { crc32 } from "node:zlib";
import { type BatchMatches, Index, type MetricKind, type ScalarKind } from "usearch";
import type { CollectionSpec, Metric } from "./types.ts";

const BYTES_PER_SCALAR = { f32: 4, f16: 2, i8: 1 } as const;
/** Beam of the search that checks each vector of a threaded insert is reachable. */
const SELF_CHECK_BEAM = 16;
/** Bytes read per step of a snapshot's checksum. */
const CRC_CHUNK = 1 << 22;

/**
 * usearch's metric for a collection. Cosine vectors are normalised before they reach the index
 * (the vectors in SQLite stay as given), so cosine is a dot product there: usearch's `cos` kernel
 * computes two norms per distance, `ip` none. i8 keeps `cos`: its integer dot product is not
 * rescaled to [-1, 1]. (A snapshot records its own metric, and usearch's `load` takes it from the
 * file: an index saved as `cos` ranks normalised vectors the same.)
 */
function usearchMetric(spec: CollectionSpec): MetricKind {
  if (spec.metric === "l2") return "l2sq" as MetricKind;
  if (spec.metric === "ip" || spec.quantization !== "i8") return "ip" as MetricKind;
  return "cos" as MetricKind;
}

/**
 * One HNSW graph in RAM (usearch), keyed by the integer key the store gives each version of a
 * document. Insert-only: a key's node is never removed or replaced (see `add`), so the graph holds
 * the live keys and dead ones, which searches pass through and the caller's `keep` rejects.
 */
export class VectorIndex {
  readonly #index: Index;
  readonly #spec: CollectionSpec;
  readonly #normalize: boolean;

  constructor(spec: CollectionSpec) {
    this.#spec = spec;
    this.#normalize = spec.metric === "cosine";
    this.#index = new Index({
      dimensions: spec.dimension,
      metric: usearchMetric(spec),
      quantization: spec.quantization as ScalarKind,
      connectivity: spec.index.M,
      expansion_add: spec.index.ef_construction,
      // usearch's beam is max(this, the results asked for), fixed at construction; 1 lets each
      // search set it exactly by the number of results it asks for (see `search`).
      expansion_search: 1,
      multi: false,
    });
  }

  /** Nodes in the graph, live and dead. */
  get size(): number {
    return this.#index.size();
  }

  /**
   * Adds one vector under a key that is not in the graph yet; a key already there is left as it is.
   * Nothing is ever removed from a live graph: usearch's `remove` frees the node's slot and its next
   * `add` reuses it, relinking the slot to the new vector, so live nodes that were reached only
   * through the old node's links become unreachable (measured: 1-4 of ~4000 self-searches missed
   * after 30 update rounds). The store gives each new version of a document a new key instead and
   * leaves the old node dead in the graph until compaction rebuilds it.
   */
  add(key: number, vector: Float32Array): void {
    this.#addOne(BigInt(key), this.#prepared(vector), 1);
  }

  /**
   * usearch's `add` grows the index when it is full, reserving per-thread state for the `threads`
   * of that call only; a later call on more threads, before the next growth, then fails ("Reserve
   * capacity ahead of insertions!"). So an add that grows the index reserves for `threads`.
   */
  #addOne(key: bigint, prepared: Float32Array, threads: number): void {
    if (this.#index.contains(key)) return;
    const grows = this.#index.size() + 1 >= this.#index.capacity();
    this.#index.add(key, prepared, grows ? threads : 1);
  }

  /**
   * `add` of several vectors (distinct keys), inserting them on `threads` threads. usearch's
   * concurrent insert can strand a node being inserted: stored, but linked from no other node, so
   * no search reaches it (usearch issue #735; 2-9 of 4000 in our test with 4 threads). So each
   * batch is searched for its own vectors afterwards (also threaded), and a vector whose search
   * does not return it is removed and inserted again alone. That one `remove` is safe: no other
   * slot is ever freed, so the `add` right after it refills the same slot with the same vector;
   * the links that point at the slot stay valid, and only its own links are rebuilt.
   * `collections-index.test.ts` checks recall and self-reachability against a single-threaded build.
   */
  addMany(entries: Array<{ key: number; vector: Float32Array }>, insertThreads: number): void {
    // A loaded index has per-thread state for the machine's CPUs only (usearch's `load`): more
    // threads than that would fail before the next growth, and would not be faster.
    const threads = Math.min(insertThreads, availableParallelism());
    const fresh = entries.filter(({ key }) => !this.#index.contains(BigInt(key)));
    if (threads <= 1 || fresh.length <= 1) {
      for (const { key, vector } of fresh) this.#addOne(BigInt(key), this.#prepared(vector), threads);
      return;
    }
    const dim = this.#spec.dimension;
    const keys = new BigUint64Array(fresh.length);
    const matrix = new Float32Array(fresh.length * dim);
    fresh.forEach(({ key, vector }, i) => {
      keys[i] = BigInt(key);
      matrix.set(this.#prepared(vector), i * dim);
    });
    this.#index.add(keys, matrix, threads);
    const beam = Math.min(SELF_CHECK_BEAM, this.#index.size());
    // Several rows: usearch answers a BatchMatches (its typing only knows arrays of vectors).
    const found = this.#index.search(matrix, beam, threads) as unknown as BatchMatches;
    for (let i = 0; i < fresh.length; i++) {
      const hits = found.keys.subarray(i * beam, i * beam + Number(found.counts[i]));
      if (!hits.includes(keys[i]!)) {
        this.#index.remove(keys[i]!);
        this.#addOne(keys[i]!, matrix.subarray(i * dim, (i + 1) * dim), threads);
      }
    }
  }

  /** The vector as the index holds it: unit length for cosine (a zero vector stays zero). */
  #prepared(vector: Float32Array): Float32Array {
    if (!this.#normalize) return vector;
    let norm = 0;
    for (let i = 0; i < vector.length; i++) norm += vector[i]! * vector[i]!;
    if (norm === 0) return vector;
    const scale = 1 / Math.sqrt(norm);
    const unit = new Float32Array(vector.length);
    for (let i = 0; i < vector.length; i++) unit[i] = vector[i]! * scale;
    return unit;
  }

  /**
   * The nearest keys with their scores, best first: the graph is searched with a beam of `beam`
   * (hnswlib's `ef`), and of the keys it returns, the first `limit` that `keep` admits are kept.
   */
  search(
    vector: Float32Array,
    beam: number,
    limit: number,
    keep: (key: number) => boolean,
  ): Array<{ key: number; score: number }> {
    const size = this.#index.size();
    if (size === 0) return [];
    const found = this.#index.search(this.#prepared(vector), Math.min(Math.max(beam, limit), size), 1);
    const hits: Array<{ key: number; score: number }> = [];
    for (let i = 0; i < found.keys.length && hits.length < limit; i++) {
      const key = Number(found.keys[i]);
      if (keep(key)) hits.push({ key, score: scoreOf(this.#spec.metric, found.distances[i]!) });
    }
    return hits;
  }

  /** An estimate of usearch's RAM: the quantized vectors plus the base layer's links. */
  memoryBytes(): number {
    const perVector =
      this.#spec.dimension * BYTES_PER_SCALAR[this.#spec.quantization] + this.#spec.index.M * 2 * 4 + 16;
    return this.#index.capacity() * perVector;
  }

  /**
   * Writes the index to `path` atomically (a temp file, fsync, rename, fsync of the directory) and
   * returns the file's checksum, which `load` checks: a torn or foreign file is never loaded. Only
   * usearch's `save` holds the event loop (it has no asynchronous form); the fsyncs and the
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

  /** The index saved at `path`, or null when the file is missing, its checksum differs, or usearch refuses it. */
  static load(spec: CollectionSpec, path: string, checksum: string): VectorIndex | null {
    let actual: string;
    try {
      actual = crc32File(path);
    } catch {
      return null;
    }
    if (actual !== checksum) return null;
    const index = new VectorIndex(spec);
    try {
      index.#index.load(path);
    } catch {
      return null;
    }
    return index.#index.dimensions() === spec.dimension ? index : null;
  }

  static removeFile(path: string): void {
    rmSync(path, { force: true });
    rmSync(`${path}.tmp`, { force: true });
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

/** cosine: similarity (the dot product of unit vectors); ip: dot product; l2: Euclidean distance. usearch returns distances. */
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
