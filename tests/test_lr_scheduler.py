"""Learning-rate schedules: hand formulas, torch.optim.lr_scheduler (when installed), and
step / get_last_lr / state_dict semantics."""

from __future__ import annotations

import math

import pytest

import gpugrad as gg
from gpugrad import optim
from gpugrad.errors import CheckpointError
from gpugrad.optim import lr_scheduler as sched

N = 25


def make_opt(cls=optim.SGD, lrs=(0.1, 0.02), **options):
    groups = [{"params": [gg.ones(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return cls(groups, **options)


def trace(scheduler, n=N):
    """The lrs of every group at steps 0..n-1 (step 0: right after construction)."""
    out = [scheduler.get_last_lr()]
    for _ in range(n - 1):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr())
        assert out[-1] == [g["lr"] for g in scheduler.optimizer.param_groups]
    return out


SCHEDULES = {
    "StepLR": (
        lambda o: sched.StepLR(o, step_size=4, gamma=0.5),
        lambda base, t: base * 0.5 ** (t // 4),
    ),
    "MultiStepLR": (
        lambda o: sched.MultiStepLR(o, milestones=[10, 3, 10], gamma=0.1),
        lambda base, t: base * 0.1 ** ((t >= 3) + 2 * (t >= 10)),
    ),
    "ExponentialLR": (
        lambda o: sched.ExponentialLR(o, gamma=0.9),
        lambda base, t: base * 0.9**t,
    ),
    "CosineAnnealingLR": (
        lambda o: sched.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
        lambda base, t: 0.001 + (base - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2,
    ),
    "LinearLR": (
        lambda o: sched.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=8),
        lambda base, t: base * (0.1 + 0.9 * min(t, 8) / 8),
    ),
}


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_matches_hand_formula(kind):
    make, formula = SCHEDULES[kind]
    opt = make_opt()
    lrs = trace(make(opt))
    for t, row in enumerate(lrs):
        for base, lr in zip((0.1, 0.02), row):
            assert lr == pytest.approx(formula(base, t), rel=1e-12, abs=1e-15)


def _torch_trace(kind, torch, n=N):
    tparams = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    topt = torch.optim.SGD(
        [{"params": [tparams[0]], "lr": 0.1}, {"params": [tparams[1]], "lr": 0.02}], lr=0.1
    )
    make = {
        "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5),
        "MultiStepLR": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [10, 3, 10], 0.1),
        "ExponentialLR": lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
        "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
            o, T_max=10, eta_min=0.001
        ),
        "LinearLR": lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, total_iters=8),
    }[kind]
    s = make(topt)
    out = [s.get_last_lr()]
    for _ in range(n - 1):
        topt.step()
        s.step()
        out.append(s.get_last_lr())
    return out


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_matches_torch(kind):
    torch = pytest.importorskip("torch")
    ours = trace(SCHEDULES[kind][0](make_opt()))
    theirs = _torch_trace(kind, torch)
    for a, b in zip(ours, theirs):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-15)


ONE_CYCLE = [
    {"max_lr": 1.0, "total_steps": 20},
    {"max_lr": [1.0, 0.5], "epochs": 4, "steps_per_epoch": 5, "anneal_strategy": "linear"},
    {"max_lr": 0.8, "total_steps": 20, "three_phase": True, "pct_start": 0.25},
    {"max_lr": 0.8, "total_steps": 20, "cycle_momentum": False, "div_factor": 10.0},
]


def _one_cycle_trace(opt, s, momentum_key):
    out = []
    for t in range(20):
        if t:
            opt.step()
            s.step()
        group = opt.param_groups[0]
        m = group["betas"][0] if momentum_key == "betas" else group["momentum"]
        out.append((*s.get_last_lr(), m))
    return out


@pytest.mark.parametrize("options", ONE_CYCLE)
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_one_cycle_matches_torch(options, opt_name):
    torch = pytest.importorskip("torch")
    key = "betas" if opt_name == "Adam" else "momentum"
    opt = make_opt(getattr(optim, opt_name))
    ours = _one_cycle_trace(opt, sched.OneCycleLR(opt, **options), key)
    tp = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    topt = getattr(torch.optim, opt_name)(
        [{"params": [tp[0]], "lr": 0.1}, {"params": [tp[1]], "lr": 0.02}]
    )
    theirs = _one_cycle_trace(topt, torch.optim.lr_scheduler.OneCycleLR(topt, **options), key)
    for a, b in zip(ours, theirs):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-15)


def test_one_cycle_by_hand():
    opt = make_opt(lrs=(0.1,), momentum=0.9)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=11, pct_start=0.5, div_factor=4.0,
                         final_div_factor=10.0)  # fmt: skip
    lrs = [s.get_last_lr()[0]]
    momenta = [opt.param_groups[0]["momentum"]]
    for _ in range(10):
        s.step()
        lrs.append(s.get_last_lr()[0])
        momenta.append(opt.param_groups[0]["momentum"])
    # Up from 0.25 to 1.0 over steps 0..4.5, then down to 0.025 at step 10, by half-cosines.
    assert lrs[0] == pytest.approx(0.25) and momenta[0] == pytest.approx(0.95)
    up = 0.5 * 11 - 1
    for t in range(11):
        if t <= up:
            pct, lo, hi = t / up, 0.25, 1.0
            expected = hi + (lo - hi) / 2 * (math.cos(math.pi * pct) + 1)
        else:
            pct = (t - up) / (10 - up)
            expected = 0.025 + (1.0 - 0.025) / 2 * (math.cos(math.pi * pct) + 1)
        assert lrs[t] == pytest.approx(expected, rel=1e-12)
    assert lrs[10] == pytest.approx(0.025) and momenta[10] == pytest.approx(0.95)
    assert min(momenta) == pytest.approx(0.85, abs=0.01)
    with pytest.raises(ValueError, match="total_steps"):
        s.step()
        s.step()


def test_one_cycle_needs_momentum_or_steps():
    opt = make_opt(optim.Adagrad)
    with pytest.raises(ValueError, match="momentum"):
        sched.OneCycleLR(opt, max_lr=1.0, total_steps=5)
    with pytest.raises(ValueError):
        sched.OneCycleLR(make_opt(), max_lr=1.0)
    with pytest.raises(ValueError):
        sched.OneCycleLR(make_opt(), max_lr=[1.0], total_steps=5)  # two groups


def test_warmup_then_cosine_with_sequential_lr():
    opt = make_opt(lrs=(1.0,))
    warm = sched.LinearLR(opt, start_factor=0.25, total_iters=4)
    cos = sched.CosineAnnealingLR(opt, T_max=6)
    s = sched.SequentialLR(opt, [warm, cos], milestones=[4])
    lrs = [lr[0] for lr in trace(s, 11)]
    expected = [0.25, 0.4375, 0.625, 0.8125] + [
        (1 + math.cos(math.pi * t / 6)) / 2 for t in range(7)
    ]
    assert lrs == pytest.approx(expected, rel=1e-12)
    torch = pytest.importorskip("torch")
    tp = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=1.0)
    tl = torch.optim.lr_scheduler
    ts = tl.SequentialLR(
        topt, [tl.LinearLR(topt, 0.25, total_iters=4), tl.CosineAnnealingLR(topt, 6)], [4]
    )
    theirs = [ts.get_last_lr()[0]]
    for _ in range(10):
        topt.step()
        ts.step()
        theirs.append(ts.get_last_lr()[0])
    assert lrs == pytest.approx(theirs, rel=1e-9, abs=1e-15)


def _one_cycle(o):
    return sched.OneCycleLR(o, max_lr=1.0, total_steps=30)


def _sequential(o):
    return sched.SequentialLR(
        o, [sched.LinearLR(o, total_iters=3), sched.ExponentialLR(o, 0.9)], milestones=[3]
    )


@pytest.mark.parametrize(
    "make",
    [SCHEDULES[k][0] for k in SCHEDULES] + [_one_cycle, _sequential],
    ids=[*SCHEDULES, "OneCycleLR", "SequentialLR"],
)
def test_state_dict_round_trip_continues(make):
    opt = make_opt(momentum=0.9)
    full = trace(make(opt), 20)
    opt = make_opt(momentum=0.9)
    s = make(opt)
    trace(s, 8)
    saved_opt, saved_s = opt.state_dict(), s.state_dict()
    fresh_opt = make_opt(momentum=0.9)
    fresh = make(fresh_opt)
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved_s)
    rest = trace(fresh, 13)
    assert rest == full[7:]  # same state, same arithmetic: exactly the same numbers


def test_mismatched_state_dict_raises():
    s = sched.StepLR(make_opt(), step_size=3)
    with pytest.raises(CheckpointError):
        s.load_state_dict(sched.ExponentialLR(make_opt(), 0.9).state_dict())
    with pytest.raises(CheckpointError):
        s.load_state_dict({"last_epoch": 3})


def test_resume_needs_initial_lr_and_explicit_epoch_jumps():
    with pytest.raises(gg.ArgumentError, match="initial_lr"):
        sched.StepLR(make_opt(), step_size=2, last_epoch=5)
    opt = make_opt()
    s = sched.ExponentialLR(opt, gamma=0.5)
    s.step(3)
    assert s.get_last_lr() == pytest.approx([0.1 / 8, 0.02 / 8])
    assert s.last_epoch == 3
    resumed = sched.ExponentialLR(opt, gamma=0.5, last_epoch=3)
    assert resumed.last_epoch == 4 and resumed.base_lrs == [0.1, 0.02]


def test_scheduled_lr_reaches_the_update():
    p = gg.ones(1, dtype="float64", requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    s = sched.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = gg.ones(1, dtype="float64")
        opt.step()
        s.step()
    assert p.item() == pytest.approx(1 - (1 + 0.5 + 0.25))
