#!/usr/bin/env python3
"""Host time per MLP training step, without the math: where gpugrad's Python goes.

    PYTHONPATH=. python bench/host_overhead.py [--optimizer sgd|adam] [--steps N] [--top K]

On a GPU the 784-512-512-10 MLP step at batch 4096 is ~0.3 ms of GEMMs but ~1.2 ms of host
work (issue 13, item 14): the GPU waits on Python. This measures that host work on the CPU by
running the very step of bench/gpu_check (forward, cross-entropy, zero_grad, backward,
optimizer step; gpu_check_lib.mlp) on a tiny model, 3 layers of width 8 at batch 4, whose
arithmetic costs next to nothing: what is left is the Python, the graph, and NumPy's per-call
cost, which the CuPy backend pays too (plus its kernel launches). Prints the median host time
per step (and PyTorch's for the same tiny step, if installed), then the top entries of a
cProfile of the steps by own time (tottime) and by cumulative time. Also shows which arrays a
step writes keep their address from step to step (parameters, gradients, optimizer state),
and where the optimizer keeps its step count: what capturing the step as a CUDA graph needs.

What to cut, and how a CUDA graph would remove the rest: bench/CUDA-GRAPHS.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for gpu_check_lib

from gpu_check_lib.mlp import gpugrad_mlp, gpugrad_mlp_step, torch_mlp_step, training_step

TINY_SIZES = (8, 8, 8, 4)  # the MLP's shape of three Linear layers, with no work in them
TINY_BATCH = 4


def host_times(step: Callable[[], Any], steps: int, warmup: int) -> list[float]:
    """Seconds of host time per step (the CPU backend: the step's work is all on the host)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def profile(step: Callable[[], Any], steps: int, top: int) -> str:
    """cProfile of `steps` steps: the top entries by own time, then by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"--- top {top} by own time (tottime), {steps} steps ---\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"--- top {top} by cumulative time, {steps} steps ---\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def kept_arrays(optimizer: str, set_to_none: bool, steps: int = 3) -> dict[str, tuple[int, int]]:
    """For each kind of array a step writes: (how many are the same array object after every
    one of `steps` steps, how many there are). A CUDA graph replays fixed addresses, so those
    must all be kept (bench/CUDA-GRAPHS.md). The arrays are held, so no id is reused."""
    model, opt, x, y = gpugrad_mlp("cpu", TINY_BATCH, optimizer, sizes=TINY_SIZES)
    step = training_step(model, opt, x, y, set_to_none=set_to_none)
    step()  # the first step makes the gradients and the optimizer state
    params = list(model.parameters())
    seen: dict[str, list[list[Any]]] = {"parameters": [], "gradients": [], "optimizer state": []}
    for _ in range(steps):
        step()
        seen["parameters"].append([p.data for p in params])
        seen["gradients"].append([p.grad.data for p in params])
        state = [v for p in params for v in opt.state[p].values() if hasattr(v, "shape")]
        seen["optimizer state"].append(state)
    kept = {}
    for kind, per_step in seen.items():
        first = per_step[0]
        same = sum(all(later[i] is a for later in per_step[1:]) for i, a in enumerate(first))
        kept[kind] = (same, len(first))
    return kept


def step_counter_kind(optimizer: str) -> str:
    """Where the optimizer keeps its step count (a graph needs it in device memory)."""
    model, opt, x, y = gpugrad_mlp("cpu", TINY_BATCH, optimizer, sizes=TINY_SIZES)
    training_step(model, opt, x, y)()
    counter = opt.state[next(iter(model.parameters()))].get("step")
    if counter is None:
        return "none"
    return "a host Python int" if isinstance(counter, int) else type(counter).__name__


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/host_overhead.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--steps", type=int, default=500, help="timed steps (default 500)")
    parser.add_argument("--top", type=int, default=25, help="profile entries shown (default 25)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Time and profile the tiny step; print the results."""
    args = parse_args(argv)
    warmup = max(args.steps // 10, 1)
    shape = "-".join(map(str, TINY_SIZES))
    print(f"MLP {shape}, batch {TINY_BATCH}, {args.optimizer}, cpu: host time per step")
    step = gpugrad_mlp_step("cpu", TINY_BATCH, args.optimizer, sizes=TINY_SIZES)
    ours = statistics.median(host_times(step, args.steps, warmup))
    print(f"gpugrad: {ours * 1e6:.0f} µs (median of {args.steps})")
    try:
        import torch
    except ImportError:
        print("torch:   not installed")
    else:
        theirs_step = torch_mlp_step(torch, "cpu", TINY_BATCH, args.optimizer, sizes=TINY_SIZES)
        theirs = statistics.median(host_times(theirs_step, args.steps, warmup))
        print(f"torch:   {theirs * 1e6:.0f} µs (median of {args.steps}): {ours / theirs:.2f}x")
    print()
    print("Arrays at a fixed address, as a CUDA graph needs (the same array after 3 more steps):")
    default, in_place = kept_arrays(args.optimizer, True), kept_arrays(args.optimizer, False)
    rows = [
        ("parameters", default["parameters"]),
        ("gradients, zero_grad()", default["gradients"]),
        ("gradients, zero_grad(set_to_none=False)", in_place["gradients"]),
        ("optimizer state", default["optimizer state"]),
    ]
    for label, (same, total) in rows:
        print(f"  {label}: {same} of {total}")
    print(f"  the optimizer's step count: {step_counter_kind(args.optimizer)}")
    print()
    print(profile(step, args.steps, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
