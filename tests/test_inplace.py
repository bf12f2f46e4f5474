"""In-place ops: they change the array itself and bump the version; autograd records them on
non-leaves, refuses them on leaves that require grad, and catches changes of saved values."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import check, leaf, same

import gpugrad as gg


# --- the array changes in place and the version goes up ------------------------------------------
def _iadd(x, o):
    x += o
    return x


def _isub(x, o):
    x -= o
    return x


def _imul(x, o):
    x *= o
    return x


def _idiv(x, o):
    x /= o
    return x


def _setitem(x, o):
    x[1:, ::2] = o
    return x


OPS = {
    "+=": (_iadd, lambda a, o: a + o),
    "-=": (_isub, lambda a, o: a - o),
    "*=": (_imul, lambda a, o: a * o),
    "/=": (_idiv, lambda a, o: a / o),
    "add_": (lambda x, o: x.add_(o), lambda a, o: a + o),
    "add_ alpha": (lambda x, o: x.add_(o, alpha=-2.5), lambda a, o: a - 2.5 * o),
    "sub_": (lambda x, o: gg.sub_(x, o), lambda a, o: a - o),
    "sub_ alpha": (lambda x, o: x.sub_(o, alpha=3), lambda a, o: a - 3 * o),
    "mul_": (lambda x, o: x.mul_(o), lambda a, o: a * o),
    "div_": (lambda x, o: gg.div_(x, o), lambda a, o: a / o),
    "setitem": (_setitem, None),
    "fill_": (lambda x, o: x.fill_(o), lambda a, o: np.broadcast_to(o, a.shape)),
    "copy_": (lambda x, o: x.copy_(o), lambda a, o: np.broadcast_to(o, a.shape)),
}


def _setitem_ref(a, o):
    a = a.copy()
    a[1:, ::2] = o
    return a


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("other_kind", ["tensor", "scalar"])
def test_in_place_changes_the_same_array_and_bumps_the_version(device, rng, name, other_kind):
    fn, ref = OPS[name]
    ref = ref or _setitem_ref
    a = rng.standard_normal((3, 4))
    x = leaf(a, device, requires_grad=False)
    if other_kind == "tensor":
        o = rng.uniform(1, 2, size=(4,) if name != "setitem" else (2, 2))
        other = gg.tensor(o, device=device)
    else:
        o = other = 1.75
    data = x.data
    out = fn(x, other)
    assert out is x
    assert x.data is data
    assert x.version == 1
    same(x, ref(a, o))


def test_zero_(device, rng):
    x = leaf(rng.standard_normal((2, 3)), device, requires_grad=False)
    data = x.data
    assert x.zero_() is x
    assert x.data is data and x.version == 1
    same(x, np.zeros((2, 3)))
    gg.zero_(x)
    assert x.version == 2


def test_copy_broadcasts_and_casts(device, rng):
    x = gg.zeros(2, 3, dtype=gg.float64, device=device)
    src = rng.standard_normal(3).astype(np.float32)
    x.copy_(gg.tensor(src, device=device))
    assert x.dtype == np.float64
    same(x, np.broadcast_to(src.astype(np.float64), (2, 3)))
    x.copy_(np.arange(6.0).reshape(2, 3))
    same(x, np.arange(6.0).reshape(2, 3))
    assert x.version == 2


def test_copy_from_another_device(device, rng):
    if not gg.cuda.is_available():
        pytest.skip("needs a second device (cuda)")
    other = "cpu" if device == "cuda" else "cuda"
    a = rng.standard_normal((2, 3))
    x = gg.zeros(2, 3, dtype=gg.float64, device=device)
    data = x.data
    x.copy_(gg.tensor(a, device=other))
    assert x.data is data
    same(x, a)


@pytest.mark.parametrize(
    "index",
    [0, -1, (1, 2), slice(None, None, -1), (Ellipsis, 1), [2, 0], np.array([True, False, True])],
    ids=str,
)
def test_setitem_matches_numpy(device, rng, index):
    a = rng.standard_normal((3, 4))
    x = leaf(a, device, requires_grad=False)
    value = rng.standard_normal(np.shape(a[index]))
    x[index] = gg.tensor(value, device=device)
    expected = a.copy()
    expected[index] = value
    same(x, expected)


def test_in_place_through_a_view_changes_the_base(device, rng):
    a = rng.standard_normal((3, 4))
    x = leaf(a, device, requires_grad=False)
    row = x[1]
    row += 1
    col = x.T[2]
    col.mul_(2)
    expected = a.copy()
    expected[1] += 1
    expected[:, 2] *= 2
    same(x, expected)
    assert x.version == row.version == 2


# --- errors --------------------------------------------------------------------------------------
def test_int_tensor_plus_float_raises_dtype_error(device):
    x = gg.tensor([1, 2, 3], device=device)
    with pytest.raises(gg.DTypeError, match="int64"):
        x += 0.5
    with pytest.raises(gg.DTypeError, match="int64"):
        x.mul_(gg.tensor([0.5, 1.0, 2.0], device=device))
    same(x, [1, 2, 3])
    assert x.version == 0
    x += 2  # int into int is fine
    same(x, [3, 4, 5])


def test_in_place_with_a_wrong_shape_raises_shape_error(device):
    x = gg.zeros(2, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3\)"):
        x += gg.ones(3, 3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(2, 3\)"):
        x.add_(gg.ones(2, 2, device=device))


def test_setitem_incompatible_shape_raises_shape_error(device, rng):
    x = gg.zeros(3, 4, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(3, 4\)"):
        x[0] = gg.ones(3, device=device)
    with pytest.raises(gg.ShapeError, match=r"\(3, 4\)"):
        x[:2] = np.ones((3, 4))
    # The same when the assignment is recorded.
    w = leaf(rng.standard_normal((3, 4)), device)
    y = w * 1
    with pytest.raises(gg.ShapeError):
        y[0] = leaf(np.ones(3), device)
    assert x.version == 0


def test_setitem_out_of_range_raises(device):
    x = gg.zeros(3, device=device)
    with pytest.raises(IndexError) as info:
        x[3] = 1.0
    assert isinstance(info.value, gg.ShapeError)


LEAF_OPS = {
    "+=": lambda x: _iadd(x, 1.0),
    "-=": lambda x: _isub(x, gg.ones_like(x)),
    "*=": lambda x: _imul(x, 2.0),
    "/=": lambda x: _idiv(x, 2.0),
    "add_": lambda x: x.add_(1.0, alpha=2),
    "sub_": lambda x: x.sub_(1.0),
    "mul_": lambda x: x.mul_(2.0),
    "div_": lambda x: x.div_(2.0),
    "setitem": lambda x: x.__setitem__(0, 5.0),
    "zero_": lambda x: x.zero_(),
    "fill_": lambda x: x.fill_(3.0),
    "copy_": lambda x: x.copy_(gg.zeros_like(x)),
}


@pytest.mark.parametrize("name", list(LEAF_OPS))
def test_in_place_on_a_leaf_that_requires_grad_raises(device, rng, name):
    a = rng.standard_normal((2, 3))
    x = leaf(a, device)
    with pytest.raises(gg.InplaceError, match="leaf"):
        LEAF_OPS[name](x)
    same(x, a)
    assert x.version == 0


@pytest.mark.parametrize("name", list(LEAF_OPS))
def test_in_place_on_a_leaf_works_under_no_grad(device, rng, name):
    a = rng.standard_normal((2, 3))
    x = leaf(a, device)
    data = x.data
    with gg.no_grad():
        LEAF_OPS[name](x)
    assert x.data is data
    assert x.version >= 1
    assert x.is_leaf and x.requires_grad and x.grad_fn is None
    assert not np.allclose(x.numpy(), a)


def test_optimizer_style_update(device, rng):
    a = rng.standard_normal(3)
    w = leaf(a, device)
    (w * w).sum().backward()
    with gg.no_grad():
        w -= 0.1 * w.grad
        w.grad.zero_()
    same(w, a - 0.1 * 2 * a)
    (w * w).sum().backward()  # the updated leaf still works in a new graph
    same(w.grad, 2 * (a - 0.1 * 2 * a))


# --- recorded in-place ops on non-leaves: gradients ----------------------------------------------
def test_in_place_chain_gives_the_out_of_place_gradients(device, rng):
    xa, wa, va = rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    x, w, v = leaf(xa, device), leaf(wa, device), leaf(va, device)
    y = x * 1
    y *= w
    y[0] = v
    assert y.version == 2
    same(y, np.vstack([va, (xa * wa)[1:]]))
    y.sum().backward()
    mask = np.array([[0.0], [1.0], [1.0]])
    same(x.grad, wa * mask)
    same(w.grad, xa * mask)
    same(v.grad, np.ones(2))


def _chain(x, w, v):
    y = x * 1
    y *= w
    y[0] = v
    y += x
    y.sub_(w, alpha=0.5)
    y /= w
    return y


def test_in_place_chain_gradcheck(device, rng):
    x = leaf(rng.standard_normal((3, 2)), device)
    w = leaf(rng.uniform(1, 2, size=(3, 2)), device)
    v = leaf(rng.standard_normal(2), device)
    check(_chain, x, w, v)


def test_slice_augmented_assignment_gradients(device, rng):
    aa, ca = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))
    a, c = leaf(aa, device), leaf(ca, device)
    b = a * 2
    b[1:3] += c  # Python: view = b[1:3]; view += c; b[1:3] = view
    expected = 2 * aa
    expected[1:3] += ca
    same(b, expected)
    (b * b).sum().backward()
    same(a.grad, 2 * 2 * expected)
    same(c.grad, 2 * expected[1:3])

    def fn(a, c):
        b = a * 2
        b[1:3] += c
        b[::2] *= c[0]
        return b * b

    check(fn, a, c)


@pytest.mark.parametrize("name", ["add_", "sub_", "mul_", "div_"])
def test_in_place_methods_with_tensor_operands_gradcheck(device, rng, name):
    x = leaf(rng.standard_normal((2, 3)), device)
    o = leaf(rng.uniform(1, 2, size=(3,)), device)
    kwargs = {"alpha": 1.5} if name in ("add_", "sub_") else {}

    def fn(x, o):
        y = x.exp() * 1  # exp saved its output, so the change goes to a product of it
        getattr(y, name)(o, **kwargs)
        return y

    check(fn, x, o)


def test_fill_and_copy_with_tensors_that_require_grad(device, rng):
    x = leaf(rng.standard_normal((2, 3)), device)
    s = leaf(1.5, device)
    src = leaf(rng.standard_normal(3), device)

    def fill(x, s):
        y = x * 2
        y.fill_(s)
        return y * x

    def copy(x, src):
        y = x * 1
        y.copy_(src)
        return y * y

    check(fill, x, s)
    check(copy, x, src)


@pytest.mark.parametrize("name", ["+=", "add_", "mul_", "fill_", "setitem"])
def test_in_place_on_the_output_of_an_op_that_saved_only_its_inputs(device, rng, name):
    # Mul saves x and w, not its output y, so changing y afterwards must not raise.
    xa, wa = rng.standard_normal(3), rng.standard_normal(3)
    x, w = leaf(xa, device), leaf(wa, device)
    y = x * w
    LEAF_OPS[name](y)
    y.sum().backward()
    untouched = np.array([0.0, 1.0, 1.0]) if name == "setitem" else np.ones(3)
    if name == "fill_":
        untouched = np.zeros(3)
    scale = 2.0 if name == "mul_" else 1.0
    same(x.grad, scale * wa * untouched)
    same(w.grad, scale * xa * untouched)


def test_setitem_value_requires_grad_target_does_not(device, rng):
    ca = rng.standard_normal(3)
    c = leaf(ca, device)
    b = gg.zeros(4, 3, dtype=gg.float64, device=device)
    b[[0, 2]] = c  # broadcast into two rows
    assert b.grad_fn is not None
    (b * b).sum().backward()
    same(c.grad, 2 * 2 * ca)

    def fn(c, d):
        b = gg.ones(4, 3, dtype=gg.float64, device=device)
        b[1:3] += c
        b[1:3] *= d
        return b * b

    check(fn, c, leaf(rng.standard_normal((2, 3)), device))


def test_setitem_value_with_extra_leading_axes(device, rng):
    v = leaf(rng.standard_normal((1, 3)), device)
    x = leaf(rng.standard_normal((2, 3)), device)

    def fn(x, v):
        y = x * 1
        y[0] = v  # NumPy accepts (1, 3) for a (3,) target
        return y * y

    check(fn, x, v)


@pytest.mark.parametrize(
    "index", [1, (slice(None), 0), [0, 2], np.array([False, True, True]), (Ellipsis, -1)], ids=str
)
def test_setitem_gradcheck(device, rng, index):
    x = leaf(rng.standard_normal((3, 4)), device)
    v = leaf(rng.standard_normal(np.shape(np.zeros((3, 4))[index])), device)

    def fn(x, v):
        y = x.exp() * 1
        y[index] = v * v
        return y * x

    check(fn, x, v)


def test_in_place_on_a_recorded_slice_writes_through_to_its_base(device, rng):
    a = leaf(rng.standard_normal((4, 3)), device)
    w = leaf(rng.standard_normal(3), device)
    b = a * 2
    view = b[1:3]
    view.mul_(w)  # changes b's rows 1 and 2, and b's history says so
    expected = a.detach().numpy() * 2
    expected[1:3] *= w.detach().numpy()
    same(b, expected)
    same(view, expected[1:3])
    (b * b).sum().backward()
    grad_a = 2 * 2 * expected
    grad_a[1:3] *= w.detach().numpy()
    same(a.grad, grad_a)
    same(w.grad, (2 * expected[1:3] * a.detach().numpy()[1:3] * 2).sum(axis=0))

    def fn(a, w):
        b = a * 2
        v = b[::2]
        v *= w
        v += 1
        return b * b + v.sum()

    check(fn, a, w)


def test_in_place_on_a_reshaped_view_raises(device, rng):
    b = leaf(rng.standard_normal((4, 3)), device) * 2
    view = b.reshape(12)
    with pytest.raises(gg.InplaceError, match="view"):
        view.mul_(2)


def test_changing_a_base_while_a_recorded_view_lives_raises(device, rng):
    a = leaf(rng.standard_normal(3), device)
    y = a * 2
    z = y[1:]  # z's history: a slice of y as it is now
    with pytest.raises(gg.InplaceError, match="shares its memory"):
        y[1] = 10.0
    del z
    y[1] = 10.0  # fine once no view is left to go stale
    y.sum().backward()
    same(a.grad, [2.0, 0.0, 2.0])


# --- changes to saved values are caught ----------------------------------------------------------
def test_change_of_a_saved_output_raises(device, rng):
    x = leaf(rng.standard_normal(3), device)
    y = x.exp()
    y += 1
    with pytest.raises(gg.InplaceError, match="Exp"):
        y.sum().backward()


def test_change_of_a_saved_input_raises(device, rng):
    x, w = leaf(rng.standard_normal(3), device), leaf(rng.standard_normal(3), device)
    w2 = w * 1
    h = x * w2  # saves w2
    s = h.sigmoid()
    w2 += 1
    with pytest.raises(gg.InplaceError, match="in place"):
        s.sum().backward()
    # The same graph without the change works.
    w2 = w * 1
    h = x * w2
    h.sigmoid().sum().backward()
    assert x.grad is not None


def test_change_of_a_saved_sigmoid_output_raises(device, rng):
    x, w = leaf(rng.standard_normal(3), device), leaf(rng.standard_normal(3), device)
    s = (x * w).sigmoid()
    out = s * 2
    s[0] = 0.0
    with pytest.raises(gg.InplaceError):
        out.sum().backward()


def test_change_under_no_grad_of_a_saved_tensor_raises(device, rng):
    x = leaf(rng.standard_normal(3), device)
    w = leaf(rng.standard_normal(3), device)
    y = (x * w).sum()
    with gg.no_grad():
        w.mul_(2)
    with pytest.raises(gg.InplaceError):
        y.backward()


def test_change_of_a_value_not_saved_is_fine(device, rng):
    # Add saves nothing, so changing its input afterwards leaves the gradient correct.
    x, w = leaf(rng.standard_normal(3), device), leaf(rng.standard_normal(3), device)
    h = x * 1
    y = h + w
    h += 5
    y.sum().backward()
    same(x.grad, np.ones(3))
    same(w.grad, np.ones(3))
