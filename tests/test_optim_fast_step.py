"""The flat step's fast path (`Optimizer._ready_banks`) against the general path it skips,
and the one-block backend update against the blocked one: bit for bit the same parameters,
state, step counts and versions, and the same errors, whatever happens between steps."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import optim
from gpugrad.backend import get_backend

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.1}),
    ("Adam", {"lr": 0.1, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.1, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.1, "amsgrad": True}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CASES]
SHAPES = [(3, 4), (4,), (2, 3), ()]
STEPS = 4


def _grad(rng, p):
    return gg.tensor(rng.standard_normal(p.shape), dtype=p.dtype, device=p.device)


def _plain(opt, params, step, rng):
    for p in params:
        p.grad = _grad(rng, p)


def _skip_some(opt, params, step, rng):
    _plain(opt, params, step, rng)
    if step in (1, 2):
        params[step].grad = None  # that parameter sits this step out


def _frozen(opt, params, step, rng):
    if step == 0:
        params[1].requires_grad_(False)
    _plain(opt, params, step, rng)
    if step != 2:
        params[1].grad = None  # a frozen one given a gradient at step 2 only


def _toggle_requires_grad(opt, params, step, rng):
    if step == 2:
        params[0].requires_grad_(False)
    if step == 3:
        params[0].requires_grad_(True)
    _plain(opt, params, step, rng)


def _replace_data(opt, params, step, rng):
    if step == 2:
        params[0].data = params[0].data.copy()  # same values, memory of its own
    _plain(opt, params, step, rng)


def _edit_params_list(opt, params, step, rng):
    if step == 2:
        opt.param_groups[0]["params"].pop()
    _plain(opt, params, step, rng)


def _swap_param(opt, params, step, rng):
    if step == 2:  # another tensor takes a parameter's place in the group
        q = gg.tensor(rng.standard_normal(params[0].shape), device=params[0].device)
        params[0] = opt.param_groups[0]["params"][0] = q.requires_grad_()
    _plain(opt, params, step, rng)


def _zeroed_grads(opt, params, step, rng):
    if step == 0:
        _plain(opt, params, step, rng)
        return
    opt.zero_grad(set_to_none=False)  # .grad becomes views of the bank's gradient buffer
    for p in params:
        p.grad.data[...] += _grad(rng, p).data  # as backward accumulates, in place


def _change_options(opt, params, step, rng):
    if step == 2:
        group = opt.param_groups[0]
        if "momentum" in group:
            group["momentum"] = 0.5 if group["momentum"] == 0 else 0.0
        else:
            group["amsgrad"] = not group["amsgrad"]
    _plain(opt, params, step, rng)


def _edit_step_count(opt, params, step, rng):
    if step == 2:
        opt.state[params[0]]["step"] = 0
    _plain(opt, params, step, rng)


EVENTS = [
    _plain,
    _skip_some,
    _frozen,
    _toggle_requires_grad,
    _replace_data,
    _edit_params_list,
    _swap_param,
    _zeroed_grads,
    _change_options,
    _edit_step_count,
]


def _run(name, options, device, events, fast, flat=True, dtypes=None):
    rng = np.random.default_rng(7)
    dtypes = dtypes or ["float64"] * len(SHAPES)
    params = [
        gg.tensor(rng.standard_normal(s), dtype=d, device=device, requires_grad=True)
        for s, d in zip(SHAPES, dtypes)
    ]
    opt = getattr(optim, name)(params, flat=flat, **options)
    general_calls = []
    if flat:
        real = opt._step_flat_general
        opt._step_flat_general = lambda i, g: (general_calls.append(i), real(i, g))
        if not fast:
            opt._ready_banks = lambda index, group: None
    errors, layouts = [], []
    for step in range(STEPS):
        events(opt, params, step, rng)
        try:
            opt.step()
        except Exception as exc:  # compared between the paths
            errors.append((type(exc), str(exc)))
        if flat:  # which parameters each bank holds, and which are kept out
            number = {id(p): i for i, p in enumerate(params)}
            banks = [[number.get(id(q)) for q in b.params] for b in opt._banks[0]]
            layouts.append((banks, [number.get(id(q)) for q in opt._loose[0]]))
    values = [p.numpy().copy() for p in params]
    state = [
        {k: (v if k == "step" else gg.backend.get_backend(device).to_numpy(v).copy())}
        for p in params
        for k, v in opt.state[p].items()
    ]
    versions = [p._version[0] for p in params]
    return values, state, versions, (errors, layouts), general_calls


def _assert_same(a, b):
    (va, sa, xa, ea, _), (vb, sb, xb, eb, _) = a, b
    for x, y in zip(va, vb):
        np.testing.assert_array_equal(x, y)
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert xa == xb and ea == eb


@pytest.mark.parametrize("events", EVENTS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_fast_path_equals_general_path(name, options, events, device):
    fast = _run(name, options, device, events, fast=True)
    _assert_same(fast, _run(name, options, device, events, fast=False))
    if events in (_plain, _zeroed_grads):  # the common case never needs the general path
        assert fast[4] == []


@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_fast_path_with_two_banks(name, options, device):
    dtypes = ["float32", "float64", "float32", "float64"]
    fast = _run(name, options, device, _plain, fast=True, dtypes=dtypes)
    _assert_same(fast, _run(name, options, device, _plain, fast=False, dtypes=dtypes))
    assert fast[4] == []


class _Elsewhere:
    """A stand-in backend of another device (tests may run without a GPU)."""

    device = "elsewhere"


def _bad_grad(kind):
    def events(opt, params, step, rng):
        _plain(opt, params, step, rng)
        if step == 2:
            p = params[-1]  # in the second bank: the first one is updated before the error
            if kind == "shape":
                p._grad = gg.zeros(5, dtype=p.dtype, device=p.device)
            elif kind == "dtype":
                p._grad = gg.zeros(p.shape, dtype="float16", device=p.device)
            else:
                p._grad = gg.zeros(p.shape, dtype=p.dtype, device=p.device)
                p._grad._backend = _Elsewhere()  # a gradient on another device

    events.__name__ = kind
    return events


@pytest.mark.parametrize("kind", ["shape", "dtype", "device"])
@pytest.mark.parametrize("name,options", CASES[:2] + CASES[4:6], ids=IDS[:2] + IDS[4:6])
def test_unfit_gradient_raises_as_on_the_general_path(name, options, kind, device):
    dtypes = ["float32", "float32", "float64", "float64"]
    fast = _run(name, options, device, _bad_grad(kind), fast=True, dtypes=dtypes)
    assert len(fast[3][0]) == 1
    _assert_same(fast, _run(name, options, device, _bad_grad(kind), fast=False, dtypes=dtypes))


@pytest.mark.parametrize("events", [_plain, _skip_some, _frozen, _zeroed_grads],
                         ids=lambda f: f.__name__.strip("_"))  # fmt: skip
@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("name,options", CASES, ids=IDS)
def test_one_block_equals_many_blocks(name, options, flat, events, monkeypatch):
    """The backend's one-block update (a list, most banks) against blocks of 5 elements
    (the generator that gathers gradient pieces per block), on both paths."""
    whole = _run(name, options, "cpu", events, fast=True, flat=flat)
    monkeypatch.setattr(get_backend("cpu"), "optimizer_block", 5, raising=False)
    _assert_same(whole, _run(name, options, "cpu", events, fast=True, flat=flat))
