"""The `gpugrad` command: `gpugrad train` trains an MLP on a real dataset; `gpugrad info`
says what this machine offers; `gpugrad demo` runs the tiny spiral demo."""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__

DATASETS = "digits | moons | spirals | mnist:PATH"
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
        raise SystemExit(f"gpugrad train: unknown dataset {name!r}; choose from {DATASETS}")
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
        raise SystemExit(f"gpugrad train: --model cnn needs square images, got {n_in} features")

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


def train(args: argparse.Namespace) -> float:
    """Run `gpugrad train`; returns the test accuracy."""
    import gpugrad as gg

    from . import data, optim
    from .nn import functional as F
    from .train import Trainer

    gg.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load_dataset(args.dataset, args.seed)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    hidden = [int(h) for h in str(args.hidden).split(",") if h]
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
        diagnostics=diagnostics,
    )  # fmt: skip

    print(
        f"gpugrad {__version__}: {shape} "
        f"on {args.dataset} ({len(x_train)} train / {len(x_test)} test), {args.optimizer}, "
        f"device {gg.device(device)}"
    )
    if args.checkpoint and Path(args.checkpoint).exists():
        trainer.resume(args.checkpoint)
        print(f"resumed from {args.checkpoint} after epoch {trainer.epoch}")
    first_epoch = trainer.epoch
    start = time.perf_counter()
    trainer.fit(train_loader, args.epochs, checkpoint=args.checkpoint, plot=args.plot)
    elapsed = time.perf_counter() - start
    result = trainer.evaluate(test_loader)
    trained = (trainer.epoch - first_epoch) * len(x_train)
    rate = f", {trained / elapsed:,.0f} samples/s" if elapsed > 0 and trained else ""
    summary = f"loss {result['loss']:.4f}, {elapsed:.1f} s{rate}"
    if diagnostics:
        print_diagnostics(trainer.history)
    print(f"test accuracy: {result['accuracy']:.1%}  ({summary})")
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


def make_parser() -> argparse.ArgumentParser:
    """The argument parser for `gpugrad`."""
    parser = argparse.ArgumentParser(prog="gpugrad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gpugrad {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train an MLP on a dataset and report test accuracy")
    t.add_argument("--dataset", default="digits", help=f"{DATASETS} (default: digits)")
    t.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: per optimizer)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    t.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="network (default: mlp)")
    t.add_argument("--hidden", default="256", help="hidden widths, comma-separated (default: 256)")
    t.add_argument("--schedule", choices=("cosine", "none"), default="cosine", help="LR schedule")
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint", default=None, help="save here each epoch; resume if it exists")
    t.add_argument("--plot", default=None, help="write training curves to this PNG (matplotlib)")
    t.add_argument(
        "--diagnostics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record per-layer gradient norms, update/weight ratios and dead-ReLU fractions "
        "in the history, plot them and summarise them at the end (default: on with --plot)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    commands.add_parser("info", help="version, backends, CuPy/CUDA versions and GPUs")
    d = commands.add_parser("demo", help="the tiny spiral demo built from raw Tensor ops")
    d.add_argument("--device", default="cpu")
    d.add_argument("--epochs", type=int, default=1500)
    d.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gpugrad` command."""
    args = make_parser().parse_args(argv)
    if args.command == "train":
        train(args)
    elif args.command == "info":
        info()
    else:
        from .demo import main as demo

        demo(["--device", args.device, "--epochs", str(args.epochs), "--seed", str(args.seed)])
    return 0
