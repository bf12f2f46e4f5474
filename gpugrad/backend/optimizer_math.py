"""Optimizer primitives: fused parameter updates on raw (flat) arrays.

These are the NumPy twins of the fused CUDA kernels; mixed into `Backend`, so `self.xp` is the
array module. Each primitive updates `param` and the optimizer state arrays in place, with
exactly torch.optim's arithmetic (same formulas, same order of operations).

Arguments shared by every primitive:

- `param`: the parameter array, updated in place. The optimizers pass either one parameter's
  array (the per-parameter path) or a whole flat buffer whose views are the parameters of a
  group (the flat path: one call, one kernel on GPU, updates them all).
- `grad`: an array the shape of `param`, or a sequence of arrays whose flattened
  concatenation lines up with a flat `param`. The sequence form lets the NumPy twin read each
  parameter's gradient where backward left it, instead of first copying them all into one
  buffer: that copy would be one more pass over memory than a hand-written loop makes.
  `grad` is only read, never written.
- state arrays (`momentum_buffer`, `exp_avg`, ...): the shape of `param`, updated in place.
- `scratch`: a list of work arrays the shape of `param`; missing ones are allocated and
  appended, so a caller that keeps the list allocates them once. Pass None for throw-away
  work arrays.

Hyperparameters are turned into Python floats first, so a float32 update stays float32
(NumPy treats Python scalars as "weak") whatever scalar type the caller passed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from operator import attrgetter
from typing import Any


def adam_bias_corrections(lr: float, beta1: float, beta2: float, step: int) -> tuple[float, float]:
    """(lr / (1 − β1^t), √(1 − β2^t)) for update `step` = t, in double on the host: the twin
    and the fused kernel (which takes them as arguments) use these same two numbers."""
    return lr / (1.0 - beta1**step), math.sqrt(1.0 - beta2**step)


def adagrad_step_lr(lr: float, lr_decay: float, step: int) -> float:
    """Adagrad's learning rate for update `step` = t: lr / (1 + (t − 1)·lr_decay)."""
    return float(lr) / (1.0 + (step - 1) * float(lr_decay))


def nadam_momentum_coefficients(
    lr: float, beta1: float, momentum_decay: float, step: int
) -> tuple[float, float]:
    """NAdam's two step sizes for update `step` = t, in double on the host: the gradient's,
    −lr·(1 − μ_t)/(1 − Π_{i≤t} μ_i), and the first moment's, −lr·μ_{t+1}/(1 − Π_{i≤t+1} μ_i),
    where μ_i = β1·(1 − 0.5·0.96^(i·momentum_decay)). The products are formed by multiplying
    in order, as torch.optim.NAdam accumulates its `mu_product`, and remembered."""
    beta1, momentum_decay = float(beta1), float(momentum_decay)
    with _NADAM_LOCK:  # two optimizers stepping in threads must not extend a list twice
        products = _NADAM_MU_PRODUCTS.setdefault((beta1, momentum_decay), [1.0])
        while len(products) <= step + 1:
            i = len(products)
            products.append(products[-1] * _nadam_mu(beta1, momentum_decay, i))
    mu, mu_next = _nadam_mu(beta1, momentum_decay, step), _nadam_mu(beta1, momentum_decay, step + 1)
    lr = float(lr)
    return -lr * (1.0 - mu) / (1.0 - products[step]), -lr * mu_next / (1.0 - products[step + 1])


def _nadam_mu(beta1: float, momentum_decay: float, i: int) -> float:
    return beta1 * (1.0 - 0.5 * (0.96 ** (i * momentum_decay)))


# Π_{i≤t} μ_i for t = 0, 1, ... per (β1, momentum_decay): a step needs the product up to its
# own t, and recomputing it from t = 1 would cost O(t) per step.
_NADAM_MU_PRODUCTS: dict[tuple[float, float], list[float]] = {}
_NADAM_LOCK = threading.Lock()
_size = attrgetter("size")


class OptimizerPrimitives:
    """Fused optimizer updates, written with `self.xp` (NumPy or CuPy) and `out=` ufuncs."""

    xp: Any
    # Elements per block of the blocked updates: five float32 blocks (param, gradient, two
    # moments, work) stay in a 2 MiB cache, so every pass after the first reads from cache.
    optimizer_block = 1 << 16

    # --- helpers ---------------------------------------------------------------------------
    def _scratch(self, scratch: list[Any] | None, i: int, like: Any) -> Any:
        """Work array number `i` for arrays like `like`, allocated on first use, and again when
        the one kept is smaller or of another dtype (callers that work in blocks keep smaller
        ones, and flatten or slice what they get)."""
        if scratch is None:
            return self.xp.empty_like(like)
        while len(scratch) <= i:
            scratch.append(self.xp.empty_like(like))
        if scratch[i].size < like.size or scratch[i].dtype != like.dtype:
            scratch[i] = self.xp.empty_like(like)
        return scratch[i]

    def _with_grad(self, ufunc: Callable[..., Any], grad: Any, other: Any, out: Any) -> Any:
        """`ufunc(grad, other, out=out)` where `grad` may be a sequence of pieces of a flat
        array; `other` is a scalar, an array the shape of `out`, or `grad` itself."""
        if not isinstance(grad, (list, tuple)):
            return ufunc(grad, grad if other is grad else other, out=out)
        start = 0
        for piece in grad:
            flat = piece.reshape(-1)
            stop = start + flat.size
            if other is grad:
                ufunc(flat, flat, out=out[start:stop])
            elif isinstance(other, (int, float)):
                ufunc(flat, other, out=out[start:stop])
            else:
                ufunc(flat, other[start:stop], out=out[start:stop])
            start = stop
        if start != out.size:
            raise ValueError(f"gradient pieces hold {start} elements, parameters {out.size}")
        return out

    def _copy_grad(self, grad: Any, out: Any) -> Any:
        """out[...] = grad, for `grad` in either form; returns out."""
        if isinstance(grad, (list, tuple)):
            self._with_grad(self.xp.multiply, grad, 1.0, out)  # ×1.0 is an exact copy
        else:
            out[...] = grad
        return out

    def _l2_decayed(self, param: Any, grad: Any, weight_decay: float, scratch: Any) -> Any:
        """The gradient with L2 weight decay folded in (grad itself when there is none), in
        scratch slot 1."""
        if weight_decay == 0:
            return grad
        return self._decayed_grad(param, grad, weight_decay, self._scratch(scratch, 1, param))

    def _lerp_towards(self, avg: Any, g: Any, decay: float, work: Any) -> None:
        """avg += (1 − decay)(g − avg) in place (a running mean of g, as a lerp towards it, as
        torch computes the first moment); `g` in either form, `work` an array like avg."""
        xp = self.xp
        self._with_grad(xp.subtract, g, avg, work)
        xp.multiply(work, 1.0 - decay, out=work)
        xp.add(avg, work, out=avg)

    def _mean_of_squares(self, avg: Any, g: Any, decay: float, work: Any) -> None:
        """avg = decay·avg + (1 − decay)·g² in place (the running mean of squared gradients of
        Adam, RMSprop, Adadelta and NAdam); `g` in either form, `work` an array like avg."""
        xp = self.xp
        xp.multiply(avg, decay, out=avg)
        self._with_grad(xp.multiply, g, g, work)
        xp.multiply(work, 1.0 - decay, out=work)
        xp.add(avg, work, out=avg)

    def _decayed_grad(self, param: Any, grad: Any, weight_decay: float, out: Any) -> Any:
        """grad + weight_decay·param (L2 weight decay folded into the gradient), into out."""
        self.xp.multiply(param, weight_decay, out=out)
        return self._with_grad(self.xp.add, grad, out, out)

    # --- SGD -------------------------------------------------------------------------------
    def sgd_step(
        self,
        param: Any,
        grad: Any,
        momentum_buffer: Any,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        first: bool = False,
        scratch: list[Any] | None = None,
    ) -> None:
        """SGD: d = grad (+ weight_decay·param); with momentum, buf = momentum·buf +
        (1 − dampening)·d (buf = d on the `first` step) and d = buf, or d + momentum·buf with
        nesterov; then param −= lr·d. Without momentum or decay: exactly param −= lr·grad."""
        xp = self.xp
        lr, momentum, dampening = float(lr), float(momentum), float(dampening)
        weight_decay = float(weight_decay)
        arrays = (param, momentum_buffer) if momentum != 0 else (param,)
        for views, g, (decayed, work) in self._blocks(arrays, grad, scratch, works=2):
            p = views[0]
            d = g
            if weight_decay != 0:  # g + weight_decay·p (L2), never written into the gradient
                d = xp.add(g, xp.multiply(p, weight_decay, out=decayed), out=decayed)
            if momentum != 0:
                buf = views[1]
                if first:  # torch seeds the buffer with the first gradient, undamped
                    buf[...] = d
                else:
                    xp.multiply(buf, momentum, out=buf)
                    if dampening != 0:
                        xp.add(buf, xp.multiply(d, 1.0 - dampening, out=work), out=buf)
                    else:
                        xp.add(buf, d, out=buf)
                if nesterov:
                    d = xp.add(d, xp.multiply(buf, momentum, out=work), out=work)
                else:
                    d = buf
            xp.subtract(p, xp.multiply(d, lr, out=work), out=p)

    # --- Adam / AdamW ----------------------------------------------------------------------
    def adam_step(
        self,
        param: Any,
        grad: Any,
        exp_avg: Any,
        exp_avg_sq: Any,
        max_exp_avg_sq: Any,
        step: int,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        decoupled: bool = False,
        scratch: list[Any] | None = None,
    ) -> None:
        """Adam (decoupled=False, weight decay as L2 in the gradient) or AdamW (decoupled:
        param ·= 1 − lr·weight_decay first). `step` counts this update (1 for the first).

        m += (1 − β1)(g − m); v = β2·v + (1 − β2)·g²; (amsgrad: vmax = max(vmax, v), used
        for v); param −= lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps).
        """
        xp = self.xp
        lr, beta1, beta2, eps = float(lr), float(beta1), float(beta2), float(eps)
        weight_decay = float(weight_decay)
        states = (param, exp_avg, exp_avg_sq) + ((max_exp_avg_sq,) if amsgrad else ())
        step_size, correction2_sqrt = adam_bias_corrections(lr, beta1, beta2, step)
        for views, g, (w, l2) in self._blocks(states, grad, scratch, works=2):
            p, m, v = views[:3]
            if weight_decay != 0:
                if decoupled:
                    xp.multiply(p, 1.0 - lr * weight_decay, out=p)
                else:  # g + weight_decay·p (L2), never written into the caller's gradient
                    g = xp.add(g, xp.multiply(p, weight_decay, out=l2), out=l2)
            # _lerp_towards and _mean_of_squares, written out: g is one array here, and
            # four helper calls cost a small model's step more than these seven ufuncs.
            xp.add(m, xp.multiply(xp.subtract(g, m, out=w), 1.0 - beta1, out=w), out=m)
            xp.multiply(v, beta2, out=v)
            xp.add(v, xp.multiply(xp.multiply(g, g, out=w), 1.0 - beta2, out=w), out=v)
            second = v
            if amsgrad:
                second = views[3]
                xp.maximum(second, v, out=second)
            # eps goes outside the square root, after the bias correction.
            xp.sqrt(second, out=w)
            xp.divide(w, correction2_sqrt, out=w)
            xp.add(w, eps, out=w)
            xp.divide(m, w, out=w)
            xp.multiply(w, step_size, out=w)
            xp.subtract(p, w, out=p)

    def _blocks(
        self, arrays: tuple[Any, ...], grad: Any, scratch: list[Any] | None, works: int
    ) -> Iterable[tuple[list[Any], Any, list[Any]]]:
        """(views, g, work) for each block of `arrays` (a parameter and its state arrays, all
        its shape) and their gradient `grad` (an array, or a sequence of pieces of a flat one):
        the arrays' and the gradient's elements of the block, and `works` work arrays of its size.

        Contiguous arrays go in cache-sized blocks of flat views: an update runs all its passes
        on one block before reading the next, so main memory is read about once instead of once
        per pass, with each element's operations unchanged (bit for bit the whole-array result).
        Other arrays are one block, whole, with work arrays of their own. One block comes as a
        list, not a generator: most banks are that small, and their step is all Python time."""
        xp = self.xp
        param = arrays[0]
        for a in arrays:
            if not a.flags.c_contiguous:
                if isinstance(grad, (list, tuple)):
                    grad = self._copy_grad(grad, xp.empty_like(param))
                return [(list(arrays), grad, [xp.empty_like(param) for _ in range(works)])]
        flats = [a if a.ndim == 1 else a.reshape(-1) for a in arrays]
        if param.size <= self.optimizer_block:
            # Slot `works` gathers the gradient pieces (small parameters) into one array.
            slots = self._work_arrays(scratch, flats[0], works + 1)
            return [(flats, self._whole_gradient(grad, param.size, slots[works]), slots[:works])]
        return self._each_block(flats, grad, scratch, works)

    def _work_arrays(self, scratch: list[Any] | None, like: Any, count: int) -> list[Any]:
        """`count` flat work arrays the size and dtype of the flat array `like`: scratch slots
        0, 1, ... (kept ones may be bigger: their first elements), or new ones."""
        n = like.size
        slots = []
        for i in range(count):
            w = self._scratch(scratch, i, like)
            if w.ndim != 1:
                w = w.reshape(-1)
            slots.append(w if w.size == n else w[:n])
        return slots

    def _whole_gradient(self, grad: Any, size: int, buffer: Any) -> Any:
        """The gradient of a flat parameter of `size` elements as one flat array: `grad`
        itself, or its pieces gathered into `buffer` (of `size` elements) by one copy."""
        if not isinstance(grad, (list, tuple)):
            return grad if grad.ndim == 1 else grad.reshape(-1)
        total = sum(map(_size, grad))
        if total != size:
            raise ValueError(f"gradient pieces hold {total} elements, parameters {size}")
        if len(grad) == 1:
            return grad[0].reshape(-1)
        return self.xp.concatenate(grad, axis=None, out=buffer)

    def _each_block(
        self, flats: list[Any], grad: Any, scratch: list[Any] | None, works: int
    ) -> Iterator[tuple[list[Any], Any, list[Any]]]:
        """`_blocks` for flat arrays bigger than one block: one block at a time, each block's
        gradient gathered (where it spans pieces) into the same work array."""
        like = flats[0][: self.optimizer_block]
        slots = self._work_arrays(scratch, like, works + 1)
        pieces = slots[works] if isinstance(grad, (list, tuple)) else None
        for start, stop, g in self._gradient_blocks(grad, flats[0].size, pieces):
            n = stop - start
            yield [f[start:stop] for f in flats], g, [w[:n] for w in slots[:works]]

    def _gradient_blocks(self, grad: Any, size: int, buffer: Any) -> Any:
        """(start, stop, gradient of elements start..stop) over a flat parameter of `size`
        elements, in blocks of at most `optimizer_block`. A sequence of gradient pieces is
        gathered into `buffer` where a block spans pieces (small parameters share a block)."""
        block = self.optimizer_block
        if not isinstance(grad, (list, tuple)):
            flat = grad.reshape(-1)
            for start in range(0, size, block):
                yield start, min(start + block, size), flat[start : start + block]
            return
        total = sum([piece.size for piece in grad])
        if total != size:
            raise ValueError(f"gradient pieces hold {total} elements, parameters {size}")
        if size <= block:  # one block (a bank of small parameters): one gathering copy
            if len(grad) == 1:
                yield 0, size, grad[0].reshape(-1)
            else:
                yield 0, size, self.xp.concatenate(grad, axis=None, out=buffer[:size])
            return
        flats = [piece.reshape(-1) for piece in grad]
        start = filled = 0  # the block begins at `start`; `filled` of it is in `parts`
        parts: list[Any] = []  # the block's pieces, gathered by one copy once it is complete
        for flat in flats:
            at, n = 0, flat.size
            while at < n:
                if filled == 0 and n - at >= block:  # a whole block in one piece
                    yield start, start + block, flat[at : at + block]
                    start, at = start + block, at + block
                    continue
                take = min(n - at, block - filled)
                parts.append(flat if take == n else flat[at : at + take])
                filled, at = filled + take, at + take
                if filled == block:
                    yield start, start + block, self._gathered(parts, buffer[:block])
                    start, filled, parts = start + block, 0, []
        if filled:
            yield start, start + filled, self._gathered(parts, buffer[:filled])

    def _gathered(self, parts: list[Any], out: Any) -> Any:
        """The flat pieces `parts` one after another: the piece itself when there is one (it
        is only read), else copied into `out` by one concatenate rather than one per piece."""
        if len(parts) == 1:
            return parts[0]
        return self.xp.concatenate(parts, out=out)

    # --- RMSprop ---------------------------------------------------------------------------
    def rmsprop_step(
        self,
        param: Any,
        grad: Any,
        square_avg: Any,
        grad_avg: Any,
        momentum_buffer: Any,
        lr: float,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        scratch: list[Any] | None = None,
    ) -> None:
        """RMSprop: s = α·s + (1 − α)·g²; centered: a += (1 − α)(g − a) and s − a² replaces s;
        avg = √(·) + eps; with momentum, buf = momentum·buf + g/avg and param −= lr·buf,
        else param −= lr·g/avg. `grad_avg` / `momentum_buffer` may be None when unused."""
        xp = self.xp
        lr, alpha, eps, momentum = float(lr), float(alpha), float(eps), float(momentum)
        g = self._l2_decayed(param, grad, float(weight_decay), scratch)
        work = self._scratch(scratch, 0, param)
        self._mean_of_squares(square_avg, g, alpha, work)
        if centered:
            self._lerp_towards(grad_avg, g, alpha, work)
            xp.multiply(grad_avg, grad_avg, out=work)
            xp.subtract(square_avg, work, out=work)
            xp.sqrt(work, out=work)
        else:
            xp.sqrt(square_avg, out=work)
        xp.add(work, eps, out=work)
        self._with_grad(xp.divide, g, work, work)
        if momentum > 0:
            xp.multiply(momentum_buffer, momentum, out=momentum_buffer)
            xp.add(momentum_buffer, work, out=momentum_buffer)
            xp.multiply(momentum_buffer, lr, out=work)
        else:
            xp.multiply(work, lr, out=work)
        xp.subtract(param, work, out=param)

    # --- Adagrad ---------------------------------------------------------------------------
    def adagrad_step(
        self,
        param: Any,
        grad: Any,
        state_sum: Any,
        step: int,
        lr: float,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        eps: float = 1e-10,
        scratch: list[Any] | None = None,
    ) -> None:
        """Adagrad: sum += g²; param −= lr/(1 + (t − 1)·lr_decay) · g / (√sum + eps), where
        `step` = t counts this update (1 for the first)."""
        xp = self.xp
        g = self._l2_decayed(param, grad, float(weight_decay), scratch)
        clr = adagrad_step_lr(lr, lr_decay, step)
        work = self._scratch(scratch, 0, param)
        self._with_grad(xp.multiply, g, g, work)
        xp.add(state_sum, work, out=state_sum)
        xp.sqrt(state_sum, out=work)
        xp.add(work, float(eps), out=work)
        self._with_grad(xp.divide, g, work, work)
        xp.multiply(work, clr, out=work)
        xp.subtract(param, work, out=param)

    # --- Adadelta --------------------------------------------------------------------------
    def adadelta_step(
        self,
        param: Any,
        grad: Any,
        square_avg: Any,
        acc_delta: Any,
        lr: float,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        scratch: list[Any] | None = None,
    ) -> None:
        """Adadelta: s = ρ·s + (1 − ρ)·g²; d = √(a + eps) / √(s + eps) · g;
        a = ρ·a + (1 − ρ)·d²; param −= lr·d."""
        xp = self.xp
        lr, rho, eps = float(lr), float(rho), float(eps)
        g = self._l2_decayed(param, grad, float(weight_decay), scratch)
        work = self._scratch(scratch, 0, param)
        delta = self._scratch(scratch, 2, param)
        self._mean_of_squares(square_avg, g, rho, work)
        xp.add(square_avg, eps, out=work)
        xp.sqrt(work, out=work)  # std
        xp.add(acc_delta, eps, out=delta)
        xp.sqrt(delta, out=delta)
        xp.divide(delta, work, out=delta)
        self._with_grad(xp.multiply, g, delta, delta)
        self._mean_of_squares(acc_delta, delta, rho, work)
        xp.multiply(delta, lr, out=delta)
        xp.subtract(param, delta, out=param)

    # --- Adamax ----------------------------------------------------------------------------
    def adamax_step(
        self,
        param: Any,
        grad: Any,
        exp_avg: Any,
        exp_inf: Any,
        step: int,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        scratch: list[Any] | None = None,
    ) -> None:
        """Adamax: m += (1 − β1)(g − m); u = max(β2·u, |g| + eps);
        param −= lr/(1 − β1^t) · m / u, where `step` = t counts this update."""
        xp = self.xp
        lr, beta1, beta2, eps = float(lr), float(beta1), float(beta2), float(eps)
        g = self._l2_decayed(param, grad, float(weight_decay), scratch)
        work = self._scratch(scratch, 0, param)
        self._lerp_towards(exp_avg, g, beta1, work)
        xp.multiply(exp_inf, beta2, out=exp_inf)
        self._copy_grad(g, work)
        xp.abs(work, out=work)
        xp.add(work, eps, out=work)
        xp.maximum(exp_inf, work, out=exp_inf)
        xp.divide(exp_avg, exp_inf, out=work)
        xp.multiply(work, lr / (1.0 - beta1**step), out=work)
        xp.subtract(param, work, out=param)

    # --- NAdam -----------------------------------------------------------------------------
    def nadam_step(
        self,
        param: Any,
        grad: Any,
        exp_avg: Any,
        exp_avg_sq: Any,
        step: int,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        scratch: list[Any] | None = None,
    ) -> None:
        """NAdam (Adam with Nesterov momentum and a warming momentum schedule μ_t):
        m += (1 − β1)(g − m); v = β2·v + (1 − β2)·g²; d = √(v / (1 − β2^t)) + eps;
        param += c_g·g/d + c_m·m/d with (c_g, c_m) from `nadam_momentum_coefficients`."""
        xp = self.xp
        beta1, beta2, eps = float(beta1), float(beta2), float(eps)
        g = self._l2_decayed(param, grad, float(weight_decay), scratch)
        work = self._scratch(scratch, 0, param)
        denom = self._scratch(scratch, 2, param)
        self._lerp_towards(exp_avg, g, beta1, work)
        self._mean_of_squares(exp_avg_sq, g, beta2, work)
        xp.divide(exp_avg_sq, 1.0 - beta2**step, out=denom)
        xp.sqrt(denom, out=denom)
        xp.add(denom, eps, out=denom)
        grad_coef, avg_coef = nadam_momentum_coefficients(lr, beta1, momentum_decay, step)
        self._with_grad(xp.divide, g, denom, work)
        xp.multiply(work, grad_coef, out=work)
        xp.add(param, work, out=param)
        xp.divide(exp_avg, denom, out=work)
        xp.multiply(work, avg_coef, out=work)
        xp.add(param, work, out=param)
