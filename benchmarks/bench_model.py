"""Benchmark: our ReXNet-1.0× against timm's rexnet_100 on this machine, in one run.

Measures inference throughput (224×224, batch 8), training-step throughput (32×32, batch 128, SGD) and
the peak memory of a training step, and prints ours/timm ratios (goal: throughputs ≥ 1.0, memory ≤ 1.0).
The models run in alternating short rounds and each model's fastest iteration counts (as timeit takes
the minimum): on a shared machine a load spike slows an iteration, never speeds one up.
Peak memory: CUDA's allocator statistics on a GPU; on CPU the process's peak resident set
during one step, measured in a fresh subprocess per model with glibc told to return freed blocks to the
OS (otherwise its cache hides the peak).

    python benchmarks/bench_model.py [--rounds 5] [--iters 2] [--threads N] [--variants ours,ours_cl,timm]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import rexnet

INFER_BATCH, INFER_SIZE = 8, 224
TRAIN_BATCH, TRAIN_SIZE = 128, 32


def build(which: str, device: torch.device, channels_last: bool = False, compile_: bool = False):
    """Returns the model named by `which` ('ours' or 'timm') on `device`, both with the same weights.

    Same weights, so both do the same arithmetic on the same values (a model whose activations have
    decayed into denormal floats runs several times slower on CPU, which would measure the init).
    """
    import timm  # the comparison's other side; a test extra, imported only when a model is built

    torch.manual_seed(0)
    model = timm.create_model("rexnet_100")
    if which == "ours":
        model = rexnet.create_model("rexnet_100", checkpoint=model.state_dict())
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_:
        model = torch.compile(model)
    return model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _images(batch: int, size: int, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = torch.randn(batch, 3, size, size, device=device)
    return x.to(memory_format=torch.channels_last) if channels_last else x


def _train_step(model, optimizer, x, y) -> None:
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def _best_seconds(fn, device, warmup: int, iters: int) -> float:
    """Returns the fastest of `iters` timed calls of fn (after `warmup` untimed ones)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(iters):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def inference_rate(model, device, channels_last, warmup, iters) -> float:
    """Returns images per second of the fastest eval-mode forward pass at 224×224, batch 8."""
    model.eval()
    x = _images(INFER_BATCH, INFER_SIZE, device, channels_last)
    with torch.inference_mode():
        return INFER_BATCH / _best_seconds(lambda: model(x), device, warmup, iters)


def training_rate(model, device, channels_last, warmup, iters) -> float:
    """Returns images per second of the fastest training step (forward, backward, SGD) at 32×32, batch 128."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = _images(TRAIN_BATCH, TRAIN_SIZE, device, channels_last)
    y = torch.randint(0, 1000, (TRAIN_BATCH,), device=device)
    return TRAIN_BATCH / _best_seconds(lambda: _train_step(model, optimizer, x, y), device, warmup, iters)


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def peak_step_memory(which: str, device: torch.device, channels_last: bool, compile_: bool) -> int:
    """Returns the bytes a training step needs above the memory held before it (weights, optimizer state)."""
    model = build(which, device, channels_last, compile_).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = _images(TRAIN_BATCH, TRAIN_SIZE, device, channels_last)
    y = torch.randint(0, 1000, (TRAIN_BATCH,), device=device)
    for _ in range(2):  # allocate momentum buffers and gradients; warm caches
        _train_step(model, optimizer, x, y)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _train_step(model, optimizer, x, y)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    before = _status_bytes("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter (VmHWM) to the current RSS
    _train_step(model, optimizer, x, y)
    return _status_bytes("VmHWM:") - before


# Variant name → (model, channels_last, torch.compile). timm runs as timm's users run it: eager, NCHW.
VARIANTS = {
    "ours": ("ours", False, False),
    "ours_cl": ("ours", True, False),
    "ours_compile": ("ours", False, True),
    "timm": ("timm", False, False),
}


def _memory_in_subprocess(variant: str, threads: int) -> int | None:
    cmd = [sys.executable, __file__, "--memory-probe", variant, "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"memory probe for {variant} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--variants",
        default="ours,ours_cl,timm",
        help=f"comma-separated, from {', '.join(VARIANTS)} (ours_cl = channels_last; "
        "ours_compile = torch.compile, minutes to compile on CPU)",
    )
    parser.add_argument("--memory-probe", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    if args.memory_probe:
        if device.type == "cpu" and sys.platform.startswith("linux"):
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: big blocks are mmapped, so freeing them lowers RSS
            libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
        which, channels_last, compile_ = VARIANTS[args.memory_probe]
        print(json.dumps({"peak_bytes": peak_step_memory(which, device, channels_last, compile_)}))
        return

    names = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or "timm" not in names:
        parser.error(f"--variants must include timm and name only {', '.join(VARIANTS)}")
    models = {v: build(VARIANTS[v][0], device, *VARIANTS[v][1:]) for v in names}
    infer, train = {v: [] for v in names}, {v: [] for v in names}
    for _ in range(args.rounds):
        for v, model in models.items():
            infer[v].append(inference_rate(model, device, VARIANTS[v][1], args.warmup, args.iters))
            train[v].append(training_rate(model, device, VARIANTS[v][1], args.warmup, args.iters))
    del models
    gc.collect()
    memory = {v: _memory_in_subprocess(v, args.threads) for v in names}

    ours = [v for v in names if v != "timm"]
    print(
        f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}; "
        f"{args.rounds} alternating rounds × {args.iters} iterations, fastest iteration; ours_cl = channels_last"
    )
    header = f"{'metric':<34}" + "".join(f"{v:>13}" for v in names) + "".join(f"{v + '/timm':>13}" for v in ours)
    print(header)
    rows = [
        (f"inference img/s ({INFER_SIZE}², batch {INFER_BATCH})", {v: max(infer[v]) for v in names}),
        (f"training img/s ({TRAIN_SIZE}², batch {TRAIN_BATCH})", {v: max(train[v]) for v in names}),
    ]
    if None not in memory.values():
        rows.append(("training-step peak memory (MiB)", {v: memory[v] / 2**20 for v in names}))
    for label, values in rows:
        print(
            f"{label:<34}"
            + "".join(f"{values[v]:>13.1f}" for v in names)
            + "".join(f"{values[v] / values['timm']:>13.3f}" for v in ours)
        )
    print("goal: throughput ratios ≥ 1.0, memory ratio ≤ 1.0")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a clone
    main()
