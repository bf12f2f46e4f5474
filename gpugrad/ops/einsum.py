"""einsum, with a backward that is itself einsums, and bmm.

The subscripts are first made explicit: `...` becomes letters of its own and a missing `->`
gets NumPy's implicit output (the letters used once, in alphabetical order, after the
ellipsis). The gradient of operand k is then the einsum of the output gradient with every
other operand, written out to operand k's letters. Two cases need a constant operand:

- a letter that only operand k has (summed away in the forward, as j in "ij->i") gets a
  vector of ones, which broadcasts the gradient along it;
- a letter repeated in operand k (a diagonal, as in "ii->i") gets a fresh letter for each
  repeat and an identity matrix tying the two, which puts the gradient on the diagonal.

Letters of size 1 that broadcast against a larger size are summed back (`unbroadcast`).
Because the backward only calls `xp.einsum`, second derivatives work too.
"""

from __future__ import annotations

import string
from collections import Counter
from typing import Any

from ..autograd import Function
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._support import as_tensor_like, refuse_sequence, unbroadcast
from .linalg import matmul

LETTERS = string.ascii_letters


class Einsum(Function):
    def forward(self, *arrays, terms, output):
        self.terms, self.output = terms, output
        self.save(*arrays)
        return _contract(self.xp, f"{','.join(terms)}->{output}", arrays)

    def backward(self, xp, g, *operands):
        sizes = _letter_sizes(self.terms, [a.shape for a in operands])
        unused = iter(c for c in LETTERS if c not in sizes)
        grads = []
        for k, (term, operand) in enumerate(zip(self.terms, operands)):
            if not self.needs_grad(k):
                grads.append(None)
                continue
            subs = [self.output] + [t for i, t in enumerate(self.terms) if i != k]
            args = [g] + [o for i, o in enumerate(operands) if i != k]
            target = ""
            for letter in term:
                if letter in target:  # a repeat: a fresh letter, tied to it by the identity
                    fresh = next(unused)
                    subs.append(letter + fresh)
                    args.append(self.xp.eye(sizes[letter], dtype=g.dtype))
                    letter = fresh
                target += letter
            reached = set("".join(subs))
            for letter in sorted(set(term) - reached):
                subs.append(letter)
                args.append(self.xp.ones(sizes[letter], dtype=g.dtype))
            spec = f"{','.join(subs)}->{target}"
            grad = _contract(xp, spec, args) if xp is self.xp else xp.einsum(spec, *args)
            grads.append(unbroadcast(grad, operand.shape))
        return tuple(grads) if len(grads) > 1 else grads[0]  # the engine's one-input form


def _contract(backend: Any, spec: str, arrays: Any) -> Any:
    """The backend's einsum on raw arrays. With three or more operands the order of the
    pairwise contractions decides the cost (a chain of matrices can go from n⁴ to n³), so
    the library is asked to choose it."""
    return backend.einsum(spec, *arrays, optimize=len(arrays) > 2)


def _letter_sizes(terms: list[str], shapes: list[tuple[int, ...]]) -> dict[str, int]:
    """Each letter's size; sizes of 1 broadcast against larger ones (as in NumPy)."""
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        for letter, n in zip(term, shape):
            seen = sizes.get(letter, 1)
            if seen != n and 1 not in (seen, n):
                raise ShapeError(
                    f"einsum: letter '{letter}' has size {seen} in one operand and {n} in "
                    f"another (operand shapes {[tuple(s) for s in shapes]})"
                )
            sizes[letter] = max(seen, n)
    return sizes


def _explicit(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[str], str]:
    """(one term per operand, the output term), with letters only: no '...', no implicit
    output. ShapeError for anything that does not fit the operands."""
    spec = subscripts.replace(" ", "")
    lhs, arrow, output = spec.partition("->")
    if "->" in output:
        raise ShapeError(f"einsum: subscripts {subscripts!r} have more than one '->'")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(
            f"einsum: subscripts {subscripts!r} name {len(terms)} operand(s), got {len(shapes)}"
        )
    for term in [*terms, output]:
        if any(c not in LETTERS for c in term.replace("...", "", 1)):
            raise ShapeError(
                f"einsum: {term!r} in subscripts {subscripts!r} may hold only letters and one '...'"
            )
    free = [c for c in LETTERS if c not in spec]
    lengths = []
    for term, shape in zip(terms, shapes):
        named = len(term.replace("...", ""))
        dims = len(shape) - named if "..." in term else 0
        if dims < 0 or ("..." not in term and named != len(shape)):
            raise ShapeError(
                f"einsum: term {term!r} of subscripts {subscripts!r} does not fit an operand "
                f"of shape {tuple(shape)}"
            )
        lengths.append(dims)
    ellipsis = "".join(free[: max(lengths, default=0)])
    terms = [t.replace("...", ellipsis[len(ellipsis) - n :]) for t, n in zip(terms, lengths)]
    if not arrow:
        counts = Counter("".join(terms))
        output = ellipsis + "".join(
            sorted(c for c, n in counts.items() if n == 1 and c not in ellipsis)
        )
    elif "..." in output:
        output = output.replace("...", ellipsis)
    elif ellipsis:
        raise ShapeError(
            f"einsum: subscripts {subscripts!r} have '...' in the operands but not in the "
            "output; write '...' after '->' too"
        )
    known = set("".join(terms))
    for letter in output:
        if letter not in known or output.count(letter) > 1:
            raise ShapeError(
                f"einsum: output letter '{letter}' of subscripts {subscripts!r} must appear "
                "in an operand, and only once in the output"
            )
    _letter_sizes(terms, shapes)
    return terms, output


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """Einstein summation, as NumPy's and PyTorch's einsum: `einsum("bij,bjk->bik", a, b)`.
    The operands may also come as one list (PyTorch's second form)."""
    if not isinstance(subscripts, str):
        raise DTypeError(
            f"einsum: the first argument must be the subscripts string, got {subscripts!r}"
        )
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    like = next((x for x in operands if isinstance(x, Tensor)), None)
    if like is None:
        raise DTypeError(f"einsum: needs at least one Tensor operand, got {operands!r}")
    for x in operands:
        refuse_sequence(x, "einsum")
    # Constants a backward formula passes (arrays) join as Tensors on the same device.
    tensors = [as_tensor_like(x, like) for x in operands]
    terms, output = _explicit(subscripts, [t.shape for t in tensors])
    return Einsum.apply(*tensors, terms=terms, output=output)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product of (B, n, m) and (B, m, p) tensors, as PyTorch's bmm (no
    broadcasting: use matmul for that)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ShapeError(
            f"bmm needs (B, n, m) and (B, m, p) tensors, got shapes {a.shape} and {b.shape}"
        )
    return matmul(a, b)
