"""F.pad, F.normalize, F.cosine_similarity and F.one_hot: values against PyTorch, gradcheck
and gradgradcheck in float64 (with broadcasting and size-1 axes), and error tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.errors import ArgumentError, DTypeError, ShapeError

# (input shape, pad, mode): PyTorch's order, pairs from the last axis backwards.
PADS = [
    ((5,), (2, 3), "constant"),
    ((2, 3, 4), (1, 0, 2, 1), "constant"),
    ((2, 3, 4), (-1, 2, 0, -2), "constant"),
    ((2, 1, 4), (1, 1, 0, 0, 1, 2), "constant"),
    ((2, 3, 5), (2, 3), "reflect"),
    ((1, 2, 4, 5), (1, 2, 3, 1), "reflect"),
    ((2, 3, 4), (3, 3), "reflect"),
    ((2, 3, 5), (2, 3), "replicate"),
    ((1, 2, 1, 4), (1, 2, 3, 1), "replicate"),
    ((2, 2, 3, 2, 3), (1, 1, 2, 0, 1, 2), "replicate"),
]


@pytest.mark.parametrize(("shape", "pad", "mode"), PADS, ids=str)
def test_pad_matches_torch(shape, pad, mode, device, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    ours = F.pad(gg.tensor(x, device=device), pad, mode=mode, value=0.5)
    kwargs = {"value": 0.5} if mode == "constant" else {}
    theirs = torch.nn.functional.pad(torch.tensor(x), pad, mode=mode, **kwargs)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize(("shape", "pad", "mode"), PADS, ids=str)
def test_pad_gradients(shape, pad, mode, device, rng):
    x = leaf(rng.standard_normal(shape), device)
    check(lambda x: F.pad(x, pad, mode=mode), x)


def test_pad_gradient_of_reflected_elements_adds_up(device):
    x = leaf([1.0, 2.0, 3.0], device)
    F.pad(x, (2, 2), mode="reflect").sum().backward()  # [3, 2, 1, 2, 3, 2, 1]
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 3.0, 2.0])


PAD_ERRORS = [
    ((2, 3), (1,), {}, ShapeError, r"\(1,\)"),
    ((2, 3), (1, 1, 1, 1, 1, 1), {}, ShapeError, r"\(2, 3\)"),
    ((2, 3), (1, 1), {"mode": "circular"}, ArgumentError, "circular"),
    ((2, 3), (1.5, 1), {}, ArgumentError, "1.5"),
    ((2, 3), (3, 0), {"mode": "reflect"}, ShapeError, r"\(3, 0\).*size 3"),
    ((2, 3), (-1, 0), {"mode": "replicate"}, ShapeError, "-1"),
    ((2, 0), (1, 0), {"mode": "replicate"}, ShapeError, "size 0"),
    ((2, 3), (-2, -2), {}, ShapeError, r"\(-2, -2\)"),
]


@pytest.mark.parametrize(("shape", "pad", "kwargs", "error", "named"), PAD_ERRORS)
def test_pad_errors(shape, pad, kwargs, error, named):
    with pytest.raises(error, match=named):
        F.pad(gg.zeros(*shape), pad, **kwargs)
    with pytest.raises(TypeError, match="list"):
        F.pad([1.0, 2.0], (1, 1))


# --- normalize ---------------------------------------------------------------------------------
NORMALIZE = [
    ((3, 4), {}),
    ((2, 3, 4), {"p": 1.0, "axis": -1}),
    ((2, 1, 4), {"p": 3.0, "axis": 0}),
    ((4, 3), {"p": math.inf}),
    ((3,), {"axis": 0, "eps": 0.5}),
]


@pytest.mark.parametrize(("shape", "options"), NORMALIZE, ids=str)
def test_normalize_matches_torch(shape, options, device, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape)
    ours = F.normalize(gg.tensor(x, device=device), **options)
    t_options = {("dim" if k == "axis" else k): v for k, v in options.items()}
    theirs = torch.nn.functional.normalize(torch.tensor(x), **t_options)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("shape", "options"), NORMALIZE, ids=str)
def test_normalize_gradchecks(shape, options, device, rng):
    """Runs without PyTorch: only the value comparison above needs it."""
    check(lambda x: F.normalize(x, **options), leaf(rng.standard_normal(shape), device))


def test_normalize_of_a_zero_vector_is_zero_with_a_finite_gradient(device):
    # The clamped norm is the constant eps there, so the gradient is 1/eps (as PyTorch's),
    # not the NaN that the derivative of √0 would bring.
    x = leaf(np.zeros((2, 3)), device)
    y = F.normalize(x, axis=1, eps=1e-3)
    y.sum().backward()
    assert np.all(y.numpy() == 0)
    np.testing.assert_allclose(x.grad.numpy(), 1e3, rtol=1e-12)


# --- cosine_similarity ---------------------------------------------------------------------------
COSINE = [
    ((3, 4), (3, 4), {}),
    ((2, 3, 4), (2, 3, 4), {"axis": -1}),
    ((2, 1, 4), (1, 3, 4), {"axis": 2}),
    ((5, 4), (4,), {"axis": -1}),
    ((2, 4), (2, 4), {"axis": 0, "eps": 0.3}),
]


@pytest.mark.parametrize(("s1", "s2", "options"), COSINE, ids=str)
def test_cosine_similarity_matches_torch(s1, s2, options, device, rng):
    torch = pytest.importorskip("torch")
    a, b = rng.standard_normal(s1), rng.standard_normal(s2)
    ga, gb = leaf(a, device), leaf(b, device)
    ours = F.cosine_similarity(ga, gb, **options)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    t_options = {("dim" if k == "axis" else k): v for k, v in options.items()}
    theirs = torch.nn.functional.cosine_similarity(ta, tb, **t_options)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    g = rng.standard_normal(ours.shape)
    ours.backward(gg.tensor(g, device=device))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(ga.grad.numpy(), ta.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb.grad.numpy(), tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("s1", "s2", "options"), COSINE, ids=str)
def test_cosine_similarity_gradchecks(s1, s2, options, device, rng):
    a, b = leaf(rng.standard_normal(s1), device), leaf(rng.standard_normal(s2), device)
    check(lambda a, b: F.cosine_similarity(a, b, **options), a, b)


def test_cosine_similarity_of_parallel_vectors_is_one(device):
    a = gg.tensor([[1.0, 2.0, 2.0]], device=device)
    assert F.cosine_similarity(a, 3 * a).item() == pytest.approx(1.0)
    assert F.cosine_similarity(a, -a).item() == pytest.approx(-1.0)


SIMILARITY_ERRORS = [
    (lambda: F.normalize(gg.zeros(2, 3), p=0), ArgumentError, "p must be positive, got 0"),
    (lambda: F.normalize(gg.zeros(2, 3), eps=-1.0), ArgumentError, "-1.0"),
    (lambda: F.normalize(gg.zeros(2, 3), axis=2), ShapeError, "axis 2"),
    (lambda: F.normalize(gg.zeros(2, 3, dtype="int64")), DTypeError, "int64"),
    (lambda: F.cosine_similarity(gg.zeros(2, 3), gg.zeros(3, 2)), ShapeError, r"\(3, 2\)"),
    (lambda: F.cosine_similarity(gg.zeros(2, 3), gg.zeros(2, 3, dtype="float64")), DTypeError,
     "float64"),
    (lambda: F.cosine_similarity(gg.zeros(2, 3), [1.0, 2.0, 3.0]), TypeError, "list"),
    (lambda: F.cosine_similarity(gg.zeros(2, 3), gg.zeros(2, 3), axis=-3), ShapeError, "-3"),
    (lambda: F.cosine_similarity(gg.zeros(2, 3), gg.zeros(2, 3), eps=-0.1), ArgumentError,
     "-0.1"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "error", "named"), SIMILARITY_ERRORS)
def test_similarity_errors(make, error, named):
    with pytest.raises(error, match=named):
        make()


# --- one_hot -----------------------------------------------------------------------------------
@pytest.mark.parametrize("num_classes", [-1, 6])
def test_one_hot_matches_torch(num_classes, device):
    torch = pytest.importorskip("torch")
    labels = np.array([[0, 3], [2, 1], [3, 3]])
    ours = F.one_hot(gg.tensor(labels, device=device), num_classes)
    theirs = torch.nn.functional.one_hot(torch.tensor(labels), num_classes)
    assert ours.dtype == gg.int64
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_one_hot_errors():
    with pytest.raises(DTypeError, match="float32"):
        F.one_hot(gg.tensor([0.0, 1.0]))
    with pytest.raises(ShapeError, match=r"\[0, 3\)"):
        F.one_hot(gg.tensor([0, 3]), num_classes=3)
