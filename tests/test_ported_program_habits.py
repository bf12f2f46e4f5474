"""What porting three public PyTorch programs by renaming showed missing: PyTorch's two-argument
randint, f-string formatting of a 0-d loss, load(map_location=), histogram, gg.utils.data."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import torch_or_skip

import gpugrad as gg
from gpugrad.errors import ArgumentError, ArgumentTypeError, DeviceError, ShapeError


# --- randint(high, size) ----------------------------------------------------------------------
def test_randint_takes_the_upper_bound_and_a_size(device):
    draws = gg.randint(5, (200,), device=device)
    assert draws.shape == (200,) and draws.dtype == np.int64
    assert int(draws.min()) >= 0 and int(draws.max()) < 5
    assert gg.randint(3, [2, 2], device=device).shape == (2, 2)
    low_high = gg.randint(10, 12, (50,), device=device)  # the three-argument form is unchanged
    assert set(low_high.numpy().tolist()) <= {10, 11}


def test_randint_two_argument_form_follows_the_generator(device):
    first = gg.randint(100, (8,), generator=gg.Generator(device).manual_seed(3), device=device)
    again = gg.randint(0, 100, (8,), generator=gg.Generator(device).manual_seed(3), device=device)
    np.testing.assert_array_equal(first.numpy(), again.numpy())


# --- f"{loss:.4f}" ----------------------------------------------------------------------------
def test_a_0d_tensor_takes_a_format_spec(device):
    loss = gg.tensor(2.718281828, dtype=gg.float64, device=device)
    assert f"{loss:.4f}" == "2.7183"
    assert f"{gg.tensor(7, device=device):5d}" == "    7"
    assert f"{loss}" == "2.718281828"  # as PyTorch: a 0-d tensor formats as its value
    with pytest.raises(TypeError):
        f"{gg.ones(3, device=device):.2f}"  # several values take no number format


# --- load(map_location=) ----------------------------------------------------------------------
def test_load_takes_map_location(tmp_path):
    path = tmp_path / "ckpt.npz"
    gg.save({"w": gg.arange(3), "step": 4}, path)
    loaded = gg.load(path, map_location="cpu")
    np.testing.assert_array_equal(loaded["w"].numpy(), [0, 1, 2])
    assert loaded["w"].device == gg.device("cpu") and loaded["step"] == 4
    assert gg.load(path, "cpu", map_location="cpu")["step"] == 4


def test_save_keeps_0d_tensors_and_arrays_0d(tmp_path, device):
    """A checkpoint's best_val_loss is a 0-d tensor (a mean); it must not come back 1-d."""
    path = tmp_path / "ckpt.npz"
    loss = gg.tensor([1.0, 2.0], device=device).mean()
    gg.save({"best_val_loss": loss, "count": np.array(3), "wt": gg.ones((2, 3)).T}, path)
    loaded = gg.load(path)
    assert loaded["best_val_loss"].shape == () and float(loaded["best_val_loss"]) == 1.5
    assert loaded["count"].shape == () and loaded["wt"].shape == (3, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"map_location": {"cuda:0": "cpu"}}, ArgumentTypeError, "map_location"),
        ({"map_location": lambda storage, loc: storage}, ArgumentTypeError, "map_location"),
        ({"device": "cpu", "map_location": "cuda"}, ArgumentError, "'cuda'"),
    ],
)
def test_load_map_location_errors(tmp_path, kwargs, error, named):
    path = tmp_path / "ckpt.npz"
    gg.save({"w": gg.ones(2)}, path)
    with pytest.raises(error, match=named):
        gg.load(path, **kwargs)


# --- histogram --------------------------------------------------------------------------------
@pytest.mark.parametrize("bins", [10, 3, 100])
@pytest.mark.parametrize("density", [False, True])
def test_histogram_matches_numpy(bins, density, device, rng):
    x_np = rng.standard_normal(500)
    x = gg.as_tensor(x_np, device=device, requires_grad=True)
    hist, edges = gg.histogram(x, bins, density=density)
    expected_hist, expected_edges = np.histogram(x_np, bins, density=density)
    np.testing.assert_allclose(hist.numpy(), expected_hist, rtol=1e-12)
    np.testing.assert_allclose(edges.numpy(), expected_edges, rtol=1e-12)
    assert hist.dtype == (np.float64 if density else np.int64) and not hist.requires_grad
    assert x.histogram(bins, density=density).bin_edges.shape == (bins + 1,)


def test_histogram_range_weights_and_edge_cases(device):
    x = gg.tensor([0.0, 0.5, 1.0, 1.0, 3.0], dtype=gg.float64, device=device)
    hist, edges = gg.histogram(x, 2, range=(0.0, 2.0))
    np.testing.assert_array_equal(hist.numpy(), [2, 2])  # 3.0 is outside, 1.0 in the last bin
    np.testing.assert_array_equal(edges.numpy(), [0.0, 1.0, 2.0])
    weights = gg.tensor([1.0, 2.0, 0.5, 0.5, 4.0], dtype=gg.float64, device=device)
    np.testing.assert_array_equal(gg.histogram(x, 2, weights=weights).hist.numpy(), [4.0, 4.0])
    same = gg.histogram(gg.full((4,), 2.0, device=device), 2)  # one value: a unit-wide range
    np.testing.assert_array_equal(same.bin_edges.numpy(), [1.5, 2.0, 2.5])
    empty = gg.histogram(gg.ones((0,), device=device), 4)
    assert empty.hist.numpy().sum() == 0 and empty.bin_edges.numpy()[-1] == 1.0
    ints = gg.histogram(gg.tensor([1, 2, 2, 3], device=device), 2)
    assert ints.bin_edges.dtype == np.float32 and ints.hist.numpy().tolist() == [1, 3]


@pytest.mark.parametrize(
    ("call", "error", "named"),
    [
        (lambda x: gg.histogram(x, 0), ArgumentError, "bins"),
        (lambda x: gg.histogram(x, 2.5), ArgumentTypeError, "bins"),
        (lambda x: gg.histogram(x, 4, range=(2.0, 1.0)), ArgumentError, r"\(2.0, 1.0\)"),
        (lambda x: gg.histogram(x, 4, range=(0.0, float("inf"))), ArgumentError, "inf"),
        (lambda x: gg.histogram(x, 4, range=3.0), ArgumentError, "3.0"),
        (lambda x: gg.histogram(x, 4, weights=gg.ones(2)), ShapeError, r"\(2,\)"),
        (lambda x: gg.histogram(x * np.nan, 4), ArgumentError, "nan"),
    ],
)
def test_histogram_errors(call, error, named, device):
    x = gg.tensor([1.0, 2.0, 3.0], device=device)
    with pytest.raises(error, match=named):
        call(x)


def test_histogram_weights_on_another_device_raise():
    if not gg.cuda.is_available():
        pytest.skip("needs a second device")
    with pytest.raises(DeviceError, match="cuda"):
        gg.histogram(gg.ones(3), 2, weights=gg.ones(3, device="cuda"))


def test_histogram_edges_match_torch_when_bins_are_given(rng):
    torch = torch_or_skip()
    x_np = rng.standard_normal(300)
    hist, edges = gg.histogram(gg.as_tensor(x_np), 100, density=True)
    expected = torch.histogram(torch.tensor(x_np), 100, density=True)
    np.testing.assert_allclose(edges.numpy(), expected.bin_edges.numpy(), rtol=1e-12)
    np.testing.assert_allclose(hist.numpy(), expected.hist.numpy(), rtol=1e-10)


# --- gg.utils.data ----------------------------------------------------------------------------
def test_torch_utils_data_address():
    import gpugrad.utils.data
    from gpugrad.utils.data import DataLoader, Dataset

    assert gg.utils.data is gpugrad.utils.data
    assert DataLoader is gg.data.DataLoader and Dataset is gg.data.Dataset

    class Squares(gg.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return gg.tensor(float(i * i)), i

    batches = list(gg.utils.data.DataLoader(Squares(), batch_size=2))
    np.testing.assert_array_equal(batches[0][0].numpy(), [0.0, 1.0])
    assert len(batches) == 3


# --- gg.cuda.manual_seed ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["manual_seed", "manual_seed_all"])
def test_cuda_manual_seed_leaves_the_cpu_stream_alone(name):
    gg.manual_seed(11)
    expected = gg.randn(4).numpy()
    gg.manual_seed(11)
    getattr(gg.cuda, name)(5)  # accepted without a GPU, as PyTorch's
    np.testing.assert_array_equal(gg.randn(4).numpy(), expected)


@pytest.mark.parametrize(
    ("seed", "error"), [(-1, ArgumentError), (2**64, ArgumentError), (1.5, ArgumentTypeError)]
)
def test_cuda_manual_seed_errors(seed, error):
    with pytest.raises(error, match=str(seed)):
        gg.cuda.manual_seed(seed)


def test_cuda_manual_seed_repeats_gpu_draws():
    if not gg.cuda.is_available():
        pytest.skip("needs a CUDA GPU with CuPy")
    gg.cuda.manual_seed(3)
    first = gg.randn(5, device="cuda").numpy()
    cpu_draw = gg.randn(2).numpy()
    gg.cuda.manual_seed(3)
    np.testing.assert_array_equal(gg.randn(5, device="cuda").numpy(), first)
    assert not np.array_equal(gg.randn(2).numpy(), cpu_draw)  # the cpu stream went on
    gg.manual_seed(4)  # the global seed wins again over an earlier cuda seed
    after_global = gg.randn(5, device="cuda").numpy()
    gg.manual_seed(4)
    np.testing.assert_array_equal(gg.randn(5, device="cuda").numpy(), after_global)


# --- set_default_dtype ------------------------------------------------------------------------
@pytest.fixture
def float64_default():
    gg.set_default_dtype(gg.float64)
    try:
        yield
    finally:
        gg.set_default_dtype(gg.float32)


def test_set_default_dtype_reaches_every_way_of_making_floats(float64_default, device):
    assert gg.get_default_dtype() == np.float64
    made = [
        gg.ones(2, device=device), gg.zeros(2, device=device), gg.randn(2, device=device),
        gg.rand(2, device=device), gg.full((2,), 1.5, device=device),
        gg.arange(0.0, 2.0, device=device), gg.linspace(0, 1, 3, device=device),
        gg.tensor([1.5, 2.0], device=device), gg.normal(0.0, 1.0, (2,), device=device),
        nn_linear_weight(device),
    ]  # fmt: skip
    assert [t.dtype for t in made] == [np.float64] * len(made)
    assert gg.tensor([1, 2], device=device).dtype == np.int64  # ints are not affected
    assert gg.ones(2, dtype=gg.float32, device=device).dtype == np.float32  # asked for wins


def nn_linear_weight(device):
    return gg.nn.Linear(3, 2).to(device).weight


def test_default_dtype_is_float32_and_can_come_back():
    assert gg.get_default_dtype() == np.float32 and gg.ones(1).dtype == np.float32
    gg.set_default_dtype("float16")
    try:
        assert gg.ones(1).dtype == np.float16
    finally:
        gg.set_default_dtype(gg.float32)
    assert gg.tensor(0.5).dtype == np.float32


@pytest.mark.parametrize("bad", [gg.int64, "int32", gg.bool, None])
def test_set_default_dtype_takes_floating_dtypes_only(bad):
    with pytest.raises(gg.DTypeError, match=str(bad) if bad is not None else "None"):
        gg.set_default_dtype(bad)
    assert gg.get_default_dtype() == np.float32
