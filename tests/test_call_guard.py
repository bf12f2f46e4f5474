"""gpugrad/call_guard.py: one wrapper per public function that, only after a call failed,
explains it by its arguments (rule 1, PyTorch's axis keywords, is tested in test_torch_names.py;
rule 3, a non-Tensor where a Tensor goes, in test_hostile_inputs.py's generated table)."""

from __future__ import annotations

import inspect
import traceback
import types
from pathlib import Path

import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad import Tensor, call_guard

MARK = "__gpugrad_call_guard__"


def _x():
    return gg.ones(2, 3)


# Rule 2: the call does not bind to the signature.
UNBOUND = [
    ("pad", "unknown keyword", lambda: gg.pad(_x(), mode="reflect"), r"pad\(\).*'mode'"),
    ("F.linear", "missing argument", lambda: F.linear(_x()), r"linear\(\).*'weight'"),
    ("Tensor.sum", "unknown keyword", lambda: _x().sum(foo=1), r"sum\(\).*'foo'"),
    ("gg.mean", "too many", lambda: gg.mean(_x(), 0, False, 1), r"mean\(\).*too many"),
    ("gg.zeros", "unknown keyword", lambda: gg.zeros(2, shape=3), r"zeros\(\).*'shape'"),
    ("gg.tensor", "missing argument", lambda: gg.tensor(), r"tensor\(\).*'data'"),
    (
        "gg.linalg.vector_norm",
        "unknown keyword",
        lambda: gg.linalg.vector_norm(_x(), p=2),
        r"vector_norm\(\).*'p'",
    ),
    (
        "F.cross_entropy",
        "twice",
        lambda: F.cross_entropy(_x(), gg.tensor([0, 1]), input=_x()),
        r"cross_entropy\(\).*'input'",
    ),
    ("nn.Linear", "unknown keyword", lambda: nn.Linear(2, 3, bias2=1), r"Linear\(\).*'bias2'"),
    ("nn.Linear", "missing argument", lambda: nn.Linear(2), r"Linear\(\).*'out_features'"),
    ("nn.Conv2d", "inherited __init__", lambda: nn.Conv2d(1, 1, k=3), r"Conv2d\(\).*'k'"),
    ("nn.MSELoss", "positional", lambda: nn.MSELoss("sum"), r"MSELoss\(\).*too many"),
    (
        "nn.Linear.forward",
        "too many",
        lambda: nn.Linear(3, 2)(_x(), _x()),
        r"Linear\.forward\(\).*too many",
    ),
    (
        "nn.MaxPool2d.forward",
        "unknown keyword",
        lambda: nn.MaxPool2d(2)(_x(), stride=1),
        r"MaxPool2d\.forward\(\).*'stride'",
    ),
]


@pytest.mark.parametrize(
    "label, why, call, named", UNBOUND, ids=[f"{c[0]}: {c[1]}" for c in UNBOUND]
)
def test_a_call_that_does_not_bind_raises_argument_type_error(label, why, call, named):
    with pytest.raises(gg.ArgumentTypeError, match=named) as info:
        call()
    assert isinstance(info.value, TypeError), label  # what Python's own error was
    assert "its parameters are (" in str(info.value)


def _guarded_callables():
    """(label, callable, takes **kwargs) for every guarded public function and method."""
    out = []
    x = _x()
    namespaces = (("gg", vars(gg)), ("F", vars(F)), ("gg.linalg", vars(gg.linalg)))
    for owner, namespace in namespaces:
        for name, fn in namespace.items():
            if getattr(fn, MARK, False):
                out.append((f"{owner}.{name}", fn))
    for name, fn in vars(gg.Tensor).items():
        if getattr(fn, MARK, False):
            out.append((f"Tensor.{name}", getattr(x, name)))
    return [
        (label, fn)
        for label, fn in out
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    ]


GUARDED = _guarded_callables()


def test_the_generated_table_sees_the_api():
    labels = {label for label, _ in GUARDED}
    assert len(labels) > 150
    assert {"gg.sum", "gg.pad", "F.linear", "gg.linalg.vector_norm", "Tensor.backward"} <= labels


@pytest.mark.parametrize("label, fn", GUARDED, ids=[g[0] for g in GUARDED])
def test_every_guarded_function_names_an_unknown_keyword(label, fn):
    """Generated: an unknown keyword is named, with the function, even when a required
    argument is missing as well (Python would complain about that one first)."""
    with pytest.raises(gg.ArgumentTypeError, match="'not_a_parameter'") as info:
        fn(not_a_parameter=1)
    assert f"{inspect.unwrap(fn).__name__}()" in str(info.value)


def test_tensor_arguments_are_checked_by_keyword_and_in_star_args():
    def total_size(x: Tensor, *more: Tensor, weight: Tensor | None = None) -> int:
        return x.size + sum(m.size for m in more) + (0 if weight is None else weight.size)

    module = types.ModuleType("user_module")
    module.total_size = total_size
    call_guard.install([module])
    assert module.total_size(_x(), _x(), weight=None) == 12
    with pytest.raises(gg.DTypeError, match=r"total_size: x .*list"):
        module.total_size(x=[1.0])
    with pytest.raises(gg.DTypeError, match=r"total_size: more .*str 'abc'"):
        module.total_size(_x(), _x(), "abc")
    with pytest.raises(gg.DTypeError, match=r"total_size: weight .*float 2\.5"):
        module.total_size(_x(), weight=2.5)


def test_other_exceptions_pass_through_unchanged():
    raised = []

    def divide(x: gg.Tensor, by: int) -> float:
        raised.append(ZeroDivisionError("by zero"))
        raise raised[-1]

    module = types.ModuleType("user_module")
    module.divide = divide
    call_guard.install([module])
    assert getattr(module.divide, MARK)
    with pytest.raises(ZeroDivisionError) as info:
        module.divide(_x(), 0)
    assert info.value is raised[-1]  # rule 4: the very same exception
    with pytest.raises(gg.ShapeError) as info:  # a gpugrad error is never looked at
        gg.reshape(_x(), 4)
    assert "ArgumentTypeError" not in str(info.value)


def test_each_function_has_one_guard_shared_by_every_place_it_is_installed():
    assert gg.sum is gg.ops.sum is gg.Tensor.sum
    assert getattr(gg.linalg.vector_norm, MARK) and gg.nn.functional.softmax is gg.softmax
    found = [fn for _, fn in GUARDED] + [vars(gg.Tensor)[n] for n in vars(gg.Tensor)]
    found += [c.__init__ for c in vars(nn).values() if isinstance(c, type)]
    for fn in found:
        inner = getattr(fn, "__func__", fn)
        if getattr(inner, MARK, False):
            assert not getattr(inner.__wrapped__, MARK, False), inner  # never a guard's guard
    before = dict(vars(gg.Tensor))
    call_guard.install([gg.ops, gg.nn.functional], gg.Tensor, [nn.Linear, nn.Conv2d])
    assert dict(vars(gg.Tensor)) == before and gg.ops.sum is gg.sum


def test_functions_with_nothing_to_check_are_not_wrapped():
    assert not getattr(gg.Tensor.exp, MARK, False)  # only self: x.exp() stays a direct call
    assert not hasattr(gg.Tensor.__add__, MARK)  # operators are not public names
    assert not hasattr(nn.Module.forward, MARK)  # *args, **kwargs: binding cannot fail
    assert getattr(gg.exp, MARK)  # gg.exp(x) can be given a list


@pytest.mark.parametrize(
    "call",
    [
        lambda x: x.sum(axis=5),
        lambda x: gg.mean(x, axis=5),
        lambda x: F.log_softmax(x, axis=5),
        lambda x: nn.Softmax(axis=1)(x, 5),
    ],
)
def test_a_call_passes_through_one_guard_frame(call):
    with pytest.raises((gg.ShapeError, gg.ArgumentTypeError)) as info:
        call(_x())
    frames = traceback.extract_tb(info.tb)
    assert [Path(f.filename).name for f in frames].count("call_guard.py") == 1
