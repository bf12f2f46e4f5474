"""A makemore-style character MLP with hand-written layers and a hand-written update.

Given the previous `block_size` characters of a word, predict the next one. The network is
written out layer by layer, as one would on paper: a lookup table of character embeddings, then
Linear -> BatchNorm1d -> Tanh blocks, then a Linear to the logits. Every layer keeps its output
(`.out`, with `retain_grad()`) so the activations and their gradients can be inspected after a
backward pass, and the parameters are updated by hand: `p.data += -lr * p.grad`.

The words are the lowercase words of gpugrad's own documentation.

    python examples/makemore_mlp.py
    python examples/makemore_mlp.py --steps 2000 --samples 10
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import gpugrad as gg
import gpugrad.nn.functional as F

REPO = Path(__file__).resolve().parent.parent


class Linear:
    """x @ W + b, with W scaled by 1/sqrt(fan_in) so activations keep their spread."""

    def __init__(self, fan_in: int, fan_out: int, generator: gg.Generator, bias: bool = True):
        self.weight = gg.randn((fan_in, fan_out), generator=generator, dtype=gg.double)
        self.weight.data *= fan_in**-0.5
        self.bias = gg.zeros(fan_out, dtype=gg.double) if bias else None

    def __call__(self, x: gg.Tensor) -> gg.Tensor:
        self.out = x @ self.weight
        if self.bias is not None:
            self.out = self.out + self.bias
        return self.out

    def parameters(self) -> list[gg.Tensor]:
        return [self.weight] + ([] if self.bias is None else [self.bias])


class BatchNorm1d:
    """Normalise each feature over the batch while training, with running statistics for use
    afterwards; then scale by gamma and shift by beta."""

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1):
        self.eps, self.momentum, self.training = eps, momentum, True
        self.gamma = gg.ones(dim, dtype=gg.double)
        self.beta = gg.zeros(dim, dtype=gg.double)
        self.running_mean = gg.zeros(dim, dtype=gg.double)
        self.running_var = gg.ones(dim, dtype=gg.double)

    def __call__(self, x: gg.Tensor) -> gg.Tensor:
        if self.training:
            mean = x.mean(axis=0, keepdims=True)
            var = x.var(axis=0, keepdims=True)  # the batch's own (biased) variance
        else:
            mean, var = self.running_mean, self.running_var
        self.out = self.gamma * (x - mean) / (var + self.eps).sqrt() + self.beta
        if self.training:
            with gg.no_grad():
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * mean
                self.running_var = (1 - m) * self.running_var + m * var
        return self.out

    def parameters(self) -> list[gg.Tensor]:
        return [self.gamma, self.beta]


class Tanh:
    """Squash into (-1, 1)."""

    def __call__(self, x: gg.Tensor) -> gg.Tensor:
        self.out = x.tanh()
        return self.out

    def parameters(self) -> list[gg.Tensor]:
        return []


def load_words() -> list[str]:
    """Distinct lowercase words (3 to 12 letters) of gpugrad's documentation."""
    text = (REPO / "docs" / "backprop.md").read_text() + (REPO / "README.md").read_text()
    return sorted(set(re.findall(r"\b[a-z]{3,12}\b", text.lower())))


def build_dataset(
    words: list[str], stoi: dict[str, int], block_size: int
) -> tuple[gg.Tensor, gg.Tensor]:
    """Every (previous block_size characters, next character) pair; '.' pads and ends words."""
    xs, ys = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            xs.append(context)
            ys.append(stoi[ch])
            context = [*context[1:], stoi[ch]]
    return gg.tensor(xs), gg.tensor(ys)


def make_network(vocab: int, block_size: int, n_embd: int, n_hidden: int, g: gg.Generator):
    """The embedding table and the layer stack, with gpugrad's float64 tensors."""
    C = gg.randn((vocab, n_embd), generator=g, dtype=gg.double)
    layers = [
        Linear(n_embd * block_size, n_hidden, g, bias=False),
        BatchNorm1d(n_hidden),
        Tanh(),
        Linear(n_hidden, n_hidden, g, bias=False),
        BatchNorm1d(n_hidden),
        Tanh(),
        Linear(n_hidden, vocab, g),
    ]
    with gg.no_grad():
        layers[-1].weight *= 0.1  # a less confident start: logits near zero
        for layer in layers[:-1]:
            if isinstance(layer, Linear):
                layer.weight *= 5 / 3  # tanh's gain
    parameters = [C] + [p for layer in layers for p in layer.parameters()]
    for p in parameters:
        p.requires_grad = True
    return C, layers, parameters


def forward(C: gg.Tensor, layers: list, X: gg.Tensor, Y: gg.Tensor) -> gg.Tensor:
    """The loss of the network on the examples (X, Y)."""
    emb = C[X]  # (batch, block_size, n_embd)
    x = emb.view(emb.shape[0], -1)
    for layer in layers:
        x = layer(x)
    return F.cross_entropy(x, Y)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train with a hand-written SGD update and print losses, update ratios and samples."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=3)
    parser.add_argument("--embedding", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2147483647)
    args = parser.parse_args(argv)

    words = load_words()
    chars = sorted(set("".join(words)))
    stoi = {ch: i + 1 for i, ch in enumerate(chars)}
    stoi["."] = 0
    itos = {i: ch for ch, i in stoi.items()}
    g = gg.Generator().manual_seed(args.seed)
    order = gg.randperm(len(words), generator=g).tolist()
    split = int(0.9 * len(words))
    Xtr, Ytr = build_dataset([words[i] for i in order[:split]], stoi, args.block_size)
    Xva, Yva = build_dataset([words[i] for i in order[split:]], stoi, args.block_size)

    C, layers, parameters = make_network(len(stoi), args.block_size, args.embedding, args.hidden, g)
    print(f"{len(words)} words, {sum(p.nelement() for p in parameters)} parameters")
    ratios: list[list[float]] = []  # log10 of update size / parameter size, per step
    for step in range(args.steps):
        ix = gg.randint(0, Xtr.shape[0], (args.batch_size,), generator=g)
        loss = forward(C, layers, Xtr[ix], Ytr[ix])
        for layer in layers:
            layer.out.retain_grad()  # keep the activations' gradients to look at
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if step < args.steps * 3 // 4 else 0.01
        for p in parameters:
            p.data += -lr * p.grad  # w <- w - lr * dL/dw
        with gg.no_grad():
            ratios.append([((lr * p.grad).std() / p.std()).log10().item() for p in parameters])
        if step % 500 == 0 or step == args.steps - 1:
            print(f"step {step:5d}/{args.steps}  loss {loss.item():.4f}")

    for layer in layers:
        layer.training = False
    with gg.no_grad():
        losses = {
            "train": forward(C, layers, Xtr, Ytr).item(),
            "val": forward(C, layers, Xva, Yva).item(),
        }
    print(f"train loss {losses['train']:.4f}  val loss {losses['val']:.4f}")
    print("update/data ratio (log10) of the last layer's weight:", f"{ratios[-1][-2]:.2f}")
    for _ in range(args.samples):
        out, context = [], [0] * args.block_size
        with gg.no_grad():
            while True:
                emb = C[gg.tensor([context])]
                x = emb.view(1, -1)
                for layer in layers:
                    x = layer(x)
                probs = F.softmax(x, axis=1)
                ix = gg.multinomial(probs, num_samples=1, generator=g).item()
                context = [*context[1:], ix]
                if ix == 0:
                    break
                out.append(itos[ix])
        print("".join(out))
    return losses


if __name__ == "__main__":
    main()
