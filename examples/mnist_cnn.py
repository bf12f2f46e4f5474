"""A convolutional network for handwritten digits, trained with Adadelta and a StepLR schedule.

Two 3x3 convolutions with ReLU, a 2x2 max-pool, dropout, two Linear layers, and log_softmax with
the negative log-likelihood loss. By default it trains on the bundled 8x8 digits (UCI, 1,797
images); `--mnist DIR` reads the 28x28 MNIST files from DIR instead.

    python examples/mnist_cnn.py
    python examples/mnist_cnn.py --epochs 3 --mnist ~/data/mnist --device cuda
"""

from __future__ import annotations

import argparse

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
import gpugrad.optim as optim
from gpugrad.data import DataLoader, TensorDataset, load_digits, load_mnist, train_test_split
from gpugrad.optim.lr_scheduler import StepLR


class Net(nn.Module):
    """conv(1->32) -> relu -> conv(32->64) -> relu -> maxpool 2 -> dropout -> fc -> fc."""

    def __init__(self, side: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        pooled = (side - 4) // 2  # two unpadded 3x3 convolutions, then a 2x2 pool
        self.fc1 = nn.Linear(64 * pooled * pooled, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: gg.Tensor) -> gg.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = gg.flatten(x, 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), axis=1)


def train_epoch(model, device, loader, optimizer, epoch: int, log_every: int) -> float:
    """One pass over the training data; returns the last batch's loss."""
    model.train()
    for batch, (data, target) in enumerate(loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        if batch % log_every == 0:
            seen = batch * len(data)
            print(
                f"epoch {epoch} [{seen}/{len(loader.dataset)} "
                f"({100.0 * batch / len(loader):.0f}%)]  loss {loss.item():.6f}"
            )
    return loss.item()


def evaluate(model, device, loader) -> tuple[float, float]:
    """Mean loss and accuracy over a data set."""
    model.eval()
    total_loss, correct = 0.0, 0
    with gg.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            total_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(axis=1, keepdims=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    n = len(loader.dataset)
    print(
        f"test: mean loss {total_loss / n:.4f}, accuracy {correct}/{n} ({100.0 * correct / n:.1f}%)"
    )
    return total_loss / n, correct / n


def load(mnist: str | None) -> tuple:
    """(train images, train labels, test images, test labels, side), images normalised."""
    if mnist:
        Xtr, ytr = load_mnist(mnist, "train")
        Xte, yte = load_mnist(mnist, "test")
        side = 28
    else:
        X, y = load_digits()
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0)
        side = 8
    mean, std = Xtr.mean(), Xtr.std()
    shape = (-1, 1, side, side)
    return (
        ((Xtr - mean) / std).reshape(shape).astype("float32"),
        ytr,
        ((Xte - mean) / std).reshape(shape).astype("float32"),
        yte,
        side,
    )


def main(argv: list[str] | None = None) -> float:
    """Train and test; returns the final test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.7, help="lr decay per epoch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="background batch loaders")
    parser.add_argument("--mnist", default=None, help="folder with the MNIST idx files")
    parser.add_argument("--max-batches", type=int, default=None, help="stop epochs early")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    gg.manual_seed(args.seed)
    Xtr, ytr, Xte, yte, side = load(args.mnist)
    if args.max_batches is not None:
        Xtr, ytr = (
            Xtr[: args.max_batches * args.batch_size],
            ytr[: args.max_batches * args.batch_size],
        )
    pin = gg.device(args.device).type == "cuda"
    loader_options = {"num_workers": args.workers, "pin_memory": pin}
    train_loader = DataLoader(
        TensorDataset(Xtr, ytr), batch_size=args.batch_size, shuffle=True, **loader_options
    )
    test_loader = DataLoader(TensorDataset(Xte, yte), batch_size=args.test_batch_size)

    model = Net(side).to(args.device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        train_epoch(model, args.device, train_loader, optimizer, epoch, args.log_every)
        _, accuracy = evaluate(model, args.device, test_loader)
        scheduler.step()
    return accuracy


if __name__ == "__main__":
    main()
