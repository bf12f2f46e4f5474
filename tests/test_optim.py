"""Optimizers: hand-computed NumPy references, torch.optim (when installed), the flat path
against the per-parameter path, param groups, skipping, zero_grad, re-packing and
state_dict round trips."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn, optim
from gpugrad.errors import CheckpointError, InplaceError

SHAPES = [(3, 4), (4,), ()]
STEPS = 5

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.1}),
    ("Adam", {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.1}),
    ("AdamW", {"lr": 0.1, "weight_decay": 0.1, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.5}),
]  # fmt: skip
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CASES]


# --- references, written from the textbook formulas --------------------------------------
def ref_sgd(w, grads, lr, momentum, dampening, nesterov, weight_decay):
    buf = None
    for g in grads:
        d = g + weight_decay * w
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        w = w - lr * d
    return w


def ref_adam(w, grads, lr, betas, eps, weight_decay, amsgrad, decoupled):
    b1, b2 = betas
    m = v = vmax = np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        if decoupled:
            w = w * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1**t)
        v_hat = (vmax if amsgrad else v) / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


def ref_rmsprop(w, grads, lr, alpha, eps, weight_decay, momentum, centered):
    s = a = buf = np.zeros_like(w)
    for g in grads:
        g = g + weight_decay * w
        s = alpha * s + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            avg = np.sqrt(s - a * a) + eps
        else:
            avg = np.sqrt(s) + eps
        if momentum:
            buf = momentum * buf + g / avg
            w = w - lr * buf
        else:
            w = w - lr * g / avg
    return w


def ref_adagrad(w, grads, lr, lr_decay, weight_decay, initial_accumulator_value, eps):
    total = np.full_like(w, initial_accumulator_value)
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * w
        total = total + g * g
        w = w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(total) + eps)
    return w


def reference(name, w, grads, options):
    options = {k: v for k, v in options.items() if k != "params"}
    if name == "SGD":
        return ref_sgd(w, grads, **options)
    if name in ("Adam", "AdamW"):
        return ref_adam(w, grads, decoupled=name == "AdamW", **options)
    if name == "RMSprop":
        return ref_rmsprop(w, grads, **options)
    return ref_adagrad(w, grads, **options)


# --- helpers --------------------------------------------------------------------------------
def initial_and_grads(rng, shapes=SHAPES, steps=STEPS):
    weights = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    return weights, grads


def run(name, options, device, weights, grads, flat=True, dtype="float64"):
    """Train leaves starting at `weights` with the given gradient sequence; return them."""
    params = [gg.tensor(w, dtype=dtype, device=device, requires_grad=True) for w in weights]
    opt = getattr(optim, name)(params, flat=flat, **options)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = gg.tensor(g, dtype=dtype, device=device)
        opt.step()
    return params, opt


def state_arrays(opt):
    return [
        {k: (v if k == "step" else p.backend.to_numpy(v).copy()) for k, v in opt.state[p].items()}
        for group in opt.param_groups
        for p in group["params"]
    ]


# --- the update rules ------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("flat", [True, False])
def test_matches_numpy_reference(name, options, flat, device, rng):
    weights, grads = initial_and_grads(rng)
    params, opt = run(name, options, device, weights, grads, flat=flat)
    group = opt.param_groups[0]
    for i, p in enumerate(params):
        expected = reference(name, weights[i], [g[i] for g in grads], group)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_flat_and_per_parameter_paths_are_identical(name, options, device, rng):
    # Mixed dtypes (two banks in the first group), two groups, and a parameter that has no
    # gradient at one step (so that bank falls back to per-parameter updates once).
    shapes = [(3, 4), (4,), (), (5,)]
    weights, grads = initial_and_grads(rng, shapes, steps=6)
    grads[2][1] = None
    results = []
    for flat in (True, False):
        params = [
            gg.tensor(w, dtype=dt, device=device, requires_grad=True)
            for w, dt in zip(weights, ["float32", "float64", "float32", "float32"])
        ]
        groups = [{"params": params[:3]}, {"params": params[3:], "lr": options["lr"] / 2}]
        opt = getattr(optim, name)(groups, flat=flat, **options)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = None if g is None else gg.tensor(g, dtype=p.dtype, device=device)
            opt.step()
        results.append(([p.numpy().copy() for p in params], state_arrays(opt)))
    (flat_params, flat_state), (each_params, each_state) = results
    for a, b in zip(flat_params, each_params):
        np.testing.assert_array_equal(a, b)
    assert [s["step"] for s in flat_state] == [6, 5, 6, 6]
    for a, b in zip(flat_state, each_state):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch_optim(name, options, dtype, device, rng):
    torch = pytest.importorskip("torch")
    weights, grads = initial_and_grads(rng)
    params, _ = run(name, options, device, weights, grads, dtype=dtype)
    tparams = [torch.tensor(w.astype(dtype), requires_grad=True) for w in weights]
    topt = getattr(torch.optim, name)(tparams, **options)
    for step_grads in grads:
        for p, g in zip(tparams, step_grads):
            p.grad = torch.tensor(g.astype(dtype))
        topt.step()
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == "float64" else {"rtol": 1e-5, "atol": 1e-6}
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), **tol)


def test_defaults_match_torch_optim():
    p = [gg.zeros(2, requires_grad=True)]
    assert optim.Adam(p).defaults == {
        "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False
    }  # fmt: skip
    assert optim.AdamW(p).defaults["weight_decay"] == 1e-2
    rms = optim.RMSprop(p).defaults
    assert (rms["lr"], rms["alpha"], rms["eps"], rms["momentum"], rms["centered"]) == (
        1e-2, 0.99, 1e-8, 0.0, False
    )  # fmt: skip
    ada = optim.Adagrad(p).defaults
    assert (ada["lr"], ada["eps"], ada["lr_decay"], ada["initial_accumulator_value"]) == (
        1e-2, 1e-10, 0.0, 0.0
    )  # fmt: skip
    sgd = optim.SGD(p, lr=0.1).defaults
    assert (sgd["momentum"], sgd["dampening"], sgd["nesterov"], sgd["weight_decay"]) == (
        0.0, 0.0, False, 0.0
    )  # fmt: skip
    torch = pytest.importorskip("torch")
    tp = [torch.zeros(2, requires_grad=True)]
    for cls in (optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad):
        ours, theirs = cls(p).defaults, getattr(torch.optim, cls.__name__)(tp).defaults
        for key, value in ours.items():
            assert theirs[key] == value, (cls.__name__, key)


@pytest.mark.parametrize("flat", [True, False])
def test_plain_sgd_is_exactly_w_minus_lr_grad(flat, device, rng):
    w = rng.standard_normal((6, 5)).astype(np.float32)
    g = rng.standard_normal((6, 5)).astype(np.float32)
    p = gg.tensor(w, device=device, requires_grad=True)
    opt = optim.SGD([p], lr=0.37, flat=flat)
    p.grad = gg.tensor(g, device=device)
    opt.step()
    np.testing.assert_array_equal(p.numpy(), w - np.float32(0.37) * g)


def test_model_trained_like_torch(device, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((16, 3))
    y = rng.standard_normal((16, 2))
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    w = gg.tensor(w0, device=device, requires_grad=True)
    b = gg.tensor(b0, device=device, requires_grad=True)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    opt = optim.Adam([w, b], lr=0.05, weight_decay=0.01)
    topt = torch.optim.Adam([tw, tb], lr=0.05, weight_decay=0.01)
    xg, yg = gg.tensor(x, device=device), gg.tensor(y, device=device)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(10):
        opt.zero_grad()
        r = xg @ w + b - yg
        (r * r).sum().backward()
        opt.step()
        topt.zero_grad()
        ((xt @ tw + tb - yt) ** 2).sum().backward()
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.numpy(), tb.detach().numpy(), rtol=1e-10)


# --- parameters, groups and gradients ------------------------------------------------------
def test_param_groups_have_their_own_lr(device, rng):
    weights, grads = initial_and_grads(rng, [(2, 3), (4,)], steps=1)
    a, b = (gg.tensor(w, device=device, requires_grad=True) for w in weights)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    a.grad, b.grad = (gg.tensor(g, device=device) for g in grads[0])
    opt.step()
    np.testing.assert_array_equal(a.numpy(), weights[0] - 0.1 * grads[0][0])
    np.testing.assert_array_equal(b.numpy(), weights[1] - 0.5 * grads[0][1])


def test_add_param_group_and_changed_lr(device):
    a = gg.ones(3, dtype="float64", device=device, requires_grad=True)
    b = gg.ones(2, dtype="float64", device=device, requires_grad=True)
    opt = optim.SGD([a], lr=0.1, momentum=0.5)
    opt.add_param_group({"params": b, "lr": 0.2})
    assert opt.param_groups[1]["momentum"] == 0.5
    a.grad = gg.ones(3, dtype="float64", device=device)
    b.grad = gg.ones(2, dtype="float64", device=device)
    opt.step()
    opt.param_groups[0]["lr"] = 1.0  # as a scheduler does
    opt.step()
    np.testing.assert_allclose(a.numpy(), 1 - 0.1 - 1.0 * 1.5)
    np.testing.assert_allclose(b.numpy(), 1 - 0.2 - 0.2 * 1.5)


@pytest.mark.parametrize("flat", [True, False])
def test_parameters_without_grad_are_skipped(flat, device):
    a = gg.ones(3, device=device, requires_grad=True)
    b = gg.ones(2, device=device, requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1, weight_decay=0.5, flat=flat)
    a.grad = gg.ones(3, device=device)
    opt.step()
    assert np.all(a.numpy() < 1)
    np.testing.assert_array_equal(b.numpy(), np.ones(2, np.float32))
    assert opt.state[a]["step"] == 1 and opt.state[b]["step"] == 0
    assert list(opt.state_dict()["state"]) == [0]


def test_updates_in_place_and_bump_version(device):
    p = gg.ones(3, device=device, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    data, version = p.data, p.version
    y = (p * p).sum()
    p.grad = gg.ones(3, device=device)
    opt.step()
    assert p.data is data and p.version == version + 1
    with pytest.raises(InplaceError):
        y.backward()  # the graph saved p before the update


def test_step_runs_under_no_grad_and_returns_closure_loss(device):
    p = gg.ones(2, device=device, requires_grad=True)
    opt = optim.SGD([p], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 2.0
    assert p.grad_fn is None and not p.grad.requires_grad
    np.testing.assert_array_equal(p.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("flat", [True, False])
def test_zero_grad(flat, device):
    a = gg.ones(3, device=device, requires_grad=True)
    b = gg.ones(2, device=device, requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1, flat=flat)
    a.grad = gg.ones(3, device=device)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(3))
    assert b.grad is None  # stays None, as in torch
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_zeroed_grads_are_views_of_the_flat_gradient_buffer(device, rng):
    # zero_grad(set_to_none=False) points .grad at one buffer per bank; backward adds into
    # it in place; the next step reads that buffer without gathering. Same results as the
    # per-parameter path.
    x = gg.tensor(rng.standard_normal((8, 3)), device=device)
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    results = []
    for flat in (True, False):
        w = gg.tensor(w0, device=device, requires_grad=True)
        b = gg.tensor(b0, device=device, requires_grad=True)
        opt = optim.SGD([w, b], lr=0.1, momentum=0.9, flat=flat)
        for _ in range(4):
            opt.zero_grad(set_to_none=False)
            y = x @ w + b
            (y * y).sum().backward()
            opt.step()
        if flat:
            bank = opt._banks[0][0]
            assert w.grad.data is bank.grad_views[0] and b.grad.data is bank.grad_views[1]
        results.append((w.numpy().copy(), b.numpy().copy()))
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


def test_flat_path_packs_parameters_into_one_buffer(device):
    a = gg.ones((2, 3), device=device, requires_grad=True)
    b = gg.ones(4, device=device, requires_grad=True)
    c = gg.ones(2, dtype="float64", device=device, requires_grad=True)
    opt = optim.Adam([a, b, c])
    banks = opt._banks[0]
    assert len(banks) == 2  # float32 and float64
    assert banks[0].data.size == 10 and banks[1].data.size == 2
    shares = gg.backend.get_backend(device).may_share_memory
    assert shares(a.data, banks[0].data)
    assert shares(opt.state[b]["exp_avg"], banks[0].state["exp_avg"])


# --- re-packing when parameter data is replaced ---------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_replaced_data_is_repacked_with_its_state(name, device, rng):
    weights, grads = initial_and_grads(rng, [(3, 2), (2,)], steps=4)
    options = {"lr": 0.1, "momentum": 0.9} if name == "SGD" else {"lr": 0.1}
    expected, _ = run(name, options, device, weights, grads)
    params = [gg.tensor(w, dtype="float64", device=device, requires_grad=True) for w in weights]
    opt = getattr(optim, name)(params, **options)
    for i, step_grads in enumerate(grads):
        if i == 2:
            params[0].data = params[0].data.copy()  # same values, new memory
        for p, g in zip(params, step_grads):
            p.grad = gg.tensor(g, dtype="float64", device=device)
        opt.step()
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p.numpy(), e.numpy())
    assert opt._banks[0][0].intact()


@pytest.mark.parametrize("flat", [True, False])
def test_module_cast_after_making_the_optimizer(flat, device, rng):
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(gg.tensor(rng.standard_normal((3, 2)), dtype="float32"))

    model = Tiny()
    opt = optim.Adam(model.parameters(), lr=0.1, flat=flat)
    model.w.grad = gg.ones((3, 2), device="cpu")
    opt.step()
    model.to(device=device, dtype="float64")  # new arrays: the optimizer must follow
    before = model.w.numpy().copy()
    model.w.grad = gg.ones((3, 2), dtype="float64", device=device)
    opt.step()
    assert model.w.dtype == np.float64 and opt.state[model.w]["exp_avg"].dtype == np.float64
    assert np.all(model.w.numpy() < before)  # the live data moved, not a stale copy


def test_gradient_that_does_not_fit_raises(device):
    p = gg.ones(3, device=device, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(gg.ShapeError, match=r"\(4,\).*\(3,\)"):
        p.grad = gg.ones(4, device=device)  # refused when assigned
    p.grad = gg.ones(3, device=device)
    p.grad.data = gg.ones(4, device=device).data  # behind the check's back
    with pytest.raises(gg.ShapeError):
        opt.step()
    p.grad.data = gg.ones(3, dtype="float64", device=device).data
    with pytest.raises(gg.DTypeError):
        opt.step()


# --- construction errors ----------------------------------------------------------------------
def test_invalid_construction():
    p = gg.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0, got -1"):
        optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(gg.DTypeError):
        optim.SGD([gg.ones(2, dtype="int64")], lr=0.1)


# --- state_dict ----------------------------------------------------------------------------------
def _as_host(obj):
    """A state dict with every tensor turned into a NumPy array, as a file would hold it."""
    if isinstance(obj, dict):
        return {k: _as_host(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_as_host(v) for v in obj]
    return obj.numpy() if isinstance(obj, gg.Tensor) else obj  # shares memory on cpu


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
@pytest.mark.parametrize("flat", [True, False])
def test_state_dict_round_trip_continues_identically(name, options, flat, device, rng):
    weights, grads = initial_and_grads(rng, steps=6)
    expected, _ = run(name, options, device, weights, grads, flat=flat)
    first, opt = run(name, options, device, weights, grads[:3], flat=flat)
    saved = _as_host(opt.state_dict())
    params = [gg.tensor(p.numpy(), dtype="float64", device=device) for p in first]
    for p in params:
        p.requires_grad_(True)
    opt.step()  # later changes must not leak into the saved copy
    fresh = getattr(optim, name)(params, flat=flat, **{**options, "lr": 123.0})
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == options["lr"]
    for step_grads in grads[3:]:
        for p, g in zip(params, step_grads):
            p.grad = gg.tensor(g, dtype="float64", device=device)
        fresh.step()
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p.numpy(), e.numpy())


def test_state_dict_layout(device):
    a = gg.ones(3, device=device, requires_grad=True)
    b = gg.ones(2, device=device, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    a.grad, b.grad = gg.ones(3, device=device), gg.ones(2, device=device)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert sd["state"][0]["step"] == 1
    buf = sd["state"][1]["momentum_buffer"]
    assert isinstance(buf, gg.Tensor) and buf.device == b.device
    np.testing.assert_array_equal(buf.numpy(), [1.0, 1.0])


def test_mismatched_state_dict_raises(device):
    def make(cls, n=2, **kw):
        ps = [gg.ones(3, device=device, requires_grad=True) for _ in range(n)]
        opt = cls(ps, **kw)
        for p in ps:
            p.grad = gg.ones(3, device=device)
        opt.step()
        return opt

    sgd = make(optim.SGD, lr=0.1, momentum=0.9).state_dict()
    adam = make(optim.Adam).state_dict()
    with pytest.raises(CheckpointError):
        make(optim.Adam).load_state_dict(sgd)  # another optimizer
    with pytest.raises(CheckpointError):
        make(optim.SGD, lr=0.1, momentum=0.9).load_state_dict(adam)
    with pytest.raises(CheckpointError):
        make(optim.Adam, n=3).load_state_dict(adam)  # another number of parameters
    with pytest.raises(CheckpointError):
        make(optim.Adam).load_state_dict({"state": {}})
    bad = make(optim.Adam).state_dict()
    bad["state"][0]["exp_avg"] = gg.ones(4)
    with pytest.raises(CheckpointError, match="shape"):
        make(optim.Adam).load_state_dict(bad)
    groups = make(optim.Adam).state_dict()
    groups["param_groups"].append(dict(groups["param_groups"][0]))
    with pytest.raises(CheckpointError, match="groups"):
        make(optim.Adam).load_state_dict(groups)
    target = make(optim.Adam)
    before = target.param_groups[0]["lr"]
    with pytest.raises(CheckpointError):
        target.load_state_dict(bad)
    assert target.param_groups[0]["lr"] == before  # a failed load changes nothing


def test_loading_enables_state_an_option_needs(device):
    # A dict saved with momentum loaded into an optimizer made without it.
    src = [gg.ones(3, device=device, requires_grad=True)]
    opt = optim.SGD(src, lr=0.1, momentum=0.9)
    src[0].grad = gg.ones(3, device=device)
    opt.step()
    dst = [gg.ones(3, device=device, requires_grad=True)]
    other = optim.SGD(dst, lr=0.1)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["momentum"] == 0.9
    buf = other.state[dst[0]]["momentum_buffer"]
    np.testing.assert_array_equal(dst[0].backend.to_numpy(buf), np.ones(3))


def test_a_frozen_parameter_does_not_hold_its_bank_back(device):
    """Frozen parameters stay out of the flat banks: the rest still update in one call, and
    the result equals the per-parameter path."""
    rng = np.random.default_rng(5)
    values = [rng.standard_normal((3, 2)), rng.standard_normal(2), rng.standard_normal((2, 2))]
    runs = {}
    for flat in (True, False):
        params = [gg.tensor(v, device=device, requires_grad=True) for v in values]
        params[1].requires_grad_(False)
        opt = gg.optim.Adam(params, lr=0.1, flat=flat)
        calls = []
        real = opt._step_each
        opt._step_each = lambda group, ps, real=real, calls=calls: (
            calls.append(len(ps)),
            real(group, ps),
        )
        for step in range(3):
            for p in params:
                p.grad = (
                    None
                    if not p.requires_grad
                    else gg.tensor(rng.standard_normal(p.shape) * 0 + step + 1.0, device=device)
                )
            opt.step()
        runs[flat] = ([p.numpy().copy() for p in params], calls)
    (flat_values, flat_calls), (each_values, _) = runs[True], runs[False]
    for a, b in zip(flat_values, each_values):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_array_equal(flat_values[1], values[1])  # frozen: untouched
    assert flat_calls == []  # never fell back to one call per parameter
