import { closeSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { crc32 } from "node:zlib";
import { Index, type MetricKind, type ScalarKind } from "usearch";
import type { CollectionSpec, Metric } from "./types.ts";

const USEARCH_METRIC = { cosine: "cos", l2: "l2sq", ip: "ip" } as const;
const BYTES_PER_SCALAR = { f32: 4, f16: 2, i8: 1 } as const;

/** One HNSW graph in RAM (usearch), keyed by the integer key the store gives each document id. */
export class VectorIndex {
  readonly #index: Index;
  readonly #spec: CollectionSpec;

  constructor(spec: CollectionSpec) {
    this.#spec = spec;
    this.#index = new Index({
      dimensions: spec.dimension,
      metric: USEARCH_METRIC[spec.metric] as MetricKind,
      quantization: spec.quantization as ScalarKind,
      connectivity: spec.index.M,
      expansion_add: spec.index.ef_construction,
      expansion_search: spec.index.ef_search,
      multi: false,
    });
  }

  get size(): number {
    return this.#index.size();
  }

  /**
   * Adds or replaces one vector. Single-threaded on purpose: usearch's threaded `add` can leave
   * unreachable nodes (usearch issue #735).
   */
  set(key: number, vector: Float32Array): void {
    const k = BigInt(key);
    if (this.#index.contains(k)) this.#index.remove(k);
    this.#index.add(k, vector, 1);
  }

  remove(key: number): void {
    const k = BigInt(key);
    if (this.#index.contains(k)) this.#index.remove(k);
  }

  /** Up to `k` nearest keys with their scores, best first. The beam is max(k, ef_search): a larger `k` widens it. */
  search(vector: Float32Array, k: number): Array<{ key: number; score: number }> {
    if (this.#index.size() === 0) return [];
    const found = this.#index.search(vector, Math.min(k, this.#index.size()), 1);
    const hits: Array<{ key: number; score: number }> = [];
    for (let i = 0; i < found.keys.length; i++) {
      hits.push({ key: Number(found.keys[i]), score: scoreOf(this.#spec.metric, found.distances[i]!) });
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
   * returns the file's checksum, which `load` checks: a torn or foreign file is never loaded.
   */
  saveAtomically(path: string): { checksum: string; bytes: number } {
    const temp = `${path}.tmp`;
    this.#index.save(temp);
    const fd = openSync(temp, "r+");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const checksum = crc32File(temp);
    const bytes = statSync(temp).size;
    renameSync(temp, path);
    const dirFd = openSync(dirname(path), "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
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
  const buffer = Buffer.alloc(1 << 22);
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
  return `${crc.toString(16).padStart(8, "0")}:${size}`;
}

/** cosine: similarity; ip: dot product; l2: Euclidean distance. usearch returns distances. */
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
