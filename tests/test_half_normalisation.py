"""float16 layer_norm and batch_norm compute their statistics in float32 (as PyTorch), so
large values do not overflow into zeros or NaN, and the result is float16."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F


def _reference(x, eps=1e-5):
    wide = x.astype("float32")
    centered = wide - wide.mean(axis=-1, keepdims=True)
    return (centered / np.sqrt((centered**2).mean(axis=-1, keepdims=True) + eps)).astype("f2")


@pytest.mark.parametrize("scale", [1.0, 1e2, 1e4, 6e4])
def test_large_float16_values_normalise_correctly(device, rng, scale):
    x = (rng.uniform(-1, 1, (3, 8)) * scale).astype("float16")  # within float16
    out = F.layer_norm(gg.tensor(x, device=device), (8,))
    assert out.dtype == np.dtype("float16")
    np.testing.assert_allclose(out.numpy().astype("f4"), _reference(x).astype("f4"), atol=2e-3)


def test_the_reported_case(device):
    x = gg.tensor([1e4, -1e4, 1e4, -1e4], dtype="float16", device=device)
    np.testing.assert_array_equal(F.layer_norm(x, (4,)).numpy(), np.array([1, -1, 1, -1], "f2"))


def test_module_with_float16_parameters_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((2, 3, 5)) * 1e4).astype("float16")
    ours = nn.LayerNorm(5, dtype="float16")
    out = ours(gg.tensor(x)).numpy()
    theirs = torch.nn.functional.layer_norm(torch.from_numpy(x), (5,)).numpy()
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype("f4"), theirs.astype("f4"), atol=2e-3)


def test_float16_gradients_flow_and_stay_float16(device, rng):
    x = gg.tensor((rng.standard_normal((2, 6)) * 1e3).astype("float16"), device=device,
                  requires_grad=True)  # fmt: skip
    w = gg.ones(6, dtype="float16", device=device, requires_grad=True)
    F.layer_norm(x, (6,), weight=w).sum().backward()
    assert x.grad.dtype == np.dtype("float16") and x.grad.shape == (2, 6)
    assert w.grad.dtype == np.dtype("float16")
    assert np.isfinite(x.grad.numpy()).all()
    # Σ over a row of the normalised values is 0, so the weight's gradient is the column sums
    # of those values, and x's gradient (a row-sum of weights through a normalisation) is ~0.
    np.testing.assert_allclose(x.grad.numpy().astype("f4"), 0, atol=1e-2)


def test_float32_and_float64_paths_are_unchanged(device, rng):
    x = rng.standard_normal((2, 4))
    for dtype in ("float32", "float64"):
        out = F.layer_norm(gg.tensor(x, dtype=dtype, device=device), (4,))
        assert out.dtype == np.dtype(dtype)
        centered = x - x.mean(-1, keepdims=True)
        expected = centered / np.sqrt((centered**2).mean(-1, keepdims=True) + 1e-5)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("layer, shape", [(nn.BatchNorm1d, (8, 3)), (nn.BatchNorm1d, (4, 3, 5)),
                                          (nn.BatchNorm2d, (2, 3, 4, 4))])  # fmt: skip
def test_batch_norm_of_large_float16_values_matches_float32(device, rng, layer, shape):
    # Deviations of ±300 square past float16's 65504; batch statistics only, since running
    # statistics of that size would not fit a float16 buffer either (as in PyTorch).
    x = (rng.choice([-1.0, 1.0], shape) * 300 + rng.uniform(-5, 5, shape)).astype("float16")
    half = layer(3, track_running_stats=False, device=device, dtype="float16")
    single = layer(3, track_running_stats=False, device=device, dtype="float32")
    out = half(gg.tensor(x, device=device))
    expected = single(gg.tensor(x.astype("float32"), device=device)).numpy()
    assert out.dtype == np.dtype("float16")
    np.testing.assert_allclose(out.numpy().astype("f4"), expected, atol=5e-3)


def test_batch_norm_float16_eval_uses_the_running_statistics(device):
    bn = nn.BatchNorm1d(2, device=device, dtype="float16").eval()
    bn.running_mean.data[...] = bn.running_mean.data.dtype.type(500)
    bn.running_var.data[...] = bn.running_var.data.dtype.type(400)
    x = gg.tensor([[520.0, 480.0]], dtype="float16", device=device)
    np.testing.assert_allclose(bn(x).numpy().astype("f4"), [[1.0, -1.0]], atol=1e-3)


def test_batch_norm_float16_gradients_stay_float16(device, rng):
    bn = nn.BatchNorm1d(2, track_running_stats=False, device=device, dtype="float16")
    x = gg.tensor((rng.standard_normal((6, 2)) * 300).astype("float16"), device=device,
                  requires_grad=True)  # fmt: skip
    (bn(x) * gg.tensor(rng.standard_normal((6, 2)).astype("f2"), device=device)).sum().backward()
    assert x.grad.dtype == bn.weight.grad.dtype == np.dtype("float16")
    assert np.isfinite(x.grad.numpy()).all() and np.isfinite(bn.weight.grad.numpy()).all()
