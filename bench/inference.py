"""Inference benchmark: texts/s and latency at batch 1, 8 and 32 for both architectures at their
real sizes (random weights in the real Qwen3-Embedding-0.6B and EmbeddingGemma-300m shapes, MLX
4-bit), cold load time, peak RSS, and the forward pass against the machine's measured float32
matrix-multiply throughput.

    make bench-inference          # or: inference/.venv/bin/python bench/inference.py [--quick]

Each model is measured in a fresh subprocess so that load time and peak RSS are its own. Results
go to bench/results/inference.json and the "inference" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "inference")]

from bench.report import write_section  # noqa: E402

MODELS = {
    "qwen3-0.6b-shape-4bit": "Qwen3-Embedding-0.6B shape",
    "gemma-300m-shape-4bit": "EmbeddingGemma-300m shape",
}
BATCH_SIZES = (1, 8, 32)
# A typical retrieval passage sentence; repeated words keep the token count stable across models.
TEXT = "Edge devices keep embeddings close to the data so that search stays private and fast."


def mean_seconds(run: Callable[[], object], repeats: int) -> float:
    """Mean wall time of `run` over `repeats` calls, after one untimed warm-up call. `run` must
    finish its work before returning (MLX code calls `mx.eval`)."""
    run()
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - started) / repeats


def matmul_gflops(size: int, repeats: int) -> dict[str, float]:
    """Float32 n x n matmul throughput of MLX and of numpy (OpenBLAS) on this machine."""
    import mlx.core as mx

    a, b = mx.random.normal((size, size)), mx.random.normal((size, size))
    an = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    flops = 2 * size**3
    return {
        "mlx": flops / mean_seconds(lambda: mx.eval(a @ b), repeats) / 1e9,
        "numpy": flops / mean_seconds(lambda: an @ an, repeats) / 1e9,
    }


def quantized_matmul_gflops(tokens: int, repeats: int) -> float:
    """4-bit (group 64) x float32 matmul throughput at a Qwen3-0.6B MLP shape."""
    import mlx.core as mx

    x, w = mx.random.normal((tokens, 1024)), mx.random.normal((3072, 1024))
    wq, scales, biases = mx.quantize(w, group_size=64, bits=4)

    def run() -> None:
        mx.eval(mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=64, bits=4))

    return 2 * tokens * 1024 * 3072 / mean_seconds(run, repeats) / 1e9


def profile_layer(config: dict[str, Any], tokens: int, repeats: int = 3) -> dict[str, float]:
    """Milliseconds per transformer layer for each kind of op, at the real shapes and `tokens`
    tokens: which op dominates the forward pass."""
    import mlx.core as mx

    hidden, inter = config["hidden_size"], config["intermediate_size"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    group, bits = config["quantization"]["group_size"], config["quantization"]["bits"]
    x = mx.random.normal((tokens, hidden))
    projections = {
        "q": (heads * head_dim, hidden),
        "k": (kv_heads * head_dim, hidden),
        "v": (kv_heads * head_dim, hidden),
        "o": (hidden, heads * head_dim),
        "gate": (inter, hidden),
        "up": (inter, hidden),
        "down": (hidden, inter),
    }
    weights = {
        name: mx.quantize(mx.random.normal(shape), group_size=group, bits=bits)
        for name, shape in projections.items()
    }
    inputs = {
        name: x if shape[1] == hidden else mx.random.normal((tokens, shape[1]))
        for name, shape in projections.items()
    }
    q = mx.random.normal((1, heads, tokens, head_dim))
    k = mx.random.normal((1, kv_heads, tokens, head_dim))
    norm_weight = mx.ones((hidden,))
    mx.eval(x, q, k, norm_weight, *inputs.values(), *[w for triple in weights.values() for w in triple])

    def timed(run: Callable[[], object]) -> float:
        return mean_seconds(lambda: mx.eval(run()), repeats) * 1000

    def projection(name: str) -> Any:
        wq, scales, biases = weights[name]
        return lambda: mx.quantized_matmul(
            inputs[name], wq, scales, biases, transpose=True, group_size=group, bits=bits
        )

    attention = lambda: mx.fast.scaled_dot_product_attention(q, k, k, scale=head_dim**-0.5)  # noqa: E731
    norms = lambda: [mx.fast.rms_norm(x, norm_weight, 1e-6) for _ in range(4)]  # noqa: E731
    return {
        "attention_projections_ms": sum(timed(projection(name)) for name in ("q", "k", "v", "o")),
        "mlp_projections_ms": sum(timed(projection(name)) for name in ("gate", "up", "down")),
        "attention_ms": timed(attention),
        "norms_ms": timed(norms),
    }


def measure_model(model_dir: Path, repeats: dict[int, int]) -> dict[str, Any]:
    """Runs in its own process: cold load, then latency per batch size."""
    from akidb_inference.engine import BackendOptions, load_embedder

    started = time.perf_counter()
    # This benchmark measures MLX (the default elsewhere is ONNX Runtime: bench/backends.py).
    embedder = load_embedder(model_dir, device="cpu", backend=BackendOptions(name="mlx"))
    load_seconds = time.perf_counter() - started
    warm_up_seconds = embedder.warm_up()
    tokens_per_text = len(embedder.tokenize([TEXT], "document")[0].ids)
    batches = {}
    for batch_size, count in repeats.items():
        texts = [f"{i} {TEXT}" for i in range(batch_size)]
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            result = embedder.embed(texts, "document")
            latencies.append(time.perf_counter() - started)
        tokens = sum(result.token_counts)
        batches[str(batch_size)] = {
            "repeats": count,
            "latency_s_median": float(np.median(latencies)),
            "latency_s_min": float(min(latencies)),
            "texts_per_s": batch_size / float(np.median(latencies)),
            "tokens": tokens,
        }
    config = json.loads((model_dir / "config.json").read_text())
    profile_tokens = int(batches["8"]["tokens"])
    return {
        "profile_tokens": profile_tokens,
        "profile_layer": profile_layer(config, profile_tokens),
        "layers": config["num_hidden_layers"],
        "load_seconds": load_seconds,
        "warm_up_seconds": warm_up_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tokens_per_text": tokens_per_text,
        "flops_per_token": forward_flops_per_token(config),
        "batches": batches,
    }


def forward_flops_per_token(config: dict[str, Any]) -> float:
    """Matmul FLOPs per token of the transformer layers (projections + MLP), attention excluded."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q = config["num_attention_heads"] * head_dim
    kv = config["num_key_value_heads"] * head_dim
    per_layer = hidden * (q + 2 * kv) + q * hidden + 3 * hidden * config["intermediate_size"]
    return 2.0 * float(per_layer) * float(layers)


def machine() -> dict[str, Any]:
    import mlx.core as mx

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    else:
        cpu = platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "mlx": importlib.metadata.version("mlx"),
        "mlx_device": str(mx.default_device()),
    }


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    peak = results["matmul_f32_gflops"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB, {m['os']}, Python {m['python']},"
        f" MLX {m['mlx']} ({m['mlx_device']}). Measured {results['date']}.",
        "",
        "Float32 matmul throughput (n x n, the machine's measured limit):",
        "",
        "| n | MLX GFLOP/s | numpy (OpenBLAS) GFLOP/s |",
        "|---|---|---|",
    ]
    for size, row in peak.items():
        lines.append(f"| {size} | {row['mlx']:.1f} | {row['numpy']:.1f} |")
    lines += [
        "",
        f"MLX 4-bit quantized matmul (512 x 1024 x 3072): {results['quantized_matmul_gflops']:.1f} GFLOP/s.",
        "",
        "| model (random weights, 4-bit) | load s | warm-up s | peak RSS MB | batch | tokens | latency s"
        " (median) | texts/s | achieved GFLOP/s | / MLX f32 peak | / numpy peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    mlx_peak = max(row["mlx"] for row in peak.values())
    numpy_peak = max(row["numpy"] for row in peak.values())
    for name, model in results["models"].items():
        for batch_size, row in model["batches"].items():
            achieved = model["flops_per_token"] * row["tokens"] / row["latency_s_median"] / 1e9
            lines.append(
                f"| {MODELS[name]} | {model['load_seconds']:.1f} | {model['warm_up_seconds']:.2f} |"
                f" {model['peak_rss_mb']:.0f} | {batch_size} | {row['tokens']} |"
                f" {row['latency_s_median']:.2f} ({row['repeats']} runs) | {row['texts_per_s']:.2f} |"
                f" {achieved:.2f} |"
                f" {achieved / mlx_peak:.0%} | {achieved / numpy_peak:.1%} |"
            )
    lines += [
        "",
        "Where the time goes (one layer at the real shapes, batch-8 token count, ops timed alone):",
        "",
        "| model | tokens | q/k/v/o 4-bit matmuls ms | MLP 4-bit matmuls ms | attention ms | norms ms |"
        " layers x sum s | measured forward s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, model in results["models"].items():
        layer = model["profile_layer"]
        total = sum(layer.values()) * model["layers"] / 1000
        lines.append(
            f"| {MODELS[name]} | {model['profile_tokens']} | {layer['attention_projections_ms']:.0f} |"
            f" {layer['mlp_projections_ms']:.0f} | {layer['attention_ms']:.1f} | {layer['norms_ms']:.1f} |"
            f" {total:.1f} | {model['batches']['8']['latency_s_median']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one run per batch size")
    parser.add_argument("--fixtures", type=Path, default=ROOT / ".cache" / "fixtures")
    parser.add_argument(
        "--matmul-only",
        action="store_true",
        help="re-measure only the matmul limits (on a quiet machine) and re-render the saved results",
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    # Real-size models run at a few texts per second at best on Linux CPUs (see docs/benchmarks.md),
    # so the larger batches are measured once.
    repeats = {1: 3, 8: 1, 32: 1} if not options.quick else dict.fromkeys(BATCH_SIZES, 1)
    if options.measure:
        print(json.dumps(measure_model(options.measure, repeats)))
        return

    saved = ROOT / "bench" / "results" / "inference.json"
    if options.matmul_only:
        publish({**json.loads(saved.read_text()), **machine_limits()}, saved)
        return

    subprocess.run(
        [sys.executable, "-m", "tests.fixtures.build", "--real-size", "--out", str(options.fixtures)],
        cwd=ROOT / "inference",
        check=True,
    )
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        **machine_limits(),
        "models": {},
    }
    for name in MODELS:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--measure", str(options.fixtures / name)]
        if options.quick:
            command.append("--quick")
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results["models"][name] = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(results["models"][name], indent=1), file=sys.stderr)
    publish(results, saved)


def machine_limits() -> dict[str, Any]:
    return {
        "matmul_f32_gflops": {str(n): matmul_gflops(n, 5) for n in (512, 1024, 2048)},
        "quantized_matmul_gflops": quantized_matmul_gflops(512, 5),
    }


def publish(results: dict[str, Any], saved: Path) -> None:
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    write_section(ROOT / "docs" / "benchmarks.md", "inference", table)
    print(table)


if __name__ == "__main__":
    main()
