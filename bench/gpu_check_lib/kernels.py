"""Section "kernels": every fused primitive of the device's backend against the cpu backend
(the NumPy twins) on random data: outputs in NaN-filled arrays, the fused kernel's launches
counted, the error in eps (compare.py says how and which tolerance)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from gpugrad.backend import Backend
from gpugrad.backend.fused_primitives import (
    ACTIVATION_KERNELS,
    ACTIVATION_SUFFIX,
    BIAS_ACTIVATION_KERNELS,
    SUFFIX,
)

from .compare import HALF_EPS, KernelCheck, compare, rms, tolerance_eps
from .core import (
    ACTIVATION_PARAMS,
    Context,
    LaunchWatch,
    Report,
    Row,
    free_device_memory,
    guarded,
    launch_counts,
)


def activation_inputs(rng: np.random.Generator, n: int, dtype: Any) -> tuple[np.ndarray, ...]:
    """x and g: mostly N(0, 3²); a quarter spread over ±25 (beyond softplus' threshold of 20,
    where exp(x) is far from 1), and special values at the start."""
    x = rng.standard_normal(n) * 3
    x[: n // 4] = rng.uniform(-25, 25, n // 4)
    specials = [0.0, -0.0, 1e-20, -1e-20, 1.0, -1.0, 20.0, -20.0, 20.5, -0.75, 25.0, -25.0]
    x[: len(specials)] = specials
    g = rng.standard_normal(n)
    return x.astype(dtype), g.astype(dtype)


def activation_row(
    ctx: Context, direction: str, name: str, x: np.ndarray, g: np.ndarray, xd: Any, gd: Any
) -> Row:
    """One activation kernel (forward or backward) against the twin, into a NaN-filled array."""
    param = ACTIVATION_PARAMS.get(name)
    kernel = f"activation_{direction}_{name}_{ACTIVATION_SUFFIX[x.dtype]}"
    half = x.dtype == np.float16
    tol = HALF_EPS if half else tolerance_eps("activation_", name)
    check = KernelCheck(kernel, x.dtype, tol)
    math = np.float32 if half else x.dtype  # the f16 kernels compute in float32
    x_m, g_m = x.astype(math), g.astype(math)
    ref_out = ctx.ref.activation_forward(name, x_m, param).astype(x.dtype)
    into = ctx.dev.xp.full(x.shape, np.nan, dtype=x.dtype)  # NaN: an unwritten element shows
    if direction == "forward":
        ref, floor = ref_out, 1 + np.abs(x.astype(np.float64))
        with LaunchWatch(ctx.dev, kernel) as watch:
            ctx.dev.activation_forward(name, xd, param, into=into)
    else:
        # Both sides get the twin's forward output, so only the backward is compared.
        ref = ctx.ref.activation_backward(name, g_m, x_m, ref_out.astype(math), param)
        ref = ref.astype(x.dtype)
        floor = np.abs(g.astype(np.float64)) * (1 + np.abs(x.astype(np.float64)))
        out_d = ctx.to_dev(ref_out)
        with LaunchWatch(ctx.dev, kernel) as watch:
            ctx.dev.activation_backward(name, gd, xd, out_d, param, into=into)
    case = "" if param is None else f"param={param}"
    check.add(case, compare(ctx.dev.to_numpy(into), ref, floor), watch)
    return check.row("kernels")


def check_activations(ctx: Context, report: Report, dtype: Any) -> None:
    """activation_forward / activation_backward of every fused activation, one row each."""
    x, g = activation_inputs(np.random.default_rng(1), ctx.settings.kernel_n, dtype)
    if np.dtype(dtype) == np.float16 and launch_counts(ctx.dev) is not None:
        # Every binary16 value once (subnormals, ±0, ±inf, NaN payloads): checks the kernels'
        # own half <-> float conversions on the device, exhaustively. Only against real kernels:
        # the cpu backend's float16 twin rounds every step and overflows where they do not.
        every_half = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
        x = np.concatenate([x, every_half])
        g = np.concatenate([g, np.random.default_rng(2).standard_normal(1 << 16).astype(dtype)])
    xd, gd = ctx.to_dev(x), ctx.to_dev(g)
    for name in ACTIVATION_KERNELS:
        for direction in ("forward", "backward"):
            kernel = f"activation_{direction}_{name}_{ACTIVATION_SUFFIX[np.dtype(dtype)]}"
            # The inputs hold inf and NaN on purpose: no warnings from the twin about them.
            with guarded(report, "kernels", kernel), np.errstate(all="ignore"):
                report.add(activation_row(ctx, direction, name, x, g, xd, gd))


def poisoned_empty(backend: Backend, shape: tuple[int, ...], dtype: Any) -> None:
    """Leave a NaN-filled block of this size free in the device's memory pool, so that an
    output the primitive allocates itself (no `into=`) starts as NaN and an unwritten element
    shows. The pool is emptied first, so that block is the only free one that fits exactly;
    still best effort: the pool decides which block it hands out."""
    free_device_memory(backend)
    poison = backend.xp.full(shape, np.nan, dtype=dtype)
    del poison


def check_bias_activations(ctx: Context, report: Report, dtype: Any) -> None:
    """bias_activation_forward (activation of z + bias, bias along the last axis) of every
    activation with that fused kernel, over a wide and a ragged shape."""
    rng = np.random.default_rng(4)
    sfx = ACTIVATION_SUFFIX[np.dtype(dtype)]
    half = np.dtype(dtype) == np.float16
    math = np.float32 if half else dtype  # the f16 kernels add and compute in float32
    shapes = ((max(ctx.settings.kernel_n // 500, 1), 500), (3, 7))
    for name in BIAS_ACTIVATION_KERNELS:
        kernel = f"bias_activation_forward_{name}_{sfx}"
        with guarded(report, "kernels", kernel):
            tol = HALF_EPS if half else tolerance_eps(kernel, name)
            check = KernelCheck(kernel, np.dtype(dtype), tol)
            for shape in shapes:
                z = (rng.standard_normal(shape) * 3).astype(dtype)
                bias = rng.standard_normal(shape[1]).astype(dtype)
                pre = z.astype(math) + bias.astype(math)  # what the activation sees: the floor
                # The twin adds into z in place, so it gets a copy.
                ref = ctx.ref.bias_activation_forward(name, z.astype(math), bias.astype(math))
                ref = ref.astype(dtype)
                zd, bd = ctx.to_dev(z), ctx.to_dev(bias)
                poisoned_empty(ctx.dev, shape, dtype)
                with LaunchWatch(ctx.dev, kernel) as watch:
                    out = ctx.dev.bias_activation_forward(name, zd, bd)
                floor = 1 + np.abs(pre.astype(np.float64))
                check.add(
                    f"{shape[0]}x{shape[1]}", compare(ctx.dev.to_numpy(out), ref, floor), watch
                )
            report.add(check.row("kernels"))


def loss_inputs(rng: np.random.Generator, rows: int, classes: int, dtype: Any) -> tuple:
    """Logits (one row shifted by +500, which only a stable softmax survives), labels with
    about 10% ignore_index (-100) rows, and a per-row gradient."""
    logits = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    logits[0] += 500
    labels = rng.integers(0, classes, rows).astype(np.int64)
    labels[rng.random(rows) < 0.1] = -100
    labels[-1] = -100  # at least one ignored row in every case
    g = rng.standard_normal(rows).astype(dtype)
    return logits, labels, g


def check_losses(ctx: Context, report: Report, dtype: Any) -> None:
    """softmax_cross_entropy_forward / _backward over several shapes and label smoothings."""
    sfx, tol = SUFFIX[np.dtype(dtype)], tolerance_eps("softmax_cross_entropy")
    fwd = KernelCheck(f"softmax_cross_entropy_forward_{sfx}", np.dtype(dtype), tol)
    bwd = KernelCheck(f"softmax_cross_entropy_backward_{sfx}", np.dtype(dtype), tol)
    rng = np.random.default_rng(2)
    for (rows, classes), smoothing in itertools.product(ctx.settings.loss_shapes, (0.0, 0.1)):
        case = f"{rows}x{classes} smoothing={smoothing}"
        logits, labels, g = loss_inputs(rng, rows, classes, dtype)
        ld, yd, gd = ctx.to_dev(logits), ctx.to_dev(labels), ctx.to_dev(g)
        ref = ctx.ref.softmax_cross_entropy_forward(logits, labels, -100, smoothing)
        into = ctx.dev.xp.full((rows,), np.nan, dtype=dtype)
        with LaunchWatch(ctx.dev, fwd.kernel) as watch:
            ctx.dev.softmax_cross_entropy_forward(ld, yd, -100, smoothing, into=into)
        fwd.add(case, compare(ctx.dev.to_numpy(into), ref, 1.0), watch)
        ref = ctx.ref.softmax_cross_entropy_backward(g, logits, labels, -100, smoothing)
        into = ctx.dev.xp.full((rows, classes), np.nan, dtype=dtype)
        with LaunchWatch(ctx.dev, bwd.kernel) as watch:
            ctx.dev.softmax_cross_entropy_backward(gd, ld, yd, -100, smoothing, into=into)
        floor = np.abs(g.astype(np.float64))[:, None]
        bwd.add(case, compare(ctx.dev.to_numpy(into), ref, floor), watch)
    report.add(fwd.row("kernels"))
    report.add(bwd.row("kernels"))


# Optimizer variants: (label, options) per primitive. Learning rates are large enough that the
# update, not the starting value, dominates what the parameter comparison sees.
OPTIMIZER_CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "sgd_step": [
        ("plain", {"lr": 0.1}),
        ("momentum", {"lr": 0.1, "momentum": 0.9}),
        ("nesterov+wd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
        ("dampening+wd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-2}),
    ],
    "adam_step": [
        ("adam", {"lr": 1e-2}),
        ("amsgrad+wd", {"lr": 1e-2, "amsgrad": True, "weight_decay": 1e-2}),
        ("adamw", {"lr": 1e-2, "weight_decay": 1e-2, "decoupled": True}),
    ],
    "rmsprop_step": [
        ("plain", {"lr": 1e-2}),
        (
            "centered+momentum+wd",
            {"lr": 1e-2, "centered": True, "momentum": 0.9, "weight_decay": 1e-2},
        ),
    ],
    "adagrad_step": [
        ("plain", {"lr": 1e-2}),
        ("lr_decay+wd", {"lr": 1e-2, "lr_decay": 1e-3, "weight_decay": 1e-2}),
    ],
}


def optimizer_states(stem: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The state arrays a primitive reads and writes with these options."""
    if stem == "sgd_step":
        return ("momentum_buffer",) if options.get("momentum") else ()
    if stem == "adam_step":
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if options.get("amsgrad") else ())
    if stem == "rmsprop_step":
        return (
            ("square_avg",)
            + (("grad_avg",) if options.get("centered") else ())
            + (("momentum_buffer",) if options.get("momentum") else ())
        )
    return ("state_sum",)


def optimizer_step(
    backend: Backend, stem: str, arrays: dict[str, Any], grad: Any, step: int, options: dict
) -> None:
    """One update through the primitive `stem`, with the arrays by name (absent ones None)."""
    a = arrays.get
    if stem == "sgd_step":
        backend.sgd_step(a("param"), grad, a("momentum_buffer"), first=step == 1, **options)
    elif stem == "adam_step":
        backend.adam_step(
            a("param"), grad, a("exp_avg"), a("exp_avg_sq"), a("max_exp_avg_sq"), step, **options
        )
    elif stem == "rmsprop_step":
        backend.rmsprop_step(
            a("param"), grad, a("square_avg"), a("grad_avg"), a("momentum_buffer"), **options
        )
    else:
        backend.adagrad_step(a("param"), grad, a("state_sum"), step, **options)


def optimizer_grads(rng: np.random.Generator, n: int, steps: int, dtype: Any) -> list:
    """A gradient per step: magnitudes spread over 1e-4..10 (so sqrt(v) meets eps) and 1%
    exact zeros."""
    grads = []
    for _ in range(steps):
        g = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 1, n)
        g[rng.random(n) < 0.01] = 0.0
        grads.append(g.astype(dtype))
    return grads


def check_optimizer(ctx: Context, report: Report, stem: str, dtype: Any) -> None:
    """Every variant of one optimizer primitive for a few steps on a flat buffer, the device's
    parameter and states against the twin's on host copies."""
    kernel = f"{stem}_{SUFFIX[np.dtype(dtype)]}"
    check = KernelCheck(kernel, np.dtype(dtype), tolerance_eps(stem), in_place=True)
    n, steps = ctx.settings.optim_n, ctx.settings.optim_steps
    rng = np.random.default_rng(3)
    for label, options in OPTIMIZER_CASES[stem]:
        names = ("param", *optimizer_states(stem, options))
        host = {k: np.zeros(n, dtype=dtype) for k in names}
        host["param"] = rng.standard_normal(n).astype(dtype)
        dev = {k: ctx.to_dev(v) for k, v in host.items()}
        grads = optimizer_grads(rng, n, steps, dtype)
        with LaunchWatch(ctx.dev, kernel) as watch:
            for step, grad in enumerate(grads, start=1):
                optimizer_step(ctx.dev, stem, dev, ctx.to_dev(grad), step, options)
        for step, grad in enumerate(grads, start=1):
            optimizer_step(ctx.ref, stem, host, grad, step, options)
        for k in names:
            diff = compare(ctx.dev.to_numpy(dev[k]), host[k], rms(host[k]))
            check.add(label, diff, watch, what=k)
    report.add(check.row("kernels"))


def section_kernels(ctx: Context, report: Report) -> None:
    """Section 2: every fused primitive against its NumPy twin, float32 and float64; the
    activation kernels also in float16 (against the float32 twin, rounded)."""
    for dtype in (np.float16,):  # only the activation kernels come in float16
        with guarded(report, "kernels", f"activations {np.dtype(dtype)}"):
            check_activations(ctx, report, dtype)
        with guarded(report, "kernels", f"bias activations {np.dtype(dtype)}"):
            check_bias_activations(ctx, report, dtype)
    for dtype in (np.float32, np.float64):
        with guarded(report, "kernels", f"activations {np.dtype(dtype)}"):
            check_activations(ctx, report, dtype)
        with guarded(report, "kernels", f"bias activations {np.dtype(dtype)}"):
            check_bias_activations(ctx, report, dtype)
        with guarded(report, "kernels", f"softmax_cross_entropy {np.dtype(dtype)}"):
            check_losses(ctx, report, dtype)
        for stem in OPTIMIZER_CASES:
            with guarded(report, "kernels", f"{stem}_{SUFFIX[np.dtype(dtype)]}"):
                check_optimizer(ctx, report, stem, dtype)
