"""Every op, as a function (`gg.exp(x)`), and bound onto Tensor as a method and operator.

This module is also the array namespace that backward formulas receive with
`create_graph=True`: its functions take Tensors and have NumPy's names and signatures for the
subset that formulas use, so `xp.exp(x)` records a differentiable op.
"""

from __future__ import annotations

from ..tensor import Tensor
from ._support import unbroadcast
from .arithmetic import add, div, mul, neg, pow, sub
from .compare import (
    eq, ge, gt, isfinite, isnan, le, logical_and, logical_not, logical_or, logical_xor, lt, ne,
    sign, where,
)  # fmt: skip
from .convert import astype, clone, to_device
from .unary import abs, clamp, clip, cos, exp, expm1, log, log1p, relu, sigmoid, sin, sqrt, tanh

true_divide = divide = div
multiply = mul
subtract = sub
negative = neg
power = pow
equal, not_equal, less, less_equal, greater, greater_equal = eq, ne, lt, le, gt, ge


def _reflected(fn):
    def method(self, other):
        return fn(other, self)

    method.__name__ = f"r{fn.__name__}"
    return method


def _bind_methods() -> None:
    """Attach the ops to Tensor: operators, then NumPy-style methods."""
    operators = {
        "__add__": add, "__radd__": add, "__sub__": sub, "__rsub__": _reflected(sub),
        "__mul__": mul, "__rmul__": mul, "__truediv__": div, "__rtruediv__": _reflected(div),
        "__pow__": pow, "__rpow__": _reflected(pow), "__neg__": neg,
        "__eq__": eq, "__ne__": ne, "__lt__": lt, "__le__": le, "__gt__": gt, "__ge__": ge,
        "__and__": logical_and, "__or__": logical_or, "__xor__": logical_xor,
        "__invert__": logical_not, "__abs__": abs,
    }  # fmt: skip
    methods = {
        "add": add, "sub": sub, "mul": mul, "div": div, "pow": pow, "neg": neg,
        "exp": exp, "log": log, "log1p": log1p, "expm1": expm1, "sqrt": sqrt, "abs": abs,
        "sin": sin, "cos": cos, "tanh": tanh, "sigmoid": sigmoid, "relu": relu, "clip": clip,
        "clamp": clip, "sign": sign, "astype": astype, "clone": clone,
        "isfinite": isfinite, "isnan": isnan,
    }  # fmt: skip
    for name, fn in {**operators, **methods}.items():
        setattr(Tensor, name, fn)


_bind_methods()
