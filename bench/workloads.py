"""The benchmark workloads, defined once for the pytest-benchmark suite and for `compare.py`.

Each workload is the same computation written three ways: with gpugrad, with PyTorch (CPU), and
by hand in NumPy (forward keeping what backward needs, then the backward arithmetic written
out). A factory builds each variant as a zero-argument callable that runs forward + backward
once and returns the gradients; `op_chain()` and `mlp()` build all variants of a workload and
check, outside any timing, that gpugrad's gradients equal the NumPy ones, so the timings
compare the same work.

PyTorch is optional: where it is not installed the workloads have no "torch" variant.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Run from a checkout without installing: put the repository root (the folder above bench/)
# on the path, unless gpugrad is importable already.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "gpugrad").is_dir() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import gpugrad as gg  # noqa: E402  (needs the path set above)

try:
    import torch
except ImportError:  # the torch variants are skipped
    torch = None

Run = Callable[[], Any]

# --- sizes ---------------------------------------------------------------------------------
CHAIN_SIZE = 16  # elements of the op chain's leaf
CHAIN_REPS = 25  # repetitions of y = tanh(y * 1.01 + x) * x
CHAIN_OPS = 4 * CHAIN_REPS  # ops per forward: mul, add, tanh, mul
MLP_BATCH = 256
MLP_SIZES = (784, 512, 512, 10)


@dataclass
class Workload:
    """One computation in several implementations ("gpugrad", "numpy", "torch")."""

    name: str
    description: str
    variants: dict[str, Run]
    ops: int = 1  # the time of one call divided by this is the per-op time
    notes: list[str] = field(default_factory=list)


# --- threads -------------------------------------------------------------------------------
def match_threads() -> dict[str, Any]:
    """Give torch as many threads as NumPy's BLAS has; return what was found and done.

    NumPy's BLAS thread count is only known through threadpoolctl; without it both libraries
    keep their defaults (the returned `note` says so).
    """
    info: dict[str, Any] = {"numpy_blas_threads": None, "torch_threads": None, "note": ""}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        # Prefer the BLAS that NumPy ships (numpy.libs/, scipy_openblas) over one torch loads.
        blas.sort(key=lambda p: "numpy" not in p.get("filepath", ""))
        if blas:
            info["numpy_blas_threads"] = blas[0]["num_threads"]
            info["numpy_blas"] = f"{blas[0].get('internal_api')} {blas[0].get('version')}"
    if torch is not None:
        if info["numpy_blas_threads"] is not None:
            torch.set_num_threads(info["numpy_blas_threads"])
            info["note"] = "torch threads set to NumPy's BLAS threads (threadpoolctl)"
        else:
            info["note"] = (
                "threadpoolctl is not installed: NumPy's BLAS threads are unknown, so both "
                "keep their defaults"
            )
        info["torch_threads"] = torch.get_num_threads()
    elif threadpool_info is None:
        info["note"] = "threadpoolctl is not installed: NumPy's BLAS threads are unknown"
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if name in os.environ:
            info[name] = os.environ[name]
    return info


# --- (a) op chain: per-op overhead -----------------------------------------------------------
def chain_input(seed: int = 0) -> np.ndarray:
    """The op chain's leaf values: float32, away from 0 so the chain does not die out."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.0, CHAIN_SIZE).astype(np.float32)


def op_chain_gpugrad(x0: np.ndarray, reps: int = CHAIN_REPS) -> Run:
    """gpugrad: y = x; reps × y = tanh(y * 1.01 + x) * x; backward with ones; x.grad."""
    x = gg.tensor(x0, requires_grad=True)
    ones = gg.ones_like(x)

    def run() -> np.ndarray:
        x.grad = None
        y = x
        for _ in range(reps):
            y = (((y * 1.01) + x).tanh()) * x
        y.backward(ones)
        return x.grad.data

    return run


def op_chain_torch(x0: np.ndarray, reps: int = CHAIN_REPS) -> Run | None:
    """PyTorch, the same ops as `op_chain_gpugrad` (None where torch is missing)."""
    if torch is None:
        return None
    x = torch.tensor(x0, requires_grad=True)
    ones = torch.ones_like(x)

    def run() -> np.ndarray:
        x.grad = None
        y = x
        for _ in range(reps):
            y = (((y * 1.01) + x).tanh()) * x
        y.backward(ones)
        return x.grad.numpy()

    return run


def op_chain_numpy(x0: np.ndarray, reps: int = CHAIN_REPS) -> Run:
    """Hand-written NumPy: the forward keeps each tanh output, the backward uses them."""
    x = x0.copy()
    ones = np.ones_like(x)

    def run() -> np.ndarray:
        y = x
        ts = []
        for _ in range(reps):
            t = np.tanh(y * 1.01 + x)
            ts.append(t)
            y = t * x
        gy = ones
        gx = np.zeros_like(x)
        for t in reversed(ts):
            gx += gy * t  # y = t * x: x's own share
            ga = (gy * x) * (1 - t * t)  # through tanh to a = y_prev * 1.01 + x
            gx += ga  # a's x term
            gy = ga * 1.01  # on to y_prev
        gx += gy  # the chain started from y = x
        return gx

    return run


def op_chain(seed: int = 0) -> Workload:
    """The op-chain workload with every available variant, gradients checked against NumPy."""
    x0 = chain_input(seed)
    variants = {"gpugrad": op_chain_gpugrad(x0), "numpy": op_chain_numpy(x0)}
    run_torch = op_chain_torch(x0)
    if run_torch is not None:
        variants["torch"] = run_torch
    _check_same(variants, names=["x"])
    return Workload(
        name="op_chain",
        description=(
            f"{CHAIN_OPS} elementwise ops on a {CHAIN_SIZE}-element float32 tensor, "
            "forward + backward"
        ),
        variants=variants,
        ops=CHAIN_OPS,
    )


# --- (b) MLP forward + backward ------------------------------------------------------------
@dataclass
class MlpData:
    """Inputs, weights and the loss's fixed matrix, shared by every variant (float32)."""

    x: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    c: np.ndarray  # loss = sum(logits * c), so dloss/dlogits = c


def mlp_data(seed: int = 0, batch: int = MLP_BATCH, sizes: tuple[int, ...] = MLP_SIZES) -> MlpData:
    """Draw the MLP's weights with gg.randn (He scaling) and its input and loss matrix."""
    gg.manual_seed(seed)
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(sizes):
        weights.append((gg.randn(fan_in, fan_out) * (2.0 / fan_in) ** 0.5).numpy())
        biases.append((gg.randn(fan_out) * 0.1).numpy())
    x = gg.randn(batch, sizes[0]).numpy()
    c = gg.randn(batch, sizes[-1]).numpy()
    return MlpData(x, weights, biases, c)


def _mlp_names(data: MlpData) -> list[str]:
    n = len(data.weights)
    return [f"W{i + 1}" for i in range(n)] + [f"b{i + 1}" for i in range(n)]


def mlp_gpugrad(data: MlpData) -> Run:
    """gpugrad: `@`, `+ bias`, `.relu()`, loss = (logits * c).sum(), `.backward()`."""
    x, c = gg.tensor(data.x), gg.tensor(data.c)
    weights = [gg.tensor(w, requires_grad=True) for w in data.weights]
    biases = [gg.tensor(b, requires_grad=True) for b in data.biases]
    params = weights + biases
    last = len(weights) - 1

    def run() -> list[np.ndarray]:
        for p in params:
            p.grad = None
        h = x
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if i < last:
                h = h.relu()
        loss = (h * c).sum()
        loss.backward()
        return [p.grad.data for p in params]

    return run


def mlp_torch(data: MlpData) -> Run | None:
    """PyTorch, the same products (None where torch is missing)."""
    if torch is None:
        return None
    x, c = torch.from_numpy(data.x.copy()), torch.from_numpy(data.c.copy())
    weights = [torch.tensor(w, requires_grad=True) for w in data.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in data.biases]
    params = weights + biases
    last = len(weights) - 1

    def run() -> list[np.ndarray]:
        for p in params:
            p.grad = None
        h = x
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if i < last:
                h = h.relu()
        loss = (h * c).sum()
        loss.backward()
        return [p.grad.numpy() for p in params]

    return run


def mlp_numpy(data: MlpData) -> Run:
    """Hand-written NumPy: dW = Xᵀ·dY, db = dY.sum(0), dX = dY·Wᵀ, ReLU mask; no input grad."""
    x, c = data.x, data.c
    weights, biases = data.weights, data.biases
    last = len(weights) - 1

    def run() -> list[np.ndarray]:
        acts = [x]  # the input of each layer
        h = x
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w + b
            if i < last:
                h = np.maximum(h, 0)
                acts.append(h)
        loss = (h * c).sum()  # computed, as the other variants do, though backward needs only c
        del loss
        dh = c * 1.0
        dws, dbs = [None] * len(weights), [None] * len(weights)
        for i in range(last, -1, -1):
            dws[i] = acts[i].T @ dh
            dbs[i] = dh.sum(axis=0)
            if i > 0:
                dh = (dh @ weights[i].T) * (acts[i] > 0)  # through the ReLU that made acts[i]
        return dws + dbs

    return run


def mlp(seed: int = 0) -> Workload:
    """The MLP workload with every available variant, gradients checked against NumPy."""
    data = mlp_data(seed)
    variants = {"gpugrad": mlp_gpugrad(data), "numpy": mlp_numpy(data)}
    run_torch = mlp_torch(data)
    if run_torch is not None:
        variants["torch"] = run_torch
    _check_same(variants, names=_mlp_names(data))
    sizes = "-".join(map(str, MLP_SIZES))
    return Workload(
        name="mlp",
        description=f"MLP {sizes}, ReLU, float32, batch {MLP_BATCH}: forward + backward",
        variants=variants,
    )


# --- one SGD training step -------------------------------------------------------------------
STEP_LR = 0.01


def _labels(data: MlpData) -> np.ndarray:
    return (np.arange(len(data.x)) % data.weights[-1].shape[1]).astype(np.int64)


def train_step_gpugrad(data: MlpData) -> Run:
    """gpugrad: nn.Linear/ReLU layers, F.cross_entropy, optim.SGD (lr 0.01): one step a call."""
    from gpugrad import nn, optim
    from gpugrad.nn import functional as F

    layers: list[Any] = []
    for w, b in zip(data.weights, data.biases):
        linear = nn.Linear(*w.shape)
        linear.load_state_dict({"weight": gg.tensor(w.T.copy()), "bias": gg.tensor(b)})
        layers += [linear, nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    params = list(model.parameters())  # listed once: walking the module tree is no step's work
    opt = optim.SGD(params, lr=STEP_LR)
    x, y = gg.tensor(data.x), gg.tensor(_labels(data))

    def run() -> list[np.ndarray]:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        return [p.data for p in params]

    return run


def train_step_torch(data: MlpData) -> Run | None:
    """PyTorch: the same layers, cross-entropy and SGD step (None where torch is missing)."""
    if torch is None:
        return None
    layers: list[Any] = []
    for w, b in zip(data.weights, data.biases):
        linear = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=STEP_LR)
    x, y = torch.from_numpy(data.x.copy()), torch.from_numpy(_labels(data))

    def run() -> list[np.ndarray]:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return [p.detach().numpy() for p in params]

    return run


def train_step_numpy(data: MlpData) -> Run:
    """Hand-written NumPy: forward, stable softmax cross-entropy, backward, W -= lr·dW."""
    weights = [w.T.copy() for w in data.weights]  # (out, in), as nn.Linear stores them
    biases = [b.copy() for b in data.biases]
    x, y = data.x, _labels(data)
    n = len(x)
    rows = np.arange(n)
    last = len(weights) - 1

    def run() -> list[np.ndarray]:
        acts = [x]
        h = x
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = h @ w.T + b
            if i < last:
                h = np.maximum(h, 0)
                acts.append(h)
        shifted = h - h.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = (np.log(total[:, 0]) - shifted[rows, y]).mean()
        del loss
        dh = exp / total
        dh[rows, y] -= 1
        dh /= n
        for i in range(last, -1, -1):
            dw = dh.T @ acts[i]
            db = dh.sum(axis=0)
            if i > 0:
                dh = (dh @ weights[i]) * (acts[i] > 0)
            weights[i] -= STEP_LR * dw
            biases[i] -= STEP_LR * db
        return [a for pair in zip(weights, biases) for a in pair]

    return run


def train_step(seed: int = 0, batch: int = MLP_BATCH, name: str = "train_step") -> Workload:
    """One SGD step of the MLP with cross-entropy at `batch` rows, every variant from the same
    weights, their updated weights checked against NumPy's."""
    data = mlp_data(seed, batch=batch)
    variants = {"gpugrad": train_step_gpugrad(data), "numpy": train_step_numpy(data)}
    run_torch = train_step_torch(data)
    if run_torch is not None:
        variants["torch"] = run_torch
    names = [f"{kind}{i + 1}" for i in range(len(data.weights)) for kind in ("W", "b")]
    _check_same(variants, names=names)
    sizes = "-".join(map(str, MLP_SIZES))
    return Workload(
        name=name,
        description=f"SGD step of MLP {sizes}, cross-entropy, float32, batch {batch}",
        variants=variants,
    )


# --- conv2d forward + backward ----------------------------------------------------------------
CONV_BATCH, CONV_IN, CONV_OUT, CONV_SIZE, CONV_KERNEL, CONV_PAD = 64, 3, 32, 32, 3, 1


@dataclass
class ConvData:
    """Images, weight, bias and the output's gradient, shared by every variant (float32)."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    c: np.ndarray  # the gradient arriving at the output


def conv_data(seed: int = 0) -> ConvData:
    """Draw the images, a weight scaled by 1/√fan_in, a bias and the output's gradient."""
    gg.manual_seed(seed)
    fan_in = CONV_IN * CONV_KERNEL**2
    x = gg.randn(CONV_BATCH, CONV_IN, CONV_SIZE, CONV_SIZE).numpy()
    weight = (gg.randn(CONV_OUT, CONV_IN, CONV_KERNEL, CONV_KERNEL) / fan_in**0.5).numpy()
    bias = (gg.randn(CONV_OUT) * 0.1).numpy()
    c = gg.randn(CONV_BATCH, CONV_OUT, CONV_SIZE, CONV_SIZE).numpy()
    return ConvData(x, weight, bias, c)


def conv2d_gpugrad(data: ConvData) -> Run:
    """gpugrad: conv2d (padding 1), then `out.backward(c)`: gradients of x, W and b."""
    from gpugrad.ops.conv import conv2d

    x = gg.tensor(data.x, requires_grad=True)
    w, b = gg.tensor(data.weight, requires_grad=True), gg.tensor(data.bias, requires_grad=True)
    c = gg.tensor(data.c)

    def run() -> list[np.ndarray]:
        x.grad = w.grad = b.grad = None
        conv2d(x, w, b, padding=CONV_PAD).backward(c)
        return [x.grad.data, w.grad.data, b.grad.data]

    return run


def conv2d_torch(data: ConvData) -> Run | None:
    """PyTorch's conv2d and `out.backward(c)` (None where torch is missing)."""
    if torch is None:
        return None
    x = torch.tensor(data.x, requires_grad=True)
    w = torch.tensor(data.weight, requires_grad=True)
    b = torch.tensor(data.bias, requires_grad=True)
    c = torch.from_numpy(data.c.copy())

    def run() -> list[np.ndarray]:
        x.grad = w.grad = b.grad = None
        torch.nn.functional.conv2d(x, w, b, padding=CONV_PAD).backward(c)
        return [x.grad.numpy(), w.grad.numpy(), b.grad.numpy()]

    return run


def conv2d_numpy(data: ConvData) -> Run:
    """Hand-written NumPy: im2col by one slice copy per kernel position, one product forward;
    dW = Σ_n dY·colsᵀ, db = Σ dY, dX by adding W ᵀ·dY back slice by slice (col2im)."""
    x, w, b, c = data.x, data.weight, data.bias, data.c
    n, ch, h, wd = x.shape
    o, k, p = w.shape[0], CONV_KERNEL, CONV_PAD
    w2 = w.reshape(o, -1)

    def run() -> list[np.ndarray]:
        padded = np.zeros((n, ch, h + 2 * p, wd + 2 * p), dtype=x.dtype)
        padded[:, :, p : p + h, p : p + wd] = x
        cols = np.empty((n, ch, k, k, h, wd), dtype=x.dtype)
        for i in range(k):
            for j in range(k):
                cols[:, :, i, j] = padded[:, :, i : i + h, j : j + wd]
        cols = cols.reshape(n, ch * k * k, h * wd)
        out = (w2 @ cols).reshape(n, o, h, wd) + b[:, None, None]
        del out  # computed, as the other variants do; the backward needs only c
        g = c.reshape(n, o, h * wd)
        dw = (g @ cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        db = c.sum(axis=(0, 2, 3))
        dcols = (w2.T @ g).reshape(n, ch, k, k, h, wd)
        dpad = np.zeros_like(padded)
        for i in range(k):
            for j in range(k):
                dpad[:, :, i : i + h, j : j + wd] += dcols[:, :, i, j]
        return [dpad[:, :, p : p + h, p : p + wd], dw, db]

    return run


def conv2d(seed: int = 0) -> Workload:
    """conv2d forward + backward with every available variant, gradients checked against NumPy."""
    data = conv_data(seed)
    variants = {"gpugrad": conv2d_gpugrad(data), "numpy": conv2d_numpy(data)}
    run_torch = conv2d_torch(data)
    if run_torch is not None:
        variants["torch"] = run_torch
    _check_same(variants, names=["x", "W", "b"])
    return Workload(
        name="conv2d",
        description=(
            f"conv2d {CONV_IN}->{CONV_OUT} channels, {CONV_KERNEL}x{CONV_KERNEL} kernel, padding "
            f"{CONV_PAD}, float32, batch {CONV_BATCH} of {CONV_SIZE}x{CONV_SIZE}: forward + "
            "backward to input, weight and bias"
        ),
        variants=variants,
    )


# --- GELU (exact, through erf) forward + backward on a large tensor -------------------------------
GELU_SIZE = 1_000_000


def gelu_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The input (standard normal, times 3 so both erf regimes are hit) and the output's
    gradient, float32."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(GELU_SIZE) * 3).astype(np.float32)
    return x, rng.standard_normal(GELU_SIZE).astype(np.float32)


def gelu_gpugrad(x0: np.ndarray, c0: np.ndarray) -> Run:
    """gpugrad: F.gelu (exact), then `out.backward(c)`: the gradient of x."""
    import gpugrad.nn.functional as F

    x, c = gg.tensor(x0, requires_grad=True), gg.tensor(c0)

    def run() -> np.ndarray:
        x.grad = None
        F.gelu(x).backward(c)
        return x.grad.data

    return run


def gelu_torch(x0: np.ndarray, c0: np.ndarray) -> Run | None:
    """PyTorch's exact GELU and `out.backward(c)` (None where torch is missing)."""
    if torch is None:
        return None
    x, c = torch.tensor(x0, requires_grad=True), torch.from_numpy(c0.copy())

    def run() -> np.ndarray:
        x.grad = None
        torch.nn.functional.gelu(x).backward(c)
        return x.grad.numpy()

    return run


def gelu(seed: int = 0) -> Workload:
    """Exact GELU forward + backward with gpugrad and torch, gradients checked against the
    float64 formula with libm's erf (NumPy has no erf, so there is no NumPy variant)."""
    import math

    x0, c0 = gelu_data(seed)
    x = x0.astype(np.float64)
    cdf = (1 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2))) / 2
    want = c0 * (cdf + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi))
    variants = {"gpugrad": gelu_gpugrad(x0, c0)}
    run_torch = gelu_torch(x0, c0)
    if run_torch is not None:
        variants["torch"] = run_torch
    for variant, run in variants.items():
        got = run()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{variant}: dx")
    return Workload(
        name="gelu",
        description=(
            f"exact GELU (erf) on {GELU_SIZE:,} float32 elements: forward + backward to the input"
        ),
        variants=variants,
    )


# --- the MLP training step at other batch sizes ----------------------------------------------
def train_step_at(batch: int) -> Callable[[int], Workload]:
    """The `train_step` workload at `batch` rows (the issue's bars name batch 32 and 256)."""

    def build(seed: int = 0) -> Workload:
        return train_step(seed, batch, name=f"train_step_{batch}")

    return build


# --- a GPT training step (examples/char_gpt.py) -------------------------------------------------
GPT_VOCAB, GPT_BLOCK, GPT_LAYERS, GPT_HEADS, GPT_WIDTH = 65, 64, 4, 4, 128
GPT_LR, GPT_BETAS, GPT_DECAY = 3e-3, (0.9, 0.95), 0.1


def _char_gpt() -> Any:
    """examples/char_gpt.py as a module (examples/ is not a package)."""
    import importlib.util

    name = "bench_example_char_gpt"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _ROOT / "examples" / "char_gpt.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass
class GptData:
    """The model's weights (by parameter name) and one batch of tokens and targets."""

    weights: dict[str, np.ndarray]
    tokens: np.ndarray
    targets: np.ndarray


def gpt_data(seed: int = 0, batch: int = 16) -> GptData:
    """Weights as the example initialises them, and random tokens (int64)."""
    example = _char_gpt()
    gg.manual_seed(seed)
    model = example.GPT(example.GPTConfig(vocab_size=GPT_VOCAB, block_size=GPT_BLOCK,
                                          n_layer=GPT_LAYERS, n_head=GPT_HEADS,
                                          n_embd=GPT_WIDTH))  # fmt: skip
    weights = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, GPT_VOCAB, (batch, GPT_BLOCK))
    targets = rng.integers(0, GPT_VOCAB, (batch, GPT_BLOCK))
    return GptData(weights, tokens, targets)


def gpt_step_gpugrad(data: GptData) -> Run:
    """gpugrad: the example's GPT (sdpa attention), cross-entropy, AdamW: one step a call;
    returns the loss and the gradients (before the update)."""
    example = _char_gpt()
    model = example.GPT(example.GPTConfig(vocab_size=GPT_VOCAB, block_size=GPT_BLOCK,
                                          n_layer=GPT_LAYERS, n_head=GPT_HEADS,
                                          n_embd=GPT_WIDTH))  # fmt: skip
    model.load_state_dict({k: gg.tensor(v) for k, v in data.weights.items()})
    opt = model.configure_optimizer(weight_decay=GPT_DECAY, lr=GPT_LR, betas=GPT_BETAS)
    params = list(model.parameters())
    x, y = gg.tensor(data.tokens), gg.tensor(data.targets)

    def run() -> list[np.ndarray]:
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        grads = [loss.data, *(p.grad.data for p in params)]
        opt.step()
        return grads

    return run


def gpt_step_torch(data: GptData) -> Run | None:
    """PyTorch: the same model written with torch.nn, the same weights, AdamW with the same
    groups (None where torch is missing)."""
    if torch is None:
        return None
    tnn, tF = torch.nn, torch.nn.functional
    width = GPT_WIDTH

    class Attention(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = tnn.Linear(width, 3 * width)
            self.proj = tnn.Linear(width, width)

        def forward(self, x: Any) -> Any:
            b, t, c = x.size()
            q, k, v = (
                part.view(b, t, GPT_HEADS, c // GPT_HEADS).transpose(1, 2)
                for part in self.qkv(x).split(width, dim=2)
            )
            y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class Block(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1, self.attn, self.ln_2 = (
                tnn.LayerNorm(width),
                Attention(),
                tnn.LayerNorm(width),
            )
            self.mlp = tnn.Sequential()
            self.mlp.add_module("fc", tnn.Linear(width, 4 * width))
            self.mlp.add_module("gelu", tnn.GELU())
            self.mlp.add_module("proj", tnn.Linear(4 * width, width))

        def forward(self, x: Any) -> Any:
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(tnn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = tnn.ModuleDict(
                dict(
                    wte=tnn.Embedding(GPT_VOCAB, width),
                    wpe=tnn.Embedding(GPT_BLOCK, width),
                    h=tnn.ModuleList([Block() for _ in range(GPT_LAYERS)]),
                    ln_f=tnn.LayerNorm(width),
                )
            )
            self.lm_head = tnn.Linear(width, GPT_VOCAB, bias=False)
            self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx: Any, targets: Any) -> Any:
            x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.size(1)))
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            return tF.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    model = GPT()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in data.weights.items()})
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": GPT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=GPT_LR, betas=GPT_BETAS)
    x, y = torch.from_numpy(data.tokens.copy()), torch.from_numpy(data.targets.copy())

    def run() -> list[np.ndarray]:
        opt.zero_grad()
        loss = model(x, y)
        loss.backward()
        grads = [loss.detach().numpy().copy(), *(p.grad.numpy().copy() for p in params)]
        opt.step()
        return grads

    return run


def gpt_step_at(batch: int) -> Callable[[int], Workload]:
    """The GPT step at `batch` windows; the first step's loss and gradients of gpugrad and
    torch (from the same weights) are checked against each other before any timing."""

    def build(seed: int = 0) -> Workload:
        data = gpt_data(seed, batch)
        variants = {"gpugrad": gpt_step_gpugrad(data)}
        run_torch = gpt_step_torch(data)
        if run_torch is not None:
            variants["torch"] = run_torch
            ours, theirs = variants["gpugrad"](), run_torch()
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                scale = float(np.abs(b).max()) or 1.0
                np.testing.assert_allclose(
                    a, b, rtol=1e-3, atol=1e-4 * scale, err_msg=f"GPT step: output {i}"
                )
        return Workload(
            name=f"gpt_step_{batch}",
            description=(
                f"AdamW step of examples/char_gpt.py's GPT ({GPT_LAYERS} layers, {GPT_HEADS} "
                f"heads, width {GPT_WIDTH}, block {GPT_BLOCK}, vocab {GPT_VOCAB}), float32, "
                f"batch {batch}"
            ),
            variants=variants,
        )

    return build


# --- stack of many one-element tensors, forward + backward ---------------------------------------
STACK_COUNT = 100_000


def stack_workload(seed: int = 0) -> Workload:
    """gg.stack of STACK_COUNT one-element leaves and backward (each leaf's gradient); the
    NumPy variant stacks and splits the gradient back into one array per input."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(STACK_COUNT).astype(np.float32)
    leaves = [gg.tensor(values[i : i + 1], requires_grad=True) for i in range(STACK_COUNT)]
    arrays = [values[i : i + 1].copy() for i in range(STACK_COUNT)]
    weight = rng.standard_normal((STACK_COUNT, 1)).astype(np.float32)

    def run_gpugrad() -> np.ndarray:
        for t in leaves:
            t.grad = None
        (gg.stack(leaves) * gg.tensor(weight)).sum().backward()
        return np.concatenate([t.grad.data for t in leaves])

    def run_numpy() -> np.ndarray:
        np.stack(arrays)  # the forward, as the others compute it
        grads = list(weight)  # one gradient per input: the rows of the upstream gradient
        return np.concatenate(grads)

    variants = {"gpugrad": run_gpugrad, "numpy": run_numpy}
    if torch is not None:
        tleaves = [torch.tensor(a, requires_grad=True) for a in arrays]
        tweight = torch.from_numpy(weight)

        def run_torch() -> np.ndarray:
            for t in tleaves:
                t.grad = None
            (torch.stack(tleaves) * tweight).sum().backward()
            return np.concatenate([t.grad.numpy() for t in tleaves])

        variants["torch"] = run_torch
    _check_same(variants, names=["leaves"])
    return Workload(
        name="stack",
        description=f"stack of {STACK_COUNT:,} one-element float32 tensors: forward + backward",
        variants=variants,
    )


# --- LeNet-5 training step ------------------------------------------------------------------------
LENET_BATCH, LENET_LR, LENET_MOMENTUM = 64, 0.01, 0.9


def _lenet_layers(nn: Any) -> list[Any]:
    """LeNet-5 on 28x28 inputs, in either library's `nn`: conv(1→6, 5, pad 2), ReLU, max-pool 2,
    conv(6→16, 5), ReLU, max-pool 2, then 400→120→84→10 with ReLUs."""
    return [
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ]  # fmt: skip


@dataclass
class LenetData:
    """Images, labels and the initial parameters (gpugrad's initialisation, float32)."""

    x: np.ndarray
    y: np.ndarray
    state: dict[str, np.ndarray]


def lenet_data(seed: int = 0) -> LenetData:
    """A batch of standard-normal 28x28 images, labels 0..9, and LeNet's initial weights."""
    from gpugrad import nn

    gg.manual_seed(seed)
    model = nn.Sequential(*_lenet_layers(nn))
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((LENET_BATCH, 1, 28, 28)).astype(np.float32)
    return LenetData(x, (np.arange(LENET_BATCH) % 10).astype(np.int64), state)


def lenet_gpugrad(data: LenetData) -> Run:
    """gpugrad: nn.Sequential LeNet-5, F.cross_entropy, optim.SGD with momentum; one step."""
    from gpugrad import nn, optim
    from gpugrad.nn import functional as F

    model = nn.Sequential(*_lenet_layers(nn))
    model.load_state_dict({k: gg.tensor(v) for k, v in data.state.items()})
    opt = optim.SGD(model.parameters(), lr=LENET_LR, momentum=LENET_MOMENTUM)
    x, y = gg.tensor(data.x), gg.tensor(data.y)

    def run() -> list[np.ndarray]:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        return [p.data for p in model.parameters()]

    return run


def lenet_torch(data: LenetData) -> Run | None:
    """PyTorch: the same model, loss and optimizer from the same weights (None without torch)."""
    if torch is None:
        return None
    model = torch.nn.Sequential(*_lenet_layers(torch.nn))
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in data.state.items()})
    opt = torch.optim.SGD(model.parameters(), lr=LENET_LR, momentum=LENET_MOMENTUM)
    x, y = torch.from_numpy(data.x.copy()), torch.from_numpy(data.y)

    def run() -> list[np.ndarray]:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        return [p.detach().numpy() for p in model.parameters()]

    return run


def lenet(seed: int = 0) -> Workload:
    """One LeNet-5 SGD-momentum step; with torch installed, the updated parameters of the
    first step are checked against PyTorch's (there is no hand-written NumPy LeNet)."""
    data = lenet_data(seed)
    variants = {"gpugrad": lenet_gpugrad(data)}
    run_torch = lenet_torch(data)
    if run_torch is not None:
        variants["torch"] = run_torch
        mine, theirs = _as_list(variants["gpugrad"]()), _as_list(run_torch())
        for name, got, want in zip(data.state, mine, theirs, strict=True):
            scale = float(np.abs(want).max()) or 1.0
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale, err_msg=name)
    return Workload(
        name="lenet",
        description=(
            f"LeNet-5 SGD step (momentum {LENET_MOMENTUM}), cross-entropy, float32, batch "
            f"{LENET_BATCH} of 1x28x28"
        ),
        variants=variants,
    )


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "op_chain": op_chain,
    "mlp": mlp,
    "train_step": train_step,
    "conv2d": conv2d,
    "gelu": gelu,
    "lenet": lenet,
    "train_step_32": train_step_at(32),
    "train_step_2048": train_step_at(2048),
    "gpt_step_16": gpt_step_at(16),
    "gpt_step_2": gpt_step_at(2),
    "stack": stack_workload,
}


# --- the same-work check -------------------------------------------------------------------
def _check_same(variants: dict[str, Run], names: list[str]) -> None:
    """Run each variant once and compare its gradients with NumPy's, at float32 tolerance."""
    want = _as_list(variants["numpy"]())
    for variant, run in variants.items():
        if variant == "numpy":
            continue
        got = _as_list(run())
        for name, g, w in zip(names, got, want, strict=True):
            if g.shape != w.shape or g.dtype != np.float32:
                raise AssertionError(
                    f"{variant}: gradient of {name} has shape {g.shape} and dtype {g.dtype}, "
                    f"NumPy's has shape {w.shape} and dtype {w.dtype}"
                )
            # Sums of hundreds of float32 products: compare relative to the gradient's scale.
            scale = float(np.abs(w).max()) or 1.0
            np.testing.assert_allclose(
                g, w, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{variant}: gradient of {name}"
            )


def _as_list(grads: Any) -> list[np.ndarray]:
    grads = grads if isinstance(grads, list) else [grads]
    return [np.array(g, copy=True) for g in grads]
