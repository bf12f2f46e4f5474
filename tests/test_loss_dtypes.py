"""Losses keep the input's dtype: an integer or bool target does not promote a float32 loss
to float64 (PyTorch's promotion gives float32 too); a wider float target still promotes."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F

LOSSES = {
    "mse_loss": F.mse_loss,
    "l1_loss": F.l1_loss,
    "huber_loss": F.huber_loss,
    "smooth_l1_loss": F.smooth_l1_loss,
    "kl_div": F.kl_div,
    "hinge_embedding_loss": F.hinge_embedding_loss,
}


@pytest.mark.parametrize("target_dtype", ["int64", "int32", "bool"])
@pytest.mark.parametrize("name", LOSSES)
def test_integer_target_keeps_the_input_dtype(device, rng, name, target_dtype):
    x = gg.tensor(rng.standard_normal(4).astype("float32"), device=device, requires_grad=True)
    labels = np.array([1, -1, 1, 1]) if name == "hinge_embedding_loss" else np.array([0, 1, 1, 0])
    target = gg.tensor(labels.astype(target_dtype), device=device)
    loss = LOSSES[name](x, target)
    assert loss.dtype == np.dtype("float32")
    expected = LOSSES[name](x.detach().double(), target.astype("float64"))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
    loss.backward()
    assert x.grad.dtype == np.dtype("float32")


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_matches_pytorch_result_dtype_for_a_long_target(name):
    torch = pytest.importorskip("torch")
    ours = LOSSES[name](gg.ones(3), gg.tensor([0, 1, 2]))
    theirs = getattr(torch.nn.functional, name)(torch.ones(3), torch.tensor([0, 1, 2]))
    assert str(theirs.dtype) == "torch.float32" and ours.dtype == np.dtype("float32")
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)
