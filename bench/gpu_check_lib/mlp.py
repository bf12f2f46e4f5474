"""Section "mlp": one training step (forward, cross-entropy, zero_grad, backward, step) of the
784-512-512-10 ReLU MLP, gpugrad against PyTorch eager on the same device, the fused optimizer
launches per step, and the same step on stock CuPy for what the fused kernels gain."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import gpugrad as gg

from .core import (
    FAIL,
    INFO,
    SKIP,
    Context,
    LaunchWatch,
    Report,
    Row,
    free_device_memory,
    guarded,
    launch_counts,
    verdict,
)
from .timing import summary

MLP_SIZES = (784, 512, 512, 10)  # the MLP of bench/workloads.py (MLP_SIZES there)
TORCH_RATIO_BAR = 1.2  # MLP step at the bar batch: gpugrad / torch at most this
OPTIMIZER_LAUNCHES_PER_STEP = 1  # one fused optimizer launch per parameter group and step


def gpugrad_mlp(
    device: str, batch: int, optimizer: str, sizes: tuple[int, ...] = MLP_SIZES
) -> tuple[Any, Any, Any, Any]:
    """(model, optimizer, x, y): the MLP in gpugrad (ReLU between Linear layers of `sizes`),
    SGD with momentum 0.9 or Adam, and one batch drawn on the device."""
    from gpugrad import nn, optim

    gg.manual_seed(0)
    layers: list[Any] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).to(device)
    if optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = optim.Adam(model.parameters(), lr=1e-3)
    x = gg.randn(batch, sizes[0], device=device)
    y = gg.randint(0, sizes[-1], (batch,), device=device)
    return model, opt, x, y


def training_step(model: Any, opt: Any, x: Any, y: Any, set_to_none: bool = True) -> Callable:
    """One training step: forward, cross-entropy, zero_grad, backward, optimizer step."""
    from gpugrad.nn import functional as F

    def step() -> Any:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=set_to_none)
        loss.backward()
        opt.step()
        return loss

    return step


def gpugrad_mlp_step(
    device: str, batch: int, optimizer: str, sizes: tuple[int, ...] = MLP_SIZES
) -> Callable[[], Any]:
    """One training step of the MLP in gpugrad, data drawn on the device.
    (bench/host_overhead.py runs it with tiny `sizes`.)"""
    return training_step(*gpugrad_mlp(device, batch, optimizer, sizes))


def torch_mlp_step(
    torch: Any, device: str, batch: int, optimizer: str, sizes: tuple[int, ...] = MLP_SIZES
) -> Callable[[], Any]:
    """The same step in PyTorch, eager mode, default optimizer implementations."""
    torch.manual_seed(0)
    layers: list[Any] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1]).to(device)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, sizes[0], device=device)
    y = torch.randint(0, sizes[-1], (batch,), device=device)

    def step() -> Any:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step


def load_torch(ctx: Context) -> tuple[Any, str | None, str]:
    """(torch or None, the device to run it on, why it is missing)."""
    try:
        import torch
    except ImportError:
        return None, None, "skipped (no torch)"
    if ctx.dev.device.type == "cpu":
        return torch, "cpu", ""
    if not torch.cuda.is_available():
        return None, None, "skipped (no torch CUDA)"
    return torch, "cuda", ""


def mlp_row(ctx: Context, optimizer: str, batch: int, torch_info: tuple) -> Row:
    """Time gpugrad's and torch's step; the ratio is held to the bar at the bar batch."""
    s = ctx.settings
    torch, torch_device, missing = torch_info
    step = gpugrad_mlp_step(str(ctx.dev.device), batch, optimizer)
    kernel = f"{optimizer}_step_f32"
    with LaunchWatch(ctx.dev, kernel) as watch:
        ours = summary(ctx.clock.wall_times(step, s.mlp_steps, s.mlp_warmup))
    loss = float(step().item())
    detail: dict[str, Any] = {
        "gpugrad": ours,
        "loss_after": loss,
        "optimizer_kernel": kernel,
        "optimizer_launches": watch.delta,
        "steps_counted": s.mlp_steps + s.mlp_warmup,
    }
    check = f"{optimizer} batch {batch}"
    result = f"gpugrad {ours['median_s'] * 1e3:.2f} ms"
    at_bar = batch == s.mlp_bar_batch
    bar = f"gpugrad/torch <= {TORCH_RATIO_BAR}" if at_bar else "(info)"
    finite = math.isfinite(loss)
    if not finite:
        result += f"; LOSS NOT FINITE ({loss})"
    if torch is None:
        return Row(
            "mlp", check, f"{result}; torch {missing}", bar, SKIP if finite else FAIL, detail
        )
    sync = torch.cuda.synchronize if torch_device == "cuda" else (lambda: None)
    theirs_step = torch_mlp_step(torch, torch_device, batch, optimizer)
    theirs = summary(ctx.clock.wall_times(theirs_step, s.mlp_steps, s.mlp_warmup, sync=sync))
    ratio = ours["median_s"] / theirs["median_s"]
    detail.update(torch=theirs, torch_device=torch_device, ratio=ratio)
    result += f", torch {theirs['median_s'] * 1e3:.2f} ms: {ratio:.2f}x"
    if not finite:
        status = FAIL
    elif at_bar and ctx.judge_speed:
        status = verdict(ratio <= TORCH_RATIO_BAR)
    else:
        status = INFO
    return Row("mlp", check, result, bar, status, detail)


def stock_row(ctx: Context, optimizer: str, batch: int, fused: Row) -> Row:
    """The same step on stock CuPy (the backend GPUGRAD_FUSED_KERNELS=0 selects), swapped in
    for the device while it runs: what the fused kernels gain. Shown, not judged."""
    from gpugrad.backend import _backends
    from gpugrad.backend.cupy_backend import StockCupyBackend

    s, device = ctx.settings, ctx.dev.device
    _backends[device] = StockCupyBackend(device.index)
    try:
        step = gpugrad_mlp_step(str(device), batch, optimizer)
        stock = summary(ctx.clock.wall_times(step, s.mlp_steps, s.mlp_warmup))
    finally:
        _backends[device] = ctx.dev
    ours = fused.detail["gpugrad"]["median_s"]
    result = (
        f"stock CuPy {stock['median_s'] * 1e3:.2f} ms, fused {ours * 1e3:.2f} ms: "
        f"{stock['median_s'] / ours:.2f}x faster with the fused kernels"
    )
    detail = {"stock": stock, "fused_median_s": ours}
    return Row("mlp", f"{optimizer} batch {batch} without fused kernels", result, "(info)", INFO,
               detail)  # fmt: skip


def launches_row(ctx: Context, optimizer: str, rows: list[Row]) -> Row:
    """Fused optimizer launches per step over all of one optimizer's timed rows."""
    kernel = f"{optimizer}_step_f32"
    counted = [r.detail for r in rows if r.detail.get("optimizer_launches") is not None]
    check = f"{optimizer} launches/step"
    bar = f"exactly {OPTIMIZER_LAUNCHES_PER_STEP} {kernel} per step (1 param group)"
    if launch_counts(ctx.dev) is None:
        return Row("mlp", check, "n/a (cpu backend launches no kernels)", bar, SKIP)
    if not counted:
        return Row("mlp", check, "no step completed", bar, FAIL)
    launches = sum(d["optimizer_launches"] for d in counted)
    steps = sum(d["steps_counted"] for d in counted)  # warmup and timed steps
    ok = launches == OPTIMIZER_LAUNCHES_PER_STEP * steps
    result = f"{launches / steps:.2f} ({launches} in {steps} steps)"
    return Row("mlp", check, result, bar, verdict(ok), {"launches": launches, "steps": steps})


def section_mlp(ctx: Context, report: Report) -> None:
    """Section 4: one training step of the 784-512-512-10 MLP, gpugrad against PyTorch."""
    torch_info = load_torch(ctx)
    if torch_info[0] is not None:
        report.info["torch_device"] = torch_info[1]
        if torch_info[1] == "cuda":
            report.info["torch_tf32_matmul"] = bool(torch_info[0].backends.cuda.matmul.allow_tf32)
    for optimizer in ("sgd", "adam"):
        rows = []
        for batch in ctx.settings.mlp_batches:
            with guarded(report, "mlp", f"{optimizer} batch {batch}"):
                rows.append(report.add(mlp_row(ctx, optimizer, batch, torch_info)))
        with guarded(report, "mlp", f"{optimizer} launches/step"):
            report.add(launches_row(ctx, optimizer, rows))
        at_bar = [r for r in rows if r.check == f"{optimizer} batch {ctx.settings.mlp_bar_batch}"]
        if at_bar and launch_counts(ctx.dev) is not None:  # a backend with fused kernels
            check = f"{optimizer} batch {ctx.settings.mlp_bar_batch} without fused kernels"
            with guarded(report, "mlp", check):
                report.add(stock_row(ctx, optimizer, ctx.settings.mlp_bar_batch, at_bar[0]))
    free_device_memory(ctx.dev)
