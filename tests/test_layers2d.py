"""BatchNorm2d and Dropout2d: train/eval behaviour and running statistics against a NumPy
reference (and PyTorch when installed), derivatives (float64), channel-wise dropout masks."""

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
from gpugrad.nn.layers2d import BatchNorm2d, Dropout2d, batch_norm2d, dropout2d


class BatchNorm2dRef:
    """NumPy BatchNorm2d, written from the definition: statistics over (N, H, W)."""

    def __init__(self, c, momentum=0.1, eps=1e-5):
        self.mean, self.var, self.n = np.zeros(c), np.ones(c), 0
        self.momentum, self.eps = momentum, eps

    def __call__(self, x, w, b, training):
        if training:
            mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
            count = x.size // x.shape[1]
            self.n += 1
            m = 1 / self.n if self.momentum is None else self.momentum
            self.mean = (1 - m) * self.mean + m * mean
            self.var = (1 - m) * self.var + m * var * count / (count - 1)
        else:
            mean, var = self.mean, self.var
        c = (1, -1, 1, 1)
        out = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + self.eps)
        return out * w.reshape(c) + b.reshape(c)


def randomize(m, rng):
    """Random scale and shift, so those terms are really tested."""
    for p in m.parameters():
        p.data[...] = p._backend.asarray(rng.standard_normal(p.shape), dtype=p.dtype)


# --- BatchNorm2d ------------------------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, 0.6, None])
def test_batch_norm2d_train_and_eval_against_numpy(device, rng, momentum):
    m = BatchNorm2d(3, momentum=momentum, device=device).double()
    randomize(m, rng)
    ref = BatchNorm2dRef(3, momentum)
    w, b = m.weight.numpy(), m.bias.numpy()
    for step in range(3):
        x = rng.standard_normal((4, 3, 5, 2)) * (step + 1) + step
        out = m(gg.tensor(x, device=device))
        assert out.shape == x.shape
        np.testing.assert_allclose(out.numpy(), ref(x, w, b, True), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.running_mean.numpy(), ref.mean, rtol=1e-12)
    np.testing.assert_allclose(m.running_var.numpy(), ref.var, rtol=1e-12)
    assert m.num_batches_tracked.item() == 3
    m.eval()
    x = rng.standard_normal((2, 3, 3, 3))
    np.testing.assert_allclose(
        m(gg.tensor(x, device=device)).numpy(), ref(x, w, b, False), rtol=1e-10, atol=1e-12
    )
    assert m.num_batches_tracked.item() == 3  # eval leaves the statistics alone
    np.testing.assert_allclose(m.running_var.numpy(), ref.var, rtol=1e-12)


def test_batch_norm2d_state_and_repr(device):
    m = BatchNorm2d(4, device=device)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in m.named_buffers()] == [
        "running_mean", "running_var", "num_batches_tracked"
    ]  # fmt: skip
    np.testing.assert_array_equal(m.weight.numpy(), np.ones(4))
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(4))
    assert repr(m) == (
        "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    )


def test_batch_norm2d_without_running_stats_uses_the_batch(device, rng):
    m = BatchNorm2d(2, affine=False, track_running_stats=False).to(device)
    x = rng.standard_normal((3, 2, 4, 4)) * 3 - 1
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    for mode in (True, False):
        out = m.train(mode)(gg.tensor(x, device=device))
        np.testing.assert_allclose(out.numpy(), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm2d_derivatives(device, rng, training):
    m = BatchNorm2d(2, device=device).double()
    randomize(m, rng)
    m.running_mean.data[...] = m.weight._backend.asarray(rng.standard_normal(2))
    m.train(training)
    x = leaf(rng.standard_normal((2, 2, 3, 2)), device, contiguous=False)
    check(lambda x, w, b: m(x), x, m.weight, m.bias)


def test_functional_batch_norm2d_updates_the_given_statistics(device, rng):
    x = rng.standard_normal((2, 3, 4, 4))
    mean, var = gg.zeros(3, device=device).double(), gg.ones(3, device=device).double()
    out = batch_norm2d(gg.tensor(x, device=device), mean, var, training=True, momentum=1.0)
    np.testing.assert_allclose(mean.numpy(), x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    np.testing.assert_allclose(out.numpy().mean(axis=(0, 2, 3)), 0, atol=1e-12)


def test_batch_norm2d_errors(device):
    m = BatchNorm2d(3).to(device)
    with pytest.raises(gg.ShapeError, match=r"\(N, 3, H, W\).*\(4, 3, 5\)"):
        m(gg.ones(4, 3, 5, device=device))
    with pytest.raises(gg.ShapeError, match=r"\(N, 3, H, W\).*\(4, 2, 5, 5\)"):
        m(gg.ones(4, 2, 5, 5, device=device))
    with pytest.raises(gg.ShapeError, match=r"more than one value per channel.*\(1, 3, 1, 1\)"):
        m(gg.ones(1, 3, 1, 1, device=device))
    assert m.num_batches_tracked.item() == 0  # a failed step counts nothing
    assert m.eval()(gg.ones(1, 3, 1, 1, device=device)).shape == (1, 3, 1, 1)
    with pytest.raises(gg.ShapeError, match=r"\(5, 3\)"):
        batch_norm2d(gg.ones(5, 3, device=device), None, None, training=True)


def test_batch_norm2d_matches_torch(device, rng):
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm2d(3, momentum=0.3).double()
    ours = BatchNorm2d(3, momentum=0.3).double().to(device)
    for _ in range(2):
        x = rng.standard_normal((4, 3, 3, 5)) * 2 + 1
        t, ox = torch.tensor(x, requires_grad=True), leaf(x, device)
        expected, out = theirs(t), ours(ox)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-8, atol=1e-10)
        g = rng.standard_normal(x.shape)
        expected.backward(torch.tensor(g))
        out.backward(gg.tensor(g, device=device))
        np.testing.assert_allclose(ox.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-8)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key].numpy(), value.numpy(), rtol=1e-10)
    theirs.eval(), ours.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(gg.tensor(x, device=device)).numpy(), expected, rtol=1e-8)


# --- Dropout2d --------------------------------------------------------------------------------
def test_dropout2d_zeroes_whole_channels_at_the_right_rate(device):
    p = 0.3
    out = Dropout2d(p)(gg.ones(200, 50, 3, 2, device=device)).numpy()
    per_channel = out.reshape(200, 50, -1)
    # Every channel is either all zeros or all 1/(1 − p): one draw per (sample, channel).
    assert (per_channel == per_channel[..., :1]).all()
    zeroed = (per_channel[..., 0] == 0).mean()
    assert abs(zeroed - p) < 0.03  # 10000 channels: the standard deviation is about 0.005
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-6)


def test_dropout2d_gradient_is_the_channel_mask(device, rng):
    x = leaf(rng.standard_normal((6, 8, 2, 3)), device)
    out = dropout2d(x, 0.5)
    out.sum().backward()
    kept = (out.numpy() != 0).any(axis=(2, 3), keepdims=True)
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(kept * 2.0, x.shape), rtol=1e-12)


def test_dropout2d_takes_unbatched_images(device):
    out = dropout2d(gg.ones(40, 2, 2, device=device), 0.5).numpy()
    assert out.shape == (40, 2, 2)
    assert (out == out[:, :1, :1]).all() and 0 < (out == 0).mean() < 1


def test_dropout2d_is_identity_in_eval_and_for_p_zero(device, rng):
    x = leaf(rng.standard_normal((2, 3, 2, 2)), device)
    assert Dropout2d(0.5).eval()(x) is x
    assert dropout2d(x, 0.0) is x
    assert dropout2d(x, 0.7, training=False) is x
    np.testing.assert_array_equal(Dropout2d(1.0)(x).numpy(), np.zeros(x.shape))
    assert repr(Dropout2d(0.25)) == "Dropout2d(p=0.25)"


def test_dropout2d_repeats_with_manual_seed(device):
    x = gg.ones(8, 16, 2, 2, device=device)
    gg.manual_seed(5)
    first, second = dropout2d(x).numpy(), dropout2d(x).numpy()
    gg.manual_seed(5)
    np.testing.assert_array_equal(dropout2d(x).numpy(), first)
    assert (first != second).any()


def test_dropout2d_derivatives(device, rng):
    def fn(x):
        gg.manual_seed(3)  # the same mask on every call of the finite differences
        return dropout2d(x, 0.5)

    check(fn, leaf(rng.standard_normal((2, 3, 2, 2)), device))


def test_dropout2d_errors(device):
    with pytest.raises(gg.ShapeError, match=r"\(4, 5\)"):
        dropout2d(gg.ones(4, 5, device=device))
    for p in (-0.1, 1.5):
        with pytest.raises(gg.ArgumentError, match=r"p must be in \[0, 1\]"):
            Dropout2d(p)
        with pytest.raises(gg.ArgumentError, match=r"p must be in \[0, 1\]"):
            dropout2d(gg.ones(1, 2, 2, 2, device=device), p)
