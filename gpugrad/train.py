"""Trainer: the training loop, written once for every model, device and optimizer.

Each step is the backpropagation recipe: forward, loss, zero the gradients, backward, and the
optimizer's update (w ← w − lr·grad for plain SGD). Losses and metrics are summed on the
device and read back once per epoch, so a GPU is never made to wait inside an epoch.
Checkpoints hold everything needed to continue (model, optimizer, scheduler, random state,
history) and are written atomically. With `diagnostics=True` the history also records, per
layer, gradient norms, update/weight ratios and dead-ReLU fractions (see `gpugrad.diagnostics`).
In a job of several processes (an initialised `gpugrad.distributed` process group) the same
Trainer trains data-parallel: see `gpugrad.train_parallel`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from numbers import Integral
from pathlib import Path
from typing import Any

from . import autograd
from .backend import device as parse_device
from .backend import loaded_backends
from .diagnostics import DEAD_RELU, GRAD_NORM, UPDATE_RATIO, EpochDiagnostics, is_diagnostic
from .errors import ArgumentError, CheckpointError, GpugradError, SaveError
from .optim.lr_scheduler import ReduceLROnPlateau
from .serialization import load, save
from .tensor import Tensor
from .train_parallel import parallel_run, real_samples

Metric = Callable[[Tensor, Tensor], Tensor]


def accuracy_count(output: Tensor, target: Tensor) -> Tensor:
    """How many rows of `output` have their largest score at the `target` class."""
    if target.ndim == output.ndim:  # class probabilities: compare with the most likely class
        target = target.argmax(axis=-1)
    return (output.argmax(axis=-1) == target).sum()


def absolute_error_sum(output: Tensor, target: Tensor) -> Tensor:
    """Sum of |output − target| (for regression)."""
    return (output.reshape(target.shape) - target).abs().sum()


# Each metric returns a per-batch *sum* on the device; the epoch's value is sum / samples.
METRICS: dict[str, Metric] = {"accuracy": accuracy_count, "mae": absolute_error_sum}
# What early stopping minimises by default (everything else is maximised).
LOWER_IS_BETTER = {"loss", "mae"}


def _progress(total: int, description: str, enabled: bool) -> Any:
    """A tqdm bar over samples, or None when bars are off (not a terminal, or quiet)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="sample", leave=False, dynamic_ncols=True)


class Trainer:
    """Fit a model with a loss function and an optimizer; evaluate; checkpoint; resume.

    `metrics` names entries of `METRICS` ("accuracy", "mae") or maps names to functions
    `(output, target) -> Tensor` returning a per-batch sum. `progress` shows a tqdm bar per
    epoch (default: only when stderr is a terminal); `log` receives one line per epoch.
    `diagnostics=True` adds to the history, per training epoch, each parameter's mean gradient
    norm (`grad_norm/<param>`) and update/weight ratio (`update_ratio/<param>`), and each
    `nn.ReLU`'s fraction of units that never fired (`dead_relu/<module>`); they are measured
    on the device and read back with the epoch's metrics, and not printed in the epoch line.
    `metadata` (plain data: numbers, strings, lists, dicts) is saved in every checkpoint, so
    that whoever resumes can check it (the `gpugrad` command records its options there).
    A `ReduceLROnPlateau` scheduler is stepped once per epoch with the monitored value.

    In a job of several processes (after `gpugrad.distributed.init_process_group()`), the
    Trainer wraps the model in DistributedDataParallel (`self.parallel_model`; `self.model`
    stays the plain module, so checkpoints fit any number of processes), gives each rank its
    shard of every DataLoader (the loader's batch_size stays the global batch), sums losses
    and metrics over the ranks once per epoch (exact: padding is not counted), and leaves
    printing, progress bars, plots and the checkpoints `fit` writes to rank 0. Every rank
    sees the same history, so early stopping decides alike on all of them. Diagnostics are
    averaged over the ranks: gradient norms and update ratios are those of the averaged
    gradient, while a dead-ReLU fraction is the mean of each rank's own (a unit counts as
    dead on a rank if it never fired on that rank's shard).
    """

    def __init__(
        self,
        model: Any,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        optimizer: Any,
        device: str = "cpu",
        scheduler: Any = None,
        metrics: Sequence[str] | dict[str, Metric] = ("accuracy",),
        progress: bool | None = None,
        log: Callable[[str], None] | None = print,
        scheduler_interval: str = "epoch",
        diagnostics: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if scheduler_interval not in ("epoch", "step"):
            raise ArgumentError(
                f"scheduler_interval is 'epoch' or 'step', got {scheduler_interval!r}"
            )
        if isinstance(scheduler, ReduceLROnPlateau) and scheduler_interval == "step":
            raise ArgumentError(
                "ReduceLROnPlateau steps with a metric measured once per epoch: use "
                "scheduler_interval='epoch', not 'step'"
            )
        for what, fn in (("model", model), ("loss_fn", loss_fn)):
            if not callable(fn):
                raise ArgumentError(f"{what} must be callable, got {type(fn).__name__} {fn!r}")
        if log is not None and not callable(log):
            raise ArgumentError(f"log must be callable or None, got {type(log).__name__}")
        if not all(callable(getattr(optimizer, m, None)) for m in ("step", "zero_grad")):
            raise ArgumentError(
                f"optimizer must be an optimizer (with step() and zero_grad()), got "
                f"{type(optimizer).__name__} {_short(optimizer)}"
            )
        self.model = model.to(device)
        self._parallel = parallel_run(self.model)  # None in a single process
        if self._parallel is not None:
            self.model = self._parallel.ddp.module
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.device = parse_device(device)
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        if isinstance(metrics, dict):
            self.metrics = dict(metrics)
            bad = [name for name, fn in self.metrics.items() if not callable(fn)]
            if bad:
                raise ArgumentError(f"metrics {bad} are not callable")
        else:
            if isinstance(metrics, str):
                metrics = (metrics,)
            unknown = [m for m in metrics if m not in METRICS]
            if unknown:
                raise ArgumentError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
            self.metrics = {name: METRICS[name] for name in metrics}
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.log = log
        if self._parallel is not None and not self._parallel.is_main:
            self.progress, self.log = False, None  # one set of output lines: rank 0's
        self.diagnostics = diagnostics
        if metadata is not None and not isinstance(metadata, dict):
            raise ArgumentError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        if metadata is not None and not _plain(metadata):
            raise ArgumentError(
                f"metadata must be plain data (numbers, strings, lists, dicts with str keys), "
                f"got {_short(metadata)}"
            )
        self.metadata = metadata
        self.epoch = 0  # epochs completed
        self.history: dict[str, list[float]] = {}
        self.best: float | None = None  # best monitored value so far
        self.stale_epochs = 0  # epochs since it last improved
        self.stopped = False  # early stopping ended the run
        self.checkpoint_epoch: int | None = None  # the epoch the last checkpoint written holds

    @property
    def parallel_model(self) -> Any:
        """What the steps run: the DistributedDataParallel wrapper in a job of several
        processes, else the model itself."""
        return self.model if self._parallel is None else self._parallel.ddp

    @property
    def is_main_process(self) -> bool:
        """Whether this process prints, plots and writes checkpoints (rank 0, or the only
        process)."""
        return self._parallel is None or self._parallel.is_main

    def _shard(self, loader: Any, what: str) -> Any:
        """This rank's share of `loader` (the loader itself in a single process)."""
        return loader if self._parallel is None else self._parallel.shard(loader, what)

    # --- one pass over a loader ----------------------------------------------------------
    def _batches(self, loader: Iterable[Any]) -> Iterable[tuple[Tensor, Tensor]]:
        for batch in loader:
            inputs, target = batch[0], batch[1]
            if inputs.device != self.device:
                inputs = inputs.to(self.device)
            if target.device != self.device:
                target = target.to(self.device)
            yield inputs, target

    def _run_epoch(self, loader: Any, train: bool, description: str) -> dict[str, float]:
        model = self.parallel_model
        model.train(train)
        sums: dict[str, Tensor | float] = {name: 0.0 for name in ("loss", *self.metrics)}
        samples = batches = 0
        # Samples past `real` are a DistributedSampler's wrap-around padding: trained on (every
        # rank must step alike) but not counted, so metrics summed over ranks are exact.
        real = real_samples(loader)
        served = 0
        # Diagnostics off: no hooks, no object, one `is None` test per step.
        diag = EpochDiagnostics(self.model, self.device) if train and self.diagnostics else None
        bar = _progress(_length(loader), description, self.progress)
        start = time.perf_counter()
        # The diagnostics' ReLU hooks live only while this epoch runs, even if it fails.
        with autograd.set_grad_enabled(train), diag if diag is not None else nullcontext():
            for inputs, target in self._batches(loader):
                output = model(inputs)
                loss = self.loss_fn(output, target)
                if not isinstance(loss, Tensor) or math.prod(loss.shape) != 1:
                    raise ArgumentError(_not_a_loss(loss))
                if train:
                    self.optimizer.zero_grad()
                    loss.backward()
                    if diag is not None:
                        diag.after_backward()
                    self.optimizer.step()
                    if diag is not None:
                        diag.after_step()
                    if self.scheduler is not None and self.scheduler_interval == "step":
                        self.scheduler.step()
                n = len(target)
                batches += 1
                served += n
                kept = n if real is None else max(0, min(n, real - (served - n)))
                samples += kept
                with autograd.no_grad():  # running sums stay on the device: no sync here
                    if kept < n:  # the padded tail of a shard: count only the real rows
                        output, target = output[:kept], target[:kept]
                        loss = self.loss_fn(output, target) if kept else None
                    if kept:
                        sums["loss"] = sums["loss"] + loss.detach() * kept
                        for name, metric in self.metrics.items():
                            sums[name] = sums[name] + metric(output.detach(), target)
                if bar is not None:
                    bar.update(n)
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        # The one host sync of the epoch.
        totals = [_to_float(total) for total in sums.values()]
        diagnostics = diag.read() if diag is not None else {}  # one read, however many steps
        if self._parallel is not None:  # the one exchange of the epoch, the same on all ranks
            world = self._parallel.world_size
            counts = [batches, samples, elapsed, *totals, *diagnostics.values()]
            counts = self._parallel.sum_over_ranks(counts, self.device)
            batches, samples, elapsed = int(counts[0]), int(counts[1]), counts[2] / world
            totals = counts[3 : 3 + len(totals)]
            diagnostics = dict(zip(diagnostics, (v / world for v in counts[3 + len(totals) :])))
        if batches == 0:
            raise ArgumentError(f"the {description} loader yielded no batches")
        if samples == 0:
            raise ArgumentError(f"the {description} loader yielded only empty batches")
        result = {name: total / samples for name, total in zip(sums, totals)}
        result.update(diagnostics)
        result["samples_per_s"] = samples / elapsed if elapsed > 0 else math.inf
        return result

    def evaluate(self, loader: Any) -> dict[str, float]:
        """Loss and metrics over a loader, without gradients, in eval mode."""
        _check_loader("loader", loader)
        loader = self._shard(loader, "the evaluation loader")
        result = self._run_epoch(loader, train=False, description="eval")
        result.pop("samples_per_s")
        return result

    # --- the loop -------------------------------------------------------------------------
    def fit(
        self,
        train_loader: Any,
        epochs: int,
        val_loader: Any = None,
        checkpoint: str | Path | None = None,
        early_stopping: int | None = None,
        monitor: str | None = None,
        mode: str | None = None,
        plot: str | Path | None = None,
    ) -> dict[str, list[float]]:
        """Train until `epochs` epochs are done (counting those before a `resume`).

        Writes a checkpoint after every epoch when `checkpoint` is a path. With
        `early_stopping=N`, stops after N epochs without improvement of `monitor`
        (default: "val_loss", or "loss" without a validation loader), which `mode` "min" or
        "max" says how to judge (default: min for losses and errors, max for the rest).
        Returns the history: one list per metric.
        """
        monitor, mode = self._check_fit(
            train_loader, epochs, val_loader, early_stopping, monitor, mode
        )
        if self.stopped:
            return self.history  # an early-stopped run (perhaps resumed) stays stopped
        train_loader = self._shard(train_loader, "train_loader")
        if self._parallel is not None:
            self._parallel.check_same_length(train_loader, "train_loader")
        while self.epoch < epochs:
            epoch = self.epoch + 1
            if hasattr(train_loader, "set_epoch"):
                # Loader epochs count from 0: our epoch `epoch` (counted from 1) is its epoch
                # `epoch - 1`, the order an uninterrupted loader would serve now.
                train_loader.set_epoch(self.epoch)
            row = self._run_epoch(train_loader, train=True, description=f"epoch {epoch}/{epochs}")
            if val_loader is not None:
                row.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            if isinstance(self.scheduler, ReduceLROnPlateau):
                if monitor not in row:
                    raise ArgumentError(
                        f"ReduceLROnPlateau steps with {monitor!r}, which this epoch did not "
                        f"measure: it measured {sorted(row)}"
                    )
                self.scheduler.step(row[monitor])
            elif self.scheduler is not None and self.scheduler_interval == "epoch":
                self.scheduler.step()
            self.epoch = epoch
            for key, value in row.items():
                self.history.setdefault(key, []).append(value)
            improved = self._track(monitor, row, mode)
            if self.log is not None:
                self.log(_epoch_line(epoch, epochs, row))
            patience_ran_out = early_stopping is not None and self.stale_epochs >= early_stopping
            self.stopped = patience_ran_out and not improved
            if checkpoint is not None:
                self._write_checkpoint(checkpoint)
            if self.stopped:
                if self.log is not None:
                    self.log(
                        f"early stopping: {monitor} did not improve for {early_stopping} epochs"
                    )
                break
        if plot is not None and self.is_main_process:
            plot_history(self.history, plot)
        return self.history

    def _write_checkpoint(self, path: str | Path) -> None:
        """fit's checkpoint: written by rank 0 alone; a failed write raises on every rank."""
        if self._parallel is None:
            self.save_checkpoint(path)
            return
        error = None
        if self._parallel.is_main:
            try:
                save(self.state_dict(), path)
            except SaveError as exc:
                error = exc
        self._parallel.agree(error)
        self.checkpoint_epoch = self.epoch

    def _check_fit(
        self,
        train_loader: Any,
        epochs: Any,
        val_loader: Any,
        early_stopping: Any,
        monitor: str | None,
        mode: str | None,
    ) -> tuple[str, str]:
        """Check fit's arguments before any training; returns (monitor, mode) filled in."""
        if isinstance(epochs, bool) or not isinstance(epochs, Integral) or epochs < 0:
            raise ArgumentError(f"epochs must be a non-negative int, got {epochs!r}")
        if early_stopping is not None and (
            isinstance(early_stopping, bool) or not isinstance(early_stopping, Integral)
            or early_stopping < 1
        ):  # fmt: skip
            raise ArgumentError(
                f"early_stopping must be None or a positive int, got {early_stopping!r}"
            )
        for what, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
            if loader is None and what == "val_loader":
                continue
            _check_loader(what, loader)
        monitor = monitor or ("val_loss" if val_loader is not None else "loss")
        if not isinstance(monitor, str):
            raise ArgumentError(f"monitor must be a str, got {monitor!r}")
        if mode is None:
            mode = "min" if monitor.removeprefix("val_") in LOWER_IS_BETTER else "max"
        if mode not in ("min", "max"):
            raise ArgumentError(f"mode is 'min' or 'max', got {mode!r}")
        if monitor.startswith("val_"):
            if val_loader is None:
                raise ArgumentError(f"cannot monitor {monitor!r} without a val_loader")
        elif monitor not in ("loss", *self.metrics) and not is_diagnostic(monitor):
            raise ArgumentError(
                f"cannot monitor {monitor!r}: training measures {['loss', *self.metrics]}"
            )
        return monitor, mode

    def _track(self, monitor: str, row: dict[str, float], mode: str) -> bool:
        if monitor not in row:
            raise ArgumentError(f"cannot monitor {monitor!r}: this epoch measured {sorted(row)}")
        value = row[monitor]
        if self.best is None or (value < self.best if mode == "min" else value > self.best):
            self.best, self.stale_epochs = value, 0
            return True
        self.stale_epochs += 1
        return False

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly where it stopped."""
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "history": self.history,
            "best": self.best,
            "stale_epochs": self.stale_epochs,
            "stopped": self.stopped,
            "rng": {str(b.device): b.rng_state() for b in loaded_backends()},
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.metadata is not None:
            state["metadata"] = self.metadata
        return state

    def save_checkpoint(self, path: str | Path) -> None:
        """Write a checkpoint atomically (the previous file survives a crash mid-write).
        In a job of several processes it writes on whichever rank calls it (`fit` calls it
        on rank 0 only; the ranks' weights are the same)."""
        save(self.state_dict(), path)
        self.checkpoint_epoch = self.epoch

    def resume(self, path: str | Path) -> int:
        """Restore a checkpoint written by `save_checkpoint`; returns the epochs completed.
        All or nothing, as `load_state_dict`. In a job of several processes every rank calls
        it with the same file; if it fails on any rank it raises on all of them."""
        error: GpugradError | None = None
        try:
            self.load_state_dict(load(path, device=self.device), source=str(path))
        except GpugradError as exc:
            if self._parallel is None:
                raise
            error = exc
        if self._parallel is not None:
            self._parallel.agree(error)
            self._parallel.agree(_same_epoch(self.epoch, path))
        self.checkpoint_epoch = self.epoch
        return self.epoch

    def load_state_dict(self, state: dict[str, Any], source: str = "the state") -> None:
        """Restore what `state_dict` returned. All or nothing: model, optimizer, scheduler,
        history and random state are all checked before any is changed, so a checkpoint
        that does not fit raises CheckpointError (naming `source`) and changes nothing."""
        required = {"model", "optimizer", "epoch", "history"}
        if not isinstance(state, dict) or not required <= set(state):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(
                f"{source} is not a Trainer checkpoint (needs keys {sorted(required)}, has {got})"
            )
        progress = _checked_progress(state, source)
        rng = _checked_rng(state.get("rng", {}), source)
        parts = [(self.model, state["model"]), (self.optimizer, state["optimizer"])]
        if self.scheduler is not None:
            if "scheduler" not in state:
                raise CheckpointError(
                    f"{source} has no scheduler state, but this Trainer has a scheduler"
                )
            parts.append((self.scheduler, state["scheduler"]))
        for part, part_state in parts:
            if hasattr(part, "validate_state_dict"):
                try:
                    part.validate_state_dict(part_state)
                except CheckpointError as exc:
                    raise CheckpointError(f"{source}: {exc}") from None
        # Everything fits: apply.
        for part, part_state in parts:
            part.load_state_dict(part_state)
        for name, value in progress.items():
            setattr(self, name, value)
        for backend, saved in rng:
            backend.set_rng_state(saved)


def _same_epoch(epoch: int, path: str | Path) -> CheckpointError | None:
    """An error unless every rank restored the same epoch (each read its own copy of `path`:
    on several machines it must be the same file)."""
    from . import distributed

    epochs = distributed.all_gather_object(epoch)
    if len(set(epochs)) == 1:
        return None
    return CheckpointError(
        f"the ranks resumed from {path} at different epochs {epochs}: every rank must read "
        "the same checkpoint (on several machines, keep it in a shared folder)"
    )


def _check_loader(what: str, loader: Any) -> None:
    """A loader to run over: iterable, and not known to be empty."""
    if not hasattr(loader, "__iter__"):
        raise ArgumentError(f"{what} must be iterable, got {type(loader).__name__}")
    if hasattr(loader, "__len__") and len(loader) == 0:
        raise ArgumentError(f"{what} {_short(loader)} is empty: it has no batches")


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether `value` is data a checkpoint can hold: None, bools, numbers, strings, and
    lists/tuples/dicts (with str keys) of them, not too deeply nested."""
    if depth > 50:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _not_a_loss(loss: Any) -> str:
    if isinstance(loss, Tensor):
        return f"loss_fn returned a Tensor of shape {loss.shape}; it must return one number"
    return (
        f"loss_fn returned {type(loss).__name__} {_short(loss)}; it must return a scalar Tensor "
        "(keep the loss in gpugrad ops so it can be differentiated)"
    )


def _checked_progress(state: dict[str, Any], source: str) -> dict[str, Any]:
    """The Trainer attributes a checkpoint restores, each checked for its kind."""

    def bad(key: str, wanted: str) -> CheckpointError:
        return CheckpointError(f"{source}: {key!r} is {_short(state.get(key))}, not {wanted}")

    def count(key: str) -> int:
        value = state.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(key, "a non-negative int")
        return value

    history = state["history"]
    if not isinstance(history, dict) or not all(
        isinstance(k, str)
        and isinstance(v, list)
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        for k, v in history.items()
    ):
        raise bad("history", "a dict of lists of numbers")
    best = state.get("best")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        raise bad("best", "a number or None")
    stopped = state.get("stopped", False)
    if not isinstance(stopped, bool):
        raise bad("stopped", "a bool")
    return {
        "epoch": count("epoch"),
        "history": {k: list(v) for k, v in history.items()},
        "best": best,
        "stale_epochs": count("stale_epochs"),
        "stopped": stopped,
    }


def _checked_rng(saved: Any, source: str) -> list[tuple[Any, Any]]:
    """(backend, state) for each loaded backend the checkpoint has a random state for. Each
    state is tried on its generator (then the current one is put back) so that a bad one
    fails here, before anything is restored."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{source}: 'rng' is {type(saved).__name__}, not a dict")
    checked = []
    for backend in loaded_backends():
        state = saved.get(str(backend.device))
        if state is None:
            continue
        current = backend.rng_state()
        try:
            backend.set_rng_state(state)
        except Exception as exc:  # each generator rejects a bad state its own way
            raise CheckpointError(
                f"{source}: the random state for {backend.device} does not fit its generator "
                f"({type(exc).__name__}: {exc})"
            ) from None
        finally:
            backend.set_rng_state(current)
        checked.append((backend, state))
    return checked


def _to_float(value: Tensor | float) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def _length(loader: Any) -> int:
    """How many samples one pass over `loader` serves (what its sampler yields, less a last
    batch that drop_last leaves out), for the progress bar; 0 when it cannot tell."""
    sampler = getattr(loader, "sampler", None)
    dataset = getattr(loader, "dataset", None)
    try:
        if sampler is not None:
            count = len(sampler)
            batch_size = getattr(loader, "batch_size", None)
            if getattr(loader, "drop_last", False) and batch_size:
                count -= count % batch_size
            return count
        return len(dataset) if dataset is not None else len(loader)
    except TypeError:
        return 0


def _epoch_line(epoch: int, epochs: int, row: dict[str, float]) -> str:
    parts = [f"epoch {epoch:>{len(str(epochs))}}/{epochs}"]
    for key, value in row.items():
        if key == "samples_per_s" or is_diagnostic(key):
            continue
        shown = f"{value:.2%}" if key.endswith("accuracy") else f"{value:.4f}"
        parts.append(f"{key} {shown}")
    parts.append(f"{row['samples_per_s']:,.0f} samples/s")
    return "  ".join(parts)


# Diagnostic panels: (key prefix, title, log scale)
_DIAGNOSTIC_PANELS = (
    (GRAD_NORM, "gradient norm per layer", True),
    (UPDATE_RATIO, "update / weight ratio per layer", True),
    (DEAD_RELU, "dead ReLU fraction", False),
)


def plot_history(history: dict[str, list[float]], path: str | Path) -> Path:
    """Draw the training curves (loss, and each metric, with validation) to a PNG file, and,
    when the history has diagnostics, one panel each of gradient norms and update/weight
    ratios per layer (log scale) and of dead-ReLU fractions."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('plotting needs matplotlib: pip install "gpugrad[plot]"') from exc
    names = [
        k
        for k in history
        if not k.startswith("val_") and k != "samples_per_s" and not is_diagnostic(k)
    ]
    panels = [
        (p, t, log) for p, t, log in _DIAGNOSTIC_PANELS if any(k.startswith(p) for k in history)
    ]
    count = len(names) + len(panels)
    cols = min(count, 3)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.5 * rows), squeeze=False)
    flat = list(axes.flat)
    epochs_done = max((len(v) for v in history.values()), default=0)

    def x_of(values: list[float]) -> range:
        # A resumed run may have started recording a key later: align every curve at the end.
        return range(epochs_done - len(values) + 1, epochs_done + 1)

    for ax, name in zip(flat, names):
        ax.plot(x_of(history[name]), history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(x_of(history[f"val_{name}"]), history[f"val_{name}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    for ax, (prefix, title, log) in zip(flat[len(names) :], panels):
        everything: list[float] = []
        for key, values in history.items():
            if key.startswith(prefix):
                ax.plot(x_of(values), values, label=key.removeprefix(prefix))
                everything += values
        if log:
            positive = all(v > 0 for v in everything)
            ax.set_yscale(
                "log" if positive else "symlog", **({} if positive else {"linthresh": 1e-8})
            )
        else:
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize="small")
    for ax in flat[count:]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
