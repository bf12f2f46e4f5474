"""Convolution and pooling take an empty batch (as PyTorch): an empty batch comes out, and
backward gives zero weight and bias gradients."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn

CONVS = {
    "conv1d": (lambda d: nn.Conv1d(4, 6, 3, device=d), (0, 4, 9), (0, 6, 7)),
    "conv1d_padded_strided": (
        lambda d: nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, device=d),
        (0, 4, 9),
        (0, 6, 4),
    ),
    "conv2d": (lambda d: nn.Conv2d(2, 3, 3, device=d), (0, 2, 5, 5), (0, 3, 3, 3)),
    "conv2d_same_no_bias": (
        lambda d: nn.Conv2d(2, 4, (3, 2), padding="same", bias=False, device=d),
        (0, 2, 5, 6),
        (0, 4, 5, 6),
    ),
}


@pytest.mark.parametrize("make, in_shape, out_shape", CONVS.values(), ids=CONVS.keys())
def test_convolution_of_an_empty_batch(device, make, in_shape, out_shape):
    conv = make(device)
    x = gg.zeros(*in_shape, device=device, requires_grad=True)
    out = conv(x)
    assert out.shape == out_shape
    out.sum().backward()
    assert x.grad.shape == in_shape
    np.testing.assert_array_equal(conv.weight.grad.numpy(), np.zeros(conv.weight.shape, "f4"))
    if conv.bias is not None:
        np.testing.assert_array_equal(conv.bias.grad.numpy(), np.zeros(conv.bias.shape, "f4"))


POOLS = {
    "max_pool2d": (lambda: nn.MaxPool2d(2), (0, 2, 4, 4), (0, 2, 2, 2)),
    "max_pool2d_padded": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (0, 2, 5, 5), (0, 2, 3, 3)),
    "max_pool1d": (lambda: nn.MaxPool1d(2), (0, 3, 4), (0, 3, 2)),
    "avg_pool2d": (lambda: nn.AvgPool2d(2), (0, 2, 4, 4), (0, 2, 2, 2)),
    "avg_pool1d": (
        lambda: nn.AvgPool1d(2, padding=1, count_include_pad=False),
        (0, 3, 4),
        (0, 3, 3),
    ),
    "adaptive": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (0, 2, 5, 7), (0, 2, 2, 3)),
}


@pytest.mark.parametrize("make, in_shape, out_shape", POOLS.values(), ids=POOLS.keys())
def test_pooling_of_an_empty_batch(device, make, in_shape, out_shape):
    x = gg.zeros(*in_shape, device=device, requires_grad=True)
    out = make()(x)
    assert out.shape == out_shape
    out.sum().backward()
    assert x.grad.shape == in_shape


def test_shapes_match_pytorch():
    torch = pytest.importorskip("torch")
    x = torch.zeros(0, 2, 5, 5)
    assert (
        tuple(torch.nn.Conv2d(2, 3, 3, stride=2)(x).shape)
        == nn.Conv2d(2, 3, 3, stride=2)(gg.zeros(0, 2, 5, 5)).shape
    )
    assert tuple(torch.nn.MaxPool2d(2)(x).shape) == nn.MaxPool2d(2)(gg.zeros(0, 2, 5, 5)).shape


def test_a_model_trains_on_a_batch_that_turned_out_empty(device):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, device=device), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(2, 3, device=device))  # fmt: skip
    before = [p.numpy().copy() for p in model.parameters()]
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    model(gg.zeros(0, 1, 4, 4, device=device)).sum().backward()
    opt.step()
    for p, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), old)  # zero gradients: nothing moves
