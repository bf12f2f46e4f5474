"""PyTorch habits that used to give wrong answers silently, and the engine's checks against them:
`.data` assignment, `.grad` assignment, a backward that returns the wrong gradients, threads that
backpropagate into one leaf, PyTorch-style custom functions, inference_mode."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.errors import DeviceError, DTypeError, GraphError, InplaceError, ShapeError


# --- p.data updates (makemore's `p.data += -lr * p.grad`) -------------------------------------
@pytest.mark.parametrize(
    "update",
    [
        "p.data += -lr * p.grad",
        "p.data -= lr * p.grad",
        "p.data = p.data - lr * p.grad",
        "p.data *= 0.5 + 0 * p.grad",
    ],
)
def test_data_update_with_tensors_keeps_a_raw_array(device, update):
    p = gg.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    (p * p).sum().backward()  # grad = 2p
    before = p.numpy().copy()
    lr = 0.1
    exec(update, {"p": p, "lr": lr})
    assert type(p.data) is type(p.grad.data)  # the backend's array, never a Tensor
    expected = {
        "p.data += -lr * p.grad": before - lr * 2 * before,
        "p.data -= lr * p.grad": before - lr * 2 * before,
        "p.data = p.data - lr * p.grad": before - lr * 2 * before,
        "p.data *= 0.5 + 0 * p.grad": before * 0.5,
    }[update]
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-6)
    assert isinstance(p.numpy(), np.ndarray)
    assert p.is_leaf and p.requires_grad
    (p * p).sum().backward()  # still a working parameter


def test_data_assignment_refuses_what_is_not_an_array_of_the_device(device):
    p = gg.zeros(2, device=device, requires_grad=True)
    with pytest.raises(DTypeError, match="list"):
        p.data = [1.0, 2.0]
    with pytest.raises(DTypeError, match="int64"):
        p.data = gg.tensor([1, 2], device=device).data  # integer data cannot carry a gradient
    np.testing.assert_array_equal(p.numpy(), [0.0, 0.0])  # untouched by the failed assignments


@pytest.mark.gpu
def test_data_assignment_refuses_another_device():
    with pytest.raises(DeviceError, match="cuda"):
        gg.zeros(2).data = gg.zeros(2, device="cuda")


# --- .grad assignment ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make_grad", "error", "named"),
    [
        (lambda d: gg.ones(4, device=d), ShapeError, r"\(4,\)"),
        (lambda d: gg.ones(3, dtype="float64", device=d), DTypeError, "float64"),
        (lambda d: [1.0, 2.0, 3.0], DTypeError, "list"),
        (lambda d: gg.ones(3, device=d).data, DTypeError, "ndarray"),
    ],
)
def test_grad_assignment_is_checked(device, make_grad, error, named):
    p = gg.zeros(3, device=device, requires_grad=True)
    with pytest.raises(error, match=named):
        p.grad = make_grad(device)
    assert p.grad is None
    p.grad = gg.ones(3, device=device)  # the right one is taken
    p.grad = None


# --- a Function.backward that returns the wrong gradients ----------------------------------
class _WrongCount(gg.autograd.Function):
    def forward(self, a, b):
        return a * b

    def backward(self, xp, g):
        return (g,)  # two inputs, one gradient


class _WrongShape(gg.autograd.Function):
    def forward(self, a):
        return a * 2

    def backward(self, xp, g):
        return g.sum(axis=0)  # lost an axis


def test_backward_returning_too_few_gradients_raises(device):
    a = gg.ones(2, 3, device=device, requires_grad=True)
    b = gg.ones(2, 3, device=device, requires_grad=True)
    with pytest.raises(ShapeError, match=r"_WrongCount.*1 gradient.*2 input"):
        _WrongCount.apply(a, b).sum().backward()


def test_backward_returning_a_wrong_shape_names_op_position_and_shapes(device):
    a = gg.ones(2, 3, device=device, requires_grad=True)
    with pytest.raises(ShapeError, match=r"_WrongShape.*\(3,\).*input 0.*\(2, 3\)"):
        _WrongShape.apply(a).sum().backward()
    inner = a * 1.0  # a non-leaf input is checked against its own shape too
    with pytest.raises(ShapeError, match=r"\(3,\).*\(2, 3\)"):
        _WrongShape.apply(inner).sum().backward()
    assert a.grad is None  # nothing was deposited


class _WrongSecondShape(gg.autograd.Function):
    def forward(self, a, b):
        return a * b

    def backward(self, xp, g):
        return g, g[:1]  # the second input's gradient lost rows


def test_a_wrong_shape_names_the_input_it_was_for(device):
    a = gg.ones(2, 3, device=device, requires_grad=True)
    b = gg.ones(2, 3, device=device, requires_grad=True)
    with pytest.raises(ShapeError, match=r"_WrongSecondShape.*\(1, 3\).*input 1.*\(2, 3\)"):
        _WrongSecondShape.apply(a, b * 1.0).sum().backward()
    assert a.grad is None and b.grad is None


def test_backward_gradient_argument_must_be_array_like(device):
    y = gg.ones(2, device=device, requires_grad=True) * 2
    with pytest.raises(DTypeError, match="str"):
        y.backward(gradient="abc")
    with pytest.raises(DTypeError, match="dict"):
        y.backward(gradient={"a": 1})


def test_hook_returning_a_non_tensor_raises_typed_error(device):
    x = gg.ones(2, device=device, requires_grad=True)
    x.register_hook(lambda g: 3)
    with pytest.raises(DTypeError, match="int"):
        (x * 2).sum().backward()


# --- threads backpropagating into one leaf --------------------------------------------------
def test_threads_accumulating_into_one_leaf_lose_nothing():
    wrong = 0
    for _ in range(150):
        x = gg.ones(200_000, requires_grad=True)

        def work(i, x=x):
            (x * float(i + 1)).sum().backward()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wrong += not bool((x.grad.numpy() == 10.0).all())
    assert wrong == 0


# --- PyTorch-style custom functions ---------------------------------------------------------
class Cube(gg.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g * ctx.scale, None


class MulAdd(gg.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, c):
        ctx.save_for_backward(a, b)
        return a * b + c

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = gg.ops.unbroadcast(g * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = gg.ops.unbroadcast(g * a, b.shape) if ctx.needs_input_grad[1] else None
        gc = gg.ops.unbroadcast(g, c_shape(ctx)) if ctx.needs_input_grad[2] else None
        return ga, gb, gc


def c_shape(ctx):
    return ctx.c_shape


class MulAddShapes(MulAdd):
    @staticmethod
    def forward(ctx, a, b, c):
        ctx.c_shape = c.shape
        return MulAdd.forward(ctx, a, b, c)


def test_ctx_function_values_and_gradients(device, rng):
    x = gg.tensor(rng.normal(size=(3, 4)), dtype="float64", device=device, requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn is not None and "Cube" in repr(y.grad_fn)
    np.testing.assert_allclose(y.numpy(), 2.0 * x.numpy() ** 3)
    assert gg.gradcheck(lambda t: Cube.apply(t, 2.0), [x])
    assert gg.gradgradcheck(lambda t: Cube.apply(t, 2.0), [x])  # backward made of gpugrad ops


@pytest.mark.parametrize(("sa", "sb", "sc"), [((3, 1), (1, 4), (4,)), ((2, 3), (2, 3), ())])
def test_ctx_function_with_broadcasting_and_needs_input_grad(device, rng, sa, sb, sc):
    a = gg.tensor(rng.normal(size=sa), dtype="float64", device=device, requires_grad=True)
    b = gg.tensor(rng.normal(size=sb), dtype="float64", device=device, requires_grad=True)
    c = gg.tensor(rng.normal(size=sc), dtype="float64", device=device, requires_grad=True)
    assert gg.gradcheck(MulAddShapes.apply, [a, b, c])
    frozen = b.detach()
    seen = []

    class Spy(gg.autograd.Function):
        @staticmethod
        def forward(ctx, u, v):
            seen.append(ctx.needs_input_grad)
            return u * v

        @staticmethod
        def backward(ctx, g):
            return g, None

    Spy.apply(a, frozen)
    assert seen == [(True, False)]


def test_ctx_function_without_grad_records_nothing(device):
    x = gg.ones(3, device=device)
    assert Cube.apply(x, 1.0).grad_fn is None
    with gg.no_grad():
        assert Cube.apply(gg.ones(3, device=device, requires_grad=True), 1.0).grad_fn is None


def test_ctx_function_catches_in_place_change_of_a_saved_tensor(device):
    x = gg.ones(3, device=device, requires_grad=True)
    h = x * 1.0
    y = Cube.apply(h, 1.0)
    h.add_(1.0)
    with pytest.raises(InplaceError, match="save_for_backward"):
        y.sum().backward()


def test_ctx_function_misuse_raises_typed_errors(device):
    x = gg.ones(3, device=device, requires_grad=True)

    class TooMany(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    with pytest.raises(ShapeError, match="2 gradient"):
        TooMany.apply(x).sum().backward()

    class NotATensor(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return 1.0

    with pytest.raises(DTypeError, match="float"):
        NotATensor.apply(x).sum().backward()

    class SavesAList(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward([x])
            return x

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(DTypeError, match="list"):
        SavesAList.apply(x)

    with pytest.raises(GraphError, match="staticmethod"):

        class MixedStyles(gg.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x

            def backward(self, xp, g):
                return g


def test_ctx_function_trains_like_the_builtin_op(device, rng):
    w0 = rng.normal(size=(4,))
    runs = []
    for use_custom in (True, False):
        w = gg.tensor(w0, dtype="float64", device=device, requires_grad=True)
        opt = gg.optim.SGD([w], lr=0.01)
        for _ in range(5):
            y = Cube.apply(w, 1.0) if use_custom else w * w * w
            loss = (y * y).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        runs.append(w.numpy().copy())
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12)


# --- inference_mode ------------------------------------------------------------------------
def test_inference_mode_as_context_and_decorator(device):
    x = gg.ones(2, device=device, requires_grad=True)
    with gg.inference_mode():
        assert (x * 2).grad_fn is None
        assert gg.is_inference_mode_enabled()
        with gg.inference_mode(False):  # the switch's off position records again (PyTorch)
            assert (x * 2).grad_fn is not None
            assert not gg.is_inference_mode_enabled()
        assert gg.is_inference_mode_enabled()
    with gg.no_grad():
        assert not gg.is_inference_mode_enabled()  # no_grad is not inference mode
    assert (x * 2).grad_fn is not None
    assert not gg.is_inference_mode_enabled()

    @gg.inference_mode()
    def called():
        return (x * 2).requires_grad

    @gg.inference_mode
    def bare():
        return (x * 2).requires_grad

    @gg.no_grad
    def bare_no_grad():
        return (x * 2).requires_grad

    assert called() is False and bare() is False and bare_no_grad() is False
    assert (x * 2).requires_grad


def test_a_move_between_backends_records_a_node_the_engine_can_check(monkeypatch):
    """to_device builds its node by hand: it must carry everything the engine reads (its
    output shape included). A second NumPy backend stands in for a GPU here."""
    import copy

    import gpugrad.ops.convert as convert

    x = gg.tensor([1.0, 2.0], requires_grad=True)
    other = copy.copy(x._backend)  # another backend object, so a move really happens
    monkeypatch.setattr(convert, "get_backend", lambda device: other)
    y = convert.to_device(x, "cpu")
    assert y._backend is other and y.grad_fn is not None
    (y * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


class ExpSavingOutput(gg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


def test_ctx_function_saved_output_is_differentiable_twice():
    x = gg.tensor([1.0], dtype="float64", requires_grad=True)
    z = ExpSavingOutput.apply(x) + x**3
    (dz,) = gg.grad(z.sum(), [x], create_graph=True)
    (d2z,) = gg.grad(dz.sum(), [x])
    np.testing.assert_allclose(d2z.numpy(), [np.e + 6.0], rtol=1e-12)  # exp'' + (x³)''


def test_ctx_function_in_place_change_of_its_output_is_caught():
    x = gg.ones(2, requires_grad=True)
    y = ExpSavingOutput.apply(x)
    y.mul_(0)
    with pytest.raises(InplaceError):
        y.sum().backward()


def test_ctx_function_keyword_arguments_bind_to_forward_positions():
    class Scale(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k=1.0, y=None):
            ctx.k = k
            return x * k + (0 if y is None else y)

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, None, g

    x = gg.ones(2, requires_grad=True)
    y = gg.ones(2, requires_grad=True)
    Scale.apply(x, k=2.0, y=y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0])  # a keyword tensor gets its grad
    with pytest.raises(gg.ArgumentTypeError, match="Scale"):
        Scale.apply(x, z=1)


def test_ctx_function_lets_go_of_saved_tensors_after_backward():
    import weakref

    x = gg.ones(3, requires_grad=True)
    h = x * 2
    seen = weakref.ref(h)
    out = Cube.apply(h, 1.0)  # saves its input, h
    del h
    assert seen() is not None  # held by the ctx until backward
    out.sum().backward()
    assert seen() is None  # the ctx no longer holds the intermediate (out is still alive)
    with pytest.raises(GraphError):
        out.sum().backward()


def test_grad_mode_decorators_cover_generator_functions():
    x = gg.ones(2, requires_grad=True)

    @gg.no_grad()
    def sample():
        for _ in range(2):
            yield (x * 2).requires_grad

    @gg.inference_mode
    def sample_bare():
        yield (x * 2).requires_grad
        return "done"

    assert list(sample()) == [False, False]
    steps = sample_bare()
    assert next(steps) is False
    assert (x * 2).requires_grad  # the caller's own mode between the steps
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert stop.value.value == "done"


def test_set_grad_enabled_switches_when_called_and_restores_as_a_context():
    x = gg.ones(2, requires_grad=True)
    try:
        gg.set_grad_enabled(False)
        assert not (x * 2).requires_grad
    finally:
        gg.set_grad_enabled(True)
    with gg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad

    @gg.set_grad_enabled(False)
    def inside():
        return (x * 2).requires_grad

    assert (x * 2).requires_grad and inside() is False and (x * 2).requires_grad


def test_size_pickles_copies_and_takes_dim():
    import copy
    import pickle

    x = gg.ones(2, 3)
    assert pickle.loads(pickle.dumps(x.size)) == 6
    assert copy.deepcopy({"n": x.size})["n"]() == (2, 3)
    assert x.size(dim=1) == 3 and x.size(-1) == 3


def test_gelu_of_a_0d_tensor_and_clip_with_broadcasting_bounds():
    x = gg.tensor(0.3, dtype="float64", requires_grad=True)
    assert gg.gradcheck(gg.nn.functional.gelu, [x])
    v = gg.tensor([0.5, 2.0, -1.0], requires_grad=True)
    y = gg.clip(v, gg.zeros(2, 3).data, 1.0)  # bounds broadcast v to (2, 3)
    y.sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [2.0, 0.0, 0.0])


def test_ctx_function_rules_for_outputs_and_returned_gradients():
    class ArgMax(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.argmax(axis=0)

        @staticmethod
        def backward(ctx, g):
            return None

    class AddBias(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x, b, scale):
            return (x + b) * scale

        @staticmethod
        def backward(ctx, g):
            return g * 2.0, g * 2.0, None  # b's gradient has x's (broadcast) shape

    class GradForANumber(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g, g

    x = gg.ones(2, 3, requires_grad=True)
    assert ArgMax.apply(x).grad_fn is None  # integer results carry no gradient
    b = gg.ones(3, requires_grad=True)
    AddBias.apply(x, b, 2.0).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [4.0, 4.0, 4.0])  # summed as PyTorch does
    with pytest.raises(GraphError, match="argument 1"):
        GradForANumber.apply(x, 3.0).sum().backward()


def test_ctx_function_with_setup_context_as_pytorch_2_writes_it():
    class Square(gg.autograd.Function):
        @staticmethod
        def forward(x, scale=1.0):
            return x * x * scale

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, scale = inputs
            ctx.save_for_backward(x)
            ctx.scale = scale
            ctx.set_materialize_grads(False)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g * ctx.scale, None

    x = gg.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    Square.apply(x, scale=3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, -12.0])
    assert gg.gradcheck(lambda t: Square.apply(t, 2.0), [x])


def test_data_in_place_update_writes_into_the_same_array():
    p = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    alias, array = p.detach(), p.data
    p.data += -0.5 * gg.ones(3)  # NumPy's += reaches Tensor.__array_ufunc__ with out=(array,)
    assert p.data is array  # in place, as PyTorch's p.data += ... changes p's storage
    np.testing.assert_array_equal(alias.numpy(), [0.5, 1.5, 2.5])
    shared = np.ones((2, 2), dtype="float32")
    q = gg.from_numpy(shared).requires_grad_()
    q.data *= 2 + 0 * gg.ones(2, 2)
    np.testing.assert_array_equal(shared, np.full((2, 2), 2.0))  # from_numpy's array too
    model = gg.nn.Linear(2, 2)
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    opt.step()  # builds the flat bank: parameters become views into it
    before = [p.data for p in model.parameters()]
    for p in model.parameters():
        p.data -= 0.01 * gg.ones_like(p)
    assert all(p.data is b for p, b in zip(model.parameters(), before))  # still the bank's


def test_an_array_on_the_left_of_an_operator_still_makes_a_recorded_tensor():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    arr = np.array([3.0, 4.0], dtype="float32")
    for y in (arr * x, arr - x, arr @ x, arr / x):
        assert isinstance(y, gg.Tensor) and y.grad_fn is not None
    assert isinstance(np.exp(x.detach()), np.ndarray)  # other ufuncs: NumPy's answer


def test_mark_dirty_is_refused_with_a_graph_error(device):
    class Doubled(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.mark_dirty(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = gg.ones(3, device=device, requires_grad=True)
    with pytest.raises(GraphError, match=r"mark_dirty.*new tensor"):
        Doubled.apply(x * 1.0)
