"""PyTorch's axis keywords (dim=, keepdim=, start_dim=, ...) raise a KeywordError naming gpugrad's
spelling, from one place (rule 1 of gpugrad/call_guard.py), for every public function that takes an
axis."""

from __future__ import annotations

import inspect

import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.errors import KeywordError


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda x: x.sum(dim=1), "axis="),
        (lambda x: gg.mean(x, dim=0), "axis="),
        (lambda x: x.mean(axis=1, keepdim=True), "keepdims="),
        (lambda x: x.max(dim=1), "axis="),
        (lambda x: x.softmax(dim=-1), "axis="),
        (lambda x: F.log_softmax(x, dim=-1), "axis="),
        (lambda x: gg.cat([x, x], dim=0), "axis="),
        (lambda x: gg.stack([x, x], dim=0), "axis="),
        (lambda x: x.flatten(start_dim=1), "start_axis="),
        (lambda x: nn.Softmax(dim=1), "axis="),
        (lambda x: nn.Flatten(start_dim=1, end_dim=-1), "start_axis="),
    ],
)
def test_pytorch_axis_keywords_name_the_gpugrad_spelling(device, call, named):
    x = gg.ones(2, 3, device=device)
    with pytest.raises(KeywordError, match=named) as info:
        call(x)
    assert isinstance(info.value, TypeError)  # what a Python user would catch


def _public_callables_with_an_axis():
    seen = {}
    # F's API is its __all__ (helpers it imports for itself, such as pick_along_axis, are not).
    for owner, holder, names in (
        ("gg", gg, vars(gg)),
        ("F", F, F.__all__),
        ("Tensor", gg.Tensor, vars(gg.Tensor)),
    ):
        for name in names:
            fn = getattr(holder, name)
            if name.startswith("_") or not inspect.isfunction(fn):
                continue
            params = inspect.signature(inspect.unwrap(fn)).parameters
            if any("axis" in p for p in params):
                seen[f"{owner}.{name}"] = fn
    for name, cls in vars(nn).items():
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            params = inspect.signature(inspect.unwrap(cls.__init__)).parameters
            if any("axis" in p for p in params):
                seen[f"nn.{name}"] = cls
    return seen


def test_every_function_that_takes_an_axis_answers_dim():
    found = _public_callables_with_an_axis()
    assert len(found) > 40  # the scan really sees the API
    for label, fn in found.items():
        with pytest.raises(KeywordError, match="axis") as info:
            fn(dim=0)
        assert "dim=" in str(info.value), label


def test_correct_calls_and_other_mistakes_are_unchanged():
    x = gg.ones(2, 3)
    assert x.sum(axis=1, keepdims=True).shape == (2, 1)
    with pytest.raises(gg.ArgumentTypeError, match="foo") as info:
        x.sum(foo=1)  # an unknown keyword that is not PyTorch's: rule 2, not rule 1
    assert not isinstance(info.value, KeywordError)
    with pytest.raises(gg.ShapeError, match="5"):
        x.sum(axis=5)  # the function's own typed error passes through
