"""Section "bandwidth": each fused activation backward on a big float32 tensor, against the
device's copy bandwidth and against the unfused formula run with stock CuPy kernels.

The bars differ by activation (issue 13, item 10). Every fused backward reads g and the saved
x and/or out and writes dx, so it can approach copy bandwidth: >= 85% is held for all. The
speedup over the unfused expression is held to >= 1.8x only where that expression makes
several passes over memory. ReLU's does not: `g * (out > 0)` moves ~14 bytes per element (the
comparison reads 4 and writes 1, the product reads 5 and writes 4) against the fused kernel's
12, so no kernel can be 1.8x faster; sigmoid's and tanh's are held to copy bandwidth alone too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpugrad.backend.activation_math import ActivationPrimitives
from gpugrad.backend.fused_primitives import ACTIVATION_KERNELS, SUFFIX

from .core import (
    ACTIVATION_PARAMS,
    INFO,
    Context,
    LaunchWatch,
    Report,
    Row,
    free_device_memory,
    guarded,
    verdict,
)
from .timing import summary

COPY_FRACTION_BAR = 0.85  # fused activation backward: at least this share of copy bandwidth
SPEEDUP_BAR = 1.8  # ... and, where SPEEDUP_JUDGED, this many times faster than unfused
# Activations whose unfused backward makes several passes (where, exp, tanh, products):
# judged by speedup too. gelu_tanh is gelu's tanh form, with more passes than gelu.
SPEEDUP_JUDGED = frozenset({"gelu", "gelu_tanh", "silu", "elu", "softplus", "leaky_relu"})
# Activations whose unfused backward is close to one pass: judged by copy bandwidth alone.
COPY_ONLY = frozenset({"relu", "sigmoid", "tanh"})


def copy_bandwidth(ctx: Context, n: int) -> dict[str, Any]:
    """The device's copy bandwidth: xp.copyto of n float32, 2·bytes (read + write) / time."""
    xp = ctx.dev.xp
    src = ctx.dev.random_normal((n,), np.float32)
    dst = xp.empty_like(src)
    s = ctx.settings
    times = ctx.clock.kernel_times(lambda: xp.copyto(dst, src), s.repeats, s.warmup, s.timing_batch)
    stats = summary(times)
    return {**stats, "bytes": 2 * src.nbytes, "bytes_per_s": 2 * src.nbytes / stats["median_s"]}


def bandwidth_row(ctx: Context, name: str, copy_bw: float, g: Any, x: Any) -> Row:
    """Time one activation's fused backward against the unfused twin formula on the device;
    judged by its share of copy bandwidth, and by speedup where SPEEDUP_JUDGED."""
    dev, s = ctx.dev, ctx.settings
    param = ACTIVATION_PARAMS.get(name)
    out = dev.activation_forward(name, x, param)
    dx = dev.xp.empty_like(x)
    kernel = f"activation_backward_{name}_{SUFFIX[np.dtype(x.dtype)]}"

    def fused() -> Any:
        return dev.activation_backward(name, g, x, out, param, into=dx)

    def unfused() -> Any:
        # The parent class's formula run with the device's xp: several stock kernels.
        return ActivationPrimitives.activation_backward(dev, name, g, x, out, param)

    with LaunchWatch(dev, kernel) as watch:
        fused_t = summary(ctx.clock.kernel_times(fused, s.repeats, s.warmup, s.timing_batch))
    unfused_t = summary(ctx.clock.kernel_times(unfused, s.repeats, s.warmup, s.timing_batch))
    arrays = 1 + len(ACTIVATION_KERNELS[name]) + 1  # read g and the saved arrays, write dx
    moved = arrays * x.size * x.dtype.itemsize
    rate = moved / fused_t["median_s"]
    share = rate / copy_bw
    speedup = unfused_t["median_s"] / fused_t["median_s"]
    launched = watch.delta is None or watch.delta >= 1
    speed_judged = name in SPEEDUP_JUDGED
    fast_enough = speedup >= SPEEDUP_BAR or not speed_judged
    ok = share >= COPY_FRACTION_BAR and fast_enough and launched
    result = (
        f"{fused_t['median_s'] * 1e3:.3f} ms, {rate / 1e9:.0f} GB/s = {share:.0%} of copy; "
        f"unfused {unfused_t['median_s'] * 1e3:.3f} ms: {speedup:.2f}x"
        + ("" if launched else "; FUSED KERNEL NOT LAUNCHED")
    )
    detail = {
        "fused": fused_t,
        "unfused": unfused_t,
        "arrays": arrays,
        "bytes": moved,
        "bytes_per_s": rate,
        "copy_fraction": share,
        "speedup": speedup,
        "launches": watch.delta,
        "param": param,
        "speedup_judged": speed_judged,
    }
    bar = f">= {COPY_FRACTION_BAR:.0%} of copy" + (
        f", >= {SPEEDUP_BAR}x unfused" if speed_judged else " (unfused is ~1 pass: speedup shown)"
    )
    status = verdict(ok) if ctx.judge_speed else INFO
    return Row("bandwidth", f"backward {name} f32", result, bar, status, detail)


def section_bandwidth(ctx: Context, report: Report) -> None:
    """Section 3: fused activation backward on a big float32 tensor, against the device's copy
    bandwidth and the unfused expression."""
    n = ctx.settings.bandwidth_n
    copy = copy_bandwidth(ctx, n)
    rate = f"{copy['median_s'] * 1e3:.3f} ms = {copy['bytes_per_s'] / 1e9:.0f} GB/s"
    report.add(Row("bandwidth", f"copy {n:,} float32", f"{rate} (read + write)", detail=copy))
    g = ctx.dev.random_normal((n,), np.float32)
    x = ctx.dev.random_normal((n,), np.float32)
    for name in ACTIVATION_KERNELS:
        with guarded(report, "bandwidth", f"backward {name} f32"):
            report.add(bandwidth_row(ctx, name, copy["bytes_per_s"], g, x))
    del g, x
    free_device_memory(ctx.dev)
