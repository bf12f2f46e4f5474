"""Judging a device array against the NumPy twin's: relative error in eps over a floor,
unwritten (NaN-poisoned) elements, the tolerances, and one row per kernel."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .core import LaunchWatch, Row, verdict

# --- tolerances ------------------------------------------------------------------------------
# In units of the dtype's machine epsilon, on the relative error of `compare`. The kernels and
# the NumPy twins evaluate the same formulas, but not bit for bit: NVRTC contracts a*b+c into
# fused multiply-adds, CuPy compiles with -ftz=true (float32 subnormals flush to zero), CUDA's
# libm (expf, tanhf, erff, log1pf) is accurate to 1-2 ulp but is not glibc's, and the twin rounds
# after every NumPy operation (its erf: special_math.py, within 1 ulp). Each costs an ulp or two per
# operation. Activations with a transcendental function chain up to ~10 operations, and the
# softmax cross-entropy also sums up to 1000 exponentials in another order: 64 eps. relu and
# leaky_relu are exact, and the optimizers use only +, *, / and sqrt (correctly rounded on the
# GPU too), so they differ by contraction and order alone, a few ulps over a few steps: 16 eps.
# A real bug (a wrong constant, a dropped term, eps inside the sqrt) is off by 1e-3 or more,
# thousands of eps in float32.
TRANSCENDENTAL_EPS = 64
PLAIN_EPS = 16
# The float16 activation kernels compute in float32 and round once, so they are compared with
# the float32 twin on the same (float16-valued) inputs, rounded to float16: the device's float32
# math differs from the twin's by a few float32 ulps, which can move a result across one float16
# rounding boundary (1 float16 eps relative); 2 allows that and nothing a real bug would give.
HALF_EPS = 2
EXACT_ACTIVATIONS = frozenset({"relu", "leaky_relu"})


@dataclass
class Diff:
    """How an array from the device differs from the twin's."""

    max_rel: float  # max |got − ref| / max(|ref|, floor), where both are finite
    unwritten: int  # elements not finite where the twin's are (NaN left from the fill)
    nonfinite_mismatch: int  # elements where the twin is inf/NaN and the device is not the same


# The denominator of the relative error has a floor: where a formula subtracts terms of similar
# size (1 + erf(x) for x << 0, 1 − tanh², p − 1 in the loss gradient), its result is accurate to
# eps *relative to the terms*, not to the small result. The floors, by check:
# - activations: |g|·(1 + |x|) (g = 1 forward), the size of the terms the formulas combine;
# - softmax cross-entropy forward: 1 (logits are O(1); a confident row's loss is ~0);
# - its backward: |g| of the row (entries are (p − target)·g with p and target in [0, 1]);
# - optimizer parameters and states: the array's root mean square (gradients span 1e-4..10, so
#   some elements are far below the array's typical size).
def compare(got: np.ndarray, ref: np.ndarray, floor: Any) -> Diff:
    """Compare `got` with the reference `ref` elementwise (floor: scalar or broadcastable)."""
    got = np.asarray(got, dtype=np.float64)  # float64: |got − ref| must not overflow
    ref = np.asarray(ref, dtype=np.float64)
    finite = np.isfinite(ref)
    got_finite = np.isfinite(got)
    same_special = (got == ref) | (np.isnan(got) & np.isnan(ref))
    both = finite & got_finite
    # A floor built from an inf or NaN input (|g|·(1+|x|) at x = ±inf, NaN) means nothing: use
    # 1 there, so two finite results from such an input must still agree.
    floor = np.asarray(floor, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        floor = np.where(np.isfinite(floor), floor, 1.0)
    denom = np.maximum(np.maximum(np.abs(ref), floor), np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore"):  # NaN/inf elements are counted apart, below
        rel = np.abs(got - ref) / denom
    return Diff(
        max_rel=float(rel[both].max()) if both.any() else 0.0,
        unwritten=int(np.count_nonzero(finite & ~got_finite)),
        nonfinite_mismatch=int(np.count_nonzero(~finite & ~same_special)),
    )


def rms(array: np.ndarray) -> float:
    """Root mean square of the finite values (the optimizer arrays' floor)."""
    values = np.asarray(array, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values * values))) if values.size else 0.0


def tolerance_eps(stem: str, activation: str | None = None) -> int:
    """The tolerance of a kernel family in eps (see the comment on TRANSCENDENTAL_EPS)."""
    if stem.startswith(("activation_", "bias_activation_")):
        return PLAIN_EPS if activation in EXACT_ACTIVATIONS else TRANSCENDENTAL_EPS
    if stem.startswith("softmax_cross_entropy"):
        return TRANSCENDENTAL_EPS
    return PLAIN_EPS


@dataclass
class KernelCheck:
    """The worst case over the cases of one kernel (e.g. `activation_forward_gelu_f32`)."""

    kernel: str
    dtype: np.dtype
    tol_eps: int
    in_place: bool = False  # optimizers update arrays in place; the others fill `into=`
    cases: list[dict[str, Any]] = field(default_factory=list)

    def add(self, case: str, diff: Diff, watch: LaunchWatch, what: str = "") -> None:
        self.cases.append(
            {
                "case": case,
                "array": what,
                "launches": watch.delta,
                **asdict(diff),
                "eps": diff.max_rel / float(np.finfo(self.dtype).eps),
            }
        )

    def row(self, section: str) -> Row:
        eps = float(np.finfo(self.dtype).eps)
        worst = max(self.cases, key=lambda c: c["max_rel"])
        bad = sum(c["unwritten"] + c["nonfinite_mismatch"] for c in self.cases)
        # One launch count per case (a case compares several arrays of one run).
        launches = list({c["case"]: c["launches"] for c in self.cases}.values())
        launched = None if None in launches else all(n >= 1 for n in launches)
        ok = worst["max_rel"] <= self.tol_eps * eps and bad == 0 and launched is not False
        where = " ".join(s for s in (worst["case"], worst["array"]) if s)
        written = "all finite" if self.in_place else "all written"
        if launched is None:
            launch_text = "launches n/a (cpu)"
        else:
            launch_text = f"{sum(launches)} launches in {len(launches)} cases"
        result = (
            f"{worst['eps']:.1f} eps (rel {worst['max_rel']:.2e}"
            + (f", worst: {where}" if where else "")
            + f"); {written if bad == 0 else f'{bad} elements NaN/inf where the twin is not'}"
            + f"; {launch_text}"
        )
        bar = f"<= {self.tol_eps} eps, {written}, fused kernel launched"
        return Row(
            section,
            self.kernel,
            result,
            bar,
            verdict(ok),
            {"tol_eps": self.tol_eps, "dtype": str(self.dtype), "cases": self.cases},
        )
