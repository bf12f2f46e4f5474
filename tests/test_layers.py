"""Layers against NumPy references, with first and second derivatives w.r.t. inputs and
parameters (float64), and the train/eval behaviour of Dropout and BatchNorm1d."""

import math

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
from gpugrad.nn.layers import (
    BatchNorm1d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    Linear,
    dropout,
    linear,
)


def set_params(module, rng):
    """Random values for every parameter, so scale/shift terms are really tested."""
    for p in module.parameters():
        p.data[...] = module.weight._backend.asarray(rng.standard_normal(p.shape), dtype=p.dtype)


def check_module(module, x):
    """gradcheck and gradgradcheck of module(x) w.r.t. x and every parameter."""
    params = list(module.parameters())
    check(lambda x, *ps: module(x), x, *params)


# --- Linear -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 3), (3,), (2, 4, 3)])
def test_linear_forward_matches_numpy(device, rng, shape):
    m = Linear(3, 4, device=device)
    x = rng.standard_normal(shape).astype(np.float32)
    w, b = m.weight.numpy(), m.bias.numpy()
    assert w.shape == (4, 3) and b.shape == (4,)
    out = m(gg.tensor(x, device=device))
    assert out.shape == (*shape[:-1], 4) and out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), x @ w.T + b, rtol=1e-5, atol=1e-6)


def test_linear_without_bias(device, rng):
    m = Linear(3, 2, bias=False, device=device).double()
    x = rng.standard_normal((4, 3))
    assert m.bias is None and len(list(m.parameters())) == 1
    np.testing.assert_allclose(m(gg.tensor(x, device=device)).numpy(), x @ m.weight.numpy().T)
    check_module(m, leaf(x, device))


@pytest.mark.parametrize("shape", [(4, 3), (3,), (2, 2, 3)])
def test_linear_derivatives(device, rng, shape):
    m = Linear(3, 2, device=device).double()
    check_module(m, leaf(rng.standard_normal(shape), device, contiguous=len(shape) != 2))


def test_linear_gradients_match_numpy(device, rng):
    m = Linear(3, 2, device=device).double()
    x = leaf(rng.standard_normal((5, 3)), device)
    g = rng.standard_normal((5, 2))
    m(x).backward(gg.tensor(g, dtype="float64", device=device))
    w = m.weight.numpy()
    np.testing.assert_allclose(x.grad.numpy(), g @ w, rtol=1e-12)
    np.testing.assert_allclose(m.weight.grad.numpy(), g.T @ x.numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.bias.grad.numpy(), g.sum(0), rtol=1e-12)


def test_linear_only_some_inputs_need_gradients(device, rng):
    m = Linear(3, 2, device=device).double()
    m.weight.requires_grad_(False)
    x = gg.tensor(rng.standard_normal((4, 3)), device=device)
    m(x).sum().backward()
    assert m.weight.grad is None and m.bias.grad is not None


def test_linear_initialises_like_pytorch(device):
    m = Linear(400, 300, device=device)
    bound = 1 / math.sqrt(400)
    w, b = m.weight.numpy(), m.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # Uniform on ±bound has std bound/√3.
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert abs(w.mean()) < 0.01 * bound
    gg.manual_seed(5)
    first = Linear(4, 3, device=device).weight.numpy().copy()
    gg.manual_seed(5)
    np.testing.assert_array_equal(Linear(4, 3, device=device).weight.numpy(), first)


def test_linear_dtype_and_device_arguments(device):
    m = Linear(2, 3, device=device, dtype="float64")
    assert m.weight.dtype == np.float64 and m.bias.device == gg.device(device)


def test_linear_errors(device):
    m = Linear(3, 2, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(4, 5\).*\(2, 3\)"):
        m(gg.ones(4, 5, device=device))
    with pytest.raises(gg.DTypeError, match="float64"):
        m(gg.ones(4, 3, dtype="float64", device=device))
    with pytest.raises(gg.ShapeError, match="bias"):
        linear(gg.ones(4, 3, device=device), m.weight, gg.ones(3, device=device))


def test_linear_matches_torch(rng):
    torch = pytest.importorskip("torch")
    ours, theirs = Linear(3, 4), torch.nn.Linear(3, 4)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((5, 3)).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(gg.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


# --- Identity, Flatten ------------------------------------------------------------------------
def test_identity(device, rng):
    x = leaf(rng.standard_normal((2, 3)), device)
    assert Identity(54, unused="ok")(x) is x


@pytest.mark.parametrize(
    "start, end, shape",
    [(1, -1, (2, 60)), (0, -1, (120,)), (1, 2, (2, 12, 5)), (-2, -1, (2, 3, 20))],
)
def test_flatten(device, rng, start, end, shape):
    data = rng.standard_normal((2, 3, 4, 5))
    m = Flatten(start, end).to(device)
    out = m(gg.tensor(data, device=device))
    np.testing.assert_array_equal(out.numpy(), data.reshape(shape))
    assert repr(m) == f"Flatten(start_axis={start}, end_axis={end})"
    check(m, leaf(rng.standard_normal((2, 1, 2, 2)), device))


# --- Dropout ----------------------------------------------------------------------------------
def test_dropout_statistics(device):
    p = 0.3
    x = gg.ones(400, 500, device=device)
    out = Dropout(p).to(device)(x).numpy()
    zeroed = (out == 0).mean()
    assert abs(zeroed - p) < 0.01
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.02  # inverted dropout keeps the expected value


def test_dropout_is_identity_in_eval_and_for_p_zero(device, rng):
    x = leaf(rng.standard_normal((3, 4)), device)
    m = Dropout(0.5).to(device)
    assert m.eval()(x) is x
    assert Dropout(0.0)(x) is x
    assert dropout(x, 0.9, training=False) is x
    np.testing.assert_array_equal(Dropout(1.0)(x).numpy(), np.zeros((3, 4)))


def test_dropout_repeats_with_manual_seed_and_differs_otherwise(device):
    x = gg.ones(50, 50, device=device)
    m = Dropout(0.5).to(device)
    gg.manual_seed(11)
    first = m(x).numpy()
    second = m(x).numpy()
    gg.manual_seed(11)
    np.testing.assert_array_equal(m(x).numpy(), first)
    assert (first != second).any()


def test_dropout_gradient_is_the_mask(device, rng):
    x = leaf(rng.standard_normal((20, 30)), device)
    out = Dropout(0.4)(x)
    out.sum().backward()
    kept = out.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.6, 0.0), rtol=1e-12)


def test_dropout_derivatives(device, rng):
    m = Dropout(0.5).to(device)

    def fn(x):
        gg.manual_seed(3)  # the same mask on every call of the finite differences
        return m(x)

    check(fn, leaf(rng.standard_normal((3, 4)), device))


def test_dropout_rejects_bad_p():
    for p in (-0.1, 1.5):
        with pytest.raises(gg.ArgumentError, match=r"p must be in \[0, 1\]"):
            Dropout(p)


# --- LayerNorm --------------------------------------------------------------------------------
def layer_norm_ref(x, k, w=None, b=None, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps)
    return out * (1 if w is None else w) + (0 if b is None else b)


@pytest.mark.parametrize("normalized, shape", [(4, (3, 4)), ((3, 4), (2, 3, 4)), (5, (5,))])
def test_layer_norm_forward(device, rng, normalized, shape):
    m = LayerNorm(normalized, device=device).double()
    set_params(m, rng)
    x = rng.standard_normal(shape) * 3 + 1
    expected = layer_norm_ref(x, len(m.normalized_shape), m.weight.numpy(), m.bias.numpy())
    np.testing.assert_allclose(m(gg.tensor(x, device=device)).numpy(), expected, rtol=1e-10)


def test_layer_norm_starts_as_plain_normalisation(device, rng):
    m = LayerNorm(6, device=device)
    np.testing.assert_array_equal(m.weight.numpy(), np.ones(6))
    np.testing.assert_array_equal(m.bias.numpy(), np.zeros(6))
    x = rng.standard_normal((4, 6)).astype(np.float32)
    out = m(gg.tensor(x, device=device)).numpy()
    np.testing.assert_allclose(out, layer_norm_ref(x, 1), rtol=1e-4, atol=1e-5)


def test_layer_norm_without_affine(device, rng):
    m = LayerNorm((2, 3), elementwise_affine=False).to(device)
    assert list(m.parameters()) == []
    x = rng.standard_normal((4, 2, 3))
    np.testing.assert_allclose(
        m(gg.tensor(x, device=device)).numpy(), layer_norm_ref(x, 2), rtol=1e-10
    )
    check(m, leaf(rng.standard_normal((2, 2, 3)), device))


@pytest.mark.parametrize("normalized, shape", [(3, (2, 3)), ((2, 2), (2, 2, 2))])
def test_layer_norm_derivatives(device, rng, normalized, shape):
    m = LayerNorm(normalized, device=device).double()
    set_params(m, rng)
    check_module(m, leaf(rng.standard_normal(shape), device))


def test_layer_norm_shape_error(device):
    with pytest.raises(gg.ShapeError, match=r"\(2, 5\).*\(4,\)"):
        LayerNorm(4).to(device)(gg.ones(2, 5, device=device))


def test_layer_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.LayerNorm((3, 4)).double()
    with torch.no_grad():
        theirs.weight.normal_(), theirs.bias.normal_()
    ours = LayerNorm((3, 4)).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 3, 4))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(gg.tensor(x)).numpy(), expected, rtol=1e-10, atol=1e-12)


# --- BatchNorm1d ------------------------------------------------------------------------------
class BatchNormRef:
    """NumPy BatchNorm1d, written from the definition."""

    def __init__(self, c, momentum=0.1, eps=1e-5):
        self.mean, self.var, self.n = np.zeros(c), np.ones(c), 0
        self.momentum, self.eps = momentum, eps

    def __call__(self, x, w, b, training):
        axes = (0,) if x.ndim == 2 else (0, 2)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
        if training:
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            count = x.size // x.shape[1]
            self.n += 1
            m = 1 / self.n if self.momentum is None else self.momentum
            self.mean = (1 - m) * self.mean + m * mean
            self.var = (1 - m) * self.var + m * var * count / (count - 1)
        else:
            mean, var = self.mean, self.var
        out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + self.eps)
        return out * w.reshape(shape) + b.reshape(shape)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_train_and_eval_against_numpy(device, rng, shape, momentum):
    m = BatchNorm1d(3, momentum=momentum, device=device).double()
    set_params(m, rng)
    ref = BatchNormRef(3, momentum)
    w, b = m.weight.numpy(), m.bias.numpy()
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1) + step
        out = m(gg.tensor(x, device=device))
        np.testing.assert_allclose(out.numpy(), ref(x, w, b, True), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.running_mean.numpy(), ref.mean, rtol=1e-12)
    np.testing.assert_allclose(m.running_var.numpy(), ref.var, rtol=1e-12)
    assert m.num_batches_tracked.item() == 3
    m.eval()
    x = rng.standard_normal(shape)
    out = m(gg.tensor(x, device=device))
    np.testing.assert_allclose(out.numpy(), ref(x, w, b, False), rtol=1e-10, atol=1e-12)
    assert m.num_batches_tracked.item() == 3  # eval leaves the statistics alone
    np.testing.assert_allclose(m.running_mean.numpy(), ref.mean, rtol=1e-12)


def test_batch_norm_starts_with_unit_statistics(device):
    m = BatchNorm1d(4, device=device)
    assert [n for n, _ in m.named_buffers()] == [
        "running_mean", "running_var", "num_batches_tracked"
    ]  # fmt: skip
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(4))
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(4))
    assert m.num_batches_tracked.dtype == np.int64 and m.num_batches_tracked.shape == ()
    m.running_mean.data[...] = 3
    m.num_batches_tracked.data[...] = 9
    m.reset_running_stats()
    assert m.num_batches_tracked.item() == 0 and not m.running_mean.numpy().any()


def test_batch_norm_without_running_stats_always_uses_the_batch(device, rng):
    m = BatchNorm1d(3, track_running_stats=False, affine=False).to(device)
    assert list(m.buffers()) == [] and list(m.parameters()) == []
    x = rng.standard_normal((5, 3)) * 4 + 2
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    for mode in (True, False):
        out = m.train(mode)(gg.tensor(x, device=device))
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 2), (3, 2, 2)])
def test_batch_norm_derivatives(device, rng, training, shape):
    m = BatchNorm1d(2, device=device).double()
    set_params(m, rng)
    m.running_mean.data[...] = m.weight._backend.asarray(rng.standard_normal(2))
    m.train(training)
    check_module(m, leaf(rng.standard_normal(shape), device))


def test_batch_norm_float32_gradient_flows(device, rng):
    m = BatchNorm1d(3, device=device)
    x = gg.tensor(rng.standard_normal((8, 3)), dtype="float32", device=device)
    x.requires_grad_()
    m(x).sum().backward()
    # The normalised output sums to zero per channel whatever x is, so dL/dx vanishes.
    np.testing.assert_allclose(x.grad.numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(m.bias.grad.numpy(), 8)
    assert m.running_mean.dtype == np.float32


def test_batch_norm_errors(device):
    m = BatchNorm1d(3).to(device)
    with pytest.raises(gg.ShapeError, match=r"\(4, 2\)"):
        m(gg.ones(4, 2, device=device))
    with pytest.raises(gg.ShapeError, match="N, 3"):
        m(gg.ones(4, 3, 2, 2, device=device))
    with pytest.raises(ValueError, match="more than one value per channel"):
        m(gg.ones(1, 3, device=device))
    assert m.num_batches_tracked.item() == 0  # a failed step counts nothing
    m.eval()
    assert m(gg.ones(1, 3, device=device)).shape == (1, 3)  # eval needs no batch


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batch_norm_matches_torch(rng, shape):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm1d(3, momentum=0.3).double()
    ours = BatchNorm1d(3, momentum=0.3).double()
    for _ in range(2):
        x = rng.standard_normal(shape) * 2 + 1
        expected = theirs(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(ours(gg.tensor(x)).numpy(), expected, rtol=1e-8, atol=1e-10)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-10)
    theirs.eval(), ours.eval()
    x = rng.standard_normal(shape)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(gg.tensor(x)).numpy(), expected, rtol=1e-8, atol=1e-10)


# --- Embedding --------------------------------------------------------------------------------
def test_embedding_forward(device):
    m = Embedding(10, 3, device=device)
    idx = np.array([[1, 2, 4], [4, 3, 9]])
    out = m(gg.tensor(idx, device=device))
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy(), m.weight.numpy()[idx])
    np.testing.assert_array_equal(m([0, 9]).numpy(), m.weight.numpy()[[0, 9]])
    w = Embedding(2000, 50, device=device).weight.numpy()
    assert abs(w.std() - 1) < 0.02 and abs(w.mean()) < 0.02  # N(0, 1) like PyTorch


def test_embedding_gradient_accumulates_repeated_indices(device, rng):
    m = Embedding(6, 2, device=device).double()
    idx = np.array([[1, 1, 3], [1, 5, 3]])
    g = rng.standard_normal((2, 3, 2))
    m(gg.tensor(idx, device=device)).backward(gg.tensor(g, device=device))
    expected = np.zeros((6, 2))
    np.add.at(expected, idx, g)
    np.testing.assert_allclose(m.weight.grad.numpy(), expected, rtol=1e-12)


def test_embedding_padding_row_reads_but_gets_no_gradient(device):
    m = Embedding(5, 3, padding_idx=-1, device=device)
    assert m.padding_idx == 4 and repr(m) == "Embedding(5, 3, padding_idx=4)"
    np.testing.assert_array_equal(m.weight.numpy()[4], np.zeros(3))
    m.weight.data[4] = 2.0  # a changed padding row is still what the lookup returns
    idx = gg.tensor([4, 0, 4, 0], device=device)
    out = m(idx)
    np.testing.assert_array_equal(out.numpy()[0], np.full(3, 2.0))
    out.sum().backward()
    grad = m.weight.grad.numpy()
    np.testing.assert_array_equal(grad[4], np.zeros(3))
    np.testing.assert_array_equal(grad[0], np.full(3, 2.0))
    (second,) = gg.grad((m(idx) ** 2).sum(), [m.weight], create_graph=True)
    assert second.requires_grad
    np.testing.assert_array_equal(second.numpy()[4], np.zeros(3))
    np.testing.assert_allclose(second.numpy()[0], 2 * 2 * m.weight.numpy()[0], rtol=1e-6)


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_derivatives(device, padding_idx):
    m = Embedding(4, 2, padding_idx=padding_idx, device=device).double()
    # The padding row's gradient is zero by design, not the true derivative, so finite
    # differences can only check the other rows: the padding index is left out here.
    idx = gg.tensor([[0, 3, 3], [3, 0, 1]], device=device)
    check(lambda w: m(idx), m.weight)
    # Through a nonlinearity the second derivative is not zero, and must still be right.
    check(lambda w: (m(idx) * m(idx)).tanh(), m.weight)


def test_embedding_errors(device):
    m = Embedding(4, 2, device=device)
    with pytest.raises(gg.DTypeError, match="integers"):
        m(gg.tensor([0.0, 1.0], device=device))
    if device == "cpu":
        with pytest.raises(IndexError, match="5"):
            m(gg.tensor([0, 5]))
        with pytest.raises(IndexError, match="-1"):
            m(gg.tensor([-1, 0]))
    with pytest.raises(IndexError):
        Embedding(4, 2, padding_idx=4)
