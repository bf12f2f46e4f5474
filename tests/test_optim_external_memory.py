"""Parameters whose memory belongs to someone else (from_numpy, views) stay linked to it
through optimizer steps, and step exactly like ordinary parameters."""

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import optim

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda ps: optim.Adam(ps, lr=0.01),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
}


def _grads(rng, shape, steps):
    return [rng.standard_normal(shape).astype("float32") for _ in range(steps)]


def _run(opt, params, grads_per_param):
    for step in range(len(grads_per_param[0])):
        for p, grads in zip(params, grads_per_param):
            p.grad = gg.tensor(grads[step])
        opt.step()


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_from_numpy_parameter_keeps_sharing_memory(make, rng):
    start = rng.standard_normal((4, 4)).astype("float32")
    other_start = rng.standard_normal(3).astype("float32")
    grads = [_grads(rng, (4, 4), 3), _grads(rng, (3,), 3)]

    array = start.copy()
    shared = gg.from_numpy(array).requires_grad_()
    mixed = gg.tensor(other_start, requires_grad=True)  # an ordinary one in the same group
    _run(make([shared, mixed]), [shared, mixed], grads)

    plain = gg.tensor(start, requires_grad=True)
    plain_other = gg.tensor(other_start, requires_grad=True)
    _run(make([plain, plain_other]), [plain, plain_other], grads)

    np.testing.assert_array_equal(array, shared.numpy())  # the link holds
    assert not np.array_equal(array, start)  # and the steps did change it
    np.testing.assert_array_equal(shared.numpy(), plain.numpy())
    np.testing.assert_array_equal(mixed.numpy(), plain_other.numpy())


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_negative_stride_parameter_steps_in_place(make, rng):
    start = rng.standard_normal(6).astype("float32")
    grads = [_grads(rng, (6,), 3)]
    base = start.copy()
    reversed_view = gg.from_numpy(base[::-1]).requires_grad_()
    _run(make([reversed_view]), [reversed_view], grads)

    plain = gg.tensor(start[::-1].copy(), requires_grad=True)
    _run(make([plain]), [plain], grads)

    np.testing.assert_array_equal(base[::-1], reversed_view.numpy())
    np.testing.assert_array_equal(reversed_view.numpy(), plain.numpy())


def test_per_parameter_path_keeps_sharing_memory_too(rng):
    array = rng.standard_normal(5).astype("float32")
    p = gg.from_numpy(array).requires_grad_()
    _run(optim.Adam([p], lr=0.1, flat=False), [p], [_grads(rng, (5,), 2)])
    np.testing.assert_array_equal(array, p.numpy())


def test_big_endian_array_is_refused_up_front_naming_its_byte_order():
    big = np.arange(6, dtype=">f4")
    with pytest.raises(gg.DTypeError, match=r"'>f4'.*byte order"):
        gg.from_numpy(big)


def test_big_endian_array_is_copied_into_native_order_by_tensor():
    big = np.arange(6, dtype=">f4")
    p = gg.tensor(big, requires_grad=True)
    assert p.dtype == np.dtype("float32")
    opt = optim.SGD([p], lr=1.0)
    p.grad = gg.ones(6)
    opt.step()
    np.testing.assert_array_equal(p.numpy(), np.arange(6, dtype="f4") - 1)


def test_zero_grad_in_place_reaches_parameters_outside_the_bank():
    p = gg.from_numpy(np.ones(3, "f4")).requires_grad_()
    q = gg.ones(3, requires_grad=True)
    opt = optim.SGD([p, q], lr=0.1)
    p.grad, q.grad = gg.ones(3), gg.ones(3)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), np.zeros(3, "f4"))
    np.testing.assert_array_equal(q.grad.numpy(), np.zeros(3, "f4"))


def test_a_second_optimizer_over_the_same_parameters_still_packs_them():
    # Their arrays are views of the first optimizer's bank, which gpugrad may move.
    params = [gg.ones(3, requires_grad=True), gg.ones(2, requires_grad=True)]
    optim.SGD(params, lr=0.1)
    second = optim.SGD(params, lr=0.1)
    assert [len(bank.params) for bank in second._banks[0]] == [2]
    assert second._loose[0] == []


def test_from_dlpack_parameter_keeps_sharing_memory():
    torch = pytest.importorskip("torch")
    theirs = torch.ones(4)
    p = gg.from_dlpack(theirs).requires_grad_()
    opt = optim.Adam([p], lr=0.1)
    p.grad = gg.ones(4)
    opt.step()
    np.testing.assert_array_equal(theirs.numpy(), p.numpy())
    assert not np.array_equal(p.numpy(), np.ones(4, "f4"))
