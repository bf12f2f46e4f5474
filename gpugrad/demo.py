"""A short end-to-end demo of the engine: train a small network on two interleaved spirals
with nothing but Tensor ops, backward() and the update w ← w − lr·grad.

Run it with `python -m gpugrad` (options: --device, --epochs, --seed).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

import gpugrad as gg


def make_spirals(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved noisy spirals in the plane: float32 points and int64 labels."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.random(n_per_class)) * 3 * math.pi
    arms = []
    for label, phase in ((0, 0.0), (1, math.pi)):
        xy = np.stack([t * np.cos(t + phase), t * np.sin(t + phase)], axis=1) / (3 * math.pi)
        arms.append((xy + rng.normal(scale=0.02, size=xy.shape), np.full(n_per_class, label)))
    x = np.concatenate([a[0] for a in arms]).astype(np.float32)
    y = np.concatenate([a[1] for a in arms]).astype(np.int64)
    return x, y


def cross_entropy(logits: gg.Tensor, labels: gg.Tensor) -> gg.Tensor:
    """Mean of −log softmax(logits)[label], through the stable logsumexp."""
    picked = gg.take_along_axis(logits, labels.reshape(-1, 1), axis=1)
    return (logits.logsumexp(axis=1, keepdims=True) - picked).mean()


def main(argv: list[str] | None = None) -> float:
    """Train the demo network and return its final training accuracy."""
    parser = argparse.ArgumentParser(prog="python -m gpugrad", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    gg.manual_seed(args.seed)
    x_np, y_np = make_spirals(500, args.seed)
    x = gg.tensor(x_np, device=args.device)
    y = gg.tensor(y_np, device=args.device)

    sizes = [2, 64, 64, 2]
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        w = gg.randn(fan_in, fan_out, device=args.device) * math.sqrt(2 / fan_in)
        params += [w.requires_grad_(), gg.zeros(fan_out, device=args.device, requires_grad=True)]

    def forward(inputs: gg.Tensor) -> gg.Tensor:
        h = inputs
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = h.tanh()
        return h

    print(
        f"gpugrad {gg.__version__} demo: a 2-64-64-2 network, {len(y_np)} spiral points, {x.device}"
    )
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss = cross_entropy(forward(x), y)
        for p in params:
            p.grad = None
        loss.backward()
        with gg.no_grad():
            for p in params:
                p -= args.lr * p.grad  # the update: w ← w − lr·grad
        if epoch % max(args.epochs // 6, 1) == 0 or epoch == 1:
            with gg.no_grad():
                accuracy = (forward(x).argmax(axis=1) == y).float().mean().item()
            print(f"epoch {epoch:4d}  loss {loss.item():.4f}  accuracy {accuracy:6.1%}")
    elapsed = time.perf_counter() - start
    with gg.no_grad():
        accuracy = (forward(x).argmax(axis=1) == y).float().mean().item()
    rate = args.epochs * len(y_np) / elapsed
    print(f"train accuracy: {accuracy:.1%} in {elapsed:.1f} s ({rate:,.0f} samples/s)")
    return accuracy
