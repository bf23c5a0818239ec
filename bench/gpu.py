"""GPU benchmark (MLX's CUDA build on an NVIDIA GPU): the engine at the real model shapes, the
first-request latency after ready, `mx.compile` of the layers, the inference process over HTTP, and
transformers on torch CUDA at the same shapes.

    python bench/gpu.py --out DIR          # on the GPU machine; bench/gpu_device.sh runs it there

Each configuration runs in a fresh subprocess with an empty MLX_PTX_CACHE_DIR, so its load,
warm-up and first requests pay the kernel compiles a freshly installed server pays. Writes
DIR/gpu.json and prints a table; docs/benchmarks.md ("GPU") records the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "inference")]

MODELS = ("qwen3-0.6b-shape-4bit", "gemma-300m-shape-4bit")
WORD = "vector "
"""One token in both tokenizers; a text of n words is about n tokens."""
FIRST_REQUESTS = [(1, 7), (1, 23), (1, 100), (10, 40), (32, 60), (1, 300), (8, 960), (32, 128), (3, 2000)]
"""(texts, words each) of the requests sent after ready, in this order, each new to the server."""
BATCHES = (1, 10, 32)
STEADY_WORDS = 20


def texts(count: int, words: int) -> list[str]:
    return [f"{i} " + WORD * words for i in range(count)]


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def compile_layers(model: Any) -> None:
    """`mx.compile` each transformer block's call (one fused graph per block and mask kind)."""
    import mlx.core as mx

    block_type = type(model.model.layers[0])
    original = block_type.__call__
    compiled: dict[int, Any] = {}

    def call(self: Any, x: Any, mask: Any) -> Any:
        function = compiled.get(id(self))
        if function is None:
            function = compiled[id(self)] = mx.compile(partial(original, self))
        return function(x, mask)

    block_type.__call__ = call


def engine_run(model: str, mode: str) -> dict[str, Any]:
    """One configuration in this process. mode: plain | buckets | buckets+compile."""
    import mlx.core as mx

    from akidb_inference.engine import BackendOptions, load_embedder
    from tests.fixtures import fixture_dir

    directory = fixture_dir(model)
    started = time.perf_counter()
    embedder = load_embedder(directory, backend=BackendOptions(name="mlx"), shape_buckets=mode != "plain")
    load_s = time.perf_counter() - started
    reference = embedder.embed(texts(4, 50), "document").vectors if mode == "buckets+compile" else None
    if mode == "buckets+compile":
        compile_layers(embedder._backend._model)  # type: ignore[attr-defined]
    warm_up_s = embedder.warm_up()
    result: dict[str, Any] = {
        "model": model,
        "mode": mode,
        "device": embedder.info.device,
        "load_s": round(load_s, 3),
        "warm_up_s": round(warm_up_s, 3),
        "bucket_shapes": len(embedder.bucket_shapes()) if mode != "plain" else 0,
    }
    if reference is not None:
        result["compiled_max_abs_diff"] = float(
            np.abs(embedder.embed(texts(4, 50), "document").vectors - reference).max()
        )
    first = []
    for count, words in FIRST_REQUESTS:
        batch = texts(count, words)
        t0 = time.perf_counter()
        embedder.embed(batch, "document")
        t1 = time.perf_counter()
        embedder.embed(batch, "document")
        t2 = time.perf_counter()
        first.append(
            {
                "texts": count,
                "words": words,
                "first_ms": round((t1 - t0) * 1000, 1),
                "again_ms": round((t2 - t1) * 1000, 1),
            }
        )
    result["first_requests"] = first
    result["worst_first_ms"] = max(entry["first_ms"] for entry in first)
    steady = {}
    for batch_size in BATCHES:
        batch = texts(batch_size, STEADY_WORDS)
        steady[str(batch_size)] = round(median_ms(partial(embedder.embed, batch, "document"), 30), 2)
    result["steady_ms"] = steady
    result["texts_per_s_batch32"] = round(32 / steady["32"] * 1000, 1)
    big = texts(512, 100)
    result["texts_per_s_batch512x100"] = round(
        512 / median_ms(lambda: embedder.embed(big, "document"), 3) * 1000, 1
    )
    result["peak_gpu_memory_bytes"] = int(mx.get_peak_memory())
    return result


def ptx_cache_dir() -> str:
    """AKIDB_BENCH_PTX_DIR when set (runs share compiled kernels, as restarts of one server do),
    else a new empty directory (the run pays every compile, as a fresh install does)."""
    return os.environ.get("AKIDB_BENCH_PTX_DIR") or tempfile.mkdtemp(prefix="ptx-")


def in_subprocess(args: list[str]) -> dict[str, Any]:
    env = dict(os.environ, MLX_PTX_CACHE_DIR=ptx_cache_dir(), PYTHONUNBUFFERED="1")
    completed = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, timeout=420, check=False
    )
    if completed.returncode != 0:
        return {"args": args, "error": completed.stderr[-3000:]}
    parsed: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return parsed


async def server_run(model: str) -> dict[str, Any]:
    """The inference process alone on the GPU: cold and warm single queries, a batch of 10, and
    single-text requests at a fixed 50 and 100 per second for 15 s each."""
    import httpx

    from tests.fixtures import fixture_dir

    env = dict(os.environ, MLX_PTX_CACHE_DIR=ptx_cache_dir())
    command = [sys.executable, "-m", "akidb_inference", "--model", str(fixture_dir(model))]
    command += ["--backend", "mlx", "--device", os.environ.get("AKIDB_BENCH_DEVICE", "gpu"), "--port", "0"]
    started = time.perf_counter()
    log_path = Path(tempfile.mkdtemp()) / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, cwd=ROOT / "inference", env=env, stderr=log_file)
    url = None
    while url is None and process.poll() is None:
        await asyncio.sleep(0.05)
        for line in log_path.read_text().splitlines():
            record = json.loads(line)
            if record.get("msg") == "listening":
                url = record["url"]
    assert url is not None, log_path.read_text()[-2000:]
    result: dict[str, Any] = {"model": model}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            while (await client.get("/health")).status_code != 200:
                await asyncio.sleep(0.05)
            result["ready_s"] = round(time.perf_counter() - started, 2)
            card = (await client.get("/v1/models")).json()["data"][0]
            result["device"] = card["device"]
            result["backend"] = card["backend"]

            async def embed(inputs: list[str]) -> float:
                """Milliseconds; NaN for a failed request (e.g. a 429 when the queue is full)."""
                t0 = time.perf_counter()
                response = await client.post("/v1/embeddings", json={"input": inputs, "model": model})
                if response.status_code != 200:
                    return float("nan")
                return (time.perf_counter() - t0) * 1000

            result["single_cold_ms"] = round(await embed(["what is a vector database?"]), 1)
            result["single_warm_ms"] = round(
                float(np.median([await embed(["what is a vector database?"]) for _ in range(20)])), 1
            )
            # The process's own view of those requests: its log's duration_ms, read to the client's.
            durations = [
                record["duration_ms"]
                for record in map(json.loads, log_path.read_text().splitlines())
                if record.get("msg") == "request" and record.get("path") == "/v1/embeddings"
            ]
            result["single_warm_server_ms"] = round(float(np.median(durations[-20:])), 2)
            result["batch10_ms"] = round(
                float(np.median([await embed(texts(10, STEADY_WORDS)) for _ in range(10)])), 1
            )
            for rate in (50, 100):
                tasks = []
                begin = time.perf_counter()
                for i in range(rate * 15):
                    await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
                    tasks.append(asyncio.create_task(embed([f"query number {i} about vectors"])))
                latencies = np.array(await asyncio.gather(*tasks))  # NaN: failed
                ok = latencies[~np.isnan(latencies)]
                result[f"qps{rate}"] = {
                    f"p{q}": round(float(np.percentile(ok, q)), 1) for q in (50, 95, 99)
                } | {"sent": len(latencies), "failed": int(np.isnan(latencies).sum())}
    finally:
        process.terminate()
        process.wait(timeout=30)
    return result


def torch_run(model: str) -> dict[str, Any]:
    """transformers on torch CUDA, random weights in the same shape: the forward pass and pooling
    that sentence-transformers runs (its tokenization excluded), float16 and float32."""
    import torch
    from transformers import Gemma3TextConfig, Gemma3TextModel, Qwen3Config, Qwen3Model

    from tests.fixtures.build import ALL_FIXTURES

    config = dict(ALL_FIXTURES[model].config)
    classes = {"qwen3": (Qwen3Config, Qwen3Model), "gemma3_text": (Gemma3TextConfig, Gemma3TextModel)}
    config_class, model_class = classes[config["model_type"]]
    result: dict[str, Any] = {"model": model, "torch": torch.__version__}
    for dtype in (torch.float16, torch.float32):
        net = model_class(config_class(**config, attn_implementation="sdpa")).to("cuda", dtype).eval()
        timings = {}
        for batch_size in (*BATCHES, 512):
            words = 100 if batch_size == 512 else STEADY_WORDS
            ids = torch.randint(0, 1000, (batch_size, words + 3), device="cuda")
            mask = torch.ones_like(ids)

            def run(ids: Any = ids, mask: Any = mask, net: Any = net) -> None:
                with torch.inference_mode():
                    hidden = net(input_ids=ids, attention_mask=mask).last_hidden_state
                    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
                    torch.nn.functional.normalize(pooled, dim=-1).float().cpu()

            timings[str(batch_size)] = round(median_ms(run, 3 if batch_size == 512 else 30), 2)
        result[str(dtype).removeprefix("torch.")] = timings | {
            "texts_per_s_batch32": round(32 / timings["32"] * 1000, 1),
            "texts_per_s_batch512x100": round(512 / timings["512"] * 1000, 1),
        }
        del net
        torch.cuda.empty_cache()
    return result


PROFILE_QUERY = ["query 7: which local vector database runs embeddings on an edge machine?"]
"""The single query of the profile (bench/serving.ts sends ones like it)."""


def profile_run(model: str) -> dict[str, Any]:
    """Where a single query's time goes on the GPU, in one process: the engine's steps (tokenize,
    forward, project) timed apart, a cProfile of the engine call, `mx.compile` of the layers, the
    same call on the model thread through `ModelWorker` (the server's path without HTTP), and ONNX
    Runtime on CUDA (f32 and int4) where onnxruntime-gpu is installed."""
    import mlx.core as mx

    from tests.fixtures import fixture_dir

    directory = fixture_dir(model)
    result: dict[str, Any] = {"model": model} | profile_engine(directory)
    mx.clear_cache()
    result["worker_single_ms"] = round(asyncio.run(worker_single_ms(directory)), 2)
    mx.clear_cache()
    try:
        result |= profile_onnx(directory)
    except Exception as error:  # CPU-only onnxruntime, or CUDA libraries missing
        result["onnx_error"] = repr(error)[:800]
    return result


def steady(run: Callable[[Sequence[str]], object], single: int = 40, batch: int = 20) -> dict[str, float]:
    """Median ms of the profile query alone and of batches of 10 and 32 texts."""
    result = {"single_ms": round(median_ms(lambda: run(PROFILE_QUERY), single), 2)}
    for size in (10, 32):
        batch_texts = texts(size, STEADY_WORDS)
        result[f"batch{size}_ms"] = round(median_ms(lambda b=batch_texts: run(b), batch), 2)  # type: ignore[misc]
    return result


def profile_engine(directory: Path) -> dict[str, Any]:
    import cProfile
    import pstats

    from akidb_inference.engine import BackendOptions, load_embedder

    embedder = load_embedder(directory, backend=BackendOptions(name="mlx"))
    result: dict[str, Any] = {"warm_up_s": round(embedder.warm_up(), 2)}
    steps, restore = timed_steps(embedder)
    result["engine_single_ms"] = round(median_ms(lambda: embedder.embed(PROFILE_QUERY, "query"), 40), 2)
    result["engine_steps_median_ms"] = {k: round(float(np.median(v[1:])), 2) for k, v in steps.items()}
    restore()
    backend: Any = embedder._backend
    result["engine"] = steady(lambda batch: embedder.embed(batch, "query"))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20):
        embedder.embed(PROFILE_QUERY, "query")
    profiler.disable()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:15]
    result["cprofile_tottime_per_call"] = [
        f"{entry[2] / 20 * 1000:.3f} ms {where[2]} ({Path(where[0]).name}:{where[1]})" for where, entry in top
    ]
    try:
        compile_layers(backend._model)
        embedder.warm_up()
        result["compiled"] = steady(lambda batch: embedder.embed(batch, "query"))
    except Exception as error:  # a failed compile is a result too
        result["compiled_error"] = repr(error)[:500]
    return result


def timed_steps(embedder: Any) -> tuple[dict[str, list[float]], Callable[[], None]]:
    """Times each call of the engine's steps (tokenize, the backend's forward and head) into lists,
    until the returned function puts the untimed steps back."""
    backend: Any = embedder._backend
    steps: dict[str, list[float]] = {"tokenize": [], "forward": [], "project": []}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            t0 = time.perf_counter()
            value = function(*args)
            steps[name].append((time.perf_counter() - t0) * 1000)
            return value

        return call

    forward, project, tokenize = backend.forward, backend.project, embedder.tokenize
    backend.forward, backend.project = timed("forward", forward), timed("project", project)
    embedder.tokenize = timed("tokenize", tokenize)

    def restore() -> None:
        backend.forward, backend.project = forward, project
        embedder.tokenize = tokenize

    return steps, restore


PASSAGE = (
    "passage {}: AkiDB keeps embeddings and the HNSW index in memory, so that search stays private and fast."
)
"""bench/serving.ts's batch texts, numbered as it numbers them (lengths vary with the number)."""


def passages_ms(embedder: Any) -> dict[str, Any]:
    """The engine on bench/serving.ts's batches of passages (documents): medians of 20 per size and
    of each step's time, to set beside the control plane's and the inference process's."""
    result: dict[str, Any] = {}
    for count in BATCHES:
        batches = ([PASSAGE.format(i * count + k) for k in range(count)] for i in range(10**6))
        steps, restore = timed_steps(embedder)
        total = median_ms(partial(lambda texts: embedder.embed(next(texts), "document"), batches), 20)
        restore()
        result[f"batch{count}"] = {"total_ms": round(total, 2)} | {
            f"{k}_ms": round(float(np.median(v[1:])), 2) for k, v in steps.items()
        }
    return result


def new_shapes_ms(embedder: Any) -> list[dict[str, Any]]:
    """The first call at a batch shape not run before, beside the same call again: what a request
    pays when its shape is new to the backend (kernels chosen or compiled on first use)."""
    rows = []
    for count, words in ((1, 37), (1, 53), (3, 37), (3, 71), (7, 29), (16, 45)):
        batch = texts(count, words)
        t0 = time.perf_counter()
        embedder.embed(batch, "query")
        first = (time.perf_counter() - t0) * 1000
        again = median_ms(partial(embedder.embed, batch, "query"), 5)
        rows.append(
            {"texts": count, "words": words, "first_ms": round(first, 2), "again_ms": round(again, 2)}
        )
    return rows


async def worker_single_ms(directory: Path) -> float:
    """The profile query through `ModelWorker.run`, as the server calls it (median of 40)."""
    from akidb_inference.engine import BackendOptions
    from akidb_inference.worker import ModelWorker

    worker = ModelWorker(
        lambda: directory, device="auto", max_batch_tokens=16384, backend=BackendOptions(name="mlx")
    )
    worker.start()
    while worker.status == "loading":
        await asyncio.sleep(0.05)
    assert worker.model is not None, worker.reason
    samples = []
    for _ in range(41):
        t0 = time.perf_counter()
        await worker.run(lambda embedder: embedder.embed(PROFILE_QUERY, "query"))
        samples.append((time.perf_counter() - t0) * 1000)
    worker.close()
    return float(np.median(samples[1:]))


def profile_onnx(directory: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from akidb_inference.engine import BackendOptions, load_embedder

    result: dict[str, Any] = {"onnxruntime": [ort.__version__, *ort.get_available_providers()]}
    big = texts(512, 100)
    precisions: tuple[Literal["f32", "int4"], ...] = ("f32", "int4")
    for precision in precisions:
        options = BackendOptions(
            name="onnx",
            onnx_precision=precision,
            onnx_cache_dir=Path(tempfile.mkdtemp()),
        )
        t0 = time.perf_counter()
        device: Any = os.environ.get("AKIDB_BENCH_DEVICE", "gpu")
        embedder = load_embedder(directory, device=device, backend=options)
        entry: dict[str, Any] = {"device": embedder.info.device, "load_s": round(time.perf_counter() - t0, 2)}
        entry |= steady(lambda batch, e=embedder: e.embed(batch, "query"))  # type: ignore[misc]
        entry["texts_per_s_batch32"] = round(32 / entry["batch32_ms"] * 1000, 1)
        entry["new_shapes"] = new_shapes_ms(embedder)
        entry["passages"] = passages_ms(embedder)
        big_ms = median_ms(lambda e=embedder: e.embed(big, "document"), 3)  # type: ignore[misc]
        entry["texts_per_s_batch512x100"] = round(512 / big_ms * 1000, 1)
        result[f"onnx_{precision}"] = entry
    return result


def workaround_run() -> dict[str, Any]:
    """The 4-bit fixtures on CUDA without and with the single-group workaround, against transformers."""
    from akidb_inference.backends.mlx import loader
    from akidb_inference.engine import BackendOptions, NonFiniteEmbedding, load_embedder
    from tests.fixtures import fixture_dir, load_reference

    result: dict[str, Any] = {}
    original = loader.single_group_matmul_is_wrong
    for fixture in ("qwen3-4bit", "gemma3-4bit"):
        reference = load_reference(fixture)
        entries = [entry for entry in reference.texts if entry.input_type == "document"]
        expected = np.array([entry.embedding for entry in entries], dtype=np.float32)
        for workaround in (False, True):
            loader.single_group_matmul_is_wrong = original if workaround else (lambda: False)
            embedder = load_embedder(fixture_dir(fixture), backend=BackendOptions(name="mlx"))
            key = f"{fixture} {'with' if workaround else 'without'} workaround"
            try:
                vectors = embedder.embed([entry.text for entry in entries], "document").vectors
                result[key] = {
                    "max_abs_diff": float(np.abs(vectors - expected).max()),
                    "min_cosine": float((vectors * expected).sum(1).min()),
                }
            except NonFiniteEmbedding as error:
                result[key] = {"error": str(error)}
    loader.single_group_matmul_is_wrong = original
    return result


def _bound_run(session: Any, binding: Any) -> object:
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()


def cuda_graph_probe(directory: Path) -> dict[str, Any]:
    """ONNX Runtime alone on the f32 graph: per (rows, tokens) shape, a plain run, a run with the
    inputs already on the GPU (IOBinding), and a CUDA graph captured and replayed by the backend's
    `CudaGraphs` (backends/onnx/cuda_graphs.py), in a session of its own per shape; medians of 60, ms."""
    import onnxruntime as ort

    from akidb_inference.backends.onnx import _hidden_output
    from akidb_inference.backends.onnx.convert import graph_file
    from akidb_inference.backends.onnx.cuda_graphs import PROVIDER_OPTIONS, CudaGraphs
    from akidb_inference.checkpoint import read_checkpoint

    ort.preload_dlls()
    checkpoint = read_checkpoint(directory)
    path = str(graph_file(checkpoint, "f32", Path(tempfile.mkdtemp())))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    plain = ort.InferenceSession(path, options, providers=["CUDAExecutionProvider"])
    output = _hidden_output(plain)
    types = {i.name: np.int64 if i.type == "tensor(int64)" else np.int32 for i in plain.get_inputs()}
    hidden = int(checkpoint.config["hidden_size"])
    result: dict[str, Any] = {"model": directory.name}
    for rows, tokens in ((1, 16), (1, 32), (4, 32), (32, 32)):
        rng = np.random.default_rng(0)
        given = {
            "input_ids": rng.integers(100, 1000, (rows, tokens)),
            "attention_mask": np.ones((rows, tokens)),
        }
        feeds = {name: given[name].astype(kind) for name, kind in types.items()}
        row: dict[str, Any] = {"plain_ms": median_ms(lambda f=feeds: plain.run([output], f), 60)}  # type: ignore[misc]
        expected = plain.run([output], feeds)[0]
        binding = plain.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        binding.bind_output(output, "cuda")
        row["iobinding_ms"] = median_ms(partial(_bound_run, plain, binding), 60)
        # The backend's own graph runner (`CudaGraphs`), on a session of its own for this shape.
        graphs = CudaGraphs(
            ort.InferenceSession(path, options, providers=[("CUDAExecutionProvider", PROVIDER_OPTIONS)]),
            output,
            hidden,
        )
        started = time.perf_counter()
        graphs.run(feeds)
        row["graph_capture_ms"] = round((time.perf_counter() - started) * 1000, 1)
        replay = partial(graphs.run, feeds)
        row["graph_ms"] = median_ms(replay, 60)
        row["graph_max_diff"] = float(np.abs(replay() - expected).max())
        result[f"{rows}x{tokens}"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--engine", nargs=2, metavar=("MODEL", "MODE"), help="internal: one engine run")
    parser.add_argument("--server", metavar="MODEL", help="internal: one server run")
    parser.add_argument("--torch", metavar="MODEL", help="internal: one torch run")
    parser.add_argument("--profile", metavar="MODEL", help="where a single query's time goes")
    parser.add_argument("--profile-onnx", metavar="MODEL", help="the ONNX Runtime part of --profile alone")
    parser.add_argument("--cuda-graphs", metavar="MODEL", help="ONNX Runtime: plain runs against CUDA graphs")
    parser.add_argument("--workaround", action="store_true", help="the 4-bit fixtures with and without it")
    parser.add_argument("--modes", nargs="+", default=["plain", "buckets", "buckets+compile"])
    parser.add_argument("--only", choices=["engine", "server", "torch"], action="append")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(engine_run(*args.engine)))
        return 0
    if args.server:
        print(json.dumps(asyncio.run(server_run(args.server))))
        return 0
    if args.torch:
        print(json.dumps(torch_run(args.torch)))
        return 0
    if args.profile:
        print(json.dumps(profile_run(args.profile), indent=1))
        return 0
    if args.profile_onnx:
        from tests.fixtures import fixture_dir

        print(json.dumps(profile_onnx(fixture_dir(args.profile_onnx)), indent=1))
        return 0
    if args.cuda_graphs:
        from tests.fixtures import fixture_dir

        print(json.dumps(cuda_graph_probe(fixture_dir(args.cuda_graphs)), indent=1))
        return 0
    if args.workaround:
        print(json.dumps(workaround_run(), indent=1))
        return 0
    parts = args.only or ["engine", "server", "torch"]
    results: dict[str, Any] = {"engine": [], "server": [], "torch": []}
    for model in MODELS:
        if "engine" in parts:
            for mode in args.modes:
                results["engine"].append(in_subprocess(["--engine", model, mode]))
                print(json.dumps(results["engine"][-1]), flush=True)
        if "server" in parts:
            results["server"].append(in_subprocess(["--server", model]))
            print(json.dumps(results["server"][-1]), flush=True)
        if "torch" in parts:
            results["torch"].append(in_subprocess(["--torch", model]))
            print(json.dumps(results["torch"][-1]), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = "gpu-" + "-".join(parts) + ("-" + "-".join(args.modes) if "engine" in parts else "")
        (args.out / f"{name.replace('+', '_')}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
