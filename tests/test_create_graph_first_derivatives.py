"""First derivatives taken with `create_graph=True` equal the plain backward's, in values and
shapes, for every op whose recorded (Tensor) backward is separate from its array backward.

gradgradcheck sees only second derivatives, which are zero for a bias or a max-pool, so a
wrong first derivative on the recorded path (a conv bias gradient of shape (4, 3) instead of
(4,)) would pass it; these tests compare the two paths directly. Then, a backward through
`x.grad` after `backward(create_graph=True)` must work for ops that save their output (the
graph has to be retained by default there).
"""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.nn.layers2d import batch_norm2d
from gpugrad.ops.activation import erf

LABELS = np.array([0, 2, 1, 2, 0, 1])


def _labels(device, shape=(6,)):
    return gg.tensor(LABELS[: int(np.prod(shape))].reshape(shape), device=device)


# name -> (function of the float64 leaves and the device, shapes of the leaves)
CASES = {
    # convolutions (conv2d/conv1d: weight and bias; strided, padded, dilated, grouped)
    "conv2d": (lambda x, w, b, d: F.conv2d(x, w, b), [(2, 3, 5, 4), (4, 3, 3, 2), (4,)]),
    "conv2d_strided_grouped": (
        lambda x, w, b, d: F.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2), groups=2),
        [(1, 4, 6, 6), (6, 2, 3, 2), (6,)],
    ),
    "conv2d_no_bias_same": (
        lambda x, w, d: F.conv2d(x, w, padding="same"),
        [(2, 1, 4, 5), (3, 1, 2, 3)],
    ),
    "conv2d_unbatched": (lambda x, w, b, d: F.conv2d(x, w, b), [(2, 4, 4), (1, 2, 3, 3), (1,)]),
    "conv1d": (
        lambda x, w, b, d: F.conv1d(x, w, b, stride=2, padding=2, dilation=2),
        [(3, 2, 9), (4, 2, 3), (4,)],
    ),
    "conv1d_grouped": (
        lambda x, w, b, d: F.conv1d(x, w, b, groups=3),
        [(2, 3, 5), (3, 1, 2), (3,)],
    ),
    # pooling
    "max_pool2d": (lambda x, d: F.max_pool2d(x, 2), [(2, 3, 4, 6)]),
    "max_pool2d_padded": (lambda x, d: F.max_pool2d(x, 3, stride=2, padding=1), [(1, 2, 5, 5)]),
    "max_pool1d": (lambda x, d: F.max_pool1d(x, 3, stride=1, padding=1), [(2, 3, 7)]),
    "avg_pool2d": (lambda x, d: F.avg_pool2d(x, (2, 3), stride=1), [(2, 1, 4, 5)]),
    "avg_pool2d_exclude_pad": (
        lambda x, d: F.avg_pool2d(x, 3, padding=1, count_include_pad=False),
        [(1, 2, 4, 4)],
    ),
    "avg_pool1d": (lambda x, d: F.avg_pool1d(x, 2), [(3, 2, 6)]),
    "adaptive_avg_pool2d": (lambda x, d: F.adaptive_avg_pool2d(x, (2, 3)), [(2, 2, 5, 7)]),
    # softmax cross-entropy and the other losses with a backward of their own
    "cross_entropy": (lambda x, d: F.cross_entropy(x, _labels(d)), [(6, 3)]),
    "cross_entropy_ignore_smooth": (
        lambda x, d: F.cross_entropy(
            x, _labels(d), ignore_index=2, label_smoothing=0.2, reduction="sum"
        ),
        [(6, 3)],
    ),
    "cross_entropy_spatial": (
        lambda x, d: F.cross_entropy(x, _labels(d, (2, 3)), reduction="none"),
        [(2, 3, 3)],
    ),
    "cross_entropy_one_row": (lambda x, d: F.cross_entropy(x, _labels(d, (1,))), [(1, 3)]),
    "binary_cross_entropy": (lambda p, y, d: F.binary_cross_entropy(p, y), [(4, 3), (4, 3)]),
    # activations
    "relu": (lambda x, d: F.relu(x), [(3, 4)]),
    "leaky_relu": (lambda x, d: F.leaky_relu(x, 0.2), [(3, 4)]),
    "elu": (lambda x, d: F.elu(x, 0.7), [(3, 1)]),
    "gelu": (lambda x, d: F.gelu(x), [(2, 5)]),
    "gelu_tanh": (lambda x, d: F.gelu(x, approximate="tanh"), [(2, 5)]),
    "silu": (lambda x, d: F.silu(x), [(5,)]),
    "sigmoid": (lambda x, d: F.sigmoid(x), [(2, 3)]),
    "tanh": (lambda x, d: F.tanh(x), [(2, 3)]),
    "softplus": (lambda x, d: F.softplus(x, beta=2.0, threshold=1.0), [(4, 2)]),
    "softmax": (lambda x, d: F.softmax(x, axis=-1), [(3, 4)]),
    "softmax_axis0": (lambda x, d: F.softmax(x, axis=0), [(3, 1)]),
    "log_softmax": (lambda x, d: F.log_softmax(x, axis=1), [(2, 4, 2)]),
    "erf": (lambda x, d: erf(x), [(3, 3)]),
    # normalisation (layer_norm with broadcast weight and bias; batch_norm in training)
    "layer_norm": (
        lambda x, w, b, d: F.layer_norm(x, (3, 4), w, b),
        [(2, 3, 4), (3, 4), (3, 4)],
    ),
    "layer_norm_size_one_axis": (lambda x, d: F.layer_norm(x, (5,)), [(1, 1, 5)]),
    "batch_norm": (
        lambda x, w, b, d: F.batch_norm(x, None, None, w, b, training=True),
        [(4, 3), (3,), (3,)],
    ),
    "batch_norm_3d": (
        lambda x, w, b, d: F.batch_norm(x, None, None, w, b, training=True),
        [(2, 3, 5), (3,), (3,)],
    ),
    "batch_norm2d": (
        lambda x, w, b, d: batch_norm2d(x, None, None, w, b, training=True),
        [(2, 2, 3, 3), (2,), (2,)],
    ),
    # the other ops with a Function of their own
    "linear": (lambda x, w, b, d: F.linear(x, w, b), [(2, 3, 4), (5, 4), (5,)]),
    "embedding": (lambda w, d: F.embedding(gg.tensor([[0, 2], [2, 1]], device=d), w), [(3, 4)]),
}


def _inputs(rng, device, name, shapes):
    arrays = []
    for shape in shapes:
        if name == "binary_cross_entropy":  # probabilities away from 0 and 1
            arrays.append(rng.uniform(0.1, 0.9, shape))
        elif name.startswith("max_pool"):  # distinct values: no ties to break differently
            arrays.append(rng.permutation(np.prod(shape)).reshape(shape) / 7.0)
        else:
            arrays.append(rng.standard_normal(shape))
    return [gg.tensor(a, dtype="float64", device=device, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("name", CASES)
def test_recorded_first_derivatives_equal_the_plain_ones(device, rng, name):
    fn, shapes = CASES[name]
    inputs = _inputs(rng, device, name, shapes)
    probe = fn(*inputs, device)
    upstream = gg.tensor(rng.standard_normal(probe.shape), dtype="float64", device=device)

    plain = gg.grad(fn(*inputs, device), inputs, grad_outputs=upstream)
    recorded = gg.grad(fn(*inputs, device), inputs, grad_outputs=upstream, create_graph=True)

    for x, a, b in zip(inputs, plain, recorded):
        assert a.shape == x.shape and b.shape == x.shape
        assert a.dtype == b.dtype == np.dtype("float64")
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-12)


def test_the_recorded_gradients_carry_a_graph(device, rng):
    x, w, b = _inputs(rng, device, "conv2d", [(1, 2, 4, 4), (3, 2, 3, 3), (3,)])
    gx, gw, _ = gg.grad((F.conv2d(x, w, b) ** 2).sum(), [x, w, b], create_graph=True)
    assert gx.requires_grad and gw.requires_grad


def test_empty_batch_convolution_on_the_recorded_path(device):
    x = gg.zeros(0, 2, 5, 5, dtype="float64", device=device, requires_grad=True)
    w = gg.ones(3, 2, 3, 3, dtype="float64", device=device, requires_grad=True)
    b = gg.ones(3, dtype="float64", device=device, requires_grad=True)
    gx, gw, gb = gg.grad(F.conv2d(x, w, b).sum(), [x, w, b], create_graph=True)
    assert (gx.shape, gw.shape, gb.shape) == (x.shape, w.shape, b.shape)
    assert not gw.numpy().any() and not gb.numpy().any()


# --- backward of x.grad through ops that save their output ------------------------------------
# name -> (op, its second derivative in terms of x, for an elementwise op)
SAVES_OUTPUT = {
    "exp": (gg.exp, np.exp),
    "sigmoid": (F.sigmoid, lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s)),
    "tanh": (F.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
}


@pytest.mark.parametrize("op, second", SAVES_OUTPUT.values(), ids=SAVES_OUTPUT.keys())
def test_backward_of_grad_after_create_graph_backward(device, rng, op, second):
    values = rng.standard_normal((3, 2))
    x = gg.tensor(values, dtype="float64", device=device, requires_grad=True)
    op(x).sum().backward(create_graph=True)  # retain_graph defaults to True here
    first = x.grad
    x.grad = None
    first.sum().backward()  # goes back through op's node, which needs its saved output
    np.testing.assert_allclose(x.grad.numpy(), second(values), rtol=1e-10)


def test_backward_of_grad_through_softmax_matches_pytorch(device, rng):
    torch = pytest.importorskip("torch")
    values, weights = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    x = gg.tensor(values, dtype="float64", device=device, requires_grad=True)
    w = gg.tensor(weights, dtype="float64", device=device)
    (F.softmax(x, axis=-1) * w).sum().backward(create_graph=True)
    first = x.grad
    x.grad = None
    (first * first).sum().backward()

    tx = torch.tensor(values, requires_grad=True)
    (tg,) = torch.autograd.grad(
        (torch.softmax(tx, -1) * torch.tensor(weights)).sum(), tx, create_graph=True
    )
    (tg * tg).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)


def test_the_first_graph_can_be_walked_again_after_create_graph(device, rng):
    x = gg.tensor(rng.standard_normal(4), dtype="float64", device=device, requires_grad=True)
    y = gg.exp(x).sum()
    y.backward(create_graph=True)
    first = x.grad.numpy().copy()
    x.grad = None
    y.backward()  # the graph was retained, so a second walk works and gives the same result
    np.testing.assert_allclose(x.grad.numpy(), first)
