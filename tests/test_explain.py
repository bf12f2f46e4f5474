"""gg.explain: the chain rule shown op by op, checked against hand computation and backward()."""

import io
import json
import math

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.autograd import Function
from gpugrad.explain import RULES


def scalar(value):
    return gg.tensor(value, dtype="float64", requires_grad=True)


def affine_squared():
    a, b, c = scalar(2.0), scalar(3.0), scalar(1.0)
    y = (a * b + c) ** 2
    return a, b, c, y


# --- small graphs: the numbers a person computes by hand -----------------------------------------
def test_square_of_affine_shows_each_factor_of_the_chain_rule():
    a, b, c, y = affine_squared()
    e = gg.explain(y, names={a: "a", b: "b", c: "c", y: "y"})
    assert e.values
    assert [n["op"] for n in e.nodes] == ["PowScalar", "Add", "Mul"]
    pow_, add, mul = e.nodes
    # y = u², u = a·b + c = 7: ∂y/∂u = 2u = 14, then Add passes 14 on to both, Mul multiplies in
    # the other factor: ∂y/∂a = 14·b = 42, ∂y/∂b = 14·a = 28.
    assert pow_["rule"] == "∂(xᵖ)/∂x = p·xᵖ⁻¹" and pow_["params"] == "p=2"
    assert pow_["upstream"] == 1.0 and pow_["local"] == [14.0] and pow_["grads"] == [14.0]
    assert add["rule"] == "∂(a+b)/∂a = 1, ∂(a+b)/∂b = 1"
    assert add["upstream"] == 14.0 and add["local"] == [1.0, 1.0] and add["grads"] == [14.0, 14.0]
    assert mul["rule"] == "∂(a·b)/∂a = b, ∂(a·b)/∂b = a"
    assert mul["upstream"] == 14.0 and mul["local"] == [3.0, 2.0] and mul["grads"] == [42.0, 28.0]
    assert add["input_names"] == ["[3] Mul", "c"] and mul["input_names"] == ["a", "b"]
    assert [n["input_shapes"] for n in e.nodes] == [[()], [(), ()], [(), ()]]
    assert all(n["output_shape"] == () for n in e.nodes)
    assert {g["name"]: g["grad"] for g in e.gradients} == {"a": 42.0, "b": 28.0, "c": 14.0}

    text = str(e)
    assert text.startswith("y = 49: shape () float64; backward visits 3 ops")
    for line in [
        "[1] y = PowScalar  (p=2)  () → ()",
        "    rule      ∂(xᵖ)/∂x = p·xᵖ⁻¹",
        "    upstream  1",
        "    x → [2] Add  1 × 14 = 14",
        "    a → [3] Mul  14 × 1 = 14",
        "    b → c        14 × 1 = 14",
        "    a → a  14 × 3 = 42",
        "    b → b  14 × 2 = 28",
        "    ∂y/∂a  42",
        "    ∂y/∂b  28",
        "    ∂y/∂c  14",
    ]:
        assert line in text.splitlines(), (line, text)


def test_exp_times_sin_local_derivatives_are_exp_and_cos():
    values = [0.5, -1.0]
    x = gg.tensor(values, dtype="float64", requires_grad=True)
    y = (x.exp() * x.sin()).sum()
    e = y.explain(names={x: "x"})
    by_op = {n["op"]: n for n in e.nodes}
    assert set(by_op) == {"Sum", "Mul", "Exp", "Sin"}
    v = np.array(values)
    assert by_op["Sum"]["grads"] == [[1.0, 1.0]]
    np.testing.assert_allclose(by_op["Mul"]["local"], [np.sin(v), np.exp(v)])
    np.testing.assert_allclose(by_op["Exp"]["upstream"], np.sin(v))
    np.testing.assert_allclose(by_op["Exp"]["local"], [np.exp(v)])
    np.testing.assert_allclose(by_op["Sin"]["local"], [np.cos(v)])
    np.testing.assert_allclose(by_op["Sin"]["grads"], [np.exp(v) * np.cos(v)])
    (g,) = e.gradients
    np.testing.assert_allclose(g["grad"], np.exp(v) * (np.sin(v) + np.cos(v)))
    assert g["paths"] == 2  # x reaches y along two paths, and backward adds them up
    assert "(sum of 2 paths)" in str(e)
    assert "∂eˣ/∂x = eˣ" in str(e) and "∂sin x/∂x = cos x" in str(e)


def test_nodes_come_in_backward_order():
    x = scalar(0.3)
    u = x * 2
    v = u.exp()  # made before w: backward visits w's Sin first (higher seq)
    w = u.sin()
    y = v + w
    e = gg.explain(y, names={u: "u"})
    assert [n["op"] for n in e.nodes] == ["Add", "Sin", "Exp", "MulScalar"]
    assert [n["index"] for n in e.nodes] == [1, 2, 3, 4]
    assert e.nodes[3]["label"] == "[4] u = MulScalar"
    assert e.nodes[1]["input_names"] == ["u"]  # named intermediate results are named
    # u's op runs once, after both consumers delivered: its upstream is their sum.
    assert e.nodes[3]["upstream"] == pytest.approx(math.exp(0.6) + math.cos(0.6))


# --- agreement with backward() ----------------------------------------------------------------
def _random_graph():
    gg.manual_seed(0)
    w = gg.randn(3, 4, dtype="float64", requires_grad=True)
    b = gg.randn(4, dtype="float64", requires_grad=True)
    x = gg.randn(2, 3, dtype="float64", requires_grad=True)
    h = (x @ w + b).relu()  # broadcasting b over rows
    y = (h * h.tanh()).mean() + (w * w).sum() * 0.1 + x.sum(axis=0).max()
    return {"w": w, "b": b, "x": x}, y


@pytest.mark.parametrize("values", [True, None])
def test_gradients_passed_on_add_up_to_what_backward_deposits(values):
    leaves, y = _random_graph()
    names = {t: n for n, t in leaves.items()}
    e = gg.explain(y, names=names, values=values)
    assert e.values is bool(values)  # 12-element leaves: summaries by default
    totals = {n: np.zeros(t.shape) for n, t in leaves.items()}
    for node in e.nodes:
        for to, g in zip(node["input_names"], node["grads"]):
            if values and to in totals and g is not None:
                totals[to] = totals[to] + np.asarray(g)
    assert all(t.grad is None for t in leaves.values())  # explain deposits nothing
    y.backward()
    by_name = {g["name"]: g for g in e.gradients}
    for name, t in leaves.items():
        if values:
            np.testing.assert_allclose(totals[name], t.grad.numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(by_name[name]["grad"], t.grad.numpy(), rtol=1e-12)
        else:
            s = by_name[name]["grad"]
            assert s["norm"] == pytest.approx(np.linalg.norm(t.grad.numpy()), rel=1e-12)
            assert s["min"] == pytest.approx(t.grad.numpy().min(), rel=1e-12, abs=1e-15)


def test_graph_is_left_intact_and_backward_still_works():
    leaves, y = _random_graph()
    nodes = []
    stack = [y.grad_fn]
    while stack:
        n = stack.pop()
        if n not in nodes:
            nodes.append(n)
            stack.extend(e for e in n.edges if isinstance(e, Function))
    before = [(n.edges, n.saved, n.inputs) for n in nodes]
    data = {k: t.numpy().copy() for k, t in leaves.items()}
    first = gg.explain(y, nudge=(lambda: _random_graph()[1], list(leaves.values()))).to_dict()
    second = gg.explain(y).to_dict()
    assert [(n.edges, n.saved, n.inputs) for n in nodes] == before
    assert all(t.grad is None for t in leaves.values())
    assert all(np.array_equal(t.numpy(), data[k]) for k, t in leaves.items())  # nudges undone
    assert first["nodes"] == second["nodes"]
    y.backward()
    assert all(t.grad is not None for t in leaves.values())


def test_intermediate_inputs_report_the_gradient_arriving_there():
    x = scalar(0.5)
    u = x * x  # u = x², du/dx = 2x = 1
    y = u.sin()  # dy/du = cos(u)
    e = gg.explain(y, inputs=[u, x], names={u: "u", x: "x"})
    grads = {g["name"]: g["grad"] for g in e.gradients}
    assert grads["u"] == pytest.approx(math.cos(0.25))
    assert grads["x"] == pytest.approx(math.cos(0.25) * 1.0)  # dy/dx = dy/du · du/dx
    unused = scalar(1.0)
    e = gg.explain(y, inputs=[unused])
    assert e.gradients[0]["grad"] is None


def test_non_scalar_output_needs_a_gradient_like_backward():
    x = gg.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    y = x * x
    with pytest.raises(gg.GraphError, match="needs a gradient"):
        gg.explain(y)
    v = gg.tensor([1.0, 0.5, -1.0], dtype="float64")
    e = gg.explain(y, gradient=v, nudge=lambda: x * x)
    assert e.nodes[0]["upstream"] == [1.0, 0.5, -1.0]
    assert e.gradients[0]["grad"] == [2.0, 2.0, -6.0]
    assert [d["numeric"] for d in e.nudges] == pytest.approx([2.0, 2.0, -6.0], abs=1e-6)


# --- the nudge view ----------------------------------------------------------------------------
def test_nudge_matches_the_analytic_gradient_in_float64():
    a, b, c, y = affine_squared()
    x = gg.tensor([0.3, -0.7, 1.2], dtype="float64", requires_grad=True)
    z = y * (x.exp() * x.sin()).sum()

    def f():
        return (a * b + c) ** 2 * (x.exp() * x.sin()).sum()

    e = gg.explain(z, nudge=(f, [a, x]), names={a: "a", x: "x"})
    assert [(d["leaf"], d["index"]) for d in e.nudges] == [("a", ())] + [
        ("x", (i,)) for i in range(3)
    ]
    for d in e.nudges:
        assert abs(d["numeric"] - d["analytic"]) < 1e-6, d
        assert d["agree"] and d["h"] == 1e-6
    assert "nudge: (f(x+h) − f(x−h)) / 2h" in str(e) and "agree" in str(e)
    # fn alone nudges `inputs` (or every leaf reached)
    e2 = gg.explain(z, inputs=[b], nudge=f)
    assert len(e2.nudges) == 1 and e2.nudges[0]["leaf"].startswith("leaf")  # unnamed: numbered
    assert e2.nudges[0]["analytic"] == pytest.approx(e2.nudges[0]["numeric"], abs=1e-6)
    z.backward()
    assert e.nudges[0]["analytic"] == pytest.approx(a.grad.item(), rel=1e-15)


def test_nudge_flags_a_function_that_does_not_recompute_the_output():
    a, b, _, y = affine_squared()
    e = gg.explain(y, nudge=(lambda: (a * b) ** 2, [a]))
    assert any("does it recompute the output" in n for n in e.notes)
    assert not e.nudges[0]["agree"]


def test_nudge_rejects_non_leaves_and_bad_arguments():
    a, b, _, y = affine_squared()
    u = a * b
    with pytest.raises(ValueError, match="leaf"):
        gg.explain(y, nudge=(lambda: y, [u]))
    with pytest.raises(TypeError, match="nudge must be"):
        gg.explain(y, nudge=[a])


def test_large_leaves_nudge_the_largest_gradients_only():
    gg.manual_seed(1)
    w = gg.randn(5, 5, dtype="float64", requires_grad=True)
    y = (w * w * gg.arange(25, dtype="float64").reshape(5, 5)).sum()
    e = gg.explain(
        y, nudge=(lambda: (w * w * gg.arange(25, dtype="float64").reshape(5, 5)).sum(), [w])
    )
    assert len(e.nudges) == 8
    assert all(abs(d["numeric"] - d["analytic"]) < 1e-5 for d in e.nudges)


# --- large graphs -------------------------------------------------------------------------------
def test_large_graphs_are_summarised_and_depth_truncates():
    gg.manual_seed(0)
    x = gg.randn(16, 8, requires_grad=True)
    w = gg.randn(8, 8, requires_grad=True)
    y = ((x @ w).relu() - 1.0).sum()
    e = gg.explain(y, names={x: "x", w: "w"})
    assert not e.values
    relu = next(n for n in e.nodes if n["op"] == "Relu")
    up, (passed,) = relu["upstream"], relu["grads"]
    assert set(up) == {"shape", "norm", "min", "max", "zeros"}
    assert up["shape"] == (16, 8) and up["norm"] == pytest.approx(math.sqrt(128))
    assert 0 < passed["zeros"] < 1  # the dead units pass nothing back
    assert relu["local"] == [None]
    assert "zeros" in str(e) and "norm" in str(e)

    short = gg.explain(y, depth=2)
    assert short.total_nodes == e.total_nodes == 4
    assert [n["op"] for n in short.nodes] == [n["op"] for n in e.nodes][:2]
    assert "… 2 more ops (depth=2)" in str(short)
    assert [g["grad"] for g in short.gradients] == [g["grad"] for g in e.gradients]
    forced = gg.explain(y, values=True, depth=1)
    assert isinstance(forced.nodes[0]["grads"][0], list)


def test_a_network_with_layers_and_a_loss():
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = gg.randn(7, 6)
    labels = gg.tensor([0, 1, 2, 0, 1, 2, 0])
    loss = F.cross_entropy(model(x), labels)
    params = dict(model.named_parameters())
    e = gg.explain(loss, names=params)
    assert "SoftmaxCrossEntropy" in [n["op"] for n in e.nodes]
    assert all("no rule on file" not in n["rule"] for n in e.nodes)
    loss.backward()
    norms = {g["name"]: g["grad"]["norm"] for g in e.gradients}
    assert set(norms) == set(params)
    for name, p in params.items():
        assert norms[name] == pytest.approx(float(np.linalg.norm(p.grad.numpy())), rel=1e-5)


# --- errors, hooks and the rest of the API ---------------------------------------------------
def test_a_freed_graph_raises_graph_error():
    *_, y = affine_squared()
    y.backward()
    with pytest.raises(gg.GraphError, match="retain_graph=True"):
        gg.explain(y)
    *_, y = affine_squared()
    y.backward(retain_graph=True)
    assert gg.explain(y).gradients[0]["grad"] == 14.0


def test_in_place_change_of_a_saved_tensor_raises_like_backward():
    x = scalar(2.0)
    h = x * 1.0
    y = h * h
    h.mul_(3)
    with pytest.raises(gg.InplaceError):
        gg.explain(y)


def test_hooks_are_not_run_and_a_note_says_so():
    x = scalar(2.0)
    u = x * 3
    calls = []
    u.register_hook(lambda g: calls.append(g) or g * 0)
    y = u * u
    e = gg.explain(y, names={x: "x"})
    assert calls == []
    assert e.gradients[0]["grad"] == 36.0  # the plain chain rule: 2u · 3
    assert any("hooks are not run" in n for n in e.notes)


def test_output_that_is_a_leaf():
    x = scalar(5.0)
    e = gg.explain(x, names={x: "x"})
    assert e.nodes == [] and e.total_nodes == 0
    assert e.gradients == [{"name": "x", "shape": (), "grad": 1.0, "paths": 0}]


def test_method_file_to_dict_and_repr():
    *_, y = affine_squared()
    stream = io.StringIO()
    e = y.explain(file=stream)
    assert stream.getvalue() == str(e) + "\n"
    assert repr(e) == str(e)
    json.dumps(e.to_dict())  # plain data
    assert e.to_dict()["nodes"][0]["op"] == "PowScalar"
    assert gg.Tensor.explain is gg.explain
    with pytest.raises(TypeError):
        gg.explain([1.0])
    with pytest.raises(gg.GraphError, match="does not require grad"):
        gg.explain(gg.tensor(1.0))


def _all_functions():
    seen, stack = set(), [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
    return seen


def test_every_op_has_a_derivative_rule():
    bases = {"_Activation", "_Reduction", "_Extreme", "_Extremum"}
    missing = [
        f.__name__
        for f in _all_functions()
        if f.__module__.startswith("gpugrad.") and f.__name__ not in bases | set(RULES)
    ]
    assert not missing, f"ops without an entry in gpugrad.explain.RULES: {sorted(missing)}"


def test_unknown_ops_get_a_generic_rule():
    class Twice(Function):
        def forward(self, x):
            return x * 2

        def backward(self, xp, g):
            return g * 2

    x = scalar(1.5)
    e = gg.explain(Twice.apply(x))
    assert (
        e.nodes[0]["rule"] == "∂Twice/∂input: no rule on file; the numbers come from Twice.backward"
    )
    assert e.nodes[0]["grads"] == [2.0]
