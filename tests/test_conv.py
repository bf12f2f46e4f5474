"""conv1d / conv2d: forward against a direct loop reference (and PyTorch when installed),
first and second derivatives (float64) across stride, padding, dilation and groups, im2col
and col2im as adjoints, typed errors naming shapes, and the Conv1d / Conv2d modules."""

import itertools
import math

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
from gpugrad.nn.conv import Conv1d, Conv2d
from gpugrad.ops.conv import col2im, conv1d, conv2d, im2col


def conv_reference(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct convolution by loops over every output element (NumPy, any number of spatial
    axes): out[n, o, p] = Σ_{c, k} w[o, c, k] · x_padded[n, g·C/G + c, p·stride + k·dilation]."""
    dims = x.ndim - 2
    as_tuple = lambda v: (v,) * dims if isinstance(v, int) else tuple(v)  # noqa: E731
    stride, padding, dilation = as_tuple(stride), as_tuple(padding), as_tuple(dilation)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])
    n = x.shape[0]
    o, cg = w.shape[:2]
    kernel = w.shape[2:]
    out_size = [
        (xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(dims)
    ]
    out = np.zeros((n, o, *out_size))
    og = o // groups
    for b_, oc in itertools.product(range(n), range(o)):
        g = oc // og
        for pos in itertools.product(*map(range, out_size)):
            total = 0.0
            for ci, k in itertools.product(range(cg), itertools.product(*map(range, kernel))):
                src = tuple(p * s + kk * d for p, s, kk, d in zip(pos, stride, k, dilation))
                total += w[(oc, ci, *k)] * xp[(b_, g * cg + ci, *src)]
            out[(b_, oc, *pos)] = total + (0.0 if b is None else b[oc])
    return out


# (N, C, H, W), out_channels, kernel, stride, padding, dilation, groups, bias
CASES_2D = [
    ((2, 3, 5, 6), 4, (3, 3), 1, 0, 1, 1, True),
    ((1, 2, 6, 5), 3, (2, 3), (2, 1), (1, 2), 1, 1, True),  # non-square kernel, input, stride
    ((2, 4, 7, 6), 6, (3, 2), 2, 1, (2, 1), 2, False),  # dilation, groups, no bias
    ((1, 3, 4, 4), 2, (1, 1), 1, 0, 1, 1, True),  # 1x1 kernel
    ((2, 4, 5, 5), 4, (3, 3), 1, 1, 1, 4, True),  # depthwise
    ((1, 2, 7, 7), 2, (3, 3), 3, 2, 2, 1, False),  # stride > kernel step, wide padding
    ((3, 1, 6, 6), 2, (5, 5), 1, 2, 1, 1, True),  # LeNet's first layer: one channel, pad 2
    ((2, 3, 5, 5), 4, (5, 5), 1, 0, 1, 1, True),  # a 1x1 output
]
# (N, C, L), out_channels, kernel, stride, padding, dilation, groups, bias
CASES_1D = [
    ((2, 3, 9), 4, (3,), 1, 0, 1, 1, True),
    ((1, 4, 10), 6, (2,), 2, 1, 3, 2, False),
    ((2, 2, 6), 2, (1,), 1, 2, 1, 1, True),
]


def make_inputs(case, rng, device):
    shape, out_ch, kernel, stride, padding, dilation, groups, bias = case
    x = leaf(rng.standard_normal(shape), device)
    w = leaf(rng.standard_normal((out_ch, shape[1] // groups, *kernel)), device)
    b = leaf(rng.standard_normal(out_ch), device) if bias else None
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


# --- forward ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES_2D)
def test_conv2d_matches_loop_reference(device, rng, case):
    x, w, b, kw = make_inputs(case, rng, device)
    want = conv_reference(x.numpy(), w.numpy(), None if b is None else b.numpy(), **kw)
    got = conv2d(x, w, b, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES_1D)
def test_conv1d_matches_loop_reference(device, rng, case):
    x, w, b, kw = make_inputs(case, rng, device)
    want = conv_reference(x.numpy(), w.numpy(), None if b is None else b.numpy(), **kw)
    got = conv1d(x, w, b, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES_2D + CASES_1D)
def test_conv_matches_torch_with_gradients(device, rng, case):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make_inputs(case, rng, device)
    fn = conv2d if x.ndim == 4 else conv1d
    tfn = torch.nn.functional.conv2d if x.ndim == 4 else torch.nn.functional.conv1d
    out = fn(x, w, b, **kw)
    g = rng.standard_normal(out.shape)
    out.backward(gg.tensor(g, device=device))
    tx, tw = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w))
    tb = None if b is None else torch.tensor(b.numpy(), requires_grad=True)
    tout = tfn(tx, tw, tb, **kw)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    pairs = [(x, tx), (w, tw)] + ([] if b is None else [(b, tb)])
    for mine, theirs in pairs:
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_padding_same_and_valid(device, rng):
    x = leaf(rng.standard_normal((1, 2, 5, 6)), device)
    w = leaf(rng.standard_normal((3, 2, 2, 3)), device)  # even kernel: the extra zero goes after
    same = conv2d(x, w, padding="same", dilation=(2, 1))
    assert same.shape == (1, 3, 5, 6)
    padded = np.pad(x.numpy(), [(0, 0), (0, 0), (1, 1), (1, 1)])
    want = conv_reference(padded, w.numpy(), dilation=(2, 1))
    np.testing.assert_allclose(same.numpy(), want, rtol=1e-12, atol=1e-12)
    valid = conv2d(x, w, padding="valid")
    np.testing.assert_allclose(valid.numpy(), conv_reference(x.numpy(), w.numpy()), rtol=1e-12)
    with pytest.raises(ValueError, match="stride 1"):
        conv2d(x, w, padding="same", stride=2)


def test_unbatched_input(device, rng):
    x = leaf(rng.standard_normal((2, 5, 4)), device)
    w = leaf(rng.standard_normal((3, 2, 2, 2)), device)
    out = conv2d(x, w, padding=1)
    assert out.shape == (3, 6, 5)
    want = conv_reference(x.numpy()[None], w.numpy(), padding=1)[0]
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    x1 = leaf(rng.standard_normal((2, 7)), device)
    assert conv1d(x1, leaf(rng.standard_normal((4, 2, 3)), device)).shape == (4, 5)


def test_float32_stays_float32(device, rng):
    x = gg.tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32), device=device)
    w = gg.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), device=device)
    w.requires_grad_()
    out = conv2d(x, w, padding=1)
    assert out.dtype == np.float32
    out.sum().backward()
    assert w.grad.dtype == np.float32
    want = conv_reference(x.numpy().astype(np.float64), w.numpy().astype(np.float64), padding=1)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)


# --- derivatives ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES_2D + CASES_1D)
def test_conv_gradcheck_and_gradgradcheck(device, rng, case):
    x, w, b, kw = make_inputs(case, rng, device)
    fn = conv2d if x.ndim == 4 else conv1d
    if b is None:
        check(lambda x, w: fn(x, w, None, **kw), x, w)
    else:
        check(lambda x, w, b: fn(x, w, b, **kw), x, w, b)


def test_gradient_of_input_only_and_weight_only(device, rng):
    x = leaf(rng.standard_normal((1, 2, 5, 4)), device)
    w = leaf(rng.standard_normal((3, 2, 3, 2)), device, requires_grad=False)
    check(lambda x: conv2d(x, w, stride=2, padding=1), x)
    x.requires_grad_(False)
    w.requires_grad_()
    check(lambda w: conv2d(x, w, dilation=2, padding=(2, 1)), w)


def test_non_contiguous_input(device, rng):
    x = leaf(rng.standard_normal((2, 3, 5, 4)), device, contiguous=False)
    w = leaf(rng.standard_normal((2, 3, 2, 2)), device)
    np.testing.assert_allclose(
        conv2d(x, w).numpy(), conv_reference(x.numpy(), w.numpy()), rtol=1e-12, atol=1e-12
    )
    check(lambda x, w: conv2d(x, w, stride=(1, 2)), x, w)


def test_retained_graph_gives_the_same_gradients_twice(device, rng):
    x, w, b, kw = make_inputs(CASES_2D[1], rng, device)
    out = conv2d(x, w, b, **kw)
    g = gg.tensor(rng.standard_normal(out.shape), device=device)
    out.backward(g, retain_graph=True)
    first = [t.grad.numpy().copy() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    out.backward(g)
    for t, want in zip((x, w, b), first):
        np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("needs", ["all", "x", "w", "b", "wb"])
def test_batch_slices_give_the_same_result(device, rng, monkeypatch, needs):
    """Columns over budget: one sample per slice, the columns rebuilt in backward; the same
    values and gradients as the reference, whichever inputs want a gradient."""
    from gpugrad.ops import conv as conv_module

    monkeypatch.setattr(conv_module, "COLUMNS_BUDGET_BYTES", 1)
    x, w, b, kw = make_inputs(((5, 4, 6, 5), 6, (3, 2), 1, (1, 0), (1, 2), 2, True), rng, device)
    for t, name in ((x, "x"), (w, "w"), (b, "b")):
        t.requires_grad_(needs == "all" or name in needs)
    out = conv2d(x, w, b, **kw)
    want = conv_reference(x.numpy(), w.numpy(), b.numpy(), **kw)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    assert gg.gradcheck(lambda x, w, b: conv2d(x, w, b, **kw), (x, w, b))  # those that want one
    torch = pytest.importorskip("torch")
    g = rng.standard_normal(out.shape)
    out.backward(gg.tensor(g, device=device))
    tx, tw, tb = (torch.tensor(t.numpy(), requires_grad=t.requires_grad) for t in (x, w, b))
    torch.nn.functional.conv2d(tx, tw, tb, **kw).backward(torch.tensor(g))
    for mine, theirs in zip((x, w, b), (tx, tw, tb)):
        if mine.requires_grad:
            np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("batch_inner", [True, False])
@pytest.mark.parametrize("shifts", [True, False])
@pytest.mark.parametrize("budget", [None, 1])
@pytest.mark.parametrize("case", CASES_2D + CASES_1D)
def test_every_column_layout_and_copy(device, rng, monkeypatch, case, batch_inner, shifts, budget):
    """The columns with the batch inside or per sample, copied in one step or through the
    column shifts, the whole batch or one sample per slice (the shapes here are small, so by
    default they take the first of each): the reference values, and gradients that pass
    gradcheck and gradgradcheck."""
    from gpugrad.ops import conv as conv_module

    monkeypatch.setattr(conv_module, "BATCH_INNER_BELOW", 10**9 if batch_inner else 0)
    monkeypatch.setattr(conv_module, "SHORT_OUTPUT_ROW", 10**9 if shifts else 0)
    if budget is not None:
        monkeypatch.setattr(conv_module, "COLUMNS_BUDGET_BYTES", budget)
    x, w, b, kw = make_inputs(case, rng, device)
    fn = conv2d if x.ndim == 4 else conv1d
    out = fn(x, w, b, **kw)
    want = conv_reference(x.numpy(), w.numpy(), None if b is None else b.numpy(), **kw)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    inputs = (x, w) if b is None else (x, w, b)
    check(lambda *t: fn(*t, **kw), *inputs)


def test_inplace_change_of_input_after_forward_is_caught(device, rng):
    x = leaf(rng.standard_normal((1, 2, 4, 4)), device, requires_grad=False)
    w = leaf(rng.standard_normal((2, 2, 3, 3)), device)
    out = conv2d(x, w)
    x.add_(1.0)
    with pytest.raises(gg.InplaceError):
        out.sum().backward()


# --- im2col / col2im --------------------------------------------------------------------------
def test_im2col_and_col2im_are_adjoint(device, rng):
    params = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    x = leaf(rng.standard_normal((2, 3, 6, 5)), device)
    cols = im2col(x, **params)
    assert cols.shape == (2, 3, 3, 2, 3, 7)
    y = rng.standard_normal(cols.shape)
    back = col2im(gg.tensor(y, device=device), x.shape, **params)
    # <im2col(x), y> == <x, col2im(y)>: the one is the transpose of the other
    lhs = float((cols.numpy() * y).sum())
    rhs = float((x.numpy() * back.numpy()).sum())
    assert math.isclose(lhs, rhs, rel_tol=1e-12)
    check(lambda x: im2col(x, **params), x)
    yt = leaf(y, device)
    check(lambda c: col2im(c, x.shape, **params), yt)


def test_col2im_adds_overlapping_windows(device):
    # 3-wide windows with stride 1 over a length-5 input: the middle element lies in 3 windows
    x = gg.ones(1, 1, 5, dtype="float64", device=device)
    counts = col2im(im2col(x, 3), x.shape, 3)
    np.testing.assert_array_equal(counts.numpy().ravel(), [1, 2, 3, 2, 1])
    with pytest.raises(gg.ShapeError, match=r"\(1, 1, 3, 3\)"):
        col2im(gg.ones(1, 1, 3, 2, device=device), x.shape, 3)


# --- errors -----------------------------------------------------------------------------------
def test_errors_name_the_shapes(device):
    x = gg.zeros(2, 4, 5, 5, device=device)
    w = gg.zeros(6, 2, 3, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(5, 5\)"):
        conv2d(x[0, 0], w)  # wrong rank
    with pytest.raises(gg.ShapeError, match=r"\(6, 2, 3\)"):
        conv2d(x, gg.zeros(6, 2, 3, device=device))  # weight rank
    with pytest.raises(gg.ShapeError, match=r"4 channels.*\(6, 2, 3, 3\)"):
        conv2d(x, w)  # channel mismatch: groups=1 expects 2
    with pytest.raises(gg.ShapeError, match=r"groups=3.*\(2, 4, 5, 5\)"):
        conv2d(x, gg.zeros(6, 1, 3, 3, device=device), groups=3)  # 4 channels, 3 groups
    with pytest.raises(gg.ShapeError, match=r"groups=2.*5 output channels"):
        conv2d(x, gg.zeros(5, 2, 3, 3, device=device), groups=2)
    with pytest.raises(gg.ShapeError, match=r"larger than the padded input \(7, 7\)"):
        conv2d(x, gg.zeros(6, 4, 3, 4, device=device), padding=1, dilation=(1, 3))
    with pytest.raises(gg.ShapeError, match=r"bias of shape \(5,\)"):
        conv2d(x, w, gg.zeros(5, device=device), groups=2)
    with pytest.raises(gg.ShapeError, match=r"\(N, C, L\).*\(2, 4, 5, 1\)"):
        conv1d(gg.zeros(2, 4, 5, 1, device=device), gg.zeros(3, 4, 2, device=device))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(stride=0), r"stride must be >= 1, got 0"),
        (dict(dilation=(1, 0)), r"dilation must be >= 1, got \(1, 0\)"),
        (dict(padding=-1), "padding must be >= 0, got -1"),
        (dict(padding=(1, 2, 3)), r"padding must be an int or 2 ints, got \(1, 2, 3\)"),
        (dict(padding="full"), "padding must be .*'full'"),
        (dict(groups=0), "groups must be an int >= 1, got 0"),
    ],
)
def test_bad_arguments(device, kwargs, match):
    x = gg.zeros(1, 2, 5, 5, device=device)
    w = gg.zeros(2, 2, 3, 3, device=device)
    with pytest.raises(gg.ArgumentError, match=match):
        conv2d(x, w, **kwargs)


def test_dtype_errors(device):
    w = gg.zeros(2, 2, 3, 3, device=device)
    with pytest.raises(gg.DTypeError, match=r"float64.*float32"):
        conv2d(gg.zeros(1, 2, 5, 5, dtype="float64", device=device), w)
    with pytest.raises(gg.DTypeError, match="int64"):
        conv2d(gg.zeros(1, 2, 5, 5, dtype="int64", device=device), w.astype("int64"))
    with pytest.raises(TypeError, match="Tensor"):
        conv2d(np.zeros((1, 2, 5, 5), dtype=np.float32), w)


# --- modules ----------------------------------------------------------------------------------
def test_conv2d_module_init_follows_pytorch(device):
    m = Conv2d(4, 64, (3, 5), groups=2, device=device)
    assert m.weight.shape == (64, 2, 3, 5) and m.bias.shape == (64,)
    bound = 1 / math.sqrt(2 * 3 * 5)  # fan_in = in_channels/groups · kernel elements
    for p in (m.weight, m.bias):
        values = np.abs(p.numpy())
        assert values.max() <= bound
    # Uniform over the whole range, not a narrower one: the extremes come close to the bound.
    assert np.abs(m.weight.numpy()).max() > 0.95 * bound
    assert np.abs(m.weight.numpy()).mean() == pytest.approx(bound / 2, rel=0.1)
    assert np.abs(m.bias.numpy()).max() > 0.7 * bound
    assert m.weight.dtype == np.float32 and m.weight.device == gg.device(device)


def test_conv_module_forward_and_repr(device, rng):
    m = Conv2d(4, 6, 3, stride=2, padding=1, dilation=(1, 2), groups=2, device=device,
               dtype="float64")  # fmt: skip
    text = "kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 2), groups=2"
    assert repr(m) == f"Conv2d(4, 6, {text})"
    x = leaf(rng.standard_normal((2, 4, 7, 8)), device)
    want = conv_reference(x.numpy(), m.weight.numpy(), m.bias.numpy(), 2, 1, (1, 2), 2)
    np.testing.assert_allclose(m(x).numpy(), want, rtol=1e-12, atol=1e-12)
    check(lambda x, w, b: m(x), x, m.weight, m.bias)
    assert repr(Conv2d(3, 8, (1, 2), bias=False, device=device)) == (
        "Conv2d(3, 8, kernel_size=(1, 2), stride=(1, 1), bias=False)"
    )
    assert [name for name, _ in m.named_parameters()] == ["weight", "bias"]


def test_conv1d_module(device, rng):
    m = Conv1d(3, 4, 3, padding="same", bias=False, device=device, dtype="float64")
    assert repr(m) == "Conv1d(3, 4, kernel_size=(3,), stride=(1,), padding=same, bias=False)"
    assert m.bias is None and m.weight.shape == (4, 3, 3)
    assert np.abs(m.weight.numpy()).max() <= 1 / math.sqrt(9)
    x = leaf(rng.standard_normal((2, 3, 6)), device)
    out = m(x)
    assert out.shape == (2, 4, 6)
    want = conv_reference(x.numpy(), m.weight.numpy(), padding=1)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


def test_module_errors(device):
    with pytest.raises(gg.ShapeError, match="groups=3"):
        Conv2d(4, 6, 3, groups=3, device=device)
    with pytest.raises(gg.ArgumentError, match=r"kernel_size must be an int or 2 ints"):
        Conv2d(4, 6, (3, 3, 3), device=device)
    m = Conv2d(3, 4, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(1, 2, 5, 5\) has 2 channels"):
        m(gg.zeros(1, 2, 5, 5, device=device))


def test_conv2d_module_loads_a_pytorch_state_dict(device, rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.Conv2d(3, 5, (2, 3), stride=(1, 2), padding=1).double()
    m = Conv2d(3, 5, (2, 3), stride=(1, 2), padding=1, device=device, dtype="float64")
    m.load_state_dict({k: gg.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    x = rng.standard_normal((2, 3, 6, 7))
    want = tm(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(m(gg.tensor(x, device=device)).numpy(), want, rtol=1e-10)


def test_interleaved_graphs_keep_their_own_columns(device, rng):
    """The columns kept for the weight's gradient, and the work buffers reused between calls,
    are never shared: two forwards of the same shape, then their backwards in either order."""
    x, w, b, kw = make_inputs(CASES_2D[1], rng, device)
    a1, a2 = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    g = gg.tensor(rng.standard_normal(conv2d(x, w, b, **kw).shape), device=device)
    want = []
    for a in (a1, a2):
        w.grad = None
        conv2d(gg.tensor(a, device=device), w, b, **kw).backward(g)
        want.append(w.grad.numpy().copy())
    for order in ((0, 1), (1, 0)):
        outs = [conv2d(gg.tensor(a, device=device), w, b, **kw) for a in (a1, a2)]
        for i in order:
            w.grad = None
            outs[i].backward(g)
            np.testing.assert_allclose(w.grad.numpy(), want[i], rtol=1e-12, atol=1e-12)


def test_convolutions_in_threads_match_serial_ones(device, rng):
    """Work buffers are taken atomically: threads running the same shapes at once get the
    results one thread gets."""
    from concurrent.futures import ThreadPoolExecutor

    x, w, b, kw = make_inputs(CASES_2D[0], rng, device)
    inputs = [rng.standard_normal(x.shape) for _ in range(8)]

    def run(a):
        xa = gg.tensor(a, device=device, requires_grad=True)
        wa = gg.tensor(w.numpy(), device=device, requires_grad=True)
        conv2d(xa, wa, b, **kw).tanh().sum().backward()
        return xa.grad.numpy(), wa.grad.numpy()

    serial = [run(a) for a in inputs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, inputs * 4))
    for (gx, gw), (want_x, want_w) in zip(threaded, serial * 4):
        np.testing.assert_array_equal(gx, want_x)
        np.testing.assert_array_equal(gw, want_w)
