// The clustered synthetic vectors bench/collections.ts, collections_search.ts and
// collections_recovery.ts measure on, and how their searches are scored.

/** Seeded uniform [0, 1). */
export function generator(seed: number) {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Latent dimensions of the synthetic data: embeddings of real text have a low intrinsic dimension. */
export const LATENT = 32;

/**
 * `n` unit vectors: 100 Gaussian clusters in a LATENT-dimensional space, projected to `dim` by one
 * fixed random matrix, plus a little full-rank noise. (Clusters drawn directly in 384 dimensions
 * make every neighbour almost equidistant, which no embedding model produces.)
 */
export function clustered(n: number, dim: number, seed: number): Float32Array {
  const projection = generator(1234);
  const gaussFrom = (random: () => number) => () =>
    Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const fixed = gaussFrom(projection);
  const matrix = Float32Array.from({ length: LATENT * dim }, fixed);
  const centres = Array.from({ length: 100 }, () => Float32Array.from({ length: LATENT }, fixed));
  const gauss = gaussFrom(generator(seed));
  const random = generator(seed + 1);
  const out = new Float32Array(n * dim);
  const latent = new Float32Array(LATENT);
  for (let i = 0; i < n; i++) {
    const centre = centres[Math.floor(random() * centres.length)]!;
    for (let l = 0; l < LATENT; l++) latent[l] = centre[l]! + 0.5 * gauss();
    let norm = 0;
    for (let j = 0; j < dim; j++) {
      let x = 0.05 * gauss();
      for (let l = 0; l < LATENT; l++) x += latent[l]! * matrix[l * dim + j]!;
      out[i * dim + j] = x;
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    for (let j = 0; j < dim; j++) out[i * dim + j]! /= norm;
  }
  return out;
}

/** Vector `i` of a row-major matrix of `dim` columns. */
export const row = (data: Float32Array, dim: number, i: number) => data.subarray(i * dim, (i + 1) * dim);

/** The metadata bucket of document `i` (10 buckets); the filtered benchmarks select one. */
export const bucketOf = (i: number) => i % 10;

/** A vector as the API takes it: JSON numbers, or base64 of its little-endian float32 bytes. */
export function vectorField(vector: Float32Array, encoding: "json" | "base64"): number[] | string {
  if (encoding === "json") return Array.from(vector);
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64");
}

/** Documents `start` to `end - 1` of `data` for an in-process store: id `i`, row `i`, its bucket. */
export function bucketDocuments(data: Float32Array, dim: number, start: number, end: number) {
  const documents = [];
  for (let i = start; i < end; i++) {
    documents.push({
      id: String(i),
      vector: row(data, dim, i),
      text: null,
      metadata: { bucket: bucketOf(i) },
    });
  }
  return documents;
}

/**
 * Exact top-`k` rows of `base` by dot product for each query (cosine on these unit vectors), best
 * first: the ground truth recall is measured against. Four queries per pass over `base`, so each
 * base row is read once per four queries.
 */
export function exactTopK(base: Float32Array, queries: Float32Array, dim: number, k: number): number[][] {
  const n = base.length / dim;
  const q = queries.length / dim;
  const truth: number[][] = [];
  for (let first = 0; first < q; first += 4) {
    const group = Math.min(4, q - first);
    const best = Array.from({ length: group }, () => ({
      ids: new Int32Array(k).fill(-1),
      scores: new Float64Array(k).fill(Number.NEGATIVE_INFINITY),
    }));
    for (let i = 0; i < n; i++) {
      const offset = i * dim;
      for (let g = 0; g < group; g++) {
        const query = (first + g) * dim;
        let dot = 0;
        for (let j = 0; j < dim; j++) dot += base[offset + j]! * queries[query + j]!;
        const { ids, scores } = best[g]!;
        if (dot <= scores[k - 1]!) continue;
        let at = k - 1;
        while (at > 0 && scores[at - 1]! < dot) {
          scores[at] = scores[at - 1]!;
          ids[at] = ids[at - 1]!;
          at--;
        }
        scores[at] = dot;
        ids[at] = i;
      }
    }
    for (const { ids } of best) truth.push(Array.from(ids));
  }
  return truth;
}

/** recall@k of `results` against `truth` (k: the length of each truth list), to 3 decimals. */
export function recallAt(results: number[][], truth: number[][]): number {
  let hits = 0;
  let wanted = 0;
  results.forEach((found, i) => {
    const want = new Set(truth[i]);
    wanted += want.size;
    hits += found.filter((id) => want.has(id)).length;
  });
  return Math.round((hits / wanted) * 1000) / 1000;
}

/**
 * One point of a search sweep: `search(i)` (query i's ids) for each of `queries` queries, `passes`
 * times; the best pass's QPS (the machine is shared, and its speed moves) and the recall.
 */
export async function sweepPoint(
  ef: number,
  queries: number,
  passes: number,
  truth: number[][],
  search: (i: number) => Promise<number[]> | number[],
): Promise<{ ef: number; qps: number; recall: number }> {
  let best = 0;
  let results: number[][] = [];
  for (let pass = 0; pass < passes; pass++) {
    results = [];
    const started = performance.now();
    for (let i = 0; i < queries; i++) results.push(await search(i));
    best = Math.max(best, queries / ((performance.now() - started) / 1000));
  }
  return { ef, qps: Math.round(best), recall: recallAt(results, truth) };
}
