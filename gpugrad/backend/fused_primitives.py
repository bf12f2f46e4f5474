"""The fused CUDA kernels of `kernels/` as backend primitives.

`FusedPrimitives` overrides the primitives of `ActivationPrimitives`, `LossPrimitives` and
`OptimizerPrimitives` (the NumPy twins) with one kernel launch each, wherever a kernel exists for
the case at hand: float32 or float64 arrays (and float16 ones for the elementwise activations and
bias + activation, whose f16 kernels compute in float32 and round once) and an activation or
optimizer option the kernels cover. Anything else (float16 optimizer steps and cross-entropy,
softmax along an axis, a gradient of another dtype) falls back to the twin, which on CuPy is the
same formula as a handful of stock CuPy kernels.

This layer knows nothing of CuPy. It prepares the arguments exactly as the kernels declare them
(C-contiguous arrays, `long long` sizes as `numpy.int64`, scalars of the kernel's dtype or
`double`, flags as `numpy.int32`) and hands them to `self.launch_kernel(name, n, args)`. The CuPy
backend launches them on the GPU (`cupy_kernels.py`); the tests launch the same kernels, built for
the host, through ctypes, which checks every argument's type against the kernel's signature.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from .activation_math import ActivationPrimitives
from .loss_math import LossPrimitives
from .optimizer_math import OptimizerPrimitives, adagrad_step_lr, adam_bias_corrections

# The suffix of a kernel's name for each dtype the kernels are written for.
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
# The activation and bias + activation kernels also come in float16 (binary16 arrays, math in
# float32, one rounding per element).
ACTIVATION_SUFFIX = {**SUFFIX, np.dtype(np.float16): "f16"}
# The type of an activation kernel's scalar params (slope, alpha, beta, threshold): its math
# type, float32 for the f16 kernels.
PARAM_TYPE = {
    np.dtype(np.float32): np.float32,
    np.dtype(np.float64): np.float64,
    np.dtype(np.float16): np.float32,
}

# Elementwise activations with a forward and a fused backward kernel, and which saved arrays
# each backward kernel reads, in its argument order (kernels/activations.cu).
ACTIVATION_KERNELS = {
    "relu": ("out",),
    "leaky_relu": ("x",),
    "elu": ("x", "out"),
    "gelu": ("x",),
    "gelu_tanh": ("x",),
    "silu": ("x",),
    "sigmoid": ("out",),
    "tanh": ("out",),
    "softplus": ("x",),
}
# Activations with a fused bias + activation forward (kernels/bias_activation.cu): those whose
# backward reads only their output, so the pre-activation need not be kept.
BIAS_ACTIVATION_KERNELS = ("relu", "sigmoid", "tanh")
OPTIMIZER_KERNELS = ("sgd_step", "adam_step", "rmsprop_step", "adagrad_step")
LOSS_KERNELS = ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward")


def kernel_names() -> set[str]:
    """Every kernel name `FusedPrimitives` may launch (each must exist in kernels/*.cu)."""
    activations = [
        f"activation_{d}_{a}" for a in ACTIVATION_KERNELS for d in ("forward", "backward")
    ]
    activations += [f"bias_activation_forward_{a}" for a in BIAS_ACTIVATION_KERNELS]
    names = {f"{stem}_{suffix}" for stem in activations for suffix in ACTIVATION_SUFFIX.values()}
    others = [*OPTIMIZER_KERNELS, *LOSS_KERNELS]
    return names | {f"{stem}_{suffix}" for stem in others for suffix in SUFFIX.values()}


def _activation_params(name: str, param: Any, scalar: type) -> tuple:
    """The activation's setting as the kernel's trailing scalar arguments."""
    if name == "softplus":
        beta, threshold = param
        return scalar(beta), scalar(threshold)
    if name in ("leaky_relu", "elu"):
        return (scalar(param),)
    return ()


def _ignored(ignore_index: int | None) -> np.int64:
    """The kernels' ignore_index: None (no row is ignored, the labels were checked to lie in
    [0, classes)) becomes -1, which no such label equals."""
    return np.int64(-1 if ignore_index is None else ignore_index)


class FusedPrimitives(ActivationPrimitives, LossPrimitives, OptimizerPrimitives):
    """Primitives that run as the fused kernels of `kernels/`, falling back to the twins."""

    xp: Any
    fuses_bias_activation = True

    @abstractmethod
    def launch_kernel(self, name: str, n: int, args: tuple) -> None:
        """Run kernel `name` over `n` work items (elements or rows) with `args`: the backend
        that mixes this class in supplies it."""

    # --- helpers ---------------------------------------------------------------------------
    def _contiguous(self, array: Any) -> Any:
        """`array` itself when C-contiguous, else a C-contiguous copy of the same shape
        (ascontiguousarray alone would also turn a 0-d array into shape (1,))."""
        return array if array.flags.c_contiguous else self.xp.ascontiguousarray(array)

    def _output(self, shape: tuple[int, ...], dtype: Any, into: Any) -> Any:
        """`into` when given (it must be C-contiguous, of this shape and dtype), else a new
        array."""
        if into is None:
            return self.xp.empty(shape, dtype=dtype)
        if into.shape != shape or into.dtype != dtype or not into.flags.c_contiguous:
            raise ValueError(
                f"into= must be a C-contiguous {dtype} array of shape {shape}, got "
                f"{into.dtype} array of shape {into.shape}"
            )
        return into

    # --- activations -----------------------------------------------------------------------
    def activation_forward(self, name: str, x: Any, param: Any = None, *, into: Any = None) -> Any:
        suffix = ACTIVATION_SUFFIX.get(x.dtype)
        if suffix is None or name not in ACTIVATION_KERNELS:
            return super().activation_forward(name, x, param, into=into)
        x = self._contiguous(x)
        out = self._output(x.shape, x.dtype, into)
        params = _activation_params(name, param, PARAM_TYPE[x.dtype])
        if x.size:
            self.launch_kernel(
                f"activation_forward_{name}_{suffix}", x.size, (np.int64(x.size), x, out, *params)
            )
        return out

    def activation_backward(
        self, name: str, g: Any, x: Any, out: Any, param: Any = None, *, into: Any = None
    ) -> Any:
        saved_names = ACTIVATION_KERNELS.get(name)
        saved_by_name = {"x": x, "out": out}
        saved = [saved_by_name[s] for s in saved_names] if saved_names else []
        suffix = ACTIVATION_SUFFIX.get(g.dtype)
        if (
            suffix is None
            or saved_names is None
            or any(s is None or s.dtype != g.dtype or s.shape != g.shape for s in saved)
        ):
            return super().activation_backward(name, g, x, out, param, into=into)
        g = self._contiguous(g)
        saved = [self._contiguous(s) for s in saved]
        dx = self._output(g.shape, g.dtype, into)
        params = _activation_params(name, param, PARAM_TYPE[g.dtype])
        if g.size:
            self.launch_kernel(
                f"activation_backward_{name}_{suffix}",
                g.size,
                (np.int64(g.size), g, *saved, dx, *params),
            )
        return dx

    def bias_activation_forward(self, name: str, z: Any, bias: Any, param: Any = None) -> Any:
        suffix = ACTIVATION_SUFFIX.get(z.dtype)
        if (
            suffix is None
            or name not in BIAS_ACTIVATION_KERNELS
            or z.ndim != 2
            or bias.shape != z.shape[1:]
            or bias.dtype != z.dtype
        ):
            return super().bias_activation_forward(name, z, bias, param)
        z = self._contiguous(z)
        out = self.xp.empty(z.shape, dtype=z.dtype)
        if z.size:
            self.launch_kernel(
                f"bias_activation_forward_{name}_{suffix}",
                z.size,
                (np.int64(z.size), np.int64(z.shape[1]), z, self._contiguous(bias), out),
            )
        return out

    # --- softmax cross-entropy -------------------------------------------------------------
    def _labels(self, labels: Any) -> Any:
        return self._contiguous(labels.astype(np.int64, copy=False))

    def softmax_cross_entropy_forward(
        self,
        logits: Any,
        labels: Any,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
        *,
        into: Any = None,
    ) -> Any:
        """As the twin; on the kernel path a label outside [0, classes) that is not
        `ignore_index` gives a NaN loss instead of an error (the GPU cannot raise)."""
        suffix = SUFFIX.get(logits.dtype)
        if suffix is None or logits.ndim != 2 or logits.shape[1] == 0:
            return super().softmax_cross_entropy_forward(
                logits, labels, ignore_index, label_smoothing, into=into
            )
        rows, classes = logits.shape
        logits = self._contiguous(logits)
        loss = self._output((rows,), logits.dtype, into)
        if rows:
            self.launch_kernel(
                f"softmax_cross_entropy_forward_{suffix}",
                rows,
                (np.int64(rows), np.int64(classes), logits, self._labels(labels), loss,
                 _ignored(ignore_index), float(label_smoothing)),
            )  # fmt: skip
        return loss

    def softmax_cross_entropy_backward(
        self,
        g: Any,
        logits: Any,
        labels: Any,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
        *,
        into: Any = None,
    ) -> Any:
        suffix = SUFFIX.get(logits.dtype)
        if suffix is None or logits.ndim != 2 or logits.shape[1] == 0:
            return super().softmax_cross_entropy_backward(
                g, logits, labels, ignore_index, label_smoothing, into=into
            )
        rows, classes = logits.shape
        logits = self._contiguous(logits)
        # g is per row; it may arrive as a broadcast scalar (a mean's gradient) or in another
        # float dtype, so make it the rows-long array of the logits' dtype the kernel reads.
        g = self._contiguous(self.xp.broadcast_to(g, (rows,)).astype(logits.dtype, copy=False))
        dlogits = self._output(logits.shape, logits.dtype, into)
        if rows:
            self.launch_kernel(
                f"softmax_cross_entropy_backward_{suffix}",
                rows,
                (np.int64(rows), np.int64(classes), g, logits, self._labels(labels), dlogits,
                 _ignored(ignore_index), float(label_smoothing)),
            )  # fmt: skip
        return dlogits

    # --- optimizers ------------------------------------------------------------------------
    def _flat_grad(self, param: Any, grad: Any, scratch: list[Any] | None) -> Any:
        """The gradient as one C-contiguous array lined up with `param`, or None when the
        kernels cannot take this case (the twin then runs)."""
        if SUFFIX.get(param.dtype) is None or not param.flags.c_contiguous:
            return None
        if isinstance(grad, (list, tuple)):
            if any(piece.dtype != param.dtype for piece in grad):
                return None
            if sum(piece.size for piece in grad) != param.size:
                return None  # the twin raises, naming both sizes
            # One copy (one launch) into a work buffer; a bank whose gradients were zeroed in
            # place (zero_grad(set_to_none=False)) arrives here as one flat array instead.
            flat = self._scratch(scratch, 0, param).reshape(-1)
            if grad:
                self.xp.concatenate([piece.reshape(-1) for piece in grad], out=flat)
            return flat
        if grad.dtype != param.dtype or grad.shape != param.shape:
            return None
        return self._contiguous(grad)

    @staticmethod
    def _state(array: Any, used: bool) -> Any:
        """A state buffer for the kernel: the array when the kernel touches it (it must be
        contiguous, like `param`), else None, which CuPy passes as a null pointer (the kernel
        never follows it)."""
        return array if used else None

    @staticmethod
    def _states_ok(param: Any, *arrays: Any) -> bool:
        return all(
            a is not None and a.dtype == param.dtype and a.shape == param.shape
            and a.flags.c_contiguous for a in arrays
        )  # fmt: skip

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
        uses_buffer = float(momentum) != 0
        flat = self._flat_grad(param, grad, scratch)
        if flat is None or (uses_buffer and not self._states_ok(param, momentum_buffer)):
            return super().sgd_step(
                param, grad, momentum_buffer, lr, momentum, dampening, nesterov, weight_decay,
                first, scratch,
            )  # fmt: skip
        if param.size:
            self.launch_kernel(
                f"sgd_step_{SUFFIX[param.dtype]}",
                param.size,
                (np.int64(param.size), param, flat,
                 self._state(momentum_buffer, uses_buffer), float(lr), float(momentum),
                 float(dampening), float(weight_decay), np.int32(bool(nesterov)),
                 np.int32(bool(first))),
            )  # fmt: skip

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
        flat = self._flat_grad(param, grad, scratch)
        states = (exp_avg, exp_avg_sq) + ((max_exp_avg_sq,) if amsgrad else ())
        if flat is None or not self._states_ok(param, *states):
            return super().adam_step(
                param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps,
                weight_decay, amsgrad, decoupled, scratch,
            )  # fmt: skip
        lr, beta1, beta2 = float(lr), float(beta1), float(beta2)
        step_size, correction2_sqrt = adam_bias_corrections(lr, beta1, beta2, step)
        if param.size:
            self.launch_kernel(
                f"adam_step_{SUFFIX[param.dtype]}",
                param.size,
                (np.int64(param.size), param, flat, exp_avg, exp_avg_sq,
                 self._state(max_exp_avg_sq, bool(amsgrad)), lr, beta1, beta2,
                 float(eps), float(weight_decay), np.int32(bool(decoupled)),
                 np.int32(bool(amsgrad)), step_size, correction2_sqrt),
            )  # fmt: skip

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
        uses_buffer = float(momentum) > 0
        flat = self._flat_grad(param, grad, scratch)
        states = (square_avg,) + ((grad_avg,) if centered else ())
        states += (momentum_buffer,) if uses_buffer else ()
        if flat is None or not self._states_ok(param, *states):
            return super().rmsprop_step(
                param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps,
                weight_decay, momentum, centered, scratch,
            )  # fmt: skip
        if param.size:
            self.launch_kernel(
                f"rmsprop_step_{SUFFIX[param.dtype]}",
                param.size,
                (np.int64(param.size), param, flat, square_avg,
                 self._state(grad_avg, bool(centered)),
                 self._state(momentum_buffer, uses_buffer), float(lr), float(alpha),
                 float(eps), float(weight_decay), float(momentum), np.int32(bool(centered))),
            )  # fmt: skip

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
        flat = self._flat_grad(param, grad, scratch)
        if flat is None or not self._states_ok(param, state_sum):
            return super().adagrad_step(
                param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, scratch
            )
        clr = adagrad_step_lr(lr, lr_decay, step)
        if param.size:
            self.launch_kernel(
                f"adagrad_step_{SUFFIX[param.dtype]}",
                param.size,
                (np.int64(param.size), param, flat, state_sum, clr, float(weight_decay),
                 float(eps)),
            )  # fmt: skip
