"""The compiled engine (kernels/engine/engine.cpp) against the Python engine it mirrors.

conftest.py runs this file (and the engine's other test files) once per engine; the tests that
compare the two, or look at the extension itself, need it built and skip where it is not.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import autograd as ag
from gpugrad.errors import DTypeError, GraphError, InplaceError, ShapeError

needs_compiled = pytest.mark.skipif(
    ag._built is None, reason="the compiled engine is not built here (no compiler or headers)"
)


def _graph_grads(seed: int) -> list[np.ndarray]:
    """Gradients of a graph with broadcasting, reuse of leaves, scalars, views and 0-d
    results, so that both engines walk the same varied graph."""
    rng = np.random.default_rng(seed)
    a = gg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = gg.tensor(rng.standard_normal((4,)), requires_grad=True)
    c = gg.tensor(rng.standard_normal((3, 1)), requires_grad=True)
    y = a
    for _ in range(4):
        y = ((y * 1.5 + b).tanh() * a - c).relu() + y.exp() * 0.01
    z = y[1:, ::2].sum() + (y.T @ a).mean() + (c * c).sum()
    z.backward()
    return [t.grad.numpy() for t in (a, b, c)]


@needs_compiled
def test_both_engines_give_the_same_bits() -> None:
    ag.use_compiled_engine(True)
    compiled = [_graph_grads(seed) for seed in range(5)]
    ag.use_compiled_engine(False)
    python = [_graph_grads(seed) for seed in range(5)]
    for ours, theirs in zip(compiled, python):
        for x, y in zip(ours, theirs):
            np.testing.assert_array_equal(x, y)


@needs_compiled
def test_apply_is_the_compiled_one_and_can_be_switched_off() -> None:
    assert ag.use_compiled_engine(True) is True
    assert gg.autograd.Function.apply.__func__ is ag._built.apply  # type: ignore[attr-defined]
    assert ag.use_compiled_engine(False) is False
    assert gg.autograd.Function.apply.__func__ is ag._apply  # type: ignore[attr-defined]


def test_a_failed_forward_raises_a_typed_error_naming_the_inputs(engine: str) -> None:
    a = gg.tensor(np.ones((2, 3)), requires_grad=True)
    b = gg.tensor(np.ones((4,)), requires_grad=True)
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(4,\)") as info:
        a + b
    assert isinstance(info.value.__cause__, ValueError)


def test_backward_twice_without_retain_graph_raises(engine: str) -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(GraphError, match="second time"):
        y.backward()


def test_retain_graph_keeps_saved_arrays_for_a_second_backward(engine: str) -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_hooks_and_retain_grad_run_inside_the_loop(engine: str) -> None:
    x = gg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10)
    (h * h).sum().backward()
    np.testing.assert_array_equal(seen[0], 2 * h.detach().numpy())
    # retain_grad sees the gradient after the hooks, as in PyTorch
    np.testing.assert_array_equal(h.grad.numpy(), 10 * 2 * h.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), 2 * 10 * 2 * h.detach().numpy())


def test_an_in_place_change_of_a_saved_array_is_caught(engine: str) -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    a = x * 1.0
    y = a * a
    a.add_(1.0)
    with pytest.raises(InplaceError):
        y.sum().backward()


def test_a_backward_returning_the_wrong_shape_is_named(engine: str) -> None:
    class Bad(gg.autograd.Function):
        def forward(self, x):
            return x * 2

        def backward(self, xp, g):
            return g[:1]

    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ShapeError, match=r"Bad.backward returned a gradient of shape \(1,\)"):
        Bad.apply(x).sum().backward()


def test_a_backward_returning_too_many_gradients_is_named(engine: str) -> None:
    class Bad(gg.autograd.Function):
        def forward(self, x, y):
            return x * y

        def backward(self, xp, g):
            return [g, g, g]

    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ShapeError, match=r"returned 3 gradient\(s\) for its 2 input"):
        Bad.apply(x, x * 1.0).sum().backward()


def test_a_scalar_result_is_a_0d_array_and_differentiates(engine: str) -> None:
    x = gg.tensor(np.arange(1.0, 4.0), requires_grad=True)
    s = x.sum()
    assert s.data.__class__ is np.ndarray and s.shape == ()
    (s * s).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [12.0, 12.0, 12.0])


def test_a_truthy_non_bool_requires_grad_still_records(engine: str) -> None:
    x = gg.tensor([1.0, 2.0])
    x.requires_grad = 1  # what a careless user may write; Python treats it as true
    y = (x * x).sum()
    assert y.requires_grad
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_no_grad_in_one_thread_leaves_another_recording(engine: str) -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    results = {}

    def quiet() -> None:
        with gg.no_grad():
            results["quiet"] = (x * x).requires_grad

    thread = threading.Thread(target=quiet)
    thread.start()
    thread.join()
    results["here"] = (x * x).requires_grad
    assert results == {"quiet": False, "here": True}


def test_non_tensor_inputs_still_get_the_typed_error(engine: str) -> None:
    with pytest.raises(DTypeError):
        gg.autograd.Function.apply.__func__(gg.ops.arithmetic.Mul, [1.0], [2.0])  # type: ignore[attr-defined]


def test_graphs_are_freed_and_inputs_keep_their_reference_counts(engine: str) -> None:
    x = gg.tensor(np.ones(8), requires_grad=True)
    before = sys.getrefcount(x.data), sys.getrefcount(x)
    probes = []
    for _ in range(200):
        y = ((x * 2.0 + x).tanh() * x).sum()
        probes.append(weakref.ref(y.grad_fn))
        y.backward()
        del y
    gc.collect()
    assert all(p() is None for p in probes)
    assert (sys.getrefcount(x.data), sys.getrefcount(x)) == before


def test_many_ops_leave_no_objects_behind(engine: str) -> None:
    x = gg.tensor(np.ones(4, dtype=np.float32), requires_grad=True)

    def step() -> None:
        x.grad = None
        y = x
        for _ in range(20):
            y = (y * 1.01 + x).tanh() * x
        y.sum().backward()

    for _ in range(50):
        step()
    gc.collect()
    count = len(gc.get_objects())
    for _ in range(500):
        step()
    gc.collect()
    assert len(gc.get_objects()) - count < 50


@needs_compiled
def test_anomaly_mode_takes_the_python_engine_and_still_works() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with gg.autograd.detect_anomaly():
        y = (x * x).sum()
        assert y.grad_fn.trace is not None  # recorded by the Python apply
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_switched_off_the_python_engine_runs() -> None:
    code = (
        "import gpugrad as gg, gpugrad.autograd as ag; x = gg.tensor([3.0], requires_grad=True);"
        "(x * x).sum().backward(); print(ag._built is None, float(x.grad.data[0]))"
    )
    env = {**os.environ, "GPUGRAD_NATIVE_KERNELS": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split() == ["True", "6.0"], out.stderr


def test_without_python_headers_the_engine_says_why(monkeypatch, tmp_path) -> None:
    from gpugrad.backend import native_engine

    monkeypatch.setattr(native_engine.sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    monkeypatch.setitem(native_engine._state, "tried", False)
    monkeypatch.setitem(native_engine._state, "module", None)
    monkeypatch.delenv("GPUGRAD_NATIVE_KERNELS", raising=False)
    assert native_engine.load() is None
    assert "Python.h" in native_engine.reason_unavailable()


# --- what a user can do to the engine's objects: the same error from both, never a crash ----
def test_apply_of_a_class_that_is_not_an_op_raises(engine: str) -> None:
    class NotAnOp:
        apply = gg.autograd.Function.__dict__["apply"]

    with pytest.raises((AttributeError, TypeError)):
        NotAnOp.apply(gg.tensor([1.0]))


def test_an_abstract_op_cannot_be_made(engine: str) -> None:
    import abc

    class Abstract(gg.autograd.Function, metaclass=abc.ABCMeta):
        @abc.abstractmethod
        def extra(self): ...

        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="abstract"):
        Abstract.apply(gg.tensor([1.0]))


def test_a_parameter_named_cls_is_refused_as_by_python(engine: str) -> None:
    class Keyed(gg.autograd.Function):
        def forward(self, x, cls=None):
            return x

    with pytest.raises(TypeError, match="cls"):
        Keyed.apply(gg.tensor([1.0]), cls=1)


def test_a_grad_fn_that_is_not_a_node_raises_attribute_error(engine: str) -> None:
    class Fake:
        seq = 10**6

    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.grad_fn = Fake()
    with pytest.raises(AttributeError, match="out_shape"):
        (y * 3).sum().backward()


def test_a_leaf_without_its_array_raises_attribute_error(engine: str) -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3).sum()
    del x._data
    with pytest.raises(AttributeError, match="_data"):
        y.backward()


def test_a_backward_may_return_a_tensor(engine: str) -> None:
    class Twice(gg.autograd.Function):
        def forward(self, x):
            return x * 2

        def backward(self, xp, g):
            return gg.tensor(g * 2)

    x = gg.tensor([1.0, 2.0], requires_grad=True)
    Twice.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_the_typed_error_chains_to_the_array_error_not_the_callers(engine: str) -> None:
    a, b = gg.tensor(np.ones((2, 3))), gg.tensor(np.ones(4))
    try:
        raise KeyError("the caller's own")
    except KeyError:
        with pytest.raises(ShapeError) as info:
            a + b
    assert isinstance(info.value.__context__, ValueError)


# --- the engine sums a broadcast gradient down to its input's shape (as PyTorch's) ----------
class _Scale(gg.autograd.Function):
    """x * s, with s broadcast along x's rows; backward returns both in the output's shape."""

    def forward(self, x, s):
        self.save(x, s)
        return x * s

    def backward(self, xp, g, x, s):
        return g * s, g * x  # the second is (rows, n) for an s of shape (n,) or (1, n)


@pytest.mark.parametrize("s_shape", [(3,), (1, 3), ()])
def test_a_gradient_in_the_broadcast_shape_is_summed_down(engine: str, s_shape) -> None:
    rng = np.random.default_rng(0)
    xv, sv, wv = (
        rng.standard_normal((4, 3)),
        rng.standard_normal(s_shape),
        rng.standard_normal((4, 3)),
    )
    x = gg.tensor(xv, requires_grad=True)
    s = gg.tensor(sv, requires_grad=True)
    inner = s * 1.0  # a node, as well as the leaf behind it, receives the summed gradient
    (_Scale.apply(x, inner) * gg.tensor(wv)).sum().backward()
    summed = (wv * xv).sum(axis=0) if s_shape else (wv * xv).sum()
    np.testing.assert_allclose(s.grad.numpy(), np.reshape(summed, s_shape))
    np.testing.assert_allclose(x.grad.numpy(), wv * sv)


def test_a_gradient_that_is_no_broadcast_of_the_input_still_raises(engine: str) -> None:
    class Wider(gg.autograd.Function):
        def forward(self, x):
            return x * 2

        def backward(self, xp, g):
            return xp.xp.ones((2, 3))  # (3,) broadcasts to it, (2,) does not

    x = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ShapeError, match=r"Wider.backward returned a gradient of shape \(2, 3\)"):
        Wider.apply(x).sum().backward()


def test_broadcast_arithmetic_differentiates_twice(engine: str) -> None:
    a = gg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = gg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (gb,) = gg.autograd.grad((a * b * b + a - b / b).sum(), b, create_graph=True)
    np.testing.assert_allclose(gb.numpy(), (2 * a.data * b.data).sum(axis=0))
    gb.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), 2 * a.data.sum(axis=0))


def test_a_leaf_whose_data_changed_shape_after_the_forward_raises(engine: str) -> None:
    w = gg.tensor(np.ones(3), requires_grad=True)
    y = (w + gg.tensor(np.ones((2, 3)))).sum()
    w.data = np.ones((1,))  # the gradient, (2, 3), would broadcast from (1,): no silent sum
    with pytest.raises(ShapeError, match=r"replaced by an array of another shape"):
        y.backward()


def test_a_gradient_summed_to_0d_is_an_array_for_the_next_backward(engine: str) -> None:
    s = gg.tensor(np.float32(0.3), requires_grad=True)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    (gg.nn.functional.gelu(s * 1.0) * gg.tensor(a)).sum().backward()
    assert s.grad.shape == () and np.isfinite(s.grad.numpy())


def test_explain_shows_a_constant_operands_own_shape(engine: str) -> None:
    a = gg.tensor(np.ones((2, 3)), requires_grad=True)
    b = gg.tensor(np.ones(3))
    shapes = gg.explain((a + b).sum()).nodes[1]["input_shapes"]
    assert shapes == [(2, 3), (3,)]
    shapes = gg.explain((b - a).sum()).nodes[1]["input_shapes"]
    assert shapes == [(3,), (2, 3)]
