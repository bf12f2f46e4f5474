"""Binary cross-entropy: probabilities outside [0, 1] are refused (as PyTorch), NaN stays NaN,
and the loss keeps the input's dtype."""

import math

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F


@pytest.mark.parametrize("bad", [1.5, -0.25, math.inf, -math.inf])
@pytest.mark.parametrize("loss", ["functional", "module"])
def test_input_outside_zero_one_raises_naming_the_value(device, bad, loss):
    p = gg.tensor([0.5, bad, 0.25], device=device)
    y = gg.ones(3, device=device)
    call = F.binary_cross_entropy if loss == "functional" else nn.BCELoss()
    with pytest.raises(gg.ArgumentError, match=rf"input should be between 0 and 1.*{bad!r}"):
        call(p, y)


@pytest.mark.parametrize("bad", [2.0, -1.0])
def test_target_outside_zero_one_raises_naming_the_value(device, bad):
    p = gg.full((2, 2), 0.5, device=device)
    y = gg.tensor([[0.0, 1.0], [bad, 0.5]], device=device)
    with pytest.raises(gg.ArgumentError, match=rf"target should be between 0 and 1.*{bad!r}"):
        F.binary_cross_entropy(p, y)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nan_input_gives_nan_loss(device, reduction):
    p = gg.tensor([0.5, math.nan, 0.25], dtype="float64", device=device, requires_grad=True)
    y = gg.tensor([1.0, 1.0, 0.0], dtype="float64", device=device)
    loss = F.binary_cross_entropy(p, y, reduction=reduction)
    values = loss.numpy().reshape(-1)
    if reduction == "none":
        assert np.isnan(values[1])
        np.testing.assert_allclose(values[[0, 2]], [-math.log(0.5), -math.log(0.75)])
    else:
        assert np.isnan(values[0])
    loss.sum().backward()
    grad = p.grad.numpy()
    assert np.isnan(grad[1]) and np.isfinite(grad[[0, 2]]).all()


def test_nan_target_gives_nan_loss(device):
    p = gg.full((2,), 0.5, device=device)
    y = gg.tensor([math.nan, 1.0], device=device)
    loss = F.binary_cross_entropy(p, y, reduction="none").numpy()
    assert np.isnan(loss[0]) and np.isfinite(loss[1])


def test_the_ends_of_the_range_are_accepted(device):
    p = gg.tensor([0.0, 1.0, 0.0, 1.0], device=device)
    y = gg.tensor([0.0, 1.0, 1.0, 0.0], device=device)
    loss = F.binary_cross_entropy(p, y, reduction="none").numpy()
    np.testing.assert_array_equal(loss, np.array([0, 0, 100, 100], "f4"))


def test_an_empty_input_is_accepted(device):
    loss = F.binary_cross_entropy(
        gg.zeros(0, device=device), gg.zeros(0, device=device), reduction="sum"
    )
    assert loss.item() == 0.0


def test_values_match_pytorch_inside_the_range(rng):
    torch = pytest.importorskip("torch")
    p = rng.uniform(0, 1, (3, 4))
    y = rng.uniform(0, 1, (3, 4))
    ours = F.binary_cross_entropy(gg.tensor(p, dtype="float64"), gg.tensor(y, dtype="float64"))
    theirs = torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(y))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("fn", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_loss_keeps_the_input_dtype(device, dtype, fn):
    x = gg.full((3,), 0.25, dtype=dtype, device=device)
    assert fn(x, gg.ones(3, dtype=dtype, device=device)).dtype == np.dtype(dtype)
    assert fn(x, [1.0, 0.0, 1.0]).dtype == np.dtype(dtype)  # Python data takes x's dtype


@pytest.mark.parametrize("target_dtype", ["int64", "int32", "bool", "float64"])
@pytest.mark.parametrize("fn", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits])
def test_target_of_another_dtype_is_refused(device, target_dtype, fn):
    x = gg.full((2,), 0.5, device=device)
    y = gg.ones(2, device=device).astype(target_dtype)
    with pytest.raises(gg.DTypeError, match=rf"target is {target_dtype} but input is float32"):
        fn(x, y)
