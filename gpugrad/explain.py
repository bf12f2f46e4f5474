"""See the chain rule at work: `gg.explain(output)` walks the graph the way backward does.

Backward visits the ops from the output down to the leaves. At each op the gradient that
arrives from above (the *upstream* gradient, ∂out/∂(this op's result)) is multiplied by the
op's *local* derivative and passed on to the op's inputs; gradients that reach the same
tensor along several paths add up. `explain` runs exactly that, with each op's own backward
formula, and records every step:

    import gpugrad as gg
    a = gg.tensor(2.0, dtype="float64", requires_grad=True)
    b = gg.tensor(3.0, dtype="float64", requires_grad=True)
    c = gg.tensor(1.0, dtype="float64", requires_grad=True)
    y = (a * b + c) ** 2
    print(gg.explain(y, names={a: "a", b: "b", c: "c", y: "y"}))

On small graphs (no tensor over 4 elements) it shows the numbers; on larger ones a summary
per gradient (L2 norm, min, max, fraction of zeros). `depth` limits how many ops are shown.

The *nudge* view checks the result the way the definition of a derivative reads, "how much
the output moves when I nudge x": pass `nudge=(fn, [x])`, where `fn()` recomputes the output
from the current values of the leaves (for example `lambda: (a * b + c) ** 2`); each element
of x is moved by ±h and (f(x+h) − f(x−h)) / 2h is shown beside the analytic gradient.

`explain` reads the graph and leaves it as it was: nothing is freed, no `.grad` changes, and
a backward() afterwards works as usual. Tensor hooks and module backward hooks are not run
(it shows the plain chain rule). A graph already freed by backward() raises GraphError.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

import numpy as np

from . import _args
from .autograd import _check_versions, _epoch, _seed, fit_gradients, leaf_hooks, no_grad
from .errors import ArgumentTypeError, GraphError, ShapeError
from .tensor import Tensor
from .viz import _name_table

__all__ = ["RULES", "Explanation", "explain"]

SMALL = 4  # a graph whose tensors all have at most this many elements shows its numbers
NUDGED_ELEMENTS = 8  # elements nudged per leaf (all of a smaller leaf; else the largest grads)

# --- local derivative rules ------------------------------------------------------------------
# op name -> (the names of its inputs in the rule, the rule). Every op in gpugrad.ops, the
# activations, losses and layers has one; others get a generic line.
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    # arithmetic
    "Add": (("a", "b"), "∂(a+b)/∂a = 1, ∂(a+b)/∂b = 1"),
    "Sub": (("a", "b"), "∂(a−b)/∂a = 1, ∂(a−b)/∂b = −1"),
    "Mul": (("a", "b"), "∂(a·b)/∂a = b, ∂(a·b)/∂b = a"),
    "Div": (("a", "b"), "∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = −a/b²"),
    "Pow": (("a", "b"), "∂(aᵇ)/∂a = b·aᵇ⁻¹, ∂(aᵇ)/∂b = aᵇ·ln a"),
    "Maximum": (("a", "b"), "∂max(a,b)/∂a = 1 where a > b (½ on ties), ∂max(a,b)/∂b = the rest"),
    "Minimum": (("a", "b"), "∂min(a,b)/∂a = 1 where a < b (½ on ties), ∂min(a,b)/∂b = the rest"),
    "AddScalar": (("x",), "∂(x+c)/∂x = 1"),
    "RSubScalar": (("x",), "∂(c−x)/∂x = −1"),
    "MulScalar": (("x",), "∂(c·x)/∂x = c"),
    "DivScalar": (("x",), "∂(x/c)/∂x = 1/c"),
    "RDivScalar": (("x",), "∂(c/x)/∂x = −c/x²"),
    "PowScalar": (("x",), "∂(xᵖ)/∂x = p·xᵖ⁻¹"),
    "RPowScalar": (("x",), "∂(cˣ)/∂x = cˣ·ln c"),
    "Neg": (("x",), "∂(−x)/∂x = −1"),
    # elementwise math
    "Exp": (("x",), "∂eˣ/∂x = eˣ"),
    "Log": (("x",), "∂ln x/∂x = 1/x"),
    "Log1p": (("x",), "∂ln(1+x)/∂x = 1/(1+x)"),
    "Expm1": (("x",), "∂(eˣ−1)/∂x = eˣ"),
    "Sqrt": (("x",), "∂√x/∂x = 1/(2√x)"),
    "Sin": (("x",), "∂sin x/∂x = cos x"),
    "Cos": (("x",), "∂cos x/∂x = −sin x"),
    "Abs": (("x",), "∂|x|/∂x = sign(x)"),
    "Clip": (
        ("x", "low", "high"),
        "∂clip(x)/∂x = 1 inside [low, high], 0 outside; a Tensor bound: 1 where it is the result",
    ),
    "Erf": (("x",), "∂erf x/∂x = (2/√π)·e^(−x²)"),
    "Where": (("a", "b"), "∂where(c,a,b)/∂a = 1 where c holds, ∂where(c,a,b)/∂b = 1 elsewhere"),
    # activations
    "Relu": (("x",), "∂relu(x)/∂x = 1 where x > 0, else 0"),
    "LeakyRelu": (("x",), "∂leaky_relu(x)/∂x = 1 where x > 0, else the slope"),
    "Elu": (("x",), "∂elu(x)/∂x = 1 where x > 0, else α·eˣ"),
    "Gelu": (("x",), "∂(x·Φ(x))/∂x = Φ(x) + x·φ(x)"),
    "GeluTanh": (("x",), "∂gelu(x)/∂x with Φ approximated by ½(1 + tanh(√(2/π)(x + 0.044715x³)))"),
    "Silu": (("x",), "∂(x·σ(x))/∂x = σ(x)·(1 + x·(1 − σ(x)))"),
    "Sigmoid": (("x",), "∂σ(x)/∂x = σ(x)·(1 − σ(x))"),
    "Tanh": (("x",), "∂tanh x/∂x = 1 − tanh²x"),
    "Softplus": (("x",), "∂ln(1+eˣ)/∂x = σ(x)"),
    "Softmax": (("x",), "∂sᵢ/∂xⱼ = sᵢ·(δᵢⱼ − sⱼ), so g ↦ s·(g − Σ g·s)"),
    "LogSoftmax": (("x",), "∂log sᵢ/∂xⱼ = δᵢⱼ − sⱼ, so g ↦ g − s·Σg"),
    # reductions
    "Sum": (("x",), "∂Σx/∂xᵢ = 1 (g is copied to every summed element)"),
    "Mean": (("x",), "∂mean(x)/∂xᵢ = 1/N"),
    "Var": (("x",), "∂var(x)/∂xᵢ = 2(xᵢ − mean)/(N − ddof)"),
    "Std": (("x",), "∂std(x)/∂xᵢ = (xᵢ − mean)/((N − ddof)·std)"),
    "Max": (("x",), "∂max(x)/∂xᵢ = 1 at the largest element (shared on ties), 0 elsewhere"),
    "Min": (("x",), "∂min(x)/∂xᵢ = 1 at the smallest element (shared on ties), 0 elsewhere"),
    "Prod": (("x",), "∂Πx/∂xᵢ = the product of the other elements"),
    "LogSumExp": (("x",), "∂ln Σeˣ/∂xᵢ = softmax(x)ᵢ"),
    "CumSum": (("x",), "∂(Σ_{k≤j} xₖ)/∂xᵢ = 1 for j ≥ i (g summed from the far end)"),
    # linear algebra and layers
    "MatMul": (("A", "B"), "∂(A@B)/∂A = g@Bᵀ, ∂(A@B)/∂B = Aᵀ@g"),
    "_Linear": (("x", "W", "b"), "y = x@Wᵀ + b: ∂/∂x = g@W, ∂/∂W = gᵀ@x, ∂/∂b = Σ g over rows"),
    "LinearActivation": (
        ("x", "W", "b"),
        "y = f(z), z = x@Wᵀ + b (f: relu, sigmoid or tanh, read from y): gz = g·f'(z); "
        "∂/∂x = gz@W, ∂/∂W = gzᵀ@x, ∂/∂b = Σ gz over rows",
    ),
    "_Embedding": (("W",), "rows of W picked by index: ∂/∂W adds each row of g into its row"),
    "_LayerNorm": (
        ("x", "w", "b"),
        "y = x̂·w + b, x̂ = (x − mean)·r: ∂/∂x = r·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)) for ĝ = g·w, "
        "∂/∂w = Σ g·x̂, ∂/∂b = Σ g over rows",
    ),
    "_Attention": (
        ("q", "k", "v", "mask"),
        "y = p@v, p = softmax(q@kᵀ·scale + mask): ∂/∂v = pᵀ@g, ds = p·(g@vᵀ − Σ g·y), "
        "∂/∂q = ds@k·scale, ∂/∂k = dsᵀ@q·scale, ∂/∂mask = ds",
    ),
    "_Conv": (
        ("x", "w", "b"),
        "∂/∂x = g convolved back with w (col2im), ∂/∂w = windows of x times g, ∂/∂b = Σg",
    ),
    "Im2Col": (("x",), "windows of x: ∂/∂x adds each window's g back where it came from"),
    "Col2Im": (("cols",), "windows added into place: ∂/∂cols = the windows of g"),
    "MaxPool": (("x",), "∂max(window)/∂xᵢ = 1 at each window's maximum, 0 elsewhere"),
    "AvgPool": (("x",), "∂mean(window)/∂xᵢ = 1/(window size) for each window xᵢ is in"),
    "TiledMaxPool": (("x",), "windows that tile x: ∂max/∂xᵢ = 1 at each window's first maximum"),
    "TiledAvgPool": (("x",), "windows that tile x: ∂mean/∂xᵢ = 1/(window size)"),
    # shape and indexing: gradients only move back to where the numbers came from
    "Reshape": (("x",), "∂reshape(x)/∂x = 1: g is reshaped back"),
    "Transpose": (("x",), "∂transpose(x)/∂x = 1: g is transposed back"),
    "BroadcastTo": (("x",), "∂broadcast(x)/∂x = 1: g is summed over the broadcast axes"),
    "Concatenate": ((), "∂concat(x₀, x₁, …)/∂xₖ = 1: g is cut back into the pieces"),
    "Stack": ((), "∂stack(x₀, x₁, …)/∂xₖ = 1: g is unstacked"),
    "Pad": (("x",), "∂pad(x)/∂x = 1: the middle of g (the padding gets nothing)"),
    "Flip": (("x",), "∂flip(x)/∂x = 1: g is flipped back"),
    "GetItem": (("x",), "∂x[i]/∂x = 1 at the picked places, 0 elsewhere (g scattered back)"),
    "IndexScatter": (("v",), "∂scatter(v)/∂v = 1: g read at the written places"),
    "SetItem": (("x", "value"), "∂/∂x = 1 where not overwritten, ∂/∂value = 1 where written"),
    # conversions
    "Cast": (("x",), "∂x/∂x = 1: g is cast back to x's dtype"),
    "Copy": (("x",), "∂x/∂x = 1"),
    "ToDevice": (("x",), "∂x/∂x = 1: g is moved back to x's device"),
    # losses
    "SoftmaxCrossEntropy": (
        ("z",),
        "∂(−ln softmax(z)[y])/∂z = softmax(z) − onehot(y) (÷ rows, for a mean)",
    ),
    "BinaryCrossEntropy": (("p", "y"), "∂BCE/∂p = (p − y)/(p(1 − p)), ∂BCE/∂y = ln(1−p) − ln p"),
    # ops added for PyTorch ports
    "Erfc": (("x",), "∂erfc x/∂x = −(2/√π)·e^(−x²)"),
    "Log2": (("x",), "∂log₂x/∂x = 1/(x·ln 2)"),
    "Log10": (("x",), "∂log₁₀x/∂x = 1/(x·ln 10)"),
    "Square": (("x",), "∂x²/∂x = 2x"),
    "Rsqrt": (("x",), "∂(1/√x)/∂x = −1/(2x^(3/2))"),
    "Reciprocal": (("x",), "∂(1/x)/∂x = −1/x²"),
    "_Flat": (("x",), "∂/∂x = 0 (a piecewise-constant op)"),
    "Floor": (("x",), "∂floor(x)/∂x = 0 (flat between the jumps)"),
    "Ceil": (("x",), "∂ceil(x)/∂x = 0 (flat between the jumps)"),
    "Round": (("x",), "∂round(x)/∂x = 0 (flat between the jumps)"),
    "Trunc": (("x",), "∂trunc(x)/∂x = 0 (flat between the jumps)"),
    "Sign": (("x",), "∂sign(x)/∂x = 0 (flat on each side of 0)"),
    "CumProd": (("x",), "∂(Π_{k≤j} xₖ)/∂xᵢ = the product of the others, for j ≥ i"),
    "Tril": (("x",), "∂tril(x)/∂x = 1 in the lower triangle: g's lower triangle"),
    "Triu": (("x",), "∂triu(x)/∂x = 1 in the upper triangle: g's upper triangle"),
    "Roll": (("x",), "∂roll(x)/∂x = 1: g is rolled back"),
    "Einsum": ((), "∂einsum(…)/∂xₖ = the einsum of g with the other operands, to xₖ's letters"),
    "VectorNorm": (("x",), "∂‖x‖ₚ/∂xᵢ = sign(xᵢ)·|xᵢ|ᵖ⁻¹/‖x‖ₚᵖ⁻¹ (0 at a zero vector)"),
    # module hook markers: identities
    "_HookInput": (("x",), "∂x/∂x = 1 (marks a module's input for its backward hooks)"),
    "_HookOutput": (("x",), "∂x/∂x = 1 (marks a module's output for its backward hooks)"),
}

# Ops whose Jacobian is diagonal: the local derivative is a number per element, shown as the
# factor that multiplies the upstream gradient (where the shapes match, no broadcasting).
ELEMENTWISE = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Pow", "Maximum", "Minimum", "AddScalar", "RSubScalar",
        "MulScalar", "DivScalar", "RDivScalar", "PowScalar", "RPowScalar", "Neg", "Exp", "Log",
        "Log1p", "Expm1", "Sqrt", "Sin", "Cos", "Abs", "Clip", "Erf", "Where", "Relu",
        "LeakyRelu", "Elu", "Gelu", "GeluTanh", "Silu", "Sigmoid", "Tanh", "Softplus", "Cast",
        "Copy", "BinaryCrossEntropy", "_HookInput", "_HookOutput",
        "Erfc", "Log2", "Log10", "Square", "Rsqrt", "Reciprocal", "Floor", "Ceil", "Round",
        "Trunc", "Sign",
    }
)  # fmt: skip
_IDENTITIES = frozenset({"_HookInput", "_HookOutput"})  # their backward would fire user hooks


def rule_for(op: str) -> str:
    """The local derivative rule of an op, in plain notation (a generic line if unknown)."""
    entry = RULES.get(op)
    if entry is None:
        return f"∂{op}/∂input: no rule on file; the numbers come from {op}.backward"
    return entry[1]


def _params(node: Any) -> str:
    """The constants a rule refers to (p of x**p, c of c·x, the reduced axes), as text."""
    parts = []
    d = node.__dict__
    for key, label in (("p", "p"), ("c", "c"), ("axes", "axes"), ("axis", "axis")):
        if key in d and d[key] is not None and not hasattr(d[key], "shape"):
            value = d[key]
            parts.append(f"{label}={_fmt(value) if isinstance(value, float) else value}")
    if d.get("ddof"):
        parts.append(f"ddof={d['ddof']}")
    return ", ".join(parts)


# --- numbers ---------------------------------------------------------------------------------
def _host(array: Any, backend: Any) -> np.ndarray:
    """A float64 NumPy copy of a gradient (arrays of either backend, or NumPy scalars)."""
    if backend is not None and backend.is_array(array):
        array = backend.to_numpy(array)
    return np.array(array, dtype=np.float64)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"  # also -0.0
    return f"{v:.6g}"


def _fmt_values(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_values(x) for x in v) + "]"
    return _fmt(v)


def _summary(a: np.ndarray) -> dict[str, Any]:
    """L2 norm, min, max and the fraction of zeros of a gradient."""
    if a.size == 0:
        return {"shape": a.shape, "norm": 0.0, "min": 0.0, "max": 0.0, "zeros": 0.0}
    return {
        "shape": a.shape,
        "norm": float(np.sqrt((a * a).sum())),
        "min": float(a.min()),
        "max": float(a.max()),
        "zeros": float((a == 0).mean()),
    }


def _fmt_summary(s: dict[str, Any]) -> str:
    return f"norm {s['norm']:.4g}, min {s['min']:.4g}, max {s['max']:.4g}, zeros {s['zeros']:.0%}"


def _shape_text(shape: Any) -> str:
    return "?" if shape is None else str(tuple(shape))


# --- the result --------------------------------------------------------------------------------
class Explanation:
    """What `gg.explain` found: the ops in the order backward visits them.

    `nodes` is a list of plain dicts, one per op shown (backward order: the output's op
    first), with keys `index` (1-based), `op`, `name` (the name given to its result, if
    any), `label`, `rule`, `params`, `input_shapes`, `output_shape`, `input_names` (who each
    input is: a leaf's name or another op's label; None for a constant), `input_args`
    ((the input's letter in the rule, its input_names entry) pairs), `upstream` (the
    gradient arriving at the op's result), `local` (per input: the elementwise local
    derivative, or None where it is not a number per element) and `grads` (per input: the
    gradient passed on, None where none is). Gradients are numbers / nested lists when
    `values` is True, else summaries (dicts with shape, norm, min, max, zeros). `gradients`
    lists the total gradient of each leaf (or of each tensor in `inputs`) with the number of
    `paths` that delivered it, `nudges` the finite-difference checks, `notes` anything
    a reader should know. `to_dict()` gives all of it; `str()` a readable tree.
    """

    def __init__(self, **fields: Any) -> None:
        self.output: dict[str, Any] = fields["output"]
        self.nodes: list[dict[str, Any]] = fields["nodes"]
        self.total_nodes: int = fields["total_nodes"]
        self.depth: int | None = fields["depth"]
        self.values: bool = fields["values"]
        self.gradients: list[dict[str, Any]] = fields["gradients"]
        self.nudges: list[dict[str, Any]] = fields["nudges"]
        self.notes: list[str] = fields["notes"]

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain Python data (dicts, lists, numbers, strings, tuples)."""
        return {
            "output": dict(self.output),
            "values": self.values,
            "total_nodes": self.total_nodes,
            "depth": self.depth,
            "nodes": [dict(n) for n in self.nodes],
            "gradients": [dict(g) for g in self.gradients],
            "nudges": [dict(n) for n in self.nudges],
            "notes": list(self.notes),
        }

    def _grad_text(self, v: Any) -> str:
        if v is None:
            return "none"
        if isinstance(v, dict):
            return _fmt_summary(v)
        return _fmt_values(v)

    def __str__(self) -> str:
        out = self.output
        count = self.total_nodes
        value = f" = {_fmt_values(out['value'])}" if out.get("value") is not None else ""
        lines = [
            f"{out['name']}{value}: shape {_shape_text(out['shape'])} {out['dtype']}; "
            f"backward visits {count} op{'' if count == 1 else 's'}, output first",
            "each op: upstream gradient × local derivative = gradient passed to each input",
        ]
        for n in self.nodes:
            shapes = ", ".join(_shape_text(s) for s in n["input_shapes"])
            params = f"  ({n['params']})" if n["params"] else ""
            lines.append(f"{n['label']}{params}  {shapes} → {_shape_text(n['output_shape'])}")
            lines.append(f"    rule      {n['rule']}")
            lines.append(f"    upstream  {self._grad_text(n['upstream'])}")
            width = max((len(f"{a} → {t}") for a, t in n["input_args"] if t), default=0)
            for (arg, to), local, g in zip(n["input_args"], n["local"], n["grads"]):
                if to is None:
                    continue
                head = f"{arg} → {to}".ljust(width)
                if g is None:
                    lines.append(f"    {head}  no gradient")
                elif local is not None and self.values:
                    factor = _fmt_values(local)
                    lines.append(
                        f"    {head}  {self._grad_text(n['upstream'])} × {factor} = "
                        f"{self._grad_text(g)}"
                    )
                else:
                    lines.append(f"    {head}  {self._grad_text(g)}")
        hidden = count - len(self.nodes)
        if hidden > 0:
            lines.append(f"… {hidden} more op{'' if hidden == 1 else 's'} (depth={self.depth})")
        if self.gradients:
            lines.append(f"gradients of {out['name']} (what backward() adds into .grad):")
            width = max(len(g["name"]) for g in self.gradients)
            for g in self.gradients:
                paths = f"  (sum of {g['paths']} paths)" if g.get("paths", 0) > 1 else ""
                lines.append(
                    f"    ∂{out['name']}/∂{g['name'].ljust(width)}  {self._grad_text(g['grad'])}"
                    + paths
                )
        if self.nudges:
            lines.append("nudge: (f(x+h) − f(x−h)) / 2h beside the analytic gradient")
            for d in self.nudges:
                where = d["leaf"] + ("" if not d["index"] else str(list(d["index"])))
                lines.append(
                    f"    {where}: analytic {_fmt(d['analytic'])}, nudged {_fmt(d['numeric'])} "
                    f"(h={d['h']:.0e}, {'agree' if d['agree'] else 'DIFFER'})"
                )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()


# --- the walk ----------------------------------------------------------------------------------
class _Recorder:
    """Keeps, per gradient, a host copy (small graphs, or values=True) and a summary."""

    def __init__(self, values: bool | None) -> None:
        self.values = values
        self.all_small = True
        self.hooked = False  # a node had tensor hooks (which explain does not run)
        self.module_hooks = False  # the graph passes through module backward-hook markers

    def take(self, g: Any, backend: Any) -> Any:
        if g is None:
            return None
        a = _host(g, backend)
        if a.size > SMALL:
            self.all_small = False
        if self.values is False:
            return {"summary": _summary(a)}
        if self.values is None and not self.all_small:
            return {"summary": _summary(a)}  # the graph is large: summaries will be shown
        return {"summary": _summary(a), "array": a}


def _finish(entry: Any, values: bool) -> Any:
    if entry is None:
        return None
    if values:
        return entry["array"].tolist()
    return entry["summary"]


def _walk(
    root: Tensor,
    seed: Any,
    depth: int | None,
    recorder: _Recorder,
    leaf_name: Callable[[Tensor], str],
    op_names: Mapping[Any, str],
    wanted_nodes: set[Any],
) -> tuple[list[dict[str, Any]], int, dict[Tensor, Any], dict[Any, Any], dict[Any, int]]:
    """Run backward as the engine does, without hooks, freeing or depositing; record steps."""
    grads: dict[Any, Any] = {}
    leaf_grads: dict[Tensor, Any] = {}
    node_totals: dict[Any, Any] = {}
    paths: dict[Any, int] = {}  # how many gradients reached each leaf / node
    heap: list[tuple[int, Any]] = []
    fn = root.grad_fn
    if fn is None:
        leaf_grads[root] = seed
    else:
        grads[fn] = seed
        heap.append((-fn.seq, fn))
    order: dict[Any, int] = {}
    raw: list[tuple[Any, Any, list[Any], list[Any], list[Any]]] = []
    visited = 0
    with no_grad():
        while heap:
            node = heapq.heappop(heap)[1]
            g = grads.pop(node)
            visited += 1
            order[node] = visited
            if node in wanted_nodes:
                node_totals[node] = g
            if node.tensor_hooks:
                recorder.hooked = True
            edges = node.edges
            if edges is None:
                raise GraphError(
                    f"cannot explain the graph: it was freed by a backward() (at {node.name}); "
                    "pass retain_graph=True to backward() to keep it, or call explain() first"
                )
            if node.epoch >= 0 and node.epoch != _epoch[0]:
                _check_versions(node)
            xp = node.xp
            if node.name in _IDENTITIES:
                recorder.module_hooks = True
                gs: Any = (g,)
            else:
                gs = node.backward(xp, g, *node.saved)
                if len(edges) == 1:
                    gs = (gs,)
                gs = fit_gradients(node, gs)  # in each input's shape, as backward passes them
            show = depth is None or visited <= depth
            if show:
                locals_: list[Any] = [None] * len(edges)
                if node.name in ELEMENTWISE and (recorder.values or recorder.all_small):
                    g_shape = getattr(g, "shape", ())
                    if all(gx is None or getattr(gx, "shape", ()) == g_shape for gx in gs):
                        if node.name in _IDENTITIES:
                            ones: Any = (xp.xp.ones_like(g),)
                        else:
                            ones = node.backward(xp, xp.xp.ones_like(g), *node.saved)
                            if len(edges) == 1:
                                ones = (ones,)
                        locals_ = [
                            None if (o is None or e is None) else recorder.take(o, xp)
                            for o, e in zip(ones, edges)
                        ]
                raw.append(
                    (
                        node,
                        recorder.take(g, xp),
                        [recorder.take(gx, xp) if e is not None else None
                         for gx, e in zip(gs, edges)],
                        locals_,
                        [getattr(gx, "shape", None) if gx is not None else None for gx in gs],
                    )
                )  # fmt: skip
            else:
                recorder.take(g, xp)  # still decides whether the graph counts as small
            for edge, gx in zip(edges, gs):
                if gx is None or edge is None:
                    continue
                if isinstance(edge, Tensor):
                    leaf_name(edge)  # numbered in the order backward reaches them
                    prev = leaf_grads.get(edge)
                    leaf_grads[edge] = gx if prev is None else prev + gx
                    paths[edge] = paths.get(edge, 0) + 1
                    continue
                paths[edge] = paths.get(edge, 0) + 1
                if edge in grads:
                    grads[edge] = grads[edge] + gx
                else:
                    grads[edge] = gx
                    heapq.heappush(heap, (-edge.seq, edge))

    values = recorder.values if recorder.values is not None else recorder.all_small
    nodes = []
    for node, up, passed, locals_, gshapes in raw:
        k = order[node]
        name = op_names.get(node)
        label = f"[{k}] {name} = {node.name}" if name else f"[{k}] {node.name}"
        args = RULES.get(node.name, ((), ""))[0]
        input_args: list[tuple[str, str | None]] = []
        input_shapes: list[Any] = []
        kept = node.inputs
        for i, edge in enumerate(node.edges):
            arg = args[i] if i < len(args) else f"x{i}"
            if edge is None:
                to = None
            elif isinstance(edge, Tensor):
                to = leaf_name(edge)
            else:
                to = op_names.get(edge) or f"[{order.get(edge, '?')}] {edge.name}"
            input_args.append((arg, to))
            shape = gshapes[i]
            if edge is None:  # a gradient the engine did not sum down: the input's own shape
                noted = getattr(node, "shapes", None)  # Add and Sub, where shapes differ
                if noted is not None:
                    shape = noted[i]
                elif kept is not None and i < len(kept):
                    shape = getattr(kept[i], "shape", shape)
            if shape is None and kept is not None and i < len(kept):
                shape = getattr(kept[i], "shape", None)
            if shape is None and isinstance(edge, Tensor):
                shape = edge.shape
            input_shapes.append(tuple(shape) if shape is not None else None)
        nodes.append(
            {
                "index": k,
                "op": node.name,
                "name": name,
                "label": label,
                "rule": rule_for(node.name),
                "params": _params(node),
                "input_shapes": input_shapes,
                "output_shape": tuple(up["summary"]["shape"]),
                "input_names": [to for _, to in input_args],
                "input_args": input_args,
                "upstream": _finish(up, values),
                "local": [_finish(e, values) if values else None for e in locals_],
                "grads": [_finish(e, values) for e in passed],
            }
        )
    return nodes, visited, leaf_grads, node_totals, paths


# --- nudging ------------------------------------------------------------------------------------
def _nudge_value(fn: Callable[[], Any], weight: np.ndarray | None) -> float:
    """f = fn() as a float: its value, or Σ weight·f when a gradient was given."""
    with no_grad():
        out = fn()
    if isinstance(out, Tensor):
        a = _host(out.data, out._backend)
    else:
        a = np.array(out, dtype=np.float64)
    if weight is None:
        if a.size != 1:
            raise ShapeError(
                f"the nudge function returned shape {a.shape}; it must recompute the output "
                "(one element, or the output's shape when a gradient is given)"
            )
        return float(a.reshape(()))
    if a.shape != weight.shape:
        raise ShapeError(
            f"the nudge function returned shape {a.shape}, the output has shape {weight.shape}"
        )
    return float((a * weight).sum())


def _nudge(
    fn: Callable[[], Any],
    leaves: Sequence[Tensor],
    analytic: Mapping[Tensor, Any],
    weight: np.ndarray | None,
    eps: float,
    name_of: Callable[[Tensor], str],
) -> list[dict[str, Any]]:
    results = []
    for leaf in leaves:
        data = leaf.data
        xp = leaf._backend.xp
        dtype = np.dtype(str(data.dtype))
        h = eps if dtype == np.float64 else max(eps, float(np.finfo(dtype).eps) ** (1 / 3))
        grad = analytic.get(leaf)
        grad = np.zeros(leaf.shape) if grad is None else _host(grad, leaf._backend)
        grad = np.broadcast_to(grad, leaf.shape)
        if data.size <= NUDGED_ELEMENTS:
            flat = list(range(data.size))
        else:
            flat = sorted(np.argsort(-np.abs(grad).reshape(-1), kind="stable")[:NUDGED_ELEMENTS])
        host = _host(data, leaf._backend)
        rtol, atol = (1e-5, 1e-7) if dtype == np.float64 else (2e-2, 2e-3)
        for i in flat:
            index = tuple(int(k) for k in np.unravel_index(int(i), leaf.shape))
            x0 = data[index].copy()
            up = xp.asarray(host[index] + h, dtype=data.dtype)
            down = xp.asarray(host[index] - h, dtype=data.dtype)
            try:
                data[index] = up
                f_up = _nudge_value(fn, weight)
                data[index] = down
                f_down = _nudge_value(fn, weight)
            finally:
                data[index] = x0  # exactly as it was
            step = float(
                np.float64(_host(up, leaf._backend)) - np.float64(_host(down, leaf._backend))
            )
            numeric = (f_up - f_down) / step
            a = float(grad[index])
            results.append(
                {
                    "leaf": name_of(leaf),
                    "index": index,
                    "analytic": a,
                    "numeric": numeric,
                    "h": h,
                    "difference": numeric - a,
                    "agree": bool(abs(numeric - a) <= atol + rtol * max(abs(a), abs(numeric))),
                }
            )
    return results


# --- the entry point ---------------------------------------------------------------------------
def explain(
    output: Tensor,
    inputs: Tensor | Sequence[Tensor] | None = None,
    depth: int | None = None,
    nudge: Any = None,
    eps: float = 1e-6,
    file: TextIO | None = None,
    *,
    gradient: Any = None,
    names: Mapping[Any, str] | None = None,
    values: bool | None = None,
) -> Explanation:
    """Show backpropagation through the graph of `output`, op by op (also `output.explain()`).

    Walks the graph in the order backward visits it (the output's op first) and records, per
    op: its input and output shapes, its local derivative rule, the upstream gradient
    arriving at its result and the gradient passed to each input (for elementwise ops also
    the local factor: upstream × local = passed on). Numbers come from the ops' own backward
    formulas, accumulated across paths as backward() does; the graph is left intact and no
    `.grad` is changed.

    - `output`: a one-element tensor, or any tensor with `gradient=` (as for backward()).
    - `inputs`: tensors whose total gradient to list (leaves, or intermediate results: for
      those, the gradient arriving at them); default: every leaf reached.
    - `depth`: show only the first `depth` ops (the gradients are still complete).
    - `nudge`: `(fn, [x, ...])`, or just `fn` (then `inputs`, or every leaf reached), where
      `fn()` recomputes the output from the leaves' current values. Each element of each leaf
      (up to 8; of a larger leaf the 8 with the largest gradients) is moved by ±h and
      (f(x+h) − f(x−h)) / 2h is shown beside the analytic gradient. h is `eps` for float64
      leaves; for lower precision at least the cube root of the dtype's epsilon.
    - `file`: a text stream to print the explanation to.
    - `names`: `{tensor: "w"}` (or `{"w": tensor}`, as viz takes) to name leaves and results.
    - `values`: True for the numbers of every gradient, False for summaries (L2 norm, min,
      max, fraction of zeros); by default numbers when no tensor has more than 4 elements.

    Raises GraphError for a graph freed by backward() (use `retain_graph=True`).
    """
    if not isinstance(output, Tensor):
        raise ArgumentTypeError(f"explain expects a Tensor, got {type(output).__name__}")
    if depth is not None:
        _args.size("explain", "depth (a non-negative number of ops)", depth, minimum=0)
    seed = _seed(output, gradient, False)
    weight = None if gradient is None else _host(seed, output._backend)
    leaf_names, op_names = _name_table(names)
    out_name = (
        op_names.get(output.grad_fn) if output.grad_fn is not None else leaf_names.get(id(output))
    ) or "out"

    numbered: dict[int, str] = {}
    counter = [0]

    def leaf_name(t: Tensor) -> str:
        if id(t) in leaf_names:
            return leaf_names[id(t)]
        if id(t) not in numbered:
            counter[0] += 1
            numbered[id(t)] = f"leaf{counter[0]}"
        return numbered[id(t)]

    fn = None
    nudge_leaves: list[Tensor] | None = None
    if nudge is not None:
        if callable(nudge):
            fn = nudge
        elif isinstance(nudge, (tuple, list)) and len(nudge) == 2 and callable(nudge[0]):
            fn = nudge[0]
            nudge_leaves = [nudge[1]] if isinstance(nudge[1], Tensor) else list(nudge[1])
        else:
            raise TypeError(
                "nudge must be fn or (fn, [leaves]), where fn() recomputes the output from "
                "the leaves' current values, e.g. nudge=(lambda: (x * x).sum(), [x])"
            )
    wanted: list[Tensor] | None = None
    if inputs is not None:
        wanted = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        for i, t in enumerate(wanted):
            if not isinstance(t, Tensor):
                raise TypeError(f"inputs[{i}] is a {type(t).__name__}, not a Tensor")
    for t in nudge_leaves or ():
        if not isinstance(t, Tensor) or t.grad_fn is not None:
            raise ValueError(
                "only leaf tensors can be nudged (made by the user, not by an op): fn() "
                "recomputes the output from them"
            )

    recorder = _Recorder(values)
    wanted_nodes = {t.grad_fn for t in wanted or () if t.grad_fn is not None}
    nodes, total, leaf_grads, node_totals, paths = _walk(
        output, seed, depth, recorder, leaf_name, op_names, wanted_nodes
    )
    if values is None:
        for t in wanted or ():
            if t.data.size > SMALL:
                recorder.all_small = False
    shown_values = recorder.values if recorder.values is not None else recorder.all_small
    if not shown_values and values is None:
        for n in nodes:  # some gradients were kept as numbers before a large one turned up
            n["local"] = [None] * len(n["local"])

    if wanted is None:
        wanted = list(leaf_grads)
    gradients = []
    for t in wanted:
        if t.grad_fn is None:
            g = leaf_grads.get(t)
            who = leaf_name(t)
            backend = t._backend
            if g is not None:
                g = _host(g, backend).astype(np.dtype(str(t.dtype)))
        else:
            g = node_totals.get(t.grad_fn)
            who = op_names.get(t.grad_fn) or f"({t.grad_fn.name} result)"
            backend = t.grad_fn.xp
            if g is not None:
                g = _host(g, backend)
        grad = None
        if g is not None:
            a = np.asarray(g, dtype=np.float64)
            grad = a.tolist() if shown_values else _summary(a)
        key = t if t.grad_fn is None else t.grad_fn
        gradients.append(
            {"name": who, "shape": tuple(t.shape), "grad": grad, "paths": paths.get(key, 0)}
        )

    notes = []
    if recorder.hooked or recorder.module_hooks or _leaf_hooked(leaf_grads):
        notes.append("hooks are not run by explain: it shows the plain chain rule")
    nudges: list[dict[str, Any]] = []
    if fn is not None:
        leaves = nudge_leaves
        if leaves is None:
            leaves = [t for t in (wanted or ()) if t.grad_fn is None]
        check = _nudge_value(fn, weight)
        expect = float(
            (_host(output.data, output._backend) * (1 if weight is None else weight)).sum()
        )
        if not math.isclose(check, expect, rel_tol=1e-4, abs_tol=1e-6):
            notes.append(
                f"the nudge function gives {check:.6g}, not the output's {expect:.6g}: does it "
                "recompute the output from the same leaves?"
            )
        nudges = _nudge(fn, leaves, leaf_grads, weight, eps, leaf_name)
        if any(np.dtype(str(t.dtype)) != np.float64 for t in leaves):
            notes.append("nudging is coarse below float64: use .double() leaves for a close check")

    result = Explanation(
        output={
            "name": out_name,
            "shape": tuple(output.shape),
            "dtype": str(output.dtype),
            "op": output.grad_fn.name if output.grad_fn is not None else None,
            "value": _host(output.data, output._backend).tolist() if shown_values else None,
        },
        nodes=nodes,
        total_nodes=total,
        depth=depth,
        values=shown_values,
        gradients=gradients,
        nudges=nudges,
        notes=notes,
    )
    if file is not None:
        print(result, file=file)
    return result


def _leaf_hooked(leaves: Iterable[Tensor]) -> bool:
    return any(leaf_hooks(leaf) for leaf in leaves)


setattr(Tensor, "explain", explain)  # noqa: B010  (y.explain(...), like the ops' methods)
