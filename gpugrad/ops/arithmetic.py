"""Arithmetic: + - * / ** and unary minus, between tensors (broadcasting) or with a scalar.

A Python scalar operand is a parameter of its own op (AddScalar, MulScalar, ...), not an input,
so nothing is spent on a gradient nobody needs.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Function
from ..errors import DTypeError
from ..tensor import Tensor
from ._support import PY_SCALARS, as_operand, integer_limits, tensor_among, unbroadcast

# --- tensor (op) tensor --------------------------------------------------------------------
# These four backwards return gradients in the output's (broadcast) shape; the engine sums
# each down to its input's shape (autograd.unbroadcast). Add and Sub note their inputs'
# shapes where they differ, only for gg.explain to show a constant operand's own shape.
# From this many elements on, Add of two arrays of one shape goes to the backend (on the CPU,
# split over the cores: a transformer's residual stream); below, the add costs less than that.
LARGE_ADD = 1 << 16


class Add(Function):
    shapes = None

    def forward(self, a, b):
        if a.shape != b.shape:
            self.shapes = a.shape, b.shape
        elif a.size >= LARGE_ADD:
            return self.xp.add_large(a, b)
        return a + b

    def backward(self, xp, g):
        return g, g


class Sub(Function):
    shapes = None

    def forward(self, a, b):
        if a.shape != b.shape:
            self.shapes = a.shape, b.shape
        return a - b

    def backward(self, xp, g):
        return g, -g


class Mul(Function):
    def forward(self, a, b):
        self.save(a, b)
        return a * b

    def backward(self, xp, g, a, b):
        return g * b, g * a


class Div(Function):
    def forward(self, a, b):
        self.save(a, b)
        return a / b

    def backward(self, xp, g, a, b):
        ga = g / b
        return ga, -ga * a / b


class Pow(Function):
    """a ** b for two tensors: d/da = b·a^(b-1), d/db = a^b·log(a) (defined for a > 0)."""

    def forward(self, a, b):
        out = a**b
        self.save(a, b, out)
        return out

    def backward(self, xp, g, a, b, out):
        # b·a^(b-1) is 0 where b is 0, even at a = 0 (where a^-1 would make it 0·inf).
        ga = g * b * a ** xp.where(b == 0, 1, b - 1)
        # log(a) is undefined for a <= 0; PyTorch gives 0 there when out is 0 as well.
        safe_a = xp.where(a > 0, a, 1)
        gb = g * out * xp.log(safe_a)
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


class _Extremum(Function):
    """maximum/minimum of two operands; where they tie, each gets half the gradient."""

    def forward(self, a, b):
        self.shapes = getattr(a, "shape", ()), getattr(b, "shape", ())
        self.save(a, b)
        return self.pick(a, b)

    def backward(self, xp, g, a, b):
        ga = xp.where(a == b, g * 0.5, xp.where(self.wins(a, b), g, 0))
        sa, sb = self.shapes
        return unbroadcast(ga, sa), unbroadcast(g - ga, sb)


class Maximum(_Extremum):
    def pick(self, a, b):
        return self.xp.maximum(a, b)

    def wins(self, a, b):
        return a > b


class Minimum(_Extremum):
    def pick(self, a, b):
        return self.xp.minimum(a, b)

    def wins(self, a, b):
        return a < b


# --- tensor (op) scalar --------------------------------------------------------------------
class AddScalar(Function):
    def forward(self, x, c):
        return x + c

    def backward(self, xp, g):
        return g


class RSubScalar(Function):
    """c - x."""

    def forward(self, x, c):
        return c - x

    def backward(self, xp, g):
        return -g


class MulScalar(Function):
    def forward(self, x, c):
        self.c = c
        return x * c

    def backward(self, xp, g):
        return g * self.c


class DivScalar(Function):
    """x / c."""

    def forward(self, x, c):
        self.c = c
        return x / c

    def backward(self, xp, g):
        return g / self.c


class RDivScalar(Function):
    """c / x: d/dx = -c / x² = -out / x."""

    def forward(self, x, c):
        out = c / x
        self.save(x, out)
        return out

    def backward(self, xp, g, x, out):
        return -g * out / x


class PowScalar(Function):
    """x ** p: d/dx = p·x^(p-1)."""

    def forward(self, x, p):
        self.p = p
        self.save(x)
        return x**p

    def backward(self, xp, g, x):
        p = self.p
        if p == 0:  # x**0 is flat everywhere; p·x^(p-1) would be 0·inf = NaN at x = 0
            return g * 0
        if p == 2:
            return g * 2 * x
        return g * p * x ** (p - 1)


class RPowScalar(Function):
    """c ** x: d/dx = c^x·log(c)."""

    def forward(self, x, c):
        out = c**x
        # 0**x is flat (0 for x > 0): its slope is 0, not 0·log(0) = NaN.
        self.log_c = 0.0 if c == 0 else float(self.xp.log(self.xp.asarray(c, dtype="float64")))
        self.save(out)
        return out

    def backward(self, xp, g, out):
        return g * out * self.log_c


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, xp, g):
        return -g


def _fitting(c: Any, x: Any, op: str) -> Any:
    """The scalar operand c, checked: a Python int that an integer tensor's dtype cannot hold
    raises DTypeError (NumPy 2 raises OverflowError there; CuPy need not, so gpugrad checks)."""
    if type(c) is int and isinstance(x, Tensor) and x._data.dtype.kind in "iu":
        dtype = x._data.dtype
        least, most = integer_limits(dtype)
        if not least <= c <= most:
            raise DTypeError(
                f"{op}: the Python int {c} does not fit the tensor's dtype {dtype} "
                f"({least}..{most}); convert the tensor first, e.g. x.astype('int64')"
            )
    return c


# --- the public functions (also Tensor operators) ---------------------------------------
def add(a: Any, b: Any) -> Tensor:
    """a + b, elementwise with broadcasting."""
    if type(a) is Tensor and type(b) is Tensor:  # the common cases first, checked least
        return Add.apply(a, b)
    if type(b) is float:
        return AddScalar.apply(a, c=b)
    if type(b) in PY_SCALARS:
        return AddScalar.apply(a, c=_fitting(b, a, "+"))
    if type(a) in PY_SCALARS:
        return AddScalar.apply(b, c=_fitting(a, b, "+"))
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        return add(*_operands(a, b))
    return Add.apply(a, b)


def sub(a: Any, b: Any) -> Tensor:
    """a - b, elementwise with broadcasting."""
    if type(a) is Tensor and type(b) is Tensor:  # the common case first, checked least
        return Sub.apply(a, b)
    if type(b) in PY_SCALARS:
        b = _fitting(b, a, "-")
        if type(b) is int and isinstance(a, Tensor) and a._data.dtype.kind == "u":  # -b: no fit
            return Sub.apply(a, Tensor(b, dtype=a._data.dtype, device=a.device))
        return AddScalar.apply(a, c=-b)
    if type(a) in PY_SCALARS:
        return RSubScalar.apply(b, c=_fitting(a, b, "-"))
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        return sub(*_operands(a, b))
    return Sub.apply(a, b)


def mul(a: Any, b: Any) -> Tensor:
    """a * b, elementwise with broadcasting."""
    if type(a) is Tensor and type(b) is Tensor:  # the common cases first, checked least
        return Mul.apply(a, b)
    if type(b) is float:
        return MulScalar.apply(a, c=b)
    if type(b) in PY_SCALARS:
        return MulScalar.apply(a, c=_fitting(b, a, "*"))
    if type(a) in PY_SCALARS:
        return MulScalar.apply(b, c=_fitting(a, b, "*"))
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        return mul(*_operands(a, b))
    return Mul.apply(a, b)


def div(a: Any, b: Any) -> Tensor:
    """a / b (true division), elementwise with broadcasting."""
    if type(a) is Tensor and type(b) is Tensor:  # the common case first, checked least
        return Div.apply(a, b)
    if type(b) in PY_SCALARS:
        return DivScalar.apply(a, c=b)
    if type(a) in PY_SCALARS:
        return RDivScalar.apply(b, c=a)
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        return div(*_operands(a, b))
    return Div.apply(a, b)


def pow(a: Any, b: Any) -> Tensor:
    """a ** b, elementwise with broadcasting."""
    if type(b) in PY_SCALARS:
        _integer_power(a, b)
        return PowScalar.apply(a, p=_fitting(b, a, "**"))
    if type(a) in PY_SCALARS:
        _integer_power(a, b)
        return RPowScalar.apply(b, c=_fitting(a, b, "**"))
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        return pow(*_operands(a, b))
    _integer_power(a, b)
    return Pow.apply(a, b)


def _is_integer(x: Any) -> bool:
    if isinstance(x, Tensor):
        return x._data.dtype.kind in "iu"
    return type(x) is int


def _integer_power(base: Any, exponent: Any) -> None:
    """DTypeError for an integer raised to a negative integer power, as NumPy raises and
    CuPy does not (it returns a number). A tensor exponent costs one reduction and, on a GPU,
    one host read; only integer-by-integer powers pay it."""
    if not (_is_integer(base) and _is_integer(exponent)):
        return
    if isinstance(exponent, Tensor):
        negative = bool((exponent._data < 0).any())
    else:
        negative = exponent < 0
    if negative:
        what = exponent if type(exponent) is int else f"{exponent.dtype} tensor with negatives"
        raise DTypeError(
            f"**: an integer to a negative integer power (exponent: {what}) is not allowed; "
            "make the base floating point, e.g. x.astype('float32')"
        )


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise larger of a and b (ties share the gradient equally)."""
    if tensor_among("maximum", a, b) is not a:
        a, b = b, a
    return Maximum.apply(a, as_operand(b, a, "maximum"))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise smaller of a and b (ties share the gradient equally)."""
    if tensor_among("minimum", a, b) is not a:
        a, b = b, a
    return Minimum.apply(a, as_operand(b, a, "minimum"))


def neg(x: Tensor) -> Tensor:
    """-x."""
    return Neg.apply(x)


def _operands(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring NumPy scalars, lists and arrays next to a Tensor onto its device."""
    like = tensor_among("this operation", a, b)
    return as_operand(a, like), as_operand(b, like)
