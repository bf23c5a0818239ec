"""hnswlib's search on the data bench/collections_search.ts wrote: the peer of its search sweeps.

Usage: python bench/collections_search_hnswlib.py WORKDIR N DIM QUERIES EF,EF,... PASSES

Run with an interpreter that has ``hnswlib`` (the throwaway peers venv, never the project lock).
Reads WORKDIR/base.f32, queries.f32 and truth.json (``{"plain": [[id, ...], ...]}``), builds the
index as bench/collections_baselines.py does (cosine, M 16, ef_construction 128) on 2 threads in
batches of 1000, and prints ``{"search": [{"ef", "qps", "recall"}, ...], "build": vectors/s}``:
one query per call on 1 thread, each QPS the best of PASSES passes over the queries (the machine
is shared; the best pass is the least disturbed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hnswlib
import numpy as np

K = 10


def main() -> None:
    work, n, dim, q = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    efs = [int(x) for x in sys.argv[5].split(",")]
    passes = int(sys.argv[6])
    base = np.fromfile(work / "base.f32", dtype=np.float32).reshape(n, dim)
    queries = np.fromfile(work / "queries.f32", dtype=np.float32).reshape(q, dim)
    truth = json.loads((work / "truth.json").read_text())["plain"]
    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(max_elements=n, M=16, ef_construction=128)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        index.add_items(base[start : start + 1000], np.arange(start, min(n, start + 1000)), num_threads=2)
    build = n / (time.perf_counter() - started)
    points = []
    for ef in efs:
        index.set_ef(max(ef, K))
        best = 0.0
        for _ in range(passes):
            started = time.perf_counter()
            found = [index.knn_query(x, k=K, num_threads=1)[0][0] for x in queries]
            best = max(best, q / (time.perf_counter() - started))
        hits = sum(len({int(x) for x in f} & set(t)) for f, t in zip(found, truth, strict=True))
        points.append({"ef": ef, "qps": round(best), "recall": round(hits / (q * K), 3)})
    print(json.dumps({"search": points, "build": round(build)}))


if __name__ == "__main__":
    main()
