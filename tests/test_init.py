"""nn.init: bounds and spreads against PyTorch's formulas, fans, gains, in-place behaviour,
and reproducibility under manual_seed."""

import math

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.nn import Parameter, init
from gpugrad.nn.init import _calculate_fan_in_and_fan_out, calculate_gain

SHAPES = [(256, 128), (64, 32, 3, 3), (1000, 40)]


def param(shape, device, dtype="float32"):
    return Parameter(gg.zeros(*shape, dtype=dtype, device=device))


def fans(shape):
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def assert_uniform(values, low, high):
    """Within [low, high], reaching near both ends, with the uniform's mean and std."""
    span = high - low
    assert values.min() >= low and values.max() <= high
    assert values.min() < low + 0.01 * span and values.max() > high - 0.01 * span
    assert abs(values.mean() - (low + high) / 2) < 0.02 * span
    assert abs(values.std() - span / math.sqrt(12)) < 0.02 * span / math.sqrt(12)


def assert_normal(values, mean, std):
    assert abs(values.mean() - mean) < 0.03 * std
    assert abs(values.std() - std) < 0.03 * std
    assert abs((np.abs(values - mean) < std).mean() - 0.6827) < 0.02  # the bell's shape


@pytest.mark.parametrize(
    "name, param_, expected",
    [
        ("linear", None, 1.0), ("conv2d", None, 1.0), ("sigmoid", None, 1.0),
        ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)), ("selu", None, 0.75),
        ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
        ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)),
    ],
)  # fmt: skip
def test_calculate_gain(name, param_, expected):
    assert calculate_gain(name, param_) == pytest.approx(expected, rel=1e-12)


def test_calculate_gain_agrees_with_torch():
    torch = pytest.importorskip("torch")
    for name in ("linear", "conv1d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        assert calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert calculate_gain("leaky_relu", 0.3) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.3)
    )


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="softsign"):
        calculate_gain("softsign")
    with pytest.raises(ValueError):
        calculate_gain("leaky_relu", "steep")


@pytest.mark.parametrize("shape", [(3, 5), (4, 3, 2, 2), (6, 2, 7)])
def test_fans_follow_pytorch_layout(device, shape):
    assert _calculate_fan_in_and_fan_out(param(shape, device)) == fans(shape)


def test_fans_agree_with_torch():
    torch = pytest.importorskip("torch")
    for shape in [(3, 5), (4, 3, 2, 2), (6, 2, 7)]:
        expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        assert _calculate_fan_in_and_fan_out(gg.empty(*shape)) == expected


def test_fans_need_two_axes(device):
    with pytest.raises(gg.ShapeError, match=r"\(5,\)"):
        init.xavier_uniform_(param((5,), device))


def test_uniform_and_normal(device):
    t = param((300, 200), device)
    assert init.uniform_(t, -2.0, 3.0) is t
    assert_uniform(t.numpy(), -2.0, 3.0)
    init.uniform_(t)
    assert_uniform(t.numpy(), 0.0, 1.0)
    init.normal_(t, 1.5, 0.25)
    assert_normal(t.numpy(), 1.5, 0.25)
    assert t.device == gg.device(device) and t.dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_constants(device, dtype):
    t = param((3, 4), device, dtype)
    np.testing.assert_array_equal(init.constant_(t, 0.7).numpy(), np.full((3, 4), 0.7, dtype))
    np.testing.assert_array_equal(init.ones_(t).numpy(), np.ones((3, 4)))
    np.testing.assert_array_equal(init.zeros_(t).numpy(), np.zeros((3, 4)))
    assert t.dtype == dtype


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gain", [1.0, math.sqrt(2), 5 / 3])
def test_xavier(device, shape, gain):
    fan_in, fan_out = fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    t = param(shape, device)
    init.xavier_uniform_(t, gain=gain)
    assert_uniform(t.numpy(), -math.sqrt(3) * std, math.sqrt(3) * std)
    init.xavier_normal_(t, gain=gain)
    assert_normal(t.numpy(), 0.0, std)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize(
    "a, nonlinearity", [(0, "relu"), (0, "leaky_relu"), (math.sqrt(5), "leaky_relu"), (0, "tanh")]
)
def test_kaiming(device, shape, mode, a, nonlinearity):
    fan = fans(shape)[0 if mode == "fan_in" else 1]
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    t = param(shape, device)
    init.kaiming_uniform_(t, a=a, mode=mode, nonlinearity=nonlinearity)
    assert_uniform(t.numpy(), -math.sqrt(3) * std, math.sqrt(3) * std)
    init.kaiming_normal_(t, a=a, mode=mode, nonlinearity=nonlinearity)
    assert_normal(t.numpy(), 0.0, std)


def test_kaiming_defaults_are_pytorchs(device):
    t = param((500, 100), device)
    init.kaiming_uniform_(t)  # a=0, fan_in, leaky_relu: slope a=0 gives relu's gain √2
    bound = math.sqrt(2) * math.sqrt(3 / 100)
    assert_uniform(t.numpy(), -bound, bound)


def test_kaiming_spread_agrees_with_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for mode in ("fan_in", "fan_out"):
        theirs = torch.nn.init.kaiming_normal_(torch.empty(400, 60), mode=mode, nonlinearity="relu")
        ours = init.kaiming_normal_(gg.empty(400, 60), mode=mode, nonlinearity="relu")
        assert ours.numpy().std() == pytest.approx(theirs.std().item(), rel=0.05)


def test_kaiming_rejects_bad_mode(device):
    with pytest.raises(ValueError, match="fan_avg"):
        init.kaiming_uniform_(param((3, 3), device), mode="fan_avg")


def test_empty_tensor_is_left_alone(device):
    t = param((0, 3), device)
    assert init.kaiming_uniform_(t) is t and init.kaiming_normal_(t) is t


def test_in_place_without_recording_a_graph(device):
    t = param((4, 5), device)
    version = t.version
    out = init.xavier_normal_(t)
    assert out is t and t.grad_fn is None and t.is_leaf and t.requires_grad
    assert t.version > version  # graphs that saved t notice the change
    (t * 2).sum().backward()  # still an ordinary leaf
    np.testing.assert_array_equal(t.grad.numpy(), np.full((4, 5), 2.0))


@pytest.mark.parametrize(
    "fill",
    [
        lambda t: init.uniform_(t, -1, 1), lambda t: init.normal_(t, 0, 2),
        init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_,
    ],
)  # fmt: skip
def test_reproducible_with_manual_seed(device, fill):
    t = param((6, 7), device)
    gg.manual_seed(42)
    first = fill(t).numpy().copy()
    second = fill(t).numpy().copy()
    gg.manual_seed(42)
    np.testing.assert_array_equal(fill(t).numpy(), first)
    assert (first != second).any()


def test_random_init_needs_floats(device):
    t = gg.zeros(3, 3, dtype="int64", device=device)
    with pytest.raises(gg.DTypeError, match="int64"):
        init.normal_(t)
    init.constant_(t, 4)  # a constant fill works for any dtype
    assert t.numpy().sum() == 36
