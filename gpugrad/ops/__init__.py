"""Every op, as a function (`gg.exp(x)`), and bound onto Tensor as a method and operator.

This module is also the array namespace that backward formulas receive with
`create_graph=True`: its functions take Tensors and have NumPy's names and signatures for the
subset that formulas use, so `xp.exp(x)` records a differentiable op.
"""

from __future__ import annotations

from ..creation import zeros_like  # for backward formulas (xp.zeros_like); gg exports it
from ..tensor import Tensor
from ._support import unbroadcast
from .activation import (
    activation_backward,
    activation_forward,
    erf,
    log_softmax,
    normal_cdf,
    relu,
    sigmoid,
    softmax,
    tanh,
)  # fmt: skip
from .arithmetic import add, div, maximum, minimum, mul, neg, pow, sub
from .compare import (
    allclose,
    eq,
    ge,
    gt,
    isclose,
    isfinite,
    isnan,
    le,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    lt,
    ne,
    sign,
    where,
)  # fmt: skip
from .convert import astype, clone, to_device
from .einsum import bmm, einsum
from .histogram import Histogram, histogram
from .index import (
    chunk,
    gather,
    getitem,
    index_select,
    one_hot,
    scatter_to,
    split,
    take,
    take_along_axis,
)  # fmt: skip
from .inplace import (
    add_,
    copy_,
    div_,
    fill_,
    iadd,
    imul,
    isub,
    itruediv,
    mul_,
    setitem,
    sub_,
    zero_,
)  # fmt: skip
from .linalg import dot, matmul, outer
from .loss import softmax_cross_entropy_backward
from .methods import (
    contiguous,
    dim,
    expand_as,
    matrix_transpose,
    new_full,
    new_ones,
    new_tensor,
    new_zeros,
    numel,
    reshape_as,
    t,
    type_as,
    view_as,
)  # fmt: skip
from .norm import norm, vector_norm
from .reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cumprod,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)  # fmt: skip
from .scatter import index_add, masked_fill, masked_fill_, scatter, scatter_add
from .shape import (
    broadcast_to,
    cat,
    concat,
    concatenate,
    expand,
    expand_dims,
    flatten,
    flip,
    pad,
    permute,
    repeat,
    reshape,
    roll,
    squeeze,
    stack,
    swapaxes,
    tile,
    transpose,
    unsqueeze,
)  # fmt: skip
from .sorting import TopK, argsort, sort, topk
from .special import (
    ceil,
    erfc,
    floor,
    log2,
    log10,
    reciprocal,
    round,
    rsqrt,
    square,
    trunc,
)  # fmt: skip
from .triangular import diag, diagonal, trace, tril, triu
from .unary import abs, clamp, clip, cos, exp, expm1, log, log1p, sin, sqrt

# NumPy's longer names, so backward formulas and NumPy users find them.
true_divide = divide = div
multiply, subtract, negative, power = mul, sub, neg, pow
equal, not_equal, less, less_equal, greater, greater_equal = eq, ne, lt, le, gt, ge

__all__ = [
    "abs", "add", "add_", "all", "any", "argmax", "argmin", "astype", "broadcast_to", "cat",
    "chunk", "clamp", "clip", "clone", "concat", "concatenate", "copy_", "cos", "cumsum", "div",
    "div_", "divide", "dot", "eq", "equal", "exp", "expand", "expand_dims", "expm1", "fill_",
    "flatten", "flip", "gather", "ge", "greater", "greater_equal", "gt", "index_select",
    "isfinite", "isnan", "le", "less", "less_equal", "log", "log1p", "log_softmax", "logical_and",
    "logical_not", "logical_or", "logical_xor", "logsumexp", "lt", "matmul", "max", "maximum",
    "mean", "min", "minimum", "mul", "mul_", "multiply", "ne", "neg", "negative", "not_equal",
    "one_hot", "outer", "pad", "permute", "pow", "power", "prod", "relu", "repeat", "reshape",
    "sigmoid", "sign", "sin", "softmax", "split", "sqrt", "squeeze", "stack", "std", "sub", "sub_",
    "subtract", "sum", "swapaxes", "take", "take_along_axis", "tanh", "tile", "to_device",
    "transpose", "true_divide", "unbroadcast", "unsqueeze", "var", "where", "zero_",
]  # fmt: skip
__all__ += [  # the ops PyTorch programs use that NumPy's names did not cover
    "TopK", "allclose", "amax", "amin", "argsort", "bmm", "ceil", "cumprod", "diag", "diagonal",
    "einsum", "erf", "erfc", "floor", "index_add", "isclose", "log2", "log10", "masked_fill",
    "masked_fill_", "norm", "reciprocal", "roll", "round", "rsqrt", "scatter", "scatter_add",
    "sort", "square", "topk", "trace", "tril", "triu", "trunc",
]  # fmt: skip
__all__ += ["Histogram", "histogram"]


def _reflected(fn):
    def method(self, other):
        return fn(other, self)

    method.__name__ = f"r{fn.__name__}"
    return method


def _comparison(fn):
    """x == other as an operator: elementwise, but `x == None` is simply False (Python's
    fallback), not an error."""

    def method(self, other):
        return NotImplemented if other is None else fn(self, other)

    method.__name__ = f"__{fn.__name__}__"
    return method


def _bind_methods() -> None:
    """Attach the ops to Tensor: operators, then NumPy/PyTorch-style methods."""
    operators = {
        "__add__": add, "__radd__": add, "__sub__": sub, "__rsub__": _reflected(sub),
        "__mul__": mul, "__rmul__": mul, "__truediv__": div, "__rtruediv__": _reflected(div),
        "__pow__": pow, "__rpow__": _reflected(pow), "__matmul__": matmul,
        "__rmatmul__": _reflected(matmul), "__neg__": neg, "__abs__": abs,
        "__eq__": _comparison(eq), "__ne__": _comparison(ne),
        "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
        "__and__": logical_and, "__or__": logical_or, "__xor__": logical_xor,
        "__invert__": logical_not, "__getitem__": getitem, "__setitem__": setitem,
        "__iadd__": iadd, "__isub__": isub, "__imul__": imul, "__itruediv__": itruediv,
    }  # fmt: skip
    methods = {
        "add": add, "sub": sub, "mul": mul, "div": div, "pow": pow, "neg": neg,
        "exp": exp, "log": log, "log1p": log1p, "expm1": expm1, "sqrt": sqrt, "abs": abs,
        "sin": sin, "cos": cos, "tanh": tanh, "sigmoid": sigmoid, "relu": relu, "clip": clip,
        "softmax": softmax, "log_softmax": log_softmax,
        "clamp": clip, "sign": sign, "isfinite": isfinite, "isnan": isnan,
        "maximum": maximum, "minimum": minimum,
        "sum": sum, "mean": mean, "var": var, "std": std, "max": max, "min": min,
        "prod": prod, "logsumexp": logsumexp, "cumsum": cumsum, "argmax": argmax,
        "argmin": argmin, "any": any, "all": all,
        "matmul": matmul, "dot": dot,
        "reshape": reshape, "view": reshape, "flatten": flatten, "transpose": transpose,
        "permute": permute, "swapaxes": swapaxes, "squeeze": squeeze, "unsqueeze": unsqueeze,
        "expand_dims": expand_dims, "broadcast_to": broadcast_to, "expand": expand,
        "flip": flip, "repeat": repeat, "tile": tile,
        "take": take, "index_select": index_select, "gather": gather,
        "take_along_axis": take_along_axis, "split": split, "chunk": chunk,
        "astype": astype, "clone": clone,
        "add_": add_, "sub_": sub_, "mul_": mul_, "div_": div_, "zero_": zero_,
        "fill_": fill_, "copy_": copy_,
        "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge,
        "tril": tril, "triu": triu, "masked_fill": masked_fill, "masked_fill_": masked_fill_,
        "topk": topk, "sort": sort, "argsort": argsort, "amax": amax, "amin": amin,
        "erf": erf, "erfc": erfc, "log2": log2, "log10": log10, "square": square,
        "rsqrt": rsqrt, "reciprocal": reciprocal, "floor": floor, "ceil": ceil, "round": round,
        "trunc": trunc, "cumprod": cumprod, "roll": roll, "diag": diag, "diagonal": diagonal,
        "trace": trace, "norm": norm, "allclose": allclose, "isclose": isclose,
        "scatter": scatter, "scatter_add": scatter_add, "index_add": index_add, "bmm": bmm,
        "contiguous": contiguous, "view_as": view_as, "reshape_as": reshape_as,
        "expand_as": expand_as, "type_as": type_as, "new_zeros": new_zeros,
        "new_ones": new_ones, "new_full": new_full, "new_tensor": new_tensor, "t": t,
        "numel": numel, "nelement": numel, "dim": dim,
        "histogram": histogram,
    }  # fmt: skip
    for name, fn in {**operators, **methods}.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(transpose, doc="The tensor with its axes reversed (NumPy's .T).")
    Tensor.mT = property(matrix_transpose, doc="The last two axes swapped (PyTorch's .mT).")


_bind_methods()
