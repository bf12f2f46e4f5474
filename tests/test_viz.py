"""gg.viz: DOT text of the autograd graph (parsed and compared with the known graph), rendering."""

from __future__ import annotations

import math
import re
import shutil
import sys
import time

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn

_NODE = re.compile(r'^\s*([nt]\d+) \[label="((?:[^"\\]|\\.)*)"', re.MULTILINE)
_EDGE = re.compile(r"^\s*([nt]\d+) -> ([nt]\d+);", re.MULTILINE)


def parse(dot: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(label of each node id, with DOT escapes undone; list of edges) of to_dot's text."""
    assert dot.startswith("digraph ") and dot.rstrip().endswith("}")
    labels = {}
    for ident, raw in _NODE.findall(dot):
        assert ident not in labels, f"node {ident} declared twice"
        labels[ident] = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), raw)
    edges = _EDGE.findall(dot)
    return labels, edges


def small_graph(device):
    x = gg.tensor(
        np.arange(6.0).reshape(2, 3) - 2, dtype="float32", device=device, requires_grad=True
    )
    w = gg.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    b = gg.tensor([0.5, 0.5, -0.5], device=device, requires_grad=True)
    prod = x * w
    pre = prod + b
    act = pre.relu()
    y = act.sum()
    return x, w, b, prod, pre, act, y


def test_small_graph_has_every_node_and_edge(device):
    x, w, b, prod, pre, act, y = small_graph(device)
    labels, edges = parse(gg.viz.to_dot(y, names={x: "x", w: "w", b: "b"}))
    mul, add, relu, total = (f"n{t.grad_fn.seq}" for t in (prod, pre, act, y))
    by_name = {label.split("\n")[0]: ident for ident, label in labels.items()}
    assert set(by_name) == {"Mul", "Add", "Relu", "Sum", "x", "w", "b"}
    assert (by_name["Mul"], by_name["Add"], by_name["Relu"], by_name["Sum"]) == (
        mul,
        add,
        relu,
        total,
    )
    tx, tw, tb = by_name["x"], by_name["w"], by_name["b"]
    assert {tx, tw, tb} == {"t0", "t1", "t2"}
    assert sorted(edges) == sorted(
        [(tx, mul), (tw, mul), (mul, add), (tb, add), (add, relu), (relu, total)]
    )
    assert len(edges) == len(set(edges))


def test_labels_show_shapes_dtypes_devices(device):
    x, w, _, _, pre, _, y = small_graph(device)
    labels, _ = parse(gg.viz.to_dot(y, names={x: "x", id(w): "w"}))
    dev = str(y.device)
    assert labels[f"n{y.grad_fn.seq}"] == f"Sum\n() float32 {dev}"
    # Relu keeps its input, so the shape of Add's result is known.
    assert labels[f"n{pre.grad_fn.seq}"] == f"Add\n(2, 3) float32 {dev}"
    by_name = {label.split("\n")[0]: label for label in labels.values()}
    assert by_name["x"] == f"x\n(2, 3) float32 {dev}"  # show_grads, but no grad yet
    assert by_name["w"] == f"w\n(3,) float32 {dev}"
    assert by_name["leaf"] == f"leaf\n(3,) float32 {dev}"  # b: not named


def test_grad_norms_after_backward(device):
    x, w, b, _, _, _, y = small_graph(device)
    y.backward(retain_graph=True)
    text = gg.viz.to_dot(y, names={x: "x", w: "w", b: "b"})
    labels, edges = parse(text)
    assert len(edges) == 6
    by_name = {label.split("\n")[0]: label for label in labels.values()}
    for t, key in ((x, "x"), (w, "w"), (b, "b")):
        expected = float(np.linalg.norm(t.grad.numpy()))
        line = by_name[key].split("\n")[-1]
        assert line.startswith("grad norm ")
        assert math.isclose(float(line.removeprefix("grad norm ")), expected, rel_tol=1e-3)
    quiet, _ = parse(gg.viz.to_dot(y, show_grads=False, names={x: "x", w: "w", b: "b"}))
    assert not any("grad norm" in label for label in quiet.values())


def test_same_graph_gives_same_text(device):
    *_, y = small_graph(device)
    assert gg.viz.to_dot(y) == gg.viz.to_dot(y)


def test_shared_input_and_several_outputs(device):
    a = gg.tensor([1.0, 2.0], device=device, requires_grad=True)
    sq = a * a  # one input, two edges
    u, v = sq.sum(), (sq + a).mean()
    labels, edges = parse(gg.viz.to_dot([u, v]))
    assert list(labels).count("t0") == 1 and "t1" not in labels
    mul = f"n{sq.grad_fn.seq}"
    assert edges.count(("t0", mul)) == 2
    assert (mul, f"n{u.grad_fn.seq}") in edges
    assert ("t0", f"n{v.grad_fn.seq - 1}") in edges  # the Add
    assert 'style="filled,bold"' in gg.viz.to_dot([u, v]).split(f"n{u.grad_fn.seq} [")[1]


def test_names_from_a_module(device):
    model = nn.Linear(3, 2).to(device)
    loss = model(gg.randn(4, 3, device=device)).sum()
    labels, _ = parse(gg.viz.to_dot(loss, names=dict(model.named_parameters())))
    titles = {label.split("\n")[0] for label in labels.values()}
    assert {"weight", "bias"} <= titles
    inverted = {p: n for n, p in model.named_parameters()}
    assert gg.viz.to_dot(loss, names=inverted) == gg.viz.to_dot(
        loss, names=dict(model.named_parameters())
    )


def test_labels_are_escaped(device):
    w = gg.ones(2, device=device, requires_grad=True)
    y = (w * 2).sum()
    text = gg.viz.to_dot(y, name='my "net"', names={w: 'a "quoted"\\name\nline two'})
    assert text.startswith('digraph "my \\"net\\"" {')
    labels, _ = parse(text)
    assert labels["t0"].startswith('a "quoted"\\name\nline two\n(2,)')
    assert all(line.count('"') % 2 == 0 for line in text.replace('\\"', "").splitlines())


def test_leaf_output_and_constant_output(device):
    w = gg.ones(2, device=device, requires_grad=True)
    labels, edges = parse(gg.viz.to_dot(w, names={w: "w"}))
    assert list(labels) == ["t0"] and labels["t0"].startswith("w\n") and edges == []
    c = gg.ones(2, device=device) * 3
    labels, edges = parse(gg.viz.to_dot(c))
    assert list(labels) == ["t0"] and labels["t0"].startswith("tensor\n") and edges == []


def test_long_chain_is_walked_without_recursion(device):
    x = gg.tensor([1.0], device=device, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # a recursive walk would fail at once
    try:
        start = time.perf_counter()
        text = gg.viz.to_dot(y)
        elapsed = time.perf_counter() - start
    finally:
        sys.setrecursionlimit(limit)
    labels, edges = parse(text)
    assert len(labels) == 10_001 and len(edges) == 10_000
    assert elapsed < 30  # generous: only catches something quadratic


def test_freed_graph_raises(device):
    *_, y = small_graph(device)
    y.backward()
    with pytest.raises(gg.GraphError, match="retain_graph=True"):
        gg.viz.to_dot(y)


def test_format_dot_writes_text_without_graphviz(device, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    *_, y = small_graph(device)
    written = gg.viz.render(y, tmp_path / "graph.dot")
    assert written == tmp_path / "graph.dot"
    assert written.read_text() == gg.viz.to_dot(y)
    other = gg.viz.render(y, tmp_path / "graph.svg", format="dot")
    assert other == tmp_path / "graph.dot"


def test_render_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setitem(sys.modules, "graphviz", None)
    y = (gg.ones(2, requires_grad=True) * 2).sum()
    with pytest.raises(gg.viz.GraphvizUnavailableError, match="pip install graphviz") as info:
        gg.viz.render(y, tmp_path / "graph.svg")
    assert isinstance(info.value, RuntimeError)
    assert "apt-get install graphviz" in str(info.value)
    assert not (tmp_path / "graph.svg").exists()
    with pytest.raises(ValueError, match="format"):
        gg.viz.render(y, tmp_path / "graph.bmp")


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a stand-in `dot`")
def test_render_calls_the_dot_program(tmp_path, monkeypatch):
    """Without the Python package, render pipes the DOT text through `dot -T<format>`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text('#!/bin/sh\necho "format $1"\ncat\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setitem(sys.modules, "graphviz", None)
    y = (gg.ones(2, requires_grad=True) * 2).sum()
    out = gg.viz.render(y, tmp_path / "graph.png")
    assert out.read_bytes().decode() == "format -Tpng\n" + gg.viz.to_dot(y)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_render_real_picture(device, tmp_path, suffix, magic):
    *_, y = small_graph(device)
    out = gg.viz.render(y, tmp_path / f"graph{suffix}")
    data = out.read_bytes()
    assert magic in data[:400]
