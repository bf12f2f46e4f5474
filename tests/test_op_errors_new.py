"""Misuse of the new ops (and of a few old ones) raises a typed error naming the bad value.

One table per family: (what is called, the error type, a piece of the message that names the
offending value, shape or dtype)."""

from __future__ import annotations

import pytest

import gpugrad as gg
from gpugrad.errors import ArgumentError, ArgumentTypeError


def _x(device):
    return gg.ones((3, 4), device=device)


def _index(values, device):
    return gg.tensor(values, device=device)


INDEX_ERRORS = {
    "scatter index too big": (
        lambda d: gg.scatter(_x(d), 0, _index([[0, 3, 1, 2]], d), gg.ones((1, 4), device=d)),
        "index 3",
    ),
    "scatter negative index": (
        lambda d: gg.scatter(_x(d), 1, _index([[0], [-1], [1]], d), 1.0),
        "index -1",
    ),
    "scatter_add index too big": (
        lambda d: gg.scatter_add(_x(d), 1, _index([[4], [0], [1]], d), gg.ones((3, 1), device=d)),
        "index 4",
    ),
    "index_add index too big": (
        lambda d: gg.index_add(_x(d), 0, _index([0, 5], d), gg.ones((2, 4), device=d)),
        "index 5",
    ),
    "index_add negative index": (
        lambda d: gg.index_add(_x(d), 1, _index([-2], d), gg.ones((3, 1), device=d)),
        "index -2",
    ),
    "topk k too big": (lambda d: gg.topk(_x(d), 5), "k=5"),
    "topk k negative": (lambda d: gg.topk(_x(d), -1, axis=0), "k=-1"),
    "size(axis) out of range": (lambda d: _x(d).size(2), "axis 2"),
}


@pytest.mark.parametrize("case", list(INDEX_ERRORS))
def test_index_errors(case, device):
    fn, named = INDEX_ERRORS[case]
    with pytest.raises(gg.errors.IndexOutOfRangeError, match=named) as info:
        fn(device)
    assert isinstance(info.value, IndexError)


DTYPE_ERRORS = {
    "list into a unary op": (lambda d: gg.exp([1.0, 2.0]), r"list.*gg\.tensor"),
    "list into a binary op": (lambda d: gg.add(_x(d), [1.0, 2.0, 3.0, 4.0]), r"gg\.tensor"),
    "list into where": (lambda d: gg.where([True, False], 1.0, gg.ones(2, device=d)), "list"),
    "list as an index": (lambda d: gg.index_add(_x(d), 0, [0], gg.ones((1, 4), device=d)), "list"),
    "int for cat": (lambda d: gg.cat(5), "int"),
    "a tensor for cat": (lambda d: gg.cat(_x(d)), r"Tensor.*\[t\]"),
    "topk k float": (lambda d: gg.topk(_x(d), 1.5), "1.5"),
    "tril k float": (lambda d: gg.tril(_x(d), 0.5), "0.5"),
    "diag k bool": (lambda d: gg.diag(gg.ones(3, device=d), True), "True"),
    "float scatter index": (
        lambda d: gg.scatter(_x(d), 0, gg.zeros((1, 4), device=d), 1.0),
        "float32",
    ),
    "scatter src dtype": (
        lambda d: gg.scatter(_x(d), 0, _index([[0]], d), gg.ones(1, 1, dtype="float64", device=d)),
        "float64",
    ),
    "index_add source dtype": (
        lambda d: gg.index_add(_x(d), 0, _index([0], d), gg.ones((1, 4), dtype="int64", device=d)),
        "int64",
    ),
    "masked_fill float mask": (lambda d: gg.masked_fill(_x(d), _x(d), 0.0), "float32"),
    "masked_fill list mask": (lambda d: gg.masked_fill(_x(d), [True, False], 0.0), "list"),
    "einsum without subscripts": (lambda d: gg.einsum(_x(d), _x(d)), "subscripts"),
    "round decimals float": (lambda d: gg.round(_x(d), 1.5), "1.5"),
    "vector_norm of ints": (
        lambda d: gg.linalg.vector_norm(gg.ones(3, dtype="int64", device=d)),
        "int64",
    ),
    "view_as a shape": (lambda d: _x(d).view_as((4, 3)), "tuple"),
}


@pytest.mark.parametrize("case", list(DTYPE_ERRORS))
def test_dtype_errors(case, device):
    fn, named = DTYPE_ERRORS[case]
    with pytest.raises(gg.DTypeError, match=named) as info:
        fn(device)
    assert isinstance(info.value, TypeError)


SHAPE_ERRORS = {
    "tril of a vector": (lambda d: gg.tril(gg.ones(3, device=d)), r"\(3,\)"),
    "diag of 3-D": (lambda d: gg.diag(gg.ones((2, 2, 2), device=d)), r"\(2, 2, 2\)"),
    "diagonal same axes": (lambda d: gg.diagonal(_x(d), 0, 1, -1), "both are 1"),
    "einsum operand count": (lambda d: gg.einsum("ij,jk->ik", _x(d)), "2 operand"),
    "einsum letter sizes": (lambda d: gg.einsum("ij,ij->", _x(d), _x(d).T), "'i' has size 3"),
    "einsum term rank": (lambda d: gg.einsum("ijk->", _x(d)), r"'ijk'.*\(3, 4\)"),
    "einsum unknown output": (lambda d: gg.einsum("ij->z", _x(d)), "'z'"),
    "einsum bad character": (lambda d: gg.einsum("i1->", _x(d)), "'i1'"),
    "einsum ellipsis dropped": (
        lambda d: gg.einsum("...i->i", gg.ones((2, 3), device=d)),
        r"'\.\.\.'",
    ),
    "bmm of matrices": (lambda d: gg.bmm(_x(d), _x(d).T), r"\(3, 4\) and \(4, 3\)"),
    "masked_fill mask shape": (
        lambda d: gg.masked_fill(_x(d), gg.ones((2, 4), dtype="bool", device=d), 0.0),
        r"\(2, 4\)",
    ),
    "masked_fill value shape": (
        lambda d: gg.masked_fill(_x(d), _x(d) > 0, gg.ones(2, device=d)),
        r"\(2,\)",
    ),
    "index_add source shape": (
        lambda d: gg.index_add(_x(d), 0, _index([0, 1], d), gg.ones((2, 3), device=d)),
        r"\(2, 3\)",
    ),
    "index_add 2-D index": (
        lambda d: gg.index_add(_x(d), 0, _index([[0]], d), gg.ones((1, 4), device=d)),
        r"\(1, 1\)",
    ),
    "scatter index rank": (lambda d: gg.scatter(_x(d), 0, _index([0, 1], d), 1.0), r"\(2,\)"),
    "scatter index wider": (
        lambda d: gg.scatter(_x(d), 0, _index([[0] * 5], d), 1.0),
        r"\(1, 5\)",
    ),
    "scatter src too small": (
        lambda d: gg.scatter(_x(d), 0, _index([[0, 1]], d), gg.ones((1, 1), device=d)),
        r"\(1, 1\)",
    ),
    "sort axis": (lambda d: gg.sort(_x(d), 2), "axis 2"),
    "roll shifts and axes": (lambda d: gg.roll(_x(d), (1, 2), 0), r"\(1, 2\)"),
    "roll axis": (lambda d: gg.roll(_x(d), 1, 3), "axis 3"),
    "t of 3-D": (lambda d: gg.ones((2, 2, 2), device=d).t(), r"\(2, 2, 2\)"),
    "mT of a vector": (lambda d: gg.ones(3, device=d).mT, r"\(3,\)"),
    "argmax of empty": (lambda d: gg.argmax(gg.ones((0,), device=d)), r"\(0,\)"),
    "argmin of empty axis": (lambda d: gg.ones((2, 0), device=d).argmin(axis=1), r"\(2, 0\)"),
    "sum over axis True": (lambda d: _x(d).sum(axis=True), "True"),
    "repeat -1": (lambda d: _x(d).repeat(-1), "-1"),
}


@pytest.mark.parametrize("case", list(SHAPE_ERRORS))
def test_shape_errors(case, device):
    fn, named = SHAPE_ERRORS[case]
    with pytest.raises(gg.ShapeError, match=named):
        fn(device)


ARGUMENT_ERRORS = {
    "ddof and correction": (lambda d: gg.var(_x(d), ddof=1, correction=1), "correction=1"),
    "correction and unbiased": (
        lambda d: _x(d).std(correction=0, unbiased=True),
        "unbiased=True",
    ),
    "negative correction": (lambda d: gg.var(_x(d), correction=-1), "-1"),
    "unbiased not a bool": (lambda d: gg.std(_x(d), unbiased=1), "unbiased must"),
    "norm p and ord": (lambda d: _x(d).norm(1, ord=3), "ord=3"),
    "vector_norm ord string": (lambda d: gg.linalg.vector_norm(_x(d), "nuc"), "'nuc'"),
}


@pytest.mark.parametrize("case", list(ARGUMENT_ERRORS))
def test_argument_errors(case, device):
    fn, named = ARGUMENT_ERRORS[case]
    with pytest.raises(ArgumentError, match=named) as info:
        fn(device)
    assert isinstance(info.value, ValueError)


def test_unbiased_of_the_wrong_type_is_also_a_type_error(device):
    with pytest.raises(ArgumentTypeError):
        gg.var(_x(device), unbiased="yes")


def test_nothing_changes_when_masked_fill_in_place_is_refused(device):
    x = _x(device)
    with pytest.raises(gg.ShapeError):
        x.masked_fill_(gg.ones((2, 4), dtype="bool", device=device), 0.0)
    assert x.version == 0 and float(x.sum()) == 12.0
