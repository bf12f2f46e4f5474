"""Training diagnostics: is every layer learning?

For each trainable parameter, per epoch:

* ``grad_norm/<name>`` — the L2 norm of its gradient, measured after backward and before the
  optimizer step, averaged over the epoch's steps. Norms that shrink layer by layer towards the
  input mean vanishing gradients; huge or growing ones mean exploding gradients.
* ``update_ratio/<name>`` — ‖Δw‖ / ‖w‖, how far one optimizer step moves the weights relative
  to their size, averaged over the epoch's steps (around 1e-3 is the usual healthy value; far
  below, the layer barely learns; far above, training is unstable).

For each ``nn.ReLU`` module, per epoch:

* ``dead_relu/<module name>`` — the fraction of its units that output zero for every sample of
  the epoch (a unit that never fires passes no gradient back, so it never learns again). A unit
  is one entry of axis 1 of the output: a feature of a linear layer, a channel of a convolution.

Everything is accumulated on the device inside the epoch and read back in one transfer at its
end, so the GPU is never made to wait inside a step. ReLU modules are watched with forward hooks
that exist only while a training epoch runs.
"""

from __future__ import annotations

from typing import Any

from .backend import get_backend
from .nn.activation import ReLU
from .tensor import _make

GRAD_NORM = "grad_norm/"
UPDATE_RATIO = "update_ratio/"
DEAD_RELU = "dead_relu/"
PREFIXES = (GRAD_NORM, UPDATE_RATIO, DEAD_RELU)


def is_diagnostic(key: str) -> bool:
    """Whether a history key holds a diagnostic (rather than a loss or a metric)."""
    return key.startswith(PREFIXES)


class EpochDiagnostics:
    """Collects one training epoch's diagnostics for a model.

    Use as a context manager around the epoch (it registers the ReLU hooks on entry and removes
    them on exit, also when the epoch fails); call `after_backward()` between backward and the
    optimizer step, `after_step()` after the step, and `read()` once at the end.
    """

    def __init__(self, model: Any, device: Any = "cpu") -> None:
        self.backend = get_backend(device)
        self.params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.relus = [
            (name or "relu", module)
            for name, module in model.named_modules()
            if isinstance(module, ReLU)
        ]
        self.steps = 0
        self._grad_sums: list[Any] = [None] * len(self.params)
        self._ratio_sums: list[Any] = [None] * len(self.params)
        self._before: list[Any] = [None] * len(self.params)
        # per ReLU: {unit shape: device bool array, True where the unit fired at least once}
        self._fired: dict[str, dict[tuple[int, ...], Any]] = {name: {} for name, _ in self.relus}
        self._handles: list[Any] = []

    # --- hooks ------------------------------------------------------------------------------
    def __enter__(self) -> EpochDiagnostics:
        for name, module in self.relus:
            self._handles.append(module.register_forward_hook(self._relu_hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove_hooks()

    def remove_hooks(self) -> None:
        """Unregister every hook this object registered (harmless to call twice)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _relu_hook(self, name: str) -> Any:
        fired = self._fired[name]

        def hook(module: Any, args: Any, output: Any) -> None:
            out = output.data
            positive = out > 0
            if out.ndim >= 2:  # a unit fired if any sample (and any position) was positive
                positive = positive.any(axis=(0, *range(2, out.ndim)))
            seen = fired.get(positive.shape)
            fired[positive.shape] = positive if seen is None else seen | positive

        return hook

    # --- per step ---------------------------------------------------------------------------
    def after_backward(self) -> None:
        """Add each gradient's norm to the epoch's sums and keep the weights before the step."""
        self.steps += 1
        for i, (_, param) in enumerate(self.params):
            grad = param.grad
            if grad is not None:  # no gradient this step counts as a zero norm
                norm = self.backend.l2_norm(grad.data)
                total = self._grad_sums[i]
                self._grad_sums[i] = norm if total is None else total + norm
            self._before[i] = param.data.copy()

    def after_step(self) -> None:
        """Add each parameter's ‖w_after − w_before‖ / ‖w_before‖ to the epoch's sums."""
        for i, (_, param) in enumerate(self.params):
            before = self._before[i]
            if before is None:
                continue
            backend = self.backend
            change = backend.l2_norm(param.data - before)
            ratio = change / backend.xp.maximum(backend.l2_norm(before), 1e-12)
            total = self._ratio_sums[i]
            self._ratio_sums[i] = ratio if total is None else total + ratio
            self._before[i] = None

    # --- per epoch --------------------------------------------------------------------------
    def read(self) -> dict[str, float]:
        """The epoch's diagnostics by history key, read from the device in one transfer."""
        xp = self.backend.xp
        steps = max(self.steps, 1)
        keys: list[str] = []
        values: list[Any] = []
        for prefix, sums in ((GRAD_NORM, self._grad_sums), (UPDATE_RATIO, self._ratio_sums)):
            for (name, _), total in zip(self.params, sums):
                keys.append(prefix + name)
                values.append(0.0 if total is None else total / steps)
        for name, _ in self.relus:
            fired = list(self._fired[name].values())
            if not fired:
                continue  # the module did not run this epoch
            units = sum(a.size for a in fired)  # shapes are host metadata: no sync
            keys.append(DEAD_RELU + name)
            values.append(sum((~a).sum() for a in fired) / units)
        if not keys:
            return {}
        stacked = xp.stack([xp.asarray(v, dtype=xp.float64) for v in values])
        host = _make(stacked, self.backend, None).tolist()  # the one host read
        return dict(zip(keys, host))
