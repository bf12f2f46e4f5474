"""Losses: values against NumPy formulas for every reduction, first and second derivatives,
extreme logits, dtypes, input checks, modules, and the fused softmax-cross-entropy primitive."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.backend import get_backend
from gpugrad.nn import loss as L


def _reduce(values, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](values)


def _np_log_softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _labels(device, values):
    return gg.tensor(np.asarray(values, dtype=np.int64), device=device)


# --- elementwise losses: name -> (F call, NumPy formula of (x, y), target maker) ------------
def _huber(d, delta):
    a = np.abs(d)
    return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))


def _np_bce_logits(x, y, pw=1.0):
    log_sig = -np.logaddexp(0, -x)
    log_one_minus = -np.logaddexp(0, x)
    return -(pw * y * log_sig + (1 - y) * log_one_minus)


ELEMENTWISE = {
    "mse": (F.mse_loss, lambda x, y: (x - y) ** 2),
    "l1": (F.l1_loss, lambda x, y: np.abs(x - y)),
    "huber": (
        lambda x, y, **k: F.huber_loss(x, y, delta=0.7, **k),
        lambda x, y: _huber(x - y, 0.7),
    ),
    "smooth_l1": (
        lambda x, y, **k: F.smooth_l1_loss(x, y, beta=0.5, **k),
        lambda x, y: _huber(x - y, 0.5) / 0.5,
    ),
    "bce": (F.binary_cross_entropy, lambda p, y: -(y * np.log(p) + (1 - y) * np.log(1 - p))),
    "bce_logits": (F.binary_cross_entropy_with_logits, _np_bce_logits),
    "bce_logits_pos_weight": (
        lambda x, y, **k: F.binary_cross_entropy_with_logits(
            x, y, pos_weight=gg.tensor([0.5, 2.0, 3.0], dtype="float64", device=x.device), **k
        ),
        lambda x, y: _np_bce_logits(x, y, np.array([0.5, 2.0, 3.0])),
    ),
    "kl_div": (F.kl_div, lambda x, y: y * (np.log(y) - x)),
    "kl_div_log_target": (
        lambda x, y, **k: F.kl_div(x, y, log_target=True, **k),
        lambda x, y: np.exp(y) * (y - x),
    ),
    "hinge_embedding": (
        lambda x, y, **k: F.hinge_embedding_loss(x, y, margin=1.5, **k),
        lambda x, y: np.where(y == 1, x, np.maximum(0, 1.5 - x)),
    ),
}


def _elementwise_inputs(name, rng, shape=(4, 3)):
    """Inputs in each loss's domain, clear of its kinks (so finite differences are smooth)."""
    x = rng.uniform(0.2, 2.0, shape) * rng.choice([-1, 1], shape)
    y = x + rng.uniform(0.1, 1.5, shape) * rng.choice([-1, 1], shape)  # |x − y| ≥ 0.1
    if name == "bce":
        x, y = rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape)
    elif name.startswith("bce_logits"):
        y = rng.uniform(0, 1, shape)
    elif name == "kl_div":
        y = rng.uniform(0.1, 1, shape)
    elif name == "kl_div_log_target":
        y = np.log(rng.uniform(0.1, 1, shape))
    elif name == "hinge_embedding":
        y = rng.choice([-1.0, 1.0], shape)
        x = np.where(np.abs(1.5 - x) < 0.1, x + 0.3, x)
    elif name in ("huber", "smooth_l1"):  # keep |x − y| off the switch point
        delta = 0.7 if name == "huber" else 0.5
        y = np.where(np.abs(np.abs(x - y) - delta) < 0.05, y + 0.2, y)
    return x, y


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_losses_match_numpy(name, reduction, device, rng):
    fn, formula = ELEMENTWISE[name]
    x, y = _elementwise_inputs(name, rng)
    got = fn(leaf(x, device), leaf(y, device), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), _reduce(formula(x, y), reduction), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_loss_derivatives(name, device, rng):
    fn = ELEMENTWISE[name][0]
    x, y = _elementwise_inputs(name, rng, (3, 3))
    # The hinge embedding target is a label, not a value to differentiate.
    target = leaf(y, device, requires_grad=name != "hinge_embedding")
    check(lambda a, b: fn(a, b, reduction="sum"), leaf(x, device), target)
    check(lambda a, b: fn(a, b, reduction="none"), leaf(x, device, contiguous=False), target)


def test_weights_and_batchmean(device, rng):
    x, y = rng.uniform(0.1, 0.9, (4, 3)), rng.uniform(0, 1, (4, 3))
    w = rng.uniform(0, 2, (3,))
    bce = -(y * np.log(x) + (1 - y) * np.log(1 - x))
    got = F.binary_cross_entropy(leaf(x, device), leaf(y, device), weight=leaf(w, device))
    np.testing.assert_allclose(got.numpy(), (bce * w).mean(), rtol=1e-12)
    got = F.binary_cross_entropy_with_logits(
        leaf(x, device), leaf(y, device), weight=leaf(w, device), reduction="sum"
    )
    np.testing.assert_allclose(got.numpy(), (_np_bce_logits(x, y) * w).sum(), rtol=1e-12)
    logp = _np_log_softmax(x, 1)
    got = F.kl_div(leaf(logp, device), leaf(y, device), reduction="batchmean")
    np.testing.assert_allclose(got.numpy(), (y * (np.log(y) - logp)).sum() / 4, rtol=1e-12)
    smooth_zero = F.smooth_l1_loss(leaf(x, device), leaf(y, device), beta=0.0)
    np.testing.assert_allclose(smooth_zero.numpy(), np.abs(x - y).mean(), rtol=1e-12)


def test_kl_div_with_zero_target(device):
    x = leaf(np.log([[0.2, 0.3, 0.5]]), device)
    loss = F.kl_div(x, leaf([[0.0, 0.5, 0.5]], device), reduction="sum")
    np.testing.assert_allclose(loss.numpy(), 0.5 * np.log(0.5 / 0.3) + 0.5 * np.log(0.5 / 0.5))
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, -0.5, -0.5]])


def test_binary_cross_entropy_at_zero_and_one(device):
    p = leaf([0.0, 1.0, 0.0, 1.0], device)
    y = leaf([1.0, 0.0, 0.0, 1.0], device)
    loss = F.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [100, 100, 0, 0])  # log clamped at −100
    loss.sum().backward()
    assert np.isfinite(p.grad.numpy()).all() and np.isfinite(y.grad.numpy()).all()
    np.testing.assert_allclose(p.grad.numpy(), [-1e12, 1e12, 0, 0])  # (p − y)/max(p(1−p), ε)


# --- class losses --------------------------------------------------------------------------
def _np_cross_entropy(logits, labels, ignore_index=-100, smoothing=0.0, reduction="mean"):
    logp = _np_log_softmax(logits, 1)
    logp = np.moveaxis(logp, 1, -1).reshape(-1, logits.shape[1])
    flat = labels.reshape(-1)
    valid = flat != ignore_index
    picked = logp[np.arange(len(flat)), np.where(valid, flat, 0)]
    loss = -(1 - smoothing) * picked - smoothing * logp.mean(axis=1)
    loss = np.where(valid, loss, 0)
    if reduction == "none":
        return loss.reshape(labels.shape)
    return loss.sum() if reduction == "sum" else loss.sum() / valid.sum()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_with_labels(reduction, smoothing, device, rng):
    x = rng.standard_normal((5, 4))
    y = np.array([0, 3, -100, 1, 3])
    got = F.cross_entropy(
        leaf(x, device), _labels(device, y), reduction=reduction, label_smoothing=smoothing
    )
    expected = _np_cross_entropy(x, y, smoothing=smoothing, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_cross_entropy_spatial_unbatched_and_ignore_index(device, rng):
    x = rng.standard_normal((2, 3, 2, 2))
    y = rng.integers(0, 3, (2, 2, 2))
    y[0, 1, 0] = 7
    for reduction in ("mean", "sum", "none"):
        got = F.cross_entropy(
            leaf(x, device), _labels(device, y), ignore_index=7, reduction=reduction
        )
        np.testing.assert_allclose(
            got.numpy(), _np_cross_entropy(x, y, 7, reduction=reduction), rtol=1e-12
        )
    check(lambda a: F.cross_entropy(a, _labels(device, y), ignore_index=7, label_smoothing=0.1),
          leaf(x, device))  # fmt: skip
    v = rng.standard_normal(4)
    got = F.cross_entropy(leaf(v, device), _labels(device, 2))
    np.testing.assert_allclose(got.numpy(), -_np_log_softmax(v[None], 1)[0, 2], rtol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_with_probabilities(smoothing, device, rng):
    x = rng.standard_normal((3, 4, 2))
    p = rng.uniform(0, 1, (3, 4, 2))
    p /= p.sum(axis=1, keepdims=True)
    target = p * (1 - smoothing) + smoothing / 4
    expected = -(target * _np_log_softmax(x, 1)).sum(axis=1)
    for reduction in ("mean", "sum", "none"):
        got = F.cross_entropy(
            leaf(x, device), leaf(p, device), reduction=reduction, label_smoothing=smoothing
        )
        np.testing.assert_allclose(got.numpy(), _reduce(expected, reduction), rtol=1e-12)
    check(lambda a, b: F.cross_entropy(a, b, label_smoothing=smoothing), leaf(x, device),
          leaf(p, device))  # fmt: skip


def test_cross_entropy_derivatives(device, rng):
    x = rng.standard_normal((4, 3))
    y = _labels(device, [2, 0, -100, 1])
    for kw in ({}, {"label_smoothing": 0.25}, {"reduction": "sum"}, {"reduction": "none"}):
        check(lambda a, kw=kw: F.cross_entropy(a, y, **kw), leaf(x, device))
        check(lambda a, kw=kw: F.cross_entropy(a, y, **kw), leaf(x, device, contiguous=False))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction, device, rng):
    x = _np_log_softmax(rng.standard_normal((4, 3, 2)), 1)
    y = np.array([[0, 2], [1, -100], [2, 2], [0, 1]])
    got = F.nll_loss(leaf(x, device), _labels(device, y), reduction=reduction)
    np.testing.assert_allclose(
        got.numpy(), _np_cross_entropy(x, y, reduction=reduction), rtol=1e-12
    )
    check(lambda a: F.nll_loss(a, _labels(device, y), reduction=reduction), leaf(x, device))
    # nll_loss of log_softmax is cross_entropy.
    ce = F.cross_entropy(leaf(x, device), _labels(device, y), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), ce.numpy(), rtol=1e-12)


def _np_multi_margin(x, y, p, margin):
    x = np.atleast_2d(x)
    own = x[np.arange(len(x)), np.atleast_1d(y)][:, None]
    hinge = np.maximum(0, margin - own + x) ** p
    hinge[np.arange(len(x)), np.atleast_1d(y)] = 0
    return hinge.sum(axis=1) / x.shape[1]


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multi_margin_loss(p, reduction, device, rng):
    x = rng.standard_normal((4, 5))
    y = np.array([0, 4, 2, 2])
    # keep margin − x_y + x_j away from 0 (the hinge's kink)
    own = x[np.arange(4), y][:, None]
    x = np.where(np.abs(0.8 - own + x) < 0.05, x + 0.1, x)
    got = F.multi_margin_loss(
        leaf(x, device), _labels(device, y), p=p, margin=0.8, reduction=reduction
    )
    expected = _reduce(_np_multi_margin(x, y, p, 0.8), reduction)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    check(lambda a: F.multi_margin_loss(a, _labels(device, y), p=p, margin=0.8), leaf(x, device))
    single = F.multi_margin_loss(leaf(x[1], device), _labels(device, y[1]), p=p, margin=0.8)
    np.testing.assert_allclose(single.numpy(), _np_multi_margin(x[1], y[1], p, 0.8)[0])


# --- extreme logits ----------------------------------------------------------------------
EXTREME = {
    "cross_entropy": lambda x, y: F.cross_entropy(x, y),
    "cross_entropy_smoothed": lambda x, y: F.cross_entropy(x, y, label_smoothing=0.1),
    "cross_entropy_soft": lambda x, y: F.cross_entropy(x, F.softmax(x.detach() * 0 + 1)),
    "nll_of_log_softmax": lambda x, y: F.nll_loss(F.log_softmax(x, 1), y),
    "multi_margin": lambda x, y: F.multi_margin_loss(x, y),
    "bce_with_logits": lambda x, y: F.binary_cross_entropy_with_logits(
        x, (x.detach() > 0).astype(x.dtype), pos_weight=gg.ones(3, dtype=x.dtype, device=x.device)
    ),
    "bce_of_sigmoid": lambda x, y: F.binary_cross_entropy(F.sigmoid(x), gg.zeros_like(x)),
    "kl_div_of_log_softmax": lambda x, y: F.kl_div(
        F.log_softmax(x, 1), F.softmax(x.detach() * 0), reduction="batchmean"
    ),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(EXTREME))
def test_extreme_logits_give_finite_values_and_gradients(name, dtype, device):
    x = gg.tensor(
        [[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [-1e4, 1e4, -1e4]],
        dtype=dtype,
        device=device,
        requires_grad=True,
    )
    loss = EXTREME[name](x, _labels(device, [1, 2, 0]))
    loss.backward()
    assert loss.dtype == np.dtype(dtype)
    assert np.isfinite(loss.numpy()).all(), loss.numpy()
    assert np.isfinite(x.grad.numpy()).all(), x.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_of_extreme_logits_is_correct(dtype, device):
    x = gg.tensor([[1e4, -1e4], [1e4, -1e4]], dtype=dtype, device=device, requires_grad=True)
    loss = F.cross_entropy(x, _labels(device, [0, 1]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0, 2e4], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0], [1, -1]], atol=1e-6)
    z = gg.tensor([1e4, -1e4], dtype=dtype, device=device)
    bce = F.binary_cross_entropy_with_logits(
        z, gg.tensor([0.0, 1.0], dtype=dtype, device=device), reduction="none"
    )
    np.testing.assert_allclose(bce.numpy(), [1e4, 1e4], rtol=1e-6)


# --- dtypes ------------------------------------------------------------------------------
LOSSES_F32 = {
    "mse": lambda x, y, lab: F.mse_loss(x, y),
    "l1": lambda x, y, lab: F.l1_loss(x, y),
    "huber": lambda x, y, lab: F.huber_loss(x, y),
    "smooth_l1": lambda x, y, lab: F.smooth_l1_loss(x, y),
    "bce": lambda x, y, lab: F.binary_cross_entropy(F.sigmoid(x), F.sigmoid(y)),
    "bce_logits": lambda x, y, lab: F.binary_cross_entropy_with_logits(x, F.sigmoid(y)),
    "cross_entropy": lambda x, y, lab: F.cross_entropy(x, lab, label_smoothing=0.1),
    "cross_entropy_soft": lambda x, y, lab: F.cross_entropy(x, F.softmax(y)),
    "nll": lambda x, y, lab: F.nll_loss(F.log_softmax(x), lab),
    "kl_div": lambda x, y, lab: F.kl_div(F.log_softmax(x), F.softmax(y), reduction="batchmean"),
    "hinge_embedding": lambda x, y, lab: F.hinge_embedding_loss(x, (y > 0) * 2.0 - 1),
    "multi_margin": lambda x, y, lab: F.multi_margin_loss(x, lab, p=2),
}


@pytest.mark.parametrize("name", sorted(LOSSES_F32))
def test_float32_stays_float32(name, device, rng):
    x = gg.tensor(rng.standard_normal((4, 3)), dtype="float32", device=device, requires_grad=True)
    y = gg.tensor(rng.standard_normal((4, 3)), dtype="float32", device=device)
    loss = LOSSES_F32[name](x, y, _labels(device, [0, 2, 1, 1]))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32


# --- checks on the inputs ----------------------------------------------------------------
def test_shape_and_dtype_errors(device):
    x = gg.zeros((4, 3), device=device)
    with pytest.raises(gg.ShapeError, match=r"\(4, 3\).*\(4,\)"):
        F.mse_loss(x, gg.zeros(4, device=device))
    with pytest.raises(gg.ShapeError, match=r"\(4, 3\).*\(3, 4\)"):
        F.binary_cross_entropy_with_logits(x, gg.zeros((3, 4), device=device))
    with pytest.raises(gg.ShapeError, match=r"\(4, 3\).*\(\d, ?\d?\).*\(5,\)"):
        F.cross_entropy(x, _labels(device, [0, 1, 2, 0, 1]))
    with pytest.raises(gg.DTypeError, match=r"integers.*float32"):
        F.cross_entropy(x, gg.zeros(4, device=device))
    with pytest.raises(gg.DTypeError, match="integers"):
        F.nll_loss(x, gg.zeros(4, device=device))
    with pytest.raises(gg.DTypeError, match="floating"):
        F.cross_entropy(gg.zeros((4, 3), dtype="int64", device=device), _labels(device, [0] * 4))
    with pytest.raises(gg.ShapeError, match="0-d"):
        F.cross_entropy(gg.tensor(1.0, device=device), _labels(device, 0))


def test_labels_out_of_range_raise(device):
    x = gg.zeros((3, 4), device=device)
    for bad in ([0, 4, 1], [0, -1, 1]):
        with pytest.raises(IndexError, match=r"\[0, 4\)"):
            F.cross_entropy(x, _labels(device, bad))
        with pytest.raises(IndexError, match=r"\[0, 4\)"):
            F.nll_loss(x, _labels(device, bad))
        with pytest.raises(IndexError, match=r"\[0, 4\)"):
            F.multi_margin_loss(x, _labels(device, bad))
    F.cross_entropy(x, _labels(device, [0, -100, 3]))  # ignore_index is not out of range


def test_bad_settings(device):
    x = gg.zeros((3, 4), device=device)
    y = _labels(device, [0, 1, 2])
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, y, reduction="batchmean")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        F.multi_margin_loss(x, y, p=3)
    with pytest.raises(ValueError, match="delta"):
        F.huber_loss(x, x, delta=0)
    with pytest.raises(ValueError, match="reduction"):
        L.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        L.MultiMarginLoss(p=0)
    with pytest.raises(TypeError):
        L.MSELoss("sum")  # settings are keyword-only


# --- modules -------------------------------------------------------------------------------
def test_modules_match_functions(device, rng):
    x = leaf(rng.standard_normal((4, 3)), device)
    y = leaf(rng.uniform(0, 1, (4, 3)), device)
    labels = _labels(device, [2, 0, -100, 1])
    pairs = [
        (L.MSELoss(reduction="sum"), F.mse_loss(x, y, reduction="sum")),
        (L.L1Loss(), F.l1_loss(x, y)),
        (L.HuberLoss(delta=0.3), F.huber_loss(x, y, delta=0.3)),
        (L.SmoothL1Loss(beta=0.3), F.smooth_l1_loss(x, y, beta=0.3)),
        (L.BCEWithLogitsLoss(), F.binary_cross_entropy_with_logits(x, y)),
        (L.KLDivLoss(reduction="batchmean"), F.kl_div(x, y, reduction="batchmean")),
        (L.HingeEmbeddingLoss(margin=2.0), F.hinge_embedding_loss(x, y, margin=2.0)),
    ]
    for module, expected in pairs:
        np.testing.assert_array_equal(module(x, y).numpy(), expected.numpy())
    p = F.sigmoid(x)
    np.testing.assert_array_equal(L.BCELoss()(p, y).numpy(), F.binary_cross_entropy(p, y).numpy())
    ce = L.CrossEntropyLoss(label_smoothing=0.1)(x, labels)
    np.testing.assert_array_equal(
        ce.numpy(), F.cross_entropy(x, labels, label_smoothing=0.1).numpy()
    )
    nll = L.NLLLoss(reduction="none")(x, labels)
    np.testing.assert_array_equal(nll.numpy(), F.nll_loss(x, labels, reduction="none").numpy())
    mm = L.MultiMarginLoss(p=2, margin=0.5)(x, _labels(device, [0, 1, 2, 0]))
    expected = F.multi_margin_loss(x, _labels(device, [0, 1, 2, 0]), p=2, margin=0.5)
    np.testing.assert_array_equal(mm.numpy(), expected.numpy())
    assert repr(L.CrossEntropyLoss()) == (
        "CrossEntropyLoss(reduction='mean', ignore_index=-100, label_smoothing=0.0)"
    )


def test_pos_weight_is_a_buffer(device, rng):
    module = L.BCEWithLogitsLoss(pos_weight=gg.tensor([1.0, 2.0, 3.0]))
    assert list(module.state_dict()) == ["pos_weight"]
    module.to(device)
    assert module.pos_weight.device == gg.device(device)
    x = leaf(rng.standard_normal((2, 3)), device)
    y = leaf(rng.uniform(0, 1, (2, 3)), device)
    expected = _np_bce_logits(x.numpy(), y.numpy(), np.array([1.0, 2.0, 3.0])).mean()
    np.testing.assert_allclose(module(x, y).numpy(), expected, rtol=1e-6)


# --- the fused primitive on its own ------------------------------------------------------
def _np_fused(logits, labels, ignore_index, smoothing, g):
    """Per-row loss and logits gradient of softmax cross-entropy, straight from the formulas."""
    classes = logits.shape[1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    valid = labels != ignore_index
    target = np.eye(classes)[np.where(valid, labels, 0)] * (1 - smoothing) + smoothing / classes
    loss = np.where(valid, -(target * np.log(p)).sum(axis=1), 0)
    grad = (p - target) * np.where(valid, g, 0)[:, None]
    return loss, grad


def _compare_fused(backend, logits, labels, g, smoothing, reference=_np_fused):
    arrays = backend.asarray(logits), backend.asarray(labels)
    loss = backend.softmax_cross_entropy_forward(*arrays, -1, smoothing)
    grad = backend.softmax_cross_entropy_backward(backend.asarray(g), *arrays, -1, smoothing)
    expected_loss, expected_grad = reference(logits, labels, -1, smoothing, g)
    np.testing.assert_allclose(backend.to_numpy(loss), expected_loss, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(grad), expected_grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_fused_primitive_matches_numpy(smoothing, device, rng):
    backend = get_backend(device)
    logits = rng.standard_normal((6, 5)) * 3
    labels = np.array([0, 4, -1, 2, 2, 1])
    _compare_fused(backend, logits, labels, rng.standard_normal(6), smoothing)


def test_fused_comparison_catches_a_wrong_formula(device, rng):
    backend = get_backend(device)
    logits, labels, g = rng.standard_normal((6, 5)), np.array([0, 4, -1, 2, 2, 1]), np.ones(6)

    def smoothing_forgotten_in_grad(logits, labels, ignore_index, smoothing, g):
        loss, _ = _np_fused(logits, labels, ignore_index, smoothing, g)
        return loss, _np_fused(logits, labels, ignore_index, 0.0, g)[1]

    def ignored_rows_counted(logits, labels, ignore_index, smoothing, g):
        return _np_fused(logits, np.where(labels < 0, 0, labels), ignore_index, smoothing, g)

    for wrong in (smoothing_forgotten_in_grad, ignored_rows_counted):
        with pytest.raises(AssertionError):
            _compare_fused(backend, logits, labels, g, 0.2, reference=wrong)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_primitive_is_stable_and_keeps_dtype(dtype, device):
    backend = get_backend(device)
    logits = backend.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype))
    labels = backend.asarray(np.array([1, 2]))
    loss = backend.softmax_cross_entropy_forward(logits, labels, -100, 0.1)
    grad = backend.softmax_cross_entropy_backward(backend.ones(2, dtype=dtype), logits, labels)
    assert loss.dtype == np.dtype(dtype) and grad.dtype == np.dtype(dtype)
    loss, grad = backend.to_numpy(loss), backend.to_numpy(grad)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(loss[1], np.log(3), rtol=1e-6)


def test_cross_entropy_backward_goes_through_the_primitive(device, monkeypatch, rng):
    backend = get_backend(device)
    calls = []
    fused = backend.softmax_cross_entropy_backward

    def spy(*args):
        calls.append(args[1].shape)
        return fused(*args)

    monkeypatch.setattr(backend, "softmax_cross_entropy_backward", spy)
    x = leaf(rng.standard_normal((2, 3, 4)), device)
    F.cross_entropy(x, _labels(device, [[0, 1, 2, 1], [2, 2, 0, 1]])).backward()
    assert calls == [(8, 3)]
    calls.clear()
    (g,) = gg.grad(F.cross_entropy(x, _labels(device, [[0] * 4] * 2)), [x], create_graph=True)
    assert calls == [] and g.requires_grad  # the differentiable twin ran instead


# --- PyTorch, when installed, as a second reference --------------------------------------
def test_against_torch(device, rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = rng.standard_normal((4, 3)) * 3
    y = rng.uniform(0.05, 0.95, (4, 3))
    sign = np.where(rng.uniform(size=(4, 3)) > 0.5, 1.0, -1.0)
    labels = np.array([2, 0, -100, 1])
    pw = np.array([0.5, 1.0, 4.0])
    cases = [
        (
            lambda a, b: F.huber_loss(a, b, delta=0.5),
            lambda a, b: tf.huber_loss(a, b, delta=0.5),
            y,
        ),
        (
            lambda a, b: F.smooth_l1_loss(a, b, beta=2.0),
            lambda a, b: tf.smooth_l1_loss(a, b, beta=2.0),
            y,
        ),
        (
            lambda a, b: F.binary_cross_entropy(F.sigmoid(a), b),
            lambda a, b: tf.binary_cross_entropy(torch.sigmoid(a), b),
            y,
        ),
        (
            lambda a, b: F.binary_cross_entropy_with_logits(
                a, b, pos_weight=gg.tensor(pw, device=device)
            ),
            lambda a, b: tf.binary_cross_entropy_with_logits(a, b, pos_weight=torch.tensor(pw)),
            y,
        ),
        (
            lambda a, b: F.kl_div(F.log_softmax(a), b, reduction="batchmean"),
            lambda a, b: tf.kl_div(tf.log_softmax(a, -1), b, reduction="batchmean"),
            y,
        ),
        (
            lambda a, b: F.kl_div(a, b, log_target=True, reduction="sum"),
            lambda a, b: tf.kl_div(a, b, log_target=True, reduction="sum"),
            np.log(y),
        ),
        (
            lambda a, b: F.hinge_embedding_loss(a, b, margin=2.0),
            lambda a, b: tf.hinge_embedding_loss(a, b, margin=2.0),
            sign,
            False,
        ),
        (
            lambda a, b: F.cross_entropy(a, b, label_smoothing=0.3),
            lambda a, b: tf.cross_entropy(a, b, label_smoothing=0.3),
            tf.softmax(torch.tensor(y), -1).numpy(),
        ),
    ]
    for ours, theirs, target, *flags in cases:  # a False flag: the target is a label
        _agree(torch, ours, theirs, x, target, device, grad_target=flags[0] if flags else True)
    label_cases = [
        (
            lambda a, b: F.cross_entropy(a, b, label_smoothing=0.2),
            lambda a, b: tf.cross_entropy(a, b, label_smoothing=0.2),
        ),
        (
            lambda a, b: F.nll_loss(a, b, reduction="sum"),
            lambda a, b: tf.nll_loss(a, b, reduction="sum"),
        ),
        (
            lambda a, b: F.multi_margin_loss(a, b * (b >= 0), p=2, margin=0.7),
            lambda a, b: tf.multi_margin_loss(a, b * (b >= 0), p=2, margin=0.7),
        ),
    ]
    for ours, theirs in label_cases:
        _agree(torch, ours, theirs, x, labels, device, grad_target=False)


def _agree(torch, ours, theirs, x, target, device, grad_target):
    a = leaf(x, device)
    if np.asarray(target).dtype.kind == "f":
        b = leaf(target, device, requires_grad=grad_target)
    else:
        b = _labels(device, target)
    ta = torch.tensor(x, requires_grad=True)
    tb = torch.tensor(target, requires_grad=grad_target)
    out, ref = ours(a, b), theirs(ta, tb)
    out.backward()
    ref.backward()
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-9, atol=1e-12)
    if grad_target:
        np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-9, atol=1e-12)


# --- class weights (cross_entropy, nll_loss) ------------------------------------------------------
def _weighted_ce_reference(x, y, w, ignore_index, smoothing):
    """PyTorch's definition written out: per row (1−ε)·w[y]·(−log p_y) + ε/C·Σ_c w_c·(−log p_c),
    ignored rows 0; "mean" divides by Σ w[y] over the rows that count."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    valid = y != ignore_index
    safe = np.where(valid, y, 0)
    nll = -w[safe] * log_p[np.arange(len(y)), safe]
    spread = -(log_p * w).sum(axis=1) / x.shape[1]
    rows = np.where(valid, (1 - smoothing) * nll + smoothing * spread, 0.0)
    return rows, rows.sum() / w[safe][valid].sum()


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_with_class_weights(device, rng, smoothing):
    x = rng.standard_normal((6, 4))
    y = np.array([0, 3, 1, -100, 3, 2])
    w = rng.uniform(0.5, 2.0, 4)
    rows, mean = _weighted_ce_reference(x, y, w, -100, smoothing)
    xt = gg.tensor(x, device=device, requires_grad=True)
    yt, wt = gg.tensor(y, device=device), gg.tensor(w, device=device)
    out = F.cross_entropy(xt, yt, wt, label_smoothing=smoothing, reduction="none")
    np.testing.assert_allclose(out.numpy(), rows, rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(xt, yt, wt, label_smoothing=smoothing).item(), mean)
    module = gg.nn.CrossEntropyLoss(wt, label_smoothing=smoothing).to(device)
    np.testing.assert_allclose(module(xt, yt).item(), mean)
    assert gg.gradcheck(lambda t: F.cross_entropy(t, yt, wt, label_smoothing=smoothing), xt)
    assert gg.gradgradcheck(lambda t: F.cross_entropy(t, yt, wt, label_smoothing=smoothing), xt)


def test_nll_loss_with_class_weights(device, rng):
    log_p = np.log(rng.dirichlet(np.ones(3), size=5))
    y = np.array([2, 0, 1, 1, -100])
    w = np.array([0.5, 1.0, 3.0])
    valid = y != -100
    picked = -w[np.where(valid, y, 0)] * log_p[np.arange(5), np.where(valid, y, 0)]
    expected = np.where(valid, picked, 0).sum() / w[y[valid]].sum()
    lt = gg.tensor(log_p, device=device, requires_grad=True)
    out = F.nll_loss(lt, gg.tensor(y, device=device), gg.tensor(w, device=device))
    np.testing.assert_allclose(out.item(), expected, rtol=1e-12)
    module = gg.nn.NLLLoss(gg.tensor(w)).to(device)
    np.testing.assert_allclose(module(lt, gg.tensor(y, device=device)).item(), expected)


def test_class_weights_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 3, 2))
    y = rng.integers(0, 3, (5, 2))
    w = rng.uniform(0.5, 2.0, 3)
    for smoothing in (0.0, 0.1):
        ours = F.cross_entropy(gg.tensor(x), gg.tensor(y), gg.tensor(w), label_smoothing=smoothing)
        theirs = torch.nn.functional.cross_entropy(
            torch.tensor(x), torch.tensor(y), torch.tensor(w), label_smoothing=smoothing
        )
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-10)


def test_class_weight_of_the_wrong_shape_raises(device):
    x = gg.zeros(2, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(3,\)"):
        F.cross_entropy(x, gg.tensor([0, 1], device=device), gg.ones(4, device=device))
