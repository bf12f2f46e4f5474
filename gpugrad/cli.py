"""The `gpugrad` command: `gpugrad train` trains an MLP on a real dataset; `gpugrad info`
says what this machine offers; `gpugrad demo` runs the tiny spiral demo.

`mpiexec -n N gpugrad train ...` (or `gpugrad train --nproc N ...`) trains on N processes:
each joins the process group, the Trainer shares the work, and rank 0 alone prints.

Every bad argument is caught before any training, by the argparse `type=` functions in
`cli_args`, or by the checks `train` makes once the data is loaded; each gives one line
`gpugrad <command>: error: ...` and exit status 2, never a traceback. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__
from .cli_args import (
    DATASETS,
    UsageError,
    device_name,
    existing_dataset,
    hidden_widths,
    non_negative_int,
    plot_file,
    positive_float,
    positive_int,
    smoothing,
    writable_file,
)
from .cli_job import (
    cuda_device_for,
    end_job,
    in_job,
    is_main_process,
    join_job,
    on_all_ranks,
    silent,
)
from .cli_launch import launch
from .errors import SaveError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.05, "rmsprop": 1e-3, "adagrad": 0.05}


def load_dataset(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) for a dataset name; the split is fixed by the seed."""
    from . import data

    if name.startswith("mnist:"):
        folder = name.split(":", 1)[1]
        x_train, y_train = data.load_mnist(folder, kind="train")
        x_test, y_test = data.load_mnist(folder, kind="test")
        return x_train, y_train, x_test, y_test
    if name == "digits":
        x, y = data.load_digits()
    elif name == "moons":
        x, y = data.make_moons(n_samples=2000, noise=0.2, seed=seed)
    elif name == "spirals":
        x, y = data.make_spirals(n_samples=2000, noise=0.2, seed=seed)
    else:
        raise UsageError(f"unknown dataset {name!r}; choose from {DATASETS}")
    x_train, x_test, y_train, y_test = data.train_test_split(
        x, y, test_size=0.2, seed=seed, stratify=True
    )
    return x_train, y_train, x_test, y_test


def build_mlp(n_in: int, hidden: list[int], n_out: int):
    """Linear → ReLU → ... → Linear."""
    from . import nn

    layers = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def build_cnn(n_in: int, n_out: int, width: int = 32):
    """A small CNN for square one-channel images given as flat rows of n_in = n² pixels:
    two 3×3 convolutions, a 2×2 max pool, then a linear classifier."""
    from . import nn

    side = math.isqrt(n_in)
    if side * side != n_in or side < 4:
        raise UsageError(f"--model cnn needs square images, got {n_in} features per sample")

    class AsImage(nn.Module):
        """Flat rows of side² pixels → (N, 1, side, side) images."""

        def forward(self, x):
            return x.reshape(-1, 1, side, side)

    pooled = side // 2
    return nn.Sequential(
        AsImage(),
        nn.Conv2d(1, width // 2, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width // 2, width, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(width * pooled * pooled, n_out),
    )  # fmt: skip


def build_optimizer(name: str, params, lr: float):
    """An optimizer by name, with the settings that suit these small MLPs."""
    from . import optim

    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    return {
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "rmsprop": optim.RMSprop,
        "adagrad": optim.Adagrad,
    }[name](params, lr=lr)


# The options a checkpoint records; resuming with a different value of any is refused, since
# the saved weights, optimizer state or data split would not be the ones this run describes.
RECORDED_OPTIONS = (
    "dataset", "model", "hidden", "optimizer", "lr", "schedule", "label_smoothing", "seed",
    "batch_size",
)  # fmt: skip


class Interrupted(Exception):
    """Ctrl-C during training; carries the epoch the checkpoint holds (None without one)."""

    def __init__(self, checkpoint_epoch: int | None) -> None:
        super().__init__(checkpoint_epoch)
        self.checkpoint_epoch = checkpoint_epoch


def recorded_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options a checkpoint of this run records, as the command line spells them."""
    options = {key: getattr(args, key) for key in RECORDED_OPTIONS}
    options["hidden"] = ",".join(map(str, args.hidden))
    options["lr"] = args.lr or DEFAULT_LR[args.optimizer]
    return options


def check_same_options(path: str, saved: Any, ours: dict[str, Any]) -> None:
    """UsageError naming the first option whose value differs from the checkpoint's."""
    if not isinstance(saved, dict):
        return  # a checkpoint from a Trainer outside the command: nothing recorded
    for key, value in ours.items():
        if key in saved and saved[key] != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(
                f"--checkpoint {path} was made with {flag} {saved[key]}, this run has "
                f"{flag} {value}; use the same options, or another checkpoint path"
            )


def train(args: argparse.Namespace) -> float:
    """Run `gpugrad train`; returns the test accuracy."""
    import gpugrad as gg

    from . import data, optim
    from . import distributed as dist
    from .errors import CheckpointError, DataFormatError
    from .nn import functional as F
    from .train import Trainer

    rank, world, local_rank = join_job()
    say = print if rank == 0 else silent  # one set of output lines: rank 0's
    gg.manual_seed(args.seed)

    def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        try:
            return load_dataset(args.dataset, args.seed)
        except (DataFormatError, FileNotFoundError) as exc:
            raise UsageError(f"--dataset {args.dataset}: {exc}") from None

    x_train, y_train, x_test, y_test = on_all_ranks(load)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    hidden = args.hidden
    if args.model == "cnn":
        model = build_cnn(x_train.shape[1], n_classes)
        shape = "CNN (2 conv 3x3, max pool, linear)"
    else:
        model = build_mlp(x_train.shape[1], hidden, n_classes)
        shape = f"MLP {x_train.shape[1]}-{'-'.join(map(str, hidden))}-{n_classes}"
    optimizer = build_optimizer(
        args.optimizer, model.parameters(), args.lr or DEFAULT_LR[args.optimizer]
    )
    device = args.device
    if world > 1 and device == "cuda":
        device = cuda_device_for(local_rank)
    train_set = data.TensorDataset(gg.tensor(x_train), gg.tensor(y_train))
    test_set = data.TensorDataset(gg.tensor(x_test), gg.tensor(y_test))
    train_loader = data.DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=device
    )
    test_loader = data.DataLoader(test_set, batch_size=1024, device=device)
    scheduler = None
    if args.schedule == "cosine":
        scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    def loss_fn(logits: gg.Tensor, target: gg.Tensor) -> gg.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=args.label_smoothing)

    progress = False if args.quiet else None
    diagnostics = bool(args.plot) if args.diagnostics is None else args.diagnostics
    trainer = Trainer(
        model, loss_fn, optimizer, device=device, scheduler=scheduler, progress=progress,
        diagnostics=diagnostics, metadata={"options": recorded_options(args)},
    )  # fmt: skip

    resumed = args.checkpoint and Path(args.checkpoint).exists()

    def resume() -> None:
        # Every rank reads the same file (on several machines: a shared folder).
        if in_job():
            found = dist.all_gather_object(bool(resumed))
            if len(set(found)) > 1:
                raise UsageError(
                    f"--checkpoint {args.checkpoint} exists on ranks "
                    f"{[r for r, f in enumerate(found) if f]} only; every rank must see it "
                    "(on several machines, use a shared folder)"
                )
        if not resumed:
            return
        try:
            state = gg.load(args.checkpoint, device=device)
            if isinstance(state, dict) and isinstance(state.get("metadata"), dict):
                saved = state["metadata"].get("options")
                check_same_options(args.checkpoint, saved, recorded_options(args))
            trainer.load_state_dict(state, source=args.checkpoint)
        except CheckpointError as exc:
            raise UsageError(f"--checkpoint: {exc}") from None
        trainer.checkpoint_epoch = trainer.epoch

    on_all_ranks(resume)
    processes = f", {world} processes" if world > 1 else ""
    say(
        f"gpugrad {__version__}: {shape} "
        f"on {args.dataset} ({len(x_train)} train / {len(x_test)} test), {args.optimizer}, "
        f"device {gg.device(device)}{processes}"
    )
    if resumed:
        say(f"resumed from {args.checkpoint} after epoch {trainer.epoch}")
        if trainer.epoch >= args.epochs:
            say(f"the checkpoint has {trainer.epoch} epochs: --epochs {args.epochs} adds none")
        elif scheduler is not None and scheduler.T_max != args.epochs:
            # The saved schedule ends at the old horizon (lr 0 from there on): stretch it
            # over the new one, from the step it had reached.
            scheduler.T_max = args.epochs
            scheduler.step(scheduler.last_epoch)
            say(f"cosine schedule now runs over {args.epochs} epochs")
    first_epoch = trainer.epoch
    start = time.perf_counter()
    try:
        trainer.fit(train_loader, args.epochs, checkpoint=args.checkpoint, plot=args.plot)
        elapsed = time.perf_counter() - start
        result = trainer.evaluate(test_loader)
    except KeyboardInterrupt:
        raise Interrupted(trainer.checkpoint_epoch if args.checkpoint else None) from None
    trained = (trainer.epoch - first_epoch) * len(x_train)
    rate = f", {trained / elapsed:,.0f} samples/s" if elapsed > 0 and trained else ""
    summary = f"loss {result['loss']:.4f}, {elapsed:.1f} s{rate}"
    if diagnostics and rank == 0:
        print_diagnostics(trainer.history)
    say(f"test accuracy: {result['accuracy']:.1%}  ({summary})")
    return result["accuracy"]


def print_diagnostics(history: dict[str, list[float]]) -> None:
    """The last epoch's diagnostics, one line per parameter and per ReLU."""
    from .diagnostics import DEAD_RELU, GRAD_NORM, UPDATE_RATIO

    last = {key: values[-1] for key, values in history.items() if values}
    params = [k.removeprefix(GRAD_NORM) for k in last if k.startswith(GRAD_NORM)]
    relus = [k.removeprefix(DEAD_RELU) for k in last if k.startswith(DEAD_RELU)]
    if not params and not relus:
        return
    print("diagnostics, last epoch:")
    width = max(map(len, params + relus))
    for name in params:
        ratio = last.get(UPDATE_RATIO + name, math.nan)
        print(
            f"  {name:<{width}}  grad norm {last[GRAD_NORM + name]:.3e}  update/weight {ratio:.3e}"
        )
    for name in relus:
        print(f"  {name:<{width}}  dead ReLU units {last[DEAD_RELU + name]:.1%}")


def info() -> None:
    """Print the version, the backends available and the GPUs found."""
    from .backend import cuda_info

    print(f"gpugrad {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"cpu backend: NumPy {np.__version__}")
    cuda = cuda_info()
    if cuda["cupy"] is None:
        print(f"cuda backend: CuPy not installed ({cuda['install']})")
        return
    if not cuda["available"]:
        print(
            f"cuda backend: CuPy {cuda['cupy']} installed, but no usable GPU (no GPU or no driver)"
        )
        return
    versions = f"CUDA runtime {cuda['runtime']}, driver {cuda['driver']}"
    print(f"cuda backend: CuPy {cuda['cupy']}, {versions}")
    for gpu in cuda["gpus"]:
        print(
            f"  cuda:{gpu['index']}: {gpu['name']}, {gpu['memory_gib']:.1f} GiB, "
            f"compute capability {gpu['compute_capability']}"
        )


class _Parser(argparse.ArgumentParser):
    """argparse, with errors as the one line `gpugrad train: error: ...` (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser for `gpugrad`. Every option's help shows its default."""
    parser = _Parser(prog="gpugrad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gpugrad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train an MLP on a dataset and report test accuracy")
    option = t.add_argument
    option(
        "--dataset",
        type=existing_dataset,
        default="digits",
        help=f"{DATASETS} (default: %(default)s)",
    )
    option(
        "--device",
        type=device_name,
        default="cpu",
        help="cpu, cuda or cuda:N (default: %(default)s)",
    )
    option(
        "--epochs",
        type=positive_int,
        default=40,
        help="epochs to train, counting those in a resumed checkpoint (default: %(default)s)",
    )
    option("--batch-size", type=positive_int, default=32, help="default: %(default)s")
    option(
        "--lr",
        type=positive_float,
        default=None,
        help="learning rate (default: per optimizer: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ")",
    )
    option("--optimizer", choices=OPTIMIZERS, default="adam", help="default: %(default)s")
    option("--model", choices=("mlp", "cnn"), default="mlp", help="network (default: %(default)s)")
    option(
        "--hidden",
        type=hidden_widths,
        default="256",
        help="hidden widths of the MLP, comma-separated (default: %(default)s)",
    )
    option(
        "--schedule",
        choices=("cosine", "none"),
        default="cosine",
        help="learning-rate schedule (default: %(default)s)",
    )
    option(
        "--label-smoothing",
        type=smoothing,
        default=0.1,
        help="label smoothing of the cross-entropy, in [0, 1) (default: %(default)s)",
    )
    option(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the weights, the split and the shuffling (default: %(default)s)",
    )
    option(
        "--checkpoint",
        type=writable_file,
        default=None,
        help="save here each epoch; resume if it exists (default: none)",
    )
    option(
        "--plot",
        type=plot_file,
        default=None,
        help="write training curves to this PNG, needs matplotlib (default: none)",
    )
    option(
        "--diagnostics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record per-layer gradient norms, update/weight ratios and dead-ReLU "
        "fractions in the history, plot them and summarise them at the end "
        "(default: on with --plot)",
    )
    option("--quiet", action="store_true", help="no progress bar (default: off)")
    option(
        "--nproc",
        type=positive_int,
        default=None,
        help="train on N processes, started for you by the installed MPI's mpiexec "
        '(needs pip install "gpugrad[mpi]"); mpiexec -n N gpugrad train does the same '
        "(default: one process)",
    )

    commands.add_parser("info", help="version, backends, CuPy/CUDA versions and GPUs")
    d = commands.add_parser("demo", help="the tiny spiral demo built from raw Tensor ops")
    d.add_argument(
        "--device",
        type=device_name,
        default="cpu",
        help="cpu, cuda or cuda:N (default: %(default)s)",
    )
    d.add_argument("--epochs", type=positive_int, default=1500, help="default: %(default)s")
    d.add_argument("--seed", type=non_negative_int, default=0, help="default: %(default)s")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gpugrad` command: 0 on success, 2 for a bad argument, 1 when a
    checkpoint cannot be written, 130 after Ctrl-C, 141 when the reader of its output went
    away (`gpugrad info | head -1`)."""
    args = make_parser().parse_args(argv)
    try:
        if args.command == "train" and args.nproc is not None and args.nproc > 1:
            return launch(args.nproc, sys.argv[1:] if argv is None else list(argv))
        if args.command == "train":
            train(args)
        elif args.command == "info":
            info()
        else:
            from .demo import main as demo

            demo(["--device", args.device, "--epochs", str(args.epochs), "--seed", str(args.seed)])
        sys.stdout.flush()  # a closed pipe shows up here, not at exit as a traceback
    # In a job of several processes, usage and checkpoint-write errors are raised on every
    # rank alike (see on_all_ranks, Trainer), so rank 0 alone prints them and all exit.
    except UsageError as exc:
        if is_main_process():
            print(f"gpugrad {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except SaveError as exc:  # e.g. the disk filled up mid-run; the last checkpoint stands
        if is_main_process():
            print(f"gpugrad {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt) as exc:
        epoch = exc.checkpoint_epoch if isinstance(exc, Interrupted) else None
        saved = f"; checkpoint saved after epoch {epoch}" if epoch is not None else ""
        if is_main_process():
            print(f"interrupted{saved}", file=sys.stderr)
        return end_job(130)  # a rank may be waiting for one that stopped
    except BrokenPipeError:
        # Send what is still buffered nowhere, so the exit flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return end_job(141)  # only rank 0 prints: the others would wait for it
    return 0
