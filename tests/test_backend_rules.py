"""Rules that make gpugrad behave the same on NumPy and CuPy (gpugrad/backend/RULES.md).

Each test runs on every device: where CuPy would wrap, stay silent, or share memory and NumPy
would raise, warn, or copy, gpugrad decides itself, so the same call gives the same result
(or the same error) on `cpu` and on `cuda`.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.errors import IndexOutOfRangeError


def _ints(device, values):
    return gg.tensor(np.asarray(values, dtype=np.int64), device=device)


# --- integer indices out of range: IndexOutOfRangeError naming the index and the axis -------------
def _x(device):
    return gg.zeros(3, 4, device=device)


INDEX_CASES = {
    "list": (lambda x, d: x[[0, 3]], "index 3", "size 3"),
    "negative array": (lambda x, d: x[np.array([-5])], "index -5", "size 3"),
    "second axis": (lambda x, d: x[:, [7]], "index 7", "size 4"),
    "after ellipsis": (lambda x, d: x[..., _ints(d, [0, 4])], "index 4", "size 4"),
    "after None": (lambda x, d: x[None, 1, _ints(d, [-5])], "index -5", "size 4"),
    "int tensor": (lambda x, d: x[_ints(d, [1, 3])], "index 3", "size 3"),
    "uint8 array": (lambda x, d: x[np.array([200], dtype=np.uint8)], "index 200", "size 3"),
    "two arrays": (lambda x, d: x[[0, 1], [0, 9]], "index 9", "size 4"),
    "python int": (lambda x, d: x[1, 4], "index 4", "size 4"),
    "take": (lambda x, d: gg.take(x, _ints(d, [12])), "index 12", "size 12"),
    "take axis": (lambda x, d: gg.take(x, [5], axis=1), "index 5", "size 4"),
    "index_select": (lambda x, d: gg.index_select(x, 0, _ints(d, [3])), "index 3", "size 3"),
    "take_along_axis": (
        lambda x, d: gg.take_along_axis(x, _ints(d, [[0], [4], [1]]), 1), "index 4", "size 4"
    ),
    "gather": (lambda x, d: gg.gather(x, 1, _ints(d, [[4]])), "index 4", "size 4"),
    "setitem": (lambda x, d: x.__setitem__(_ints(d, [3]), 1.0), "index 3", "size 3"),
    "scatter": (lambda x, d: gg.scatter(x, 0, _ints(d, [[3, 0, 0, 0]]), 1.0), "index 3", "size 3"),
    "index_add": (
        lambda x, d: gg.index_add(x, 0, _ints(d, [-1]), gg.ones(1, 4, device=d)), "index -1", "3"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(INDEX_CASES), ids=list(INDEX_CASES))
def test_integer_index_out_of_range_raises_on_every_device(device, case):
    call, index, size = INDEX_CASES[case]
    x = _x(device)
    with pytest.raises(IndexOutOfRangeError) as info:
        call(x, device)
    message = str(info.value)
    assert index in message and size in message
    assert "out of range" in message  # gpugrad's check, not NumPy's "out of bounds"
    assert isinstance(info.value, IndexError)  # catchable as NumPy's error is
    np.testing.assert_array_equal(x.numpy(), np.zeros((3, 4)))  # nothing was written


@pytest.mark.parametrize("index", [[-3, 2], (slice(None), [-4, 3]), (..., -1), (-3, -4)], ids=str)
def test_negative_indices_within_range_pick_from_the_end(device, index):
    a = np.arange(12.0).reshape(3, 4)
    x = gg.tensor(a, device=device)
    np.testing.assert_array_equal(x[index].numpy(), a[index])


# --- class labels out of range: IndexOutOfRangeError on every device ------------------------------
LABEL_CASES = {
    "cross_entropy": (lambda x, y: F.cross_entropy(x, y), "[0, 4)"),
    "cross_entropy weighted": (
        lambda x, y: F.cross_entropy(x, y, weight=gg.ones(4, device=x.device)), "[0, 4)"
    ),
    "cross_entropy 3-D": (
        lambda x, y: F.cross_entropy(x.reshape(3, 4, 1), y.reshape(3, 1)), "[0, 4)"
    ),
    "nll_loss": (lambda x, y: F.nll_loss(x, y), "[0, 4)"),
    "multi_margin_loss": (lambda x, y: F.multi_margin_loss(x, y), "[0, 4)"),
    "embedding": (lambda x, y: F.embedding(y, x), "size 3"),
    "Embedding": (lambda x, y: nn.Embedding(4, 2).to(x.device)(y), "size 4"),
}  # fmt: skip


@pytest.mark.parametrize("bad", [7, -2], ids=["too large", "negative"])
@pytest.mark.parametrize("case", list(LABEL_CASES), ids=list(LABEL_CASES))
def test_class_label_out_of_range_raises_on_every_device(device, case, bad):
    call, allowed = LABEL_CASES[case]
    x = gg.zeros(3, 4, device=device)
    with pytest.raises(IndexOutOfRangeError) as info:
        call(x, _ints(device, [0, bad, 1]))
    assert str(bad) in str(info.value) and allowed in str(info.value)


def test_ignore_index_is_not_out_of_range(device):
    x = gg.zeros(3, 4, device=device)
    labels = _ints(device, [0, -100, 3])
    loss = F.cross_entropy(x, labels)
    assert loss.item() == pytest.approx(np.log(4))
    assert F.nll_loss(x, labels).item() == 0.0
    with pytest.raises(IndexOutOfRangeError, match=r"ignore_index=-1.*-100"):
        F.cross_entropy(x, labels, ignore_index=-1)


# --- nothing to divide by: one RuntimeWarning from gpugrad and NaN, on every device --------------
UNDEFINED_CASES = {
    "var ddof=1 of one": (lambda x: x[:1].var(ddof=1), "var: Degrees of freedom <= 0", ()),
    "var ddof > count": (lambda x: x.var(ddof=5), "var: Degrees of freedom <= 0", ()),
    "var over an empty axis": (
        lambda x: x.reshape(3, 1)[:, :0].var(axis=1), "var: Degrees of freedom", (3,)
    ),
    "std ddof=1 of one": (lambda x: x[:1].std(ddof=1), "std: Degrees of freedom <= 0", ()),
    "std correction=3": (lambda x: x.std(correction=3), "std: Degrees of freedom <= 0", ()),
    "mean of empty": (lambda x: x[:0].mean(), "mean: Mean of empty slice", ()),
}  # fmt: skip


@pytest.mark.parametrize("case", list(UNDEFINED_CASES), ids=list(UNDEFINED_CASES))
def test_reduction_with_nothing_to_divide_by_warns_once_and_gives_nan(device, case):
    call, message, shape = UNDEFINED_CASES[case]
    x = gg.tensor([1.0, 2.0, 4.0], device=device)
    with pytest.warns(RuntimeWarning) as record:
        out = call(x)
    assert [str(w.message) for w in record] == [str(record[0].message)]  # exactly one
    assert str(record[0].message).startswith(message)
    assert out.shape == shape and np.isnan(out.numpy()).all()


def test_defined_variance_does_not_warn(device):
    x = gg.tensor([1.0, 2.0, 4.0], device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x.var(ddof=2).item() == pytest.approx(np.var([1.0, 2.0, 4.0], ddof=2))
        assert x[:1].var().item() == 0.0


# --- creation allocates on the backend's own device (CuPy's creation uses the current GPU) -------
CREATORS = {
    "tensor": lambda d, x: gg.tensor([1.0, 2.0], device=d),
    "zeros": lambda d, x: gg.zeros(2, 3, device=d),
    "ones": lambda d, x: gg.ones(2, device=d),
    "empty": lambda d, x: gg.empty(2, device=d),
    "full": lambda d, x: gg.full((2,), 7, device=d),
    "arange": lambda d, x: gg.arange(5, device=d),
    "linspace": lambda d, x: gg.linspace(0, 1, 5, device=d),
    "eye": lambda d, x: gg.eye(3, device=d),
    "rand": lambda d, x: gg.rand(2, device=d),
    "randn": lambda d, x: gg.randn(2, device=d),
    "randint": lambda d, x: gg.randint(0, 5, (2,), device=d),
    "zeros_like": lambda d, x: gg.zeros_like(x),
    "ones_like": lambda d, x: gg.ones_like(x),
    "empty_like": lambda d, x: gg.empty_like(x),
    "full_like": lambda d, x: gg.full_like(x, 3.0),
    "rand_like": lambda d, x: gg.rand_like(x),
    "randn_like": lambda d, x: gg.randn_like(x),
    "randint_like": lambda d, x: gg.randint_like(x, 0, 4),
    "new_zeros": lambda d, x: x.new_zeros(2),
    "new_ones": lambda d, x: x.new_ones(2),
    "new_full": lambda d, x: x.new_full(2, 1.5),
    "new_tensor": lambda d, x: x.new_tensor([1.0]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CREATORS), ids=list(CREATORS))
def test_creation_allocates_inside_the_devices_context(device, monkeypatch, case):
    x = gg.zeros(2, 3, device=device)
    backend = x._backend
    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(True)
        yield

    monkeypatch.setattr(backend, "device_context", recording, raising=False)
    monkeypatch.setattr(backend, "asarray", _entered_check(backend.asarray, entered))
    out = CREATORS[case](device, x)
    assert entered, f"{case} allocated outside {device}'s device context"
    assert out.device == x.device


def _entered_check(asarray, entered):
    """asarray counts as inside the context: the backends make it enter the device itself."""

    def wrapped(*args, **kwargs):
        entered.append(True)
        return asarray(*args, **kwargs)

    return wrapped


# --- copy or view: NumPy's rule on both (CuPy returns a 0-d view for an int on every axis) ------
COPIES = {"one element": (1, 2), "element of 1-D row": (0,), "int array": ([1],), "mask": None}
VIEWS = {"row": (1,), "slice": (slice(0, 2),), "int and slice": (1, slice(None))}


@pytest.mark.parametrize("case", list(COPIES), ids=list(COPIES))
def test_indexing_that_numpy_copies_gives_a_copy(device, case):
    x = gg.tensor(np.arange(12.0).reshape(3, 4), device=device)
    index = COPIES[case]
    if index is None:
        index = x > 5
    if case == "element of 1-D row":
        x = x[1]
    picked = x[index]
    expected = picked.numpy().copy()
    before = picked._version[0]
    x.add_(100.0)
    np.testing.assert_array_equal(picked.numpy(), expected)
    assert picked._version[0] == before  # the copy's version did not move with x


@pytest.mark.parametrize("case", list(VIEWS), ids=list(VIEWS))
def test_basic_indexing_gives_a_view_sharing_the_version(device, case):
    x = gg.tensor(np.arange(12.0).reshape(3, 4), device=device)
    picked = x[VIEWS[case]]
    x.add_(100.0)
    np.testing.assert_array_equal(
        picked.numpy(), (np.arange(12.0).reshape(3, 4) + 100)[VIEWS[case]]
    )
    assert picked._version is x._version


def test_one_element_of_a_graph_is_a_copy_with_a_gradient(device):
    x = gg.tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64", device=device, requires_grad=True)
    assert gg.gradcheck(lambda t: t[1, 0] * t[0, 1], x)
    y = x * 1
    picked = y[0, 1]
    y.add_(1.0)  # y's in-place change must not reach the copy nor break its backward
    picked.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0], [0.0, 0.0]])


# --- repeated-index sums: the same dtype rules as NumPy's add.at, exact on both ----------------
@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "int8", "uint8", "bool"])
def test_scatter_add_of_integers_works_and_wraps_as_numpy(device, dtype):
    """CuPy's atomicAdd has no int8/int16/int64 form; gpugrad sums in int64 (as uint64 bits
    on CuPy), so every integer dtype works and wraps exactly as NumPy's add.at does."""
    values = np.array([100, 100, 100, 1, 2], dtype=np.int64).astype(dtype)
    index = np.array([0, 0, 0, 1, 2])
    x = gg.zeros(3, dtype=dtype, device=device)
    out = gg.scatter_add(x, 0, _ints(device, index), gg.tensor(values, device=device))
    expected = np.zeros(3, dtype=dtype)
    np.add.at(expected, index, values)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), expected)


def test_float16_repeated_index_sums_round_once(device):
    """4096 ones added at one place: float16 steps of one stop at 2048 (2049 is not a float16),
    as np.add.at gives; gpugrad sums in float32 and rounds once, on both devices."""
    x = gg.zeros(1, dtype="float16", device=device, requires_grad=False)
    index = _ints(device, np.zeros(4096, dtype=np.int64))
    out = gg.index_add(x, 0, index, gg.ones(4096, dtype="float16", device=device))
    assert out.dtype == gg.float16 and out.item() == 4096.0
    w = gg.zeros(2, 3, dtype="float16", device=device, requires_grad=True)
    w[index[:2050]].sum().backward()  # row 0 picked 2050 times: float16 steps stop at 2048
    np.testing.assert_array_equal(w.grad.numpy(), [[2050, 2050, 2050], [0, 0, 0]])


# --- sums and products: the result dtype and float16 accumulation are gpugrad's ----------------
SUM_DTYPES = {
    "bool": "int64", "int8": "int64", "int32": "int64", "uint8": "int64", "int64": "int64",
    "float16": "float16", "float32": "float32",
}  # fmt: skip


@pytest.mark.parametrize("dtype", list(SUM_DTYPES))
@pytest.mark.parametrize("reduction", ["sum", "prod", "cumsum", "cumprod"])
def test_sums_and_products_have_numpys_dtype_on_every_device(device, dtype, reduction):
    x = gg.ones(4, dtype=dtype, device=device)
    out = x.cumsum(0) if reduction == "cumsum" else getattr(x, reduction)()
    if reduction == "cumprod":
        out = x.cumprod(0)
    assert out.dtype == SUM_DTYPES[dtype]
    expected = getattr(np, reduction)(np.ones(4, dtype=dtype))
    np.testing.assert_array_equal(out.numpy(), expected)


def test_float16_running_sums_and_means_accumulate_in_float32(device):
    x = gg.ones(4096, dtype="float16", device=device)
    assert x.cumsum(0)[-1].item() == 4096.0  # NumPy's float16 cumsum stops at 2048
    assert x.sum().item() == 4096.0 and x.sum().dtype == gg.float16
    tenth = gg.full((10000,), 0.1, dtype="float16", device=device)
    exact = np.float16(np.full(10000, np.float16(0.1), dtype=np.float32).sum())
    assert tenth.sum().item() == exact and tenth.mean().item() == np.float16(exact / 10000)


# --- a Python int an integer tensor cannot hold: DTypeError, not NumPy's OverflowError ---------
OVERFLOWS = {
    "uint8 + 300": (lambda u, i: u + 300, "300", "uint8"),
    "300 + uint8": (lambda u, i: 300 + u, "300", "uint8"),
    "uint8 - 256": (lambda u, i: u - 256, "256", "uint8"),
    "-1 * uint8": (lambda u, i: -1 * u, "-1", "uint8"),
    "uint8 ** 256": (lambda u, i: u**256, "256", "uint8"),
    "int64 * 2**70": (lambda u, i: i * 2**70, str(2**70), "int64"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(OVERFLOWS), ids=list(OVERFLOWS))
def test_a_python_int_outside_the_dtype_raises(device, case):
    call, value, dtype = OVERFLOWS[case]
    u = gg.tensor([1, 2], dtype="uint8", device=device)
    i = gg.tensor([1, 2], device=device)
    with pytest.raises(gg.DTypeError) as info:
        call(u, i)
    assert value in str(info.value) and dtype in str(info.value)


def test_python_ints_that_fit_wrap_as_numpy(device):
    u = gg.tensor([1, 2], dtype="uint8", device=device)
    np.testing.assert_array_equal((u - 2).numpy(), np.array([255, 0], dtype=np.uint8))
    np.testing.assert_array_equal((u + 255).numpy(), np.array([0, 1], dtype=np.uint8))
    assert (u - 2).dtype == gg.uint8 and (u * 2.5).dtype == gg.float64  # NumPy's weak scalars


# --- sorting is stable on both (NumPy's default sort is not; CuPy's always is) ------------------
def test_sorts_keep_ties_in_their_order(device):
    a = np.array([2.0, 1.0, 2.0, 1.0, 2.0] * 20)
    x = gg.tensor(a, device=device)
    np.testing.assert_array_equal(gg.argsort(x).numpy(), np.argsort(a, kind="stable"))
    descending = gg.argsort(x, descending=True).numpy()
    np.testing.assert_array_equal(descending, np.argsort(-a, kind="stable"))
    np.testing.assert_array_equal(gg.topk(x, 3).indices.numpy(), [0, 2, 4])
    with_nan = gg.tensor([3.0, np.nan, 1.0, np.nan, 2.0], device=device)
    np.testing.assert_array_equal(gg.argsort(with_nan).numpy(), [2, 4, 0, 1, 3])  # NaN last
    np.testing.assert_array_equal(gg.argsort(with_nan, descending=True).numpy(), [1, 3, 0, 4, 2])
    np.testing.assert_array_equal(gg.topk(with_nan, 2).indices.numpy(), [1, 3])


# --- argmax/argmin: the first tie, the first NaN (CuPy returns any NaN) ------------------------
def test_argmax_and_argmin_pick_the_first_tie_and_the_first_nan(device):
    x = gg.tensor([[1.0, 3.0, 3.0, 0.0, 0.0], [2.0, np.nan, 5.0, np.nan, -1.0]], device=device)
    np.testing.assert_array_equal(gg.argmax(x, axis=1).numpy(), [1, 1])
    np.testing.assert_array_equal(gg.argmin(x, axis=1).numpy(), [3, 1])
    assert np.isnan(x.max(axis=1).numpy()[1]) and np.isnan(x.min(axis=1).numpy()[1])
    assert gg.argmax(x).item() == 6 and gg.argmin(x, keepdims=True).shape == (1, 1)
    long = np.arange(20000.0)
    long[[9000, 7, 15000]] = np.nan  # a GPU reduction tree meets these in no fixed order
    y = gg.tensor(long, device=device)
    assert gg.argmax(y).item() == 7 and gg.argmin(y).item() == 7
    assert gg.argmax(gg.tensor(long.reshape(2, 10000), device=device), axis=1).tolist() == [7, 5000]


def test_python_scalars_are_weak_in_arithmetic(device):
    x = gg.ones(2, dtype="float16", device=device)
    assert (x * 2.5).dtype == gg.float16 and (x + 1).dtype == gg.float16
    assert (gg.ones(2, dtype="int32", device=device) + 1).dtype == gg.int32
    assert (gg.ones(2, dtype="int8", device=device) * 2.5).dtype == gg.float64


def test_float_overflow_gives_inf_on_every_device(device):
    """NumPy may warn (np.errstate) where CuPy never does; the values are the rule."""
    x = gg.tensor([60000.0, -60000.0, 1.0], dtype="float16", device=device)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = (x * 2).numpy()
        zero = (gg.zeros(1, device=device) / 0).numpy()
    np.testing.assert_array_equal(out, [np.inf, -np.inf, 2.0])
    assert np.isnan(zero).all()


def test_numpy_shares_memory_only_on_the_cpu(device):
    x = gg.zeros(3, device=device)
    first = x.numpy()
    x.add_(1.0)
    np.testing.assert_array_equal(first, [1.0] * 3 if device == "cpu" else [0.0] * 3)


# --- the audit table names only tests that exist ----------------------------------------------
def test_every_test_named_in_the_rules_exists():
    root = Path(__file__).resolve().parents[1]
    text = (root / "gpugrad" / "backend" / "RULES.md").read_text()
    named = re.findall(r"`(?:tests/(test_\w+\.py)::)?(test_\w+)`", text)
    assert len(named) >= 20
    for file, test in named:
        source = (root / "tests" / (file or "test_backend_rules.py")).read_text()
        assert f"def {test}(" in source, f"RULES.md names {file or 'test_backend_rules.py'}::{test}"
    for file in re.findall(r"`tests/(test_\w+\.py)`", text):
        assert (root / "tests" / file).is_file(), file


# --- integers to negative integer powers: DTypeError (NumPy raises, CuPy returns a number) -----
NEGATIVE_POWERS = {
    "tensor ** -1": (lambda i: i**-1, "exponent: -1"),
    "tensor ** tensor": (lambda i: i ** gg.tensor([1, -2], device=i.device), "int64 tensor"),
    "2 ** tensor": (lambda i: 2 ** (i - 3), "int64 tensor"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(NEGATIVE_POWERS), ids=list(NEGATIVE_POWERS))
def test_integer_to_a_negative_integer_power_raises(device, case):
    call, named = NEGATIVE_POWERS[case]
    with pytest.raises(gg.DTypeError, match="negative integer power") as info:
        call(gg.tensor([2, 3], device=device))
    assert named in str(info.value)


def test_integer_powers_that_numpy_allows_work(device):
    i = gg.tensor([2, 3], device=device)
    assert (i**2).tolist() == [4, 9] and (2**i).tolist() == [4, 8]
    assert (i ** gg.tensor([0, 1], device=device)).tolist() == [1, 3]
    assert (i.astype("float32") ** -1).tolist() == [0.5, pytest.approx(1 / 3)]
