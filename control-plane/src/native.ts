import { createRequire } from "node:module";

/**
 * AkiDB's native addon (control-plane/native, built at setup by scripts/build-native.sh): the HNSW
 * vector index, the float32 JSON writer and the upsert vector reader. Loaded on first use, once per thread.
 */
const ADDON_PATH = new URL("../native/build/akidb_native.node", import.meta.url).pathname;

/** One HNSW graph of the addon (native/hnsw.h). Keys are integers below 2^53. */
export interface HnswIndex {
  add(key: number, vector: Float32Array): boolean;
  addMany(keys: Float64Array, vectors: Float32Array, threads: number): number;
  /** Writes up to `k` hits, best first, into the out arrays; returns how many. */
  search(
    query: Float32Array,
    k: number,
    ef: number,
    admitted: Uint8Array | null,
    outKeys: Float64Array,
    outDistances: Float32Array,
  ): number;
  contains(key: number): boolean;
  size(): number;
  memoryBytes(): number;
  save(path: string): void;
  info(): { dimensions: number; metric: string; scalar: string; M: number; efConstruction: number };
}

interface NativeAddon {
  HnswIndex: new (options: {
    dimensions: number;
    metric: string;
    scalar: string;
    M: number;
    efConstruction: number;
  }) => HnswIndex;
  loadIndex(path: string): HnswIndex;
  /** The distance kernels this CPU runs: avx512 (avx512+vnni with VNNI for the int8 sketches), avx2 or portable. */
  simd: string;
  /**
   * The vector as a JSON array, each value the shortest decimal that reads back as the same
   * float32 (native/json.h); throws on a NaN or an infinity.
   */
  float32Json(vector: Float32Array): string;
  /**
   * A body (UTF-8 JSON) with its `list[i].vector` arrays of `dimension` numbers taken out, or its
   * own `vector` when `list` is null (native/json.h): `text` is the body with each replaced by `0`,
   * `documents` the index in `list` of each taken vector (0 for the body's own) and `vectors`
   * their float32 values, row by row. Null when it takes none.
   */
  extractVectors(
    body: Uint8Array,
    dimension: number,
    list: string | null,
  ): { text: Uint8Array; documents: Uint32Array; vectors: Float32Array } | null;
}

let loadedAddon: NativeAddon | undefined;

/** The addon, loaded once; a clear error when setup has not built it. */
export function addon(): NativeAddon {
  if (loadedAddon) return loadedAddon;
  try {
    loadedAddon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (error) {
    throw new Error(
      `AkiDB's native addon could not be loaded from ${ADDON_PATH} (${error instanceof Error ? error.message : String(error)}): ` +
        "run scripts/setup.sh (or `make serve`), which builds it and needs a C++ compiler",
    );
  }
  return loadedAddon;
}
