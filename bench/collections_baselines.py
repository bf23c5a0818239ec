"""hnswlib and Chroma on the data bench/collections.ts wrote, for the side-by-side in one run.

Usage: python bench/collections_baselines.py WORKDIR N DIM QUERIES EF,EF,... [BATCH] [PASSES]
(EF,EF,... empty: the ingests only. hnswlib's QPS per ef is the best of PASSES passes; Chroma's
filtered search, ~20 QPS, gets one.)

Run with an interpreter that has ``hnswlib`` and ``chromadb`` (a throwaway venv, never the project
lock). Reads WORKDIR/base.f32, queries.f32 and truth.json; prints one JSON object on stdout:
``{"hnswlib": {...}, "chroma": {...}}`` with ingest throughput and (ef, QPS, recall@10) sweeps,
plain and with the 10%-selective filter (documents whose index is 3 modulo 10).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

K = 10
# Documents per insert call (argv[6]: bench/collections.ts passes the batch its HTTP ingest uses).
BATCH = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
PASSES = int(sys.argv[7]) if len(sys.argv) > 7 else 1
FILTER_BUCKET = 3


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return round(hits / (len(truth) * K), 3)


def run_hnswlib(base: Any, queries: Any, truth: dict[str, Any], efs: list[int]) -> dict[str, Any]:
    import hnswlib

    n, dim = base.shape

    def build(threads: int) -> tuple[Any, float]:
        """The index of `base`, inserted in batches on `threads` threads, and the seconds it took."""
        index = hnswlib.Index(space="cosine", dim=dim)
        index.init_index(max_elements=n, M=16, ef_construction=128)
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            index.add_items(
                base[start : start + BATCH], np.arange(start, min(start + BATCH, n)), num_threads=threads
            )
        return index, time.perf_counter() - started

    index, ingest_s = build(1)

    def sweep(filtered: bool) -> list[dict[str, float]]:
        points = []
        keep = (lambda label: label % 10 == FILTER_BUCKET) if filtered else None
        for ef in efs:
            index.set_ef(max(ef, K))
            seconds = float("inf")
            for _ in range(PASSES):
                started = time.perf_counter()
                found = [
                    [int(x) for x in index.knn_query(q, k=K, num_threads=1, filter=keep)[0][0]]
                    for q in queries
                ]
                seconds = min(seconds, time.perf_counter() - started)
            wanted = truth["filtered" if filtered else "plain"]
            points.append({"ef": ef, "qps": round(len(queries) / seconds), "recall": recall(found, wanted)})
        return points

    # The same inserts on 2 threads, as AkiDB's collection.insert_threads default (ingest only).
    ingest_2_s = build(2)[1]

    return {
        "ingest": {"docs_per_s": round(n / ingest_s), "seconds": round(ingest_s, 1)},
        "ingest_2_threads": {"docs_per_s": round(n / ingest_2_s), "seconds": round(ingest_2_s, 1)},
        "search": sweep(False),
        "filtered_search": sweep(True),
    }


def run_chroma(base: Any, queries: Any, truth: dict[str, Any], efs: list[int]) -> dict[str, Any]:
    import chromadb

    n = base.shape[0]
    result: dict[str, Any] = {"search": [], "filtered_search": []}
    with tempfile.TemporaryDirectory() as path:
        client = chromadb.PersistentClient(path=path)
        hnsw = {
            "space": "cosine",
            "max_neighbors": 16,
            "ef_construction": 128,
            "ef_search": efs[0] if efs else 64,
        }
        collection = client.create_collection("bench", configuration={"hnsw": hnsw})
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            end = min(start + BATCH, n)
            collection.add(
                ids=[str(j) for j in range(start, end)],
                embeddings=base[start:end],
                metadatas=[{"bucket": j % 10} for j in range(start, end)],
            )
        seconds = time.perf_counter() - started
        result["ingest"] = {"docs_per_s": round(n / seconds), "seconds": round(seconds, 1)}
        print(f"chroma ingest: {result['ingest']}", file=sys.stderr)
        for ef in efs:
            collection.modify(configuration={"hnsw": {"ef_search": ef}})
            for filtered in (False, True):
                where = {"bucket": FILTER_BUCKET} if filtered else None
                started = time.perf_counter()
                found = []
                for q in queries:
                    ids = collection.query(query_embeddings=[q], n_results=K, where=where)["ids"][0]
                    found.append([int(x) for x in ids])
                seconds = time.perf_counter() - started
                wanted = truth["filtered" if filtered else "plain"]
                point = {"ef": ef, "qps": round(len(queries) / seconds), "recall": recall(found, wanted)}
                result["filtered_search" if filtered else "search"].append(point)
    return result


def main() -> None:
    work, n, dim, q = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    # An empty list of efs measures the ingests alone (bench/collections.ts --ingest-only).
    efs = [int(x) for x in sys.argv[5].split(",") if x]
    base = np.fromfile(work / "base.f32", dtype=np.float32).reshape(n, dim)
    queries = np.fromfile(work / "queries.f32", dtype=np.float32).reshape(q, dim)
    truth = json.loads((work / "truth.json").read_text())
    out = {"hnswlib": run_hnswlib(base, queries, truth, efs)}
    print(f"hnswlib: {json.dumps(out['hnswlib'])}", file=sys.stderr)
    out["chroma"] = run_chroma(base, queries, truth, efs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
