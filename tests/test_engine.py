"""The autograd engine: accumulation, aliasing, graph freeing, grad modes, gg.grad,
higher-order gradients, deep graphs, memory release and version counters."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import gpugrad as gg


def leaf(values, device, dtype="float32"):
    return gg.tensor(values, dtype=dtype, device=device, requires_grad=True)


# --- accumulation and aliasing -------------------------------------------------------------
def test_backward_accumulates_into_grad_across_calls(device, rng):
    a = rng.standard_normal((3, 4))
    x = leaf(a, device, "float64")
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a + 3)


def test_tensor_used_twice_gets_summed_gradients(device, rng):
    a = rng.standard_normal(5)
    x = leaf(a, device, "float64")
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)
    y = leaf(a, device, "float64")
    (y + y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), np.full(5, 2.0))


def test_grad_has_leaf_shape_dtype_and_device(device):
    x = leaf([[1.0, 2.0, 3.0]], device)
    (x * 2).sum().backward()
    assert x.grad.shape == x.shape
    assert x.grad.dtype == x.dtype
    assert x.grad.device == x.device
    assert not x.grad.requires_grad


def test_grads_of_two_leaves_never_alias(device):
    a = leaf([1.0, 2.0], device)
    b = leaf([3.0, 4.0], device)
    z = a + b
    z.backward(gg.ones_like(z))
    a.grad.data += 1
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])


def test_grads_of_two_leaves_never_alias_with_create_graph(device):
    a = leaf([1.0], device)
    b = leaf([1.0], device)
    (a + b).sum().backward(create_graph=True)
    (a + b).sum().backward()  # accumulates into both .grad in place
    np.testing.assert_array_equal(a.grad.numpy(), [2.0])
    np.testing.assert_array_equal(b.grad.numpy(), [2.0])


@pytest.mark.parametrize("through", ["leaf", "add", "view"])
def test_gradient_argument_is_not_aliased_by_grad(device, through):
    x = leaf([1.0, 2.0, 3.0], device)
    make = {"leaf": lambda: x, "add": lambda: x + 0, "view": lambda: x.reshape(3, 1)}[through]
    g = gg.ones_like(make())
    make().backward(g)
    x.grad.data += 5
    np.testing.assert_array_equal(g.numpy(), np.ones(g.shape))
    make().backward(g)  # accumulating in place must not write into g either
    np.testing.assert_array_equal(g.numpy(), np.ones(g.shape))
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0, 7.0])


def test_gradient_argument_is_not_aliased_with_create_graph(device):
    x = leaf([1.0], device)
    g = gg.tensor([1.0], device=device)
    x.backward(g, create_graph=True)
    x.backward(g)
    np.testing.assert_array_equal(g.numpy(), [1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0])


def test_retain_grad_on_non_leaf(device, rng):
    a = rng.standard_normal(4)
    x = leaf(a, device, "float64")
    h = x * 2
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * (2 * a))
    np.testing.assert_allclose(x.grad.numpy(), 8 * a)
    other = x * 3  # no retain_grad: a non-leaf keeps grad None
    other.sum().backward()
    assert other.grad is None


# --- graph misuse --------------------------------------------------------------------------
def test_second_backward_without_retain_graph_raises(device):
    x = leaf([1.0, 2.0], device)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(gg.GraphError, match="retain_graph"):
        y.backward()


def test_backward_through_a_freed_part_of_the_graph_raises(device):
    x = leaf([1.0, 2.0], device)
    h = x.exp()
    h.sum().backward()  # frees Exp's saved output
    with pytest.raises(gg.GraphError, match="Exp"):
        (h * 2).sum().backward()


def test_retain_graph_allows_second_backward_and_doubles(device, rng):
    a = rng.standard_normal(3)
    x = leaf(a, device, "float64")
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    np.testing.assert_allclose(first, np.exp(a) * (1 + a))
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_retained_grad_accumulates_over_retained_backwards(device):
    x = leaf([1.0, 2.0], device)
    h = x * 2
    h.retain_grad()
    y = (h * h).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(h.grad.numpy(), [8.0, 16.0])  # 2 * 2h
    np.testing.assert_array_equal(x.grad.numpy(), [16.0, 32.0])  # 2 * 8x


def test_non_scalar_backward_without_gradient_names_shape(device):
    y = leaf([[1.0, 2.0, 3.0]], device) * 2
    with pytest.raises(gg.GraphError, match=r"\(1, 3\)"):
        y.backward()


def test_gradient_of_wrong_shape_raises(device):
    y = leaf([1.0, 2.0, 3.0], device) * 2
    with pytest.raises(gg.ShapeError, match=r"\(2,\).*\(3,\)"):
        y.backward(gg.ones(2, device=device))


def test_backward_of_tensor_not_requiring_grad_raises(device):
    y = gg.tensor([1.0, 2.0], device=device) * 2
    with pytest.raises(gg.GraphError, match="does not require grad"):
        y.sum().backward()


# --- grad modes ----------------------------------------------------------------------------
def test_no_grad_and_enable_grad_context_managers_nest(device):
    x = leaf([1.0], device)
    assert gg.is_grad_enabled()
    with gg.no_grad():
        assert not gg.is_grad_enabled()
        y = x * 2
        with gg.enable_grad():
            assert gg.is_grad_enabled()
            z = x * 2
            with gg.no_grad():
                assert not gg.is_grad_enabled()
            assert gg.is_grad_enabled()
        assert not gg.is_grad_enabled()
    assert gg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_restores_mode_after_exception():
    with pytest.raises(RuntimeError), gg.no_grad():
        raise RuntimeError("boom")
    assert gg.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators(device):
    x = leaf([1.0], device)

    @gg.no_grad()
    def frozen(t):
        assert not gg.is_grad_enabled()
        return t * 2

    @gg.enable_grad()
    def tracked(t):
        return t * 2

    y = frozen(x)
    assert not y.requires_grad and y.grad_fn is None
    assert gg.is_grad_enabled()
    with gg.no_grad():
        z = tracked(x)
        assert not gg.is_grad_enabled()
    assert z.requires_grad and z.grad_fn is not None
    assert frozen.__name__ == "frozen"


def test_set_grad_enabled(device):
    x = leaf([1.0], device)
    with gg.set_grad_enabled(False):
        assert not gg.is_grad_enabled()
        assert (x * 2).grad_fn is None
        with gg.set_grad_enabled(True):
            assert (x * 2).grad_fn is not None
    assert gg.is_grad_enabled()

    @gg.set_grad_enabled(False)
    def f(t):
        return t + 1

    assert not f(x).requires_grad


def test_ops_under_no_grad_do_not_record(device):
    x = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    with gg.no_grad():
        outs = [x + 1, x * x, x.exp(), x @ x, x.sum(), x.T, x[0], x.reshape(4)]
    for out in outs:
        assert out.requires_grad is False
        assert out.grad_fn is None


# --- gg.grad -------------------------------------------------------------------------------
def test_grad_returns_tuple_and_leaves_grad_untouched(device, rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    x, w = leaf(a, device, "float64"), leaf(b, device, "float64")
    out = (x * w).sum()
    gs = gg.grad(out, [x, w])
    assert isinstance(gs, tuple) and len(gs) == 2
    np.testing.assert_allclose(gs[0].numpy(), b)
    np.testing.assert_allclose(gs[1].numpy(), a)
    assert x.grad is None and w.grad is None
    (x * 1.0).sum().backward()
    before = x.grad.numpy().copy()
    gg.grad((x * w).sum(), x)
    np.testing.assert_array_equal(x.grad.numpy(), before)


def test_grad_with_grad_outputs(device, rng):
    a, v = rng.standard_normal(4), rng.standard_normal(4)
    x = leaf(a, device, "float64")
    (gx,) = gg.grad(x.sin(), x, grad_outputs=gg.tensor(v, device=device))
    np.testing.assert_allclose(gx.numpy(), v * np.cos(a))


def test_grad_of_non_leaf_input(device, rng):
    a = rng.standard_normal(3)
    x = leaf(a, device, "float64")
    h = x * 2
    (gh,) = gg.grad((h * h).sum(), h)
    np.testing.assert_allclose(gh.numpy(), 4 * a)
    assert x.grad is None


def test_grad_unused_input(device):
    x, w = leaf([1.0], device), leaf([2.0], device)
    with pytest.raises(gg.GraphError, match="allow_unused"):
        gg.grad((x * 2).sum(), [x, w])
    gx, gw = gg.grad((x * 2).sum(), [x, w], allow_unused=True)
    np.testing.assert_array_equal(gx.numpy(), [2.0])
    assert gw is None


def test_grad_input_that_does_not_require_grad_raises(device):
    x = leaf([1.0], device)
    c = gg.tensor([1.0], device=device)
    with pytest.raises(gg.GraphError, match="does not require grad"):
        gg.grad((x * c).sum(), [x, c])


def test_grad_retain_graph(device):
    x = leaf([1.0, 2.0], device)
    y = (x.exp()).sum()
    gg.grad(y, x, retain_graph=True)
    gg.grad(y, x)  # still there after retain_graph=True
    with pytest.raises(gg.GraphError, match="retain_graph"):
        gg.grad(y, x)


# --- higher order --------------------------------------------------------------------------
def test_grad_of_grad_of_cube_is_6x(device, rng):
    a = rng.standard_normal(5)
    x = leaf(a, device, "float64")
    (g1,) = gg.grad((x**3).sum(), x, create_graph=True)
    np.testing.assert_allclose(g1.numpy(), 3 * a**2)
    assert g1.requires_grad
    (g2,) = gg.grad(g1.sum(), x)
    np.testing.assert_allclose(g2.numpy(), 6 * a)


def test_backward_create_graph_then_backward_of_grad(device, rng):
    a = rng.standard_normal(3)
    x = leaf(a, device, "float64")
    (x**3).sum().backward(create_graph=True)
    gx = x.grad
    x.grad = None
    gx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * a)


def _mlp(x, w1, w2):
    return ((x @ w1).tanh() @ w2).sum()


def test_hessian_vector_product_matches_finite_differences(device, rng):
    w1 = gg.tensor(rng.standard_normal((3, 5)), device=device)
    w2 = gg.tensor(rng.standard_normal((5, 2)), device=device)
    x0 = rng.standard_normal((2, 3))
    v = rng.standard_normal((2, 3))

    def gradient(xa):
        x = leaf(xa, device, "float64")
        return gg.grad(_mlp(x, w1, w2), x)[0].numpy()

    x = leaf(x0, device, "float64")
    (g,) = gg.grad(_mlp(x, w1, w2), x, create_graph=True)
    (hv,) = gg.grad((g * gg.tensor(v, device=device)).sum(), x)
    eps = 1e-6
    numeric = (gradient(x0 + eps * v) - gradient(x0 - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv.numpy(), numeric, rtol=1e-5, atol=1e-7)


def test_gradient_penalty_backpropagates_to_weights(device, rng):
    w = leaf(rng.standard_normal((3, 2)), device, "float64")
    x = leaf(rng.standard_normal((4, 3)), device, "float64")

    def net(w, x):
        return (x @ w).tanh().sum()

    def penalty(w, x):
        (gx,) = gg.grad(net(w, x), x, create_graph=True)
        return (gx * gx).sum().sqrt()

    penalty(w, x).backward()
    assert w.grad is not None and np.abs(w.grad.numpy()).sum() > 0
    # the penalty's gradient w.r.t. the weights is a second derivative of net
    assert gg.gradcheck(penalty, (w, x))
    assert gg.gradgradcheck(net, (w, x))


# --- deep graphs and memory ----------------------------------------------------------------
@pytest.mark.parametrize("step", ["mul", "add"])
def test_100k_op_chain_backpropagates_without_recursion(device, step):
    x = leaf([1.0], device, "float64")
    y = x
    n = 100_000
    for _ in range(n):
        y = y * 1.0000001 if step == "mul" else y + 0
    y.sum().backward()
    expected = 1.0000001**n if step == "mul" else 1.0
    np.testing.assert_allclose(x.grad.numpy(), [expected], rtol=1e-9)


def test_backward_frees_saved_intermediates(device):
    x = leaf(np.linspace(0.1, 1, 50), device)

    def forward():
        h = x.exp()  # saves its output
        k = h.sin()  # saves its input h
        return (k * k).sum(), weakref.ref(h.data), weakref.ref(k.data)

    y, ref_h, ref_k = forward()
    gc.collect()
    assert ref_h() is not None and ref_k() is not None  # held by the graph until backward
    y.backward()
    gc.collect()
    assert ref_h() is None
    assert ref_k() is None
    assert y.grad_fn is not None  # the output itself keeps its node, but nothing saved


def test_retain_graph_keeps_saved_intermediates(device):
    x = leaf(np.linspace(0.1, 1, 50), device)

    def forward():
        h = x.exp()
        return h.sin().sum(), weakref.ref(h.data)

    y, ref_h = forward()
    y.backward(retain_graph=True)
    gc.collect()
    assert ref_h() is not None
    y.backward()
    gc.collect()
    assert ref_h() is None


def test_memory_returns_after_backward_and_dropping_output(device):
    if device != "cpu":
        pytest.skip("tracemalloc sees host memory only")
    n = 1_000_000
    x = gg.ones(n, device=device, requires_grad=True)  # 4 MB of float32
    nbytes = x.data.nbytes
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = x * 1.5
        for _ in range(4):
            y = (y * 1.01).sin() + 0.5
        loss = y.sum()
        del y  # from here on only the graph (through loss) holds the intermediates
        during = tracemalloc.get_traced_memory()[0]
        loss.backward()
        gc.collect()
        after_backward = tracemalloc.get_traced_memory()[0]
        del loss
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # the graph holds what backward needs and no more: the four arrays Sin saved (its
    # inputs); products and sums keep nothing, since their gradients need no values
    assert 3.5 * nbytes < during - before < 5 * nbytes
    # the output is still alive, but its graph's saved arrays are gone: x.grad remains
    assert after_backward - before < nbytes + nbytes // 4
    # and after dropping the output too: x.grad, and nothing else of size
    assert after - before < nbytes + nbytes // 4


# --- version counters, detach, requires_grad_ ----------------------------------------------
def test_version_counts_in_place_changes(device):
    x = gg.tensor([1.0, 2.0], device=device)
    assert x.version == 0
    x += 1
    assert x.version == 1
    x.mul_(2)
    x[0] = 5.0
    assert x.version == 3
    y = x + 1  # out of place: no change
    assert x.version == 3 and y.version == 0


def test_in_place_change_of_saved_tensor_raises_at_backward(device):
    x = leaf([1.0, 2.0], device)
    h = x * 1
    y = h.exp() * h  # Exp and Mul save h
    h += 1
    with pytest.raises(gg.InplaceError, match="in place"):
        y.sum().backward()


def test_in_place_change_of_unsaved_tensor_is_fine(device):
    x = leaf([1.0, 2.0], device)
    h = x * 1
    y = h + 1  # Add saves nothing
    h += 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_detach_shares_data_and_version(device):
    x = leaf([1.0, 2.0], device)
    h = x * 2
    d = h.detach()
    assert d.grad_fn is None and not d.requires_grad and d.is_leaf
    assert d.data is h.data
    d += 1
    assert h.version == 1
    np.testing.assert_array_equal(h.numpy(), [3.0, 5.0])


def test_detached_in_place_change_is_caught(device):
    x = leaf([1.0, 2.0], device)
    h = x.exp()  # saves its output
    h.detach().mul_(2)
    with pytest.raises(gg.InplaceError):
        h.sum().backward()


def test_requires_grad_on_int_tensor_raises(device):
    t = gg.tensor([1, 2], device=device)
    with pytest.raises(gg.DTypeError, match="int64"):
        t.requires_grad_()
    with pytest.raises(gg.DTypeError):
        gg.tensor([1, 2], device=device, requires_grad=True)


def test_requires_grad_on_non_leaf_raises(device):
    y = leaf([1.0], device) * 2
    with pytest.raises(gg.GraphError, match="leaf"):
        y.requires_grad_(False)


def test_grad_mode_is_per_thread(device):
    """A no_grad block in one thread does not switch recording off in another."""
    import threading

    x = gg.ones(2, device=device, requires_grad=True)
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    def other_thread():
        inside.wait()
        seen["enabled"] = gg.is_grad_enabled()
        seen["records"] = (x * 2).requires_grad
        release.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with gg.no_grad():
        inside.set()
        release.wait(timeout=10)
        assert not (x * 2).requires_grad
    t.join()
    assert seen == {"enabled": True, "records": True}


def test_double_backward_tells_apart_inputs_that_share_an_array(device):
    """x and x.detach() hold the same array; second derivatives must still follow only x."""
    x = gg.tensor([1.0, 2.0, 4.0], dtype="float64", device=device, requires_grad=True)
    y = (x.detach() / x + x * x).sum()
    (g,) = gg.grad(y, x, create_graph=True)
    (h,) = gg.grad(g.sum(), x)
    # y = Σ c/x + x² with c = x held constant: g = -c/x² + 2x, dg/dx = 2c/x³ + 2 = 2/x² + 2
    np.testing.assert_allclose(h.numpy(), 2 / np.array([1.0, 2.0, 4.0]) ** 2 + 2)


def test_replacing_data_after_forward_is_refused_by_double_backward(device):
    x = gg.tensor([1.0, 2.0], device=device, requires_grad=True)
    w = gg.tensor([3.0, 4.0], device=device, requires_grad=True)
    y = (x * w).sum()
    w.data = gg.tensor([5.0, 6.0], device=device).data
    with pytest.raises(gg.GraphError, match="replaced"):
        gg.grad(y, x, create_graph=True)


def test_grad_stops_at_a_non_leaf_input(device):
    """gg.grad w.r.t. a non-leaf needs nothing below it, even a part already freed."""
    x = leaf([1.0, 2.0], device)
    h = x.exp()
    out = (h * 2).sum()
    h.sum().backward()  # frees Exp's saved output
    (gh,) = gg.grad(out, h)
    np.testing.assert_allclose(gh.numpy(), [2.0, 2.0])
    assert x.grad is not None and np.allclose(x.grad.numpy(), np.exp([1.0, 2.0]))


def test_grad_skips_branches_that_lead_to_no_requested_input(device):
    a = leaf([1.0, 2.0], device)
    b = leaf([3.0, 4.0], device)
    calls = []

    class Spy(gg.autograd.Function):
        def forward(self, x):
            return x * 1

        def backward(self, xp, g):
            calls.append("spy")
            return g

    y = (Spy.apply(a) * b).sum()
    (gb,) = gg.grad(y, b)
    np.testing.assert_allclose(gb.numpy(), [1.0, 2.0])
    assert calls == []  # the branch towards a alone was never differentiated
