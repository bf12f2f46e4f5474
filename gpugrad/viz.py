"""Pictures of the autograd graph: Graphviz DOT text, and rendered files when Graphviz is present.

`to_dot(output)` describes the graph that produced `output`: one box per op (its name, and the
shape/dtype/device of its result where known), one ellipse per leaf tensor (its name if given,
shape, dtype, device, and with `show_grads` the norm of its `.grad`), and an arrow from each
input to the op that used it. `render(output, "graph.svg")` draws it with Graphviz.

    import gpugrad as gg
    w = gg.randn(3, requires_grad=True)
    y = (w * 2).sum()
    print(gg.viz.to_dot(y, names={w: "w"}))
    gg.viz.render(y, "graph.svg", names={w: "w"})  # needs Graphviz (pip + system package)

The graph is walked with an explicit stack (any depth works), each node once; nodes and arrows
are listed in backward order (newest op first), so the same graph gives the same text.
"""

from __future__ import annotations

import importlib
import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .autograd import Function
from .errors import GpugradError, GraphError
from .tensor import Tensor

__all__ = ["GraphvizUnavailableError", "render", "to_dot"]

RENDER_FORMATS = ("svg", "png", "pdf")
_INSTALL_HINT = (
    "rendering needs Graphviz: install the Python package with `pip install graphviz` and the "
    "system package that provides the `dot` program (`apt-get install graphviz`, "
    "`brew install graphviz`, or `conda install graphviz`); "
    "format='dot' writes the DOT text without Graphviz"
)


class GraphvizUnavailableError(GpugradError, RuntimeError):
    """Rendering was asked for but Graphviz (the `dot` program) is not installed."""


# --- labels ----------------------------------------------------------------------------------
def _escape(text: str) -> str:
    """Quote `text` for a DOT string: backslashes and quotes escaped, line breaks as \\n."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _describe(shape: Any, dtype: Any, device: Any) -> str:
    return f"{tuple(shape)} {dtype} {device}"


def _grad_line(t: Tensor) -> str | None:
    g = t.grad
    if g is None:
        return None
    value = float(g._backend.l2_norm(g.data))  # float64 on the tensor's device
    return f"grad norm {value:.4g}" if math.isfinite(value) else f"grad norm {value}"


def _name_table(names: Mapping[Any, str] | None) -> tuple[dict[int, str], dict[Function, str]]:
    """(leaf name by tensor id, op name by node) from what the caller passed.

    Accepts {tensor: name}, {id(tensor): name}, or {name: tensor} (as `dict(named_parameters())`
    gives). A named non-leaf tensor names the op that produced it.
    """
    by_id: dict[int, str] = {}
    by_node: dict[Function, str] = {}
    if not names:
        return by_id, by_node
    for key, value in names.items():
        if isinstance(value, Tensor) and isinstance(key, str):
            key, value = value, key
        if isinstance(key, Tensor):
            if key.grad_fn is not None:
                by_node[key.grad_fn] = str(value)
            else:
                by_id[id(key)] = str(value)
        elif isinstance(key, int):
            by_id[key] = str(value)
        else:
            raise TypeError(
                "names must map tensors (or their id()) to names, or names to tensors; "
                f"got a key of type {type(key).__name__}"
            )
    return by_id, by_node


# --- the walk --------------------------------------------------------------------------------
def _collect(roots: Sequence[Tensor]) -> list[Function]:
    """Every op node under `roots`, each once, newest first (an explicit stack: any depth)."""
    seen: set[Function] = set()
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        edges = node.edges
        if edges is None:
            raise GraphError(
                f"cannot draw the graph: it was freed by a backward() (at {node.name}), which "
                "drops the links between ops; pass retain_graph=True to backward() to keep it "
                "for drawing, or draw it before calling backward()"
            )
        stack.extend(e for e in edges if isinstance(e, Function) and e not in seen)
    return sorted(seen, key=lambda n: n.seq, reverse=True)


def _known_outputs(nodes: Sequence[Function]) -> dict[Function, tuple[Any, Any]]:
    """(shape, dtype) of the result of each node that some node still remembers: the node's
    own saved output, or the input Tensor kept by a node that consumed it."""
    known: dict[Function, tuple[Any, Any]] = {}
    for node in nodes:
        saved = node.saved
        out_id = node.__dict__.get("out_id")
        if saved and out_id is not None and node not in known:
            for s in saved:
                if id(s) == out_id and hasattr(s, "shape"):
                    known[node] = (s.shape, s.dtype)
                    break
        inputs = node.inputs
        if inputs is None:
            continue
        for x, edge in zip(inputs, node.edges):
            if isinstance(edge, Function) and edge not in known and isinstance(x, Tensor):
                # x was edge's output when this node was made (an in-place op may since have
                # given x a newer grad_fn, but in-place ops keep the shape and dtype).
                known[edge] = (x.shape, x.dtype)
    return known


def to_dot(
    output: Tensor | Sequence[Tensor],
    show_grads: bool = True,
    name: str = "gpugrad",
    names: Mapping[Any, str] | None = None,
) -> str:
    """Graphviz DOT text of the graph that produced `output` (a Tensor or a list of them).

    Op nodes are `n<seq>` (boxes; the outputs' ops are bold), leaf tensors `t<k>` (ellipses,
    numbered in the order backward reaches them). `names` labels tensors: `{w: "w"}`,
    `{id(w): "w"}` or `dict(model.named_parameters())`. With `show_grads`, leaves (and
    outputs) that have a `.grad` show its norm. Raises GraphError for a graph already freed
    by backward() (use `retain_graph=True`).
    """
    roots = [output] if isinstance(output, Tensor) else list(output)
    for i, r in enumerate(roots):
        if not isinstance(r, Tensor):
            raise TypeError(f"to_dot expects Tensors, got {type(r).__name__} at position {i}")
    leaf_names, op_names = _name_table(names)
    nodes = _collect(roots)
    known = _known_outputs(nodes)
    root_of: dict[Function, Tensor] = {}
    for r in roots:
        if r.grad_fn is not None:
            root_of.setdefault(r.grad_fn, r)

    lines = [
        f'digraph "{_escape(name)}" {{',
        '  node [fontname="Helvetica", fontsize=10];',
        "  edge [arrowsize=0.7];",
    ]
    edge_lines: list[str] = []
    leaf_ids: dict[int, str] = {}

    def leaf(t: Tensor, is_root: bool) -> str:
        ident = leaf_ids.get(id(t))
        if ident is not None:
            return ident
        ident = leaf_ids[id(t)] = f"t{len(leaf_ids)}"
        title = leaf_names.get(id(t), "leaf" if t.requires_grad else "tensor")
        parts = [title, _describe(t.shape, t.dtype, t.device)]
        if show_grads and (line := _grad_line(t)) is not None:
            parts.append(line)
        style = "filled,bold" if is_root else "filled"
        lines.append(
            f'  {ident} [label="{_escape(chr(10).join(parts))}", shape=ellipse, '
            f'style="{style}", fillcolor="#cfe8f3"];'
        )
        return ident

    for r in roots:
        if r.grad_fn is None:
            leaf(r, True)
    for node in nodes:
        ident = f"n{node.seq}"
        title = node.name
        if node in op_names:
            title = f"{op_names[node]} = {title}"
        parts = [title]
        root = root_of.get(node)
        if root is not None:
            parts.append(_describe(root.shape, root.dtype, root.device))
            if show_grads and (line := _grad_line(root)) is not None:
                parts.append(line)
        elif node in known:
            shape, dtype = known[node]
            parts.append(_describe(shape, dtype, node.xp.device))
        style = "filled,bold" if root is not None else "filled"
        lines.append(
            f'  {ident} [label="{_escape(chr(10).join(parts))}", shape=box, '
            f'style="{style}", fillcolor="#f2f2f2"];'
        )
        for edge in node.edges:
            if edge is None:
                continue
            source = leaf(edge, False) if isinstance(edge, Tensor) else f"n{edge.seq}"
            edge_lines.append(f"  {source} -> {ident};")
    lines.extend(edge_lines)
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- rendering -------------------------------------------------------------------------------
def _format_of(path: Path, format: str | None) -> str:
    fmt = (format or path.suffix.lstrip(".")).lower()
    if not fmt:
        raise ValueError(
            f"cannot tell the picture format of {str(path)!r}: give the path a suffix "
            f"(.svg, .png, .pdf, .dot) or pass format="
        )
    if fmt not in (*RENDER_FORMATS, "dot", "gv"):
        raise ValueError(
            f"unknown picture format {fmt!r}; use one of {', '.join(RENDER_FORMATS)} or 'dot'"
        )
    return "dot" if fmt == "gv" else fmt


def render(
    output: Tensor | Sequence[Tensor],
    path: str | Path,
    format: str | None = None,
    **kw: Any,
) -> Path:
    """Draw the graph of `output` into `path` and return the path written.

    The format comes from `format` or the path's suffix: svg, png, pdf (these need Graphviz:
    the `dot` program, used through the `graphviz` Python package when it is installed), or
    dot (the DOT text itself, no Graphviz needed; written with a `.dot` suffix). Other keyword
    arguments go to `to_dot` (show_grads, name, names). Raises GraphvizUnavailableError, with
    how to install Graphviz, when a picture is asked for and `dot` is missing.
    """
    path = Path(path)
    fmt = _format_of(path, format)
    text = to_dot(output, **kw)
    if fmt == "dot":
        if path.suffix.lower() not in (".dot", ".gv"):
            path = path.with_suffix(".dot")
        path.write_text(text, encoding="utf-8")
        return path
    if shutil.which("dot") is None:
        raise GraphvizUnavailableError(f"cannot render {str(path)!r}: {_INSTALL_HINT}")
    try:
        graphviz = importlib.import_module("graphviz")
    except ImportError:
        graphviz = None
    if graphviz is not None:
        try:
            data = graphviz.Source(text).pipe(format=fmt)
        except graphviz.ExecutableNotFound as exc:
            raise GraphvizUnavailableError(f"cannot render {str(path)!r}: {_INSTALL_HINT}") from exc
    else:
        done = subprocess.run(
            ["dot", f"-T{fmt}"], input=text.encode("utf-8"), capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"Graphviz `dot -T{fmt}` failed (exit {done.returncode}): "
                f"{done.stderr.decode('utf-8', 'replace').strip()}"
            )
        data = done.stdout
    path.write_bytes(data)
    return path
