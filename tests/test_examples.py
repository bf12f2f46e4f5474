"""The programs in examples/: each runs for a few steps, and where PyTorch is installed the same
model built in PyTorch with the same weights gives the same loss and every gradient (float64)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """Import examples/NAME.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


# --- each example runs -----------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_char_gpt_runs(capsys, attention):
    gpt = load_example("char_gpt")
    small = "--steps 3 --batch-size 4 --accum 2 --block-size 16 --layers 1 --heads 2 --width 16"
    losses = gpt.main([*small.split(), "--attention", attention, "--sample-tokens", "20"])
    assert all(math.isfinite(v) for v in losses.values())
    out = capsys.readouterr().out
    assert "train loss" in out and "step    2" in out


def test_makemore_mlp_runs_and_learns(capsys):
    makemore = load_example("makemore_mlp")
    losses = makemore.main(["--steps", "300", "--samples", "2", "--hidden", "32"])
    assert losses["train"] < math.log(27)  # better than guessing among the characters
    assert "update/data ratio" in capsys.readouterr().out


def test_mnist_cnn_runs_and_learns(capsys):
    mnist = load_example("mnist_cnn")
    accuracy = mnist.main(["--epochs", "2", "--log-every", "5", "--workers", "1"])
    assert accuracy > 0.8
    assert "accuracy" in capsys.readouterr().out


# --- against PyTorch ---------------------------------------------------------------------------
def to_torch(t, torch):
    return torch.from_numpy(np.array(t.numpy(), copy=True))


def assert_close(ours, theirs, what, tol=1e-10):
    ours = ours.numpy() if isinstance(ours, gg.Tensor) else ours
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, what
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, err_msg=what)


def torch_gpt(cfg, torch):
    """The example's GPT written in PyTorch, with the same parameter names."""
    tnn, tF = torch.nn, torch.nn.functional

    class Attention(tnn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = tnn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
            self.proj = tnn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.qkv(x).split(cfg.n_embd, dim=2)
            q, k, v = (t.view(B, T, cfg.n_head, C // cfg.n_head).transpose(1, 2) for t in (q, k, v))
            y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = tnn.LayerNorm(cfg.n_embd), Attention()
            self.ln_2 = tnn.LayerNorm(cfg.n_embd)
            self.mlp = tnn.Sequential()
            self.mlp.add_module("fc", tnn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias))
            self.mlp.add_module("gelu", tnn.GELU())
            self.mlp.add_module("proj", tnn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = tnn.ModuleDict(
                dict(
                    wte=tnn.Embedding(cfg.vocab_size, cfg.n_embd),
                    wpe=tnn.Embedding(cfg.block_size, cfg.n_embd),
                    h=tnn.ModuleList([Block() for _ in range(cfg.n_layer)]),
                    ln_f=tnn.LayerNorm(cfg.n_embd),
                )
            )
            self.lm_head = tnn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx, targets):
            t = idx.size(1)
            x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t))
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            return tF.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return GPT().double()


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_char_gpt_matches_pytorch(attention):
    torch = pytest.importorskip("torch")
    gpt = load_example("char_gpt")
    cfg = gpt.GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    cfg.attention = attention
    gg.manual_seed(0)
    ours = gpt.GPT(cfg).double()
    theirs = torch_gpt(cfg, torch)
    weights = {k: to_torch(v, torch) for k, v in ours.state_dict().items() if "causal" not in k}
    theirs.load_state_dict(weights, strict=False)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, cfg.vocab_size, size=(3, cfg.block_size))
    targets = rng.integers(0, cfg.vocab_size, size=(3, cfg.block_size))

    _, loss = ours(gg.tensor(idx), gg.tensor(targets))
    loss.backward()
    their_loss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    their_loss.backward()
    assert_close(loss, their_loss, "loss")
    their_params = dict(theirs.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert names == list(their_params)  # the tied weight appears once, under the same name
    for name, p in ours.named_parameters():
        assert_close(p.grad, their_params[name].grad, name)


def test_makemore_mlp_matches_pytorch():
    torch = pytest.importorskip("torch")
    mm = load_example("makemore_mlp")
    g = gg.Generator().manual_seed(42)
    C, layers, params = mm.make_network(vocab=9, block_size=3, n_embd=4, n_hidden=12, g=g)
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, 9, size=(16, 3)), rng.integers(0, 9, size=16)

    loss = mm.forward(C, layers, gg.tensor(X), gg.tensor(Y))
    for layer in layers:
        layer.out.retain_grad()
    loss.backward()

    tparams = [to_torch(p, torch).requires_grad_() for p in params]
    tC, rest = tparams[0], iter(tparams[1:])
    x = tC[torch.from_numpy(X)].view(16, -1)
    outs = []
    for layer in layers:
        if isinstance(layer, mm.Linear):
            w = next(rest)
            x = x @ w + (next(rest) if layer.bias is not None else 0)
        elif isinstance(layer, mm.BatchNorm1d):
            gamma, beta = next(rest), next(rest)
            mean = x.mean(0, keepdim=True)
            var = x.var(0, keepdim=True, unbiased=False)
            x = gamma * (x - mean) / (var + layer.eps).sqrt() + beta
        else:
            x = torch.tanh(x)
        x.retain_grad()
        outs.append(x)
    their_loss = torch.nn.functional.cross_entropy(x, torch.from_numpy(Y))
    their_loss.backward()
    assert_close(loss, their_loss, "loss")
    for i, (p, tp) in enumerate(zip(params, tparams)):
        assert_close(p.grad, tp.grad, f"parameter {i}")
    for i, (layer, out) in enumerate(zip(layers, outs)):
        assert_close(layer.out.grad, out.grad, f"layer {i} output")
    # the hand-written update, as the example does it
    before = [p.numpy().copy() for p in params]
    for p in params:
        p.data += -0.1 * p.grad
    for b, p in zip(before, params):
        assert isinstance(p.data, np.ndarray)
        np.testing.assert_allclose(p.numpy(), b - 0.1 * p.grad.numpy(), rtol=1e-14)


def test_mnist_cnn_matches_pytorch_over_adadelta_steps():
    torch = pytest.importorskip("torch")
    mnist = load_example("mnist_cnn")
    gg.manual_seed(3)
    ours = mnist.Net(side=8).double().eval()  # eval: no dropout, so both runs see the same net
    tnn, tF = torch.nn, torch.nn.functional

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(1, 32, 3, 1), tnn.Conv2d(32, 64, 3, 1)
            self.fc1, self.fc2 = tnn.Linear(256, 128), tnn.Linear(128, 10)

        def forward(self, x):
            x = tF.max_pool2d(tF.relu(self.conv2(tF.relu(self.conv1(x)))), 2)
            x = tF.relu(self.fc1(torch.flatten(x, 1)))
            return tF.log_softmax(self.fc2(x), dim=1)

    theirs = Net().double().eval()
    theirs.load_state_dict({k: to_torch(v, torch) for k, v in ours.state_dict().items()})
    opt = gg.optim.Adadelta(ours.parameters(), lr=1.0)
    sched = gg.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    topt = torch.optim.Adadelta(theirs.parameters(), lr=1.0)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.7)
    rng = np.random.default_rng(2)
    for step in range(3):
        x = rng.normal(size=(5, 1, 8, 8))
        y = rng.integers(0, 10, size=5)
        opt.zero_grad()
        loss = gg.nn.functional.nll_loss(ours(gg.tensor(x)), gg.tensor(y))
        loss.backward()
        topt.zero_grad()
        their_loss = tF.nll_loss(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        their_loss.backward()
        assert_close(loss, their_loss, f"loss at step {step}")
        for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            assert_close(p.grad, tp.grad, f"{name} grad at step {step}")
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        assert_close(p, tp, f"{name} after 3 Adadelta steps")
