"""gg.Generator and the random functions: reproducibility, state, isolation, distributions."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F


def _draws(g: gg.Generator, device: str) -> list[np.ndarray]:
    """One draw of every kind that takes generator=, as NumPy arrays."""
    probs = gg.tensor([[0.1, 0.0, 0.5, 0.4], [1.0, 1.0, 1.0, 1.0]], device=device)
    return [
        gg.rand(3, generator=g, device=device).numpy(),
        gg.randn(2, 2, generator=g, device=device).numpy(),
        gg.randint(0, 10, (4,), generator=g, device=device).numpy(),
        gg.randperm(7, generator=g, device=device).numpy(),
        gg.multinomial(probs, 2, generator=g).numpy(),
        gg.multinomial(probs, 5, replacement=True, generator=g).numpy(),
        gg.bernoulli(gg.full((5,), 0.5, device=device), generator=g).numpy(),
        gg.normal(0.0, 2.0, (3,), generator=g, device=device).numpy(),
        F.dropout(gg.ones(8, device=device), 0.5, generator=g).numpy(),
    ]


def _assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# --- Generator ------------------------------------------------------------------------------


def test_same_seed_same_numbers(device):
    a = _draws(gg.Generator(device).manual_seed(42), device)
    b = _draws(gg.Generator(device).manual_seed(42), device)
    c = _draws(gg.Generator(device).manual_seed(43), device)
    _assert_same(a, b)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_unseeded_generators_agree_like_pytorch(device):
    # As torch.Generator(): a fixed default seed, so unseeded runs repeat.
    assert gg.Generator(device).initial_seed() == gg.Generator(device).initial_seed()
    _assert_same(_draws(gg.Generator(device), device), _draws(gg.Generator(device), device))


def test_manual_seed_returns_the_generator_and_sets_initial_seed():
    g = gg.Generator()
    assert g.manual_seed(2147483647) is g
    assert g.initial_seed() == 2147483647
    assert g.device == "cpu"
    assert "2147483647" in repr(g)


def test_seed_picks_a_fresh_seed_and_returns_it(device):
    g = gg.Generator(device)
    seeds = {g.seed() for _ in range(4)}
    assert len(seeds) == 4  # 63 random bits each: a repeat would be a bug
    seed = g.seed()
    assert g.initial_seed() == seed
    first = gg.rand(5, generator=g, device=device).numpy()
    g.manual_seed(seed)
    np.testing.assert_array_equal(gg.rand(5, generator=g, device=device).numpy(), first)


def test_state_round_trip(device):
    g = gg.Generator(device).manual_seed(7)
    gg.rand(10, generator=g, device=device)
    state = g.get_state()
    ahead = _draws(g, device)
    g.set_state(state)
    _assert_same(_draws(g, device), ahead)
    assert g.initial_seed() == 7


def test_state_survives_save_and_load(device, tmp_path):
    g = gg.Generator(device).manual_seed(3)
    gg.save({"rng": g.get_state()}, tmp_path / "g.npz")
    ahead = _draws(g, device)
    other = gg.Generator(device)
    other.set_state(gg.load(tmp_path / "g.npz")["rng"])
    _assert_same(_draws(other, device), ahead)
    assert other.initial_seed() == 3


def test_generator_is_isolated_from_the_global_stream(device):
    gg.manual_seed(0)
    plain = gg.rand(6, device=device).numpy()
    gg.manual_seed(0)
    g = gg.Generator(device).manual_seed(0)
    _draws(g, device)  # draws from g only
    np.testing.assert_array_equal(gg.rand(6, device=device).numpy(), plain)


def test_global_stream_does_not_move_a_generator(device):
    a = _draws(gg.Generator(device).manual_seed(5), device)
    g = gg.Generator(device).manual_seed(5)
    gg.rand(100, device=device)
    gg.manual_seed(9)
    _assert_same(_draws(g, device), a)


def test_without_generator_manual_seed_repeats_everything(device):
    def draws():
        gg.manual_seed(11)
        probs = gg.tensor([0.2, 0.3, 0.5], device=device)
        return [
            gg.randperm(9, device=device).numpy(),
            gg.multinomial(probs, 2).numpy(),
            gg.bernoulli(probs).numpy(),
            gg.normal(probs, 1.0).numpy(),
        ]

    _assert_same(draws(), draws())


def test_generator_use_from_threads_gives_every_number_once():
    # Many threads drawing from one generator must not corrupt it or duplicate numbers.
    g = gg.Generator().manual_seed(1)
    out: list[np.ndarray] = []

    def work():
        for _ in range(20):
            out.append(gg.randint(0, 2**62, (50,), generator=g).numpy())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    values = np.concatenate(out)
    assert values.size == 4000 and np.unique(values).size == 4000


# --- randperm, multinomial, bernoulli, normal ------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000])
def test_randperm_is_a_permutation(device, n):
    p = gg.randperm(n, device=device)
    assert p.dtype == np.int64 and p.device == device and p.shape == (n,)
    np.testing.assert_array_equal(np.sort(p.numpy()), np.arange(n))
    assert not p.requires_grad


def test_randperm_dtype_and_variety():
    assert gg.randperm(5, dtype=gg.int32).dtype == np.int32
    perms = {tuple(gg.randperm(4).numpy()) for _ in range(500)}
    assert len(perms) == 24  # all 4! orders turn up in 500 draws (one missing: p < 1e-7)


def _chi_square(counts: np.ndarray, expected: np.ndarray) -> float:
    keep = expected > 0
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum())


@pytest.mark.parametrize("replacement", [True, False])
def test_multinomial_frequencies_follow_the_weights(device, replacement):
    weights = np.array([1.0, 0.0, 2.0, 3.0, 4.0])
    g = gg.Generator(device).manual_seed(0)
    w = gg.tensor(np.tile(weights, (4000, 1)), device=device)
    first = gg.multinomial(w, 1, replacement=replacement, generator=g).numpy()[:, 0]
    counts = np.bincount(first, minlength=5)
    expected = weights / weights.sum() * first.size
    assert counts[1] == 0  # a zero weight is never drawn
    # 3 degrees of freedom: chi-square above 30 has probability below 1e-5.
    assert _chi_square(counts, expected) < 30


def test_multinomial_of_no_rows_is_empty(device):
    assert gg.multinomial(gg.zeros(0, 3, device=device), 2).shape == (0, 2)


def test_multinomial_with_replacement_many_samples_one_row(device):
    weights = np.array([0.5, 0.25, 0.0, 0.25])
    picks = gg.multinomial(gg.tensor(weights, device=device), 8000, replacement=True).numpy()
    assert picks.shape == (8000,) and picks.dtype == np.int64
    counts = np.bincount(picks, minlength=4)
    assert counts[2] == 0
    assert _chi_square(counts, weights * 8000) < 30


def test_multinomial_without_replacement_has_no_repeats(device):
    w = gg.rand(30, 12, device=device, dtype=gg.float64) + 0.01
    w = w * gg.tensor(np.arange(12) % 3 != 0, dtype=gg.float64, device=device)  # 8 non-zero
    picks = gg.multinomial(w, 8).numpy()
    assert picks.shape == (30, 8)
    for row in picks:
        assert len(set(row)) == 8
        assert all(i % 3 != 0 for i in row)


def test_multinomial_without_replacement_first_pick_favours_heavy_weights():
    # With weights (8, 1, 1), the first pick is category 0 with chance 0.8.
    g = gg.Generator().manual_seed(2)
    w = gg.tensor(np.tile([8.0, 1.0, 1.0], (5000, 1)))
    first = gg.multinomial(w, 3, generator=g).numpy()[:, 0]
    counts = np.bincount(first, minlength=3)
    assert _chi_square(counts, np.array([0.8, 0.1, 0.1]) * 5000) < 25


def test_multinomial_matches_torch_distribution():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    weights = [0.05, 0.6, 0.1, 0.25]
    ours = gg.multinomial(gg.tensor(weights), 20000, replacement=True).numpy()
    theirs = torch.multinomial(torch.tensor(weights), 20000, replacement=True).numpy()
    a, b = np.bincount(ours, minlength=4), np.bincount(theirs, minlength=4)
    # Two-sample chi-square on 3 degrees of freedom.
    assert _chi_square(a, (a + b) / 2) + _chi_square(b, (a + b) / 2) < 30


@pytest.mark.parametrize("dtype", [gg.float16, gg.float32, gg.float64])
def test_bernoulli(device, dtype):
    p = gg.tensor(np.tile([0.0, 0.3, 1.0], (30000, 1)), dtype=dtype, device=device)
    draws = gg.bernoulli(p)
    assert draws.dtype == dtype and draws.shape == p.shape and not draws.requires_grad
    values = draws.numpy().astype(np.float64)
    assert set(np.unique(values)) <= {0.0, 1.0}
    assert values[:, 0].sum() == 0 and values[:, 2].sum() == 30000  # p = 1 is always 1
    ones = values[:, 1].sum()
    p_mid = float(np.asarray(0.3, dtype=dtype))  # 0.3 as the dtype holds it
    expected = np.array([p_mid, 1 - p_mid]) * 30000
    assert _chi_square(np.array([ones, 30000 - ones]), expected) < 20


def test_normal_forms(device):
    gg.manual_seed(0)
    mean = gg.tensor(np.array([[-5.0], [5.0]]), device=device)
    std = gg.tensor(np.array([0.5, 1.0, 2.0]), dtype=gg.float64, device=device)
    assert gg.normal(mean, std).shape == (2, 3)
    assert gg.normal(mean, 2.0).shape == (2, 1)
    assert gg.normal(3.0, std).shape == (3,)
    x = gg.normal(3.0, 2.0, (20000,), device=device, dtype=gg.float64).numpy()
    assert abs(x.mean() - 3.0) < 0.1 and abs(x.std() - 2.0) < 0.1
    big = gg.normal(gg.full((20000,), -1.0, device=device), 0.5).numpy()
    assert abs(big.mean() + 1.0) < 0.05 and abs(big.std() - 0.5) < 0.05
    assert gg.normal(0.0, 0.0, (4,)).numpy().tolist() == [0.0] * 4


# --- errors -------------------------------------------------------------------------------

ZERO_ROW = gg.tensor([[1.0, 2.0], [0.0, 0.0]])

RANDOM_ERRORS = [
    (lambda: gg.multinomial([0.5, 0.5], 1), gg.ArgumentTypeError, "list"),
    (lambda: gg.multinomial(gg.ones(2, 2, 2), 1), gg.ShapeError, r"\(2, 2, 2\)"),
    (lambda: gg.multinomial(gg.tensor([1, 2]), 1), gg.DTypeError, "int64"),
    (lambda: gg.multinomial(gg.tensor([0.5, -0.5]), 1), gg.ArgumentError, "-0.5"),
    (lambda: gg.multinomial(gg.tensor([0.5, float("nan")]), 1), gg.ArgumentError, "nan"),
    (lambda: gg.multinomial(gg.tensor([0.5, float("inf")]), 1), gg.ArgumentError, "inf"),
    (lambda: gg.multinomial(ZERO_ROW, 1), gg.ArgumentError, "row 1 .* all zeros"),
    (lambda: gg.multinomial(gg.zeros(3, 0), 1), gg.ArgumentError, r"\(3, 0\)"),
    (lambda: gg.multinomial(gg.tensor([0.0, 1.0, 1.0]), 3), gg.ArgumentError, "only 2"),
    (lambda: gg.multinomial(gg.tensor([1.0]), 0), gg.ArgumentError, "num_samples"),
    (lambda: gg.multinomial(gg.tensor([1.0]), 1.5), gg.ArgumentTypeError, "1.5"),
    (lambda: gg.bernoulli([0.5]), gg.ArgumentTypeError, "list"),
    (lambda: gg.bernoulli(gg.tensor([0.5, 1.5])), gg.ArgumentError, "1.5"),
    (lambda: gg.bernoulli(gg.tensor([float("nan")])), gg.ArgumentError, "nan"),
    (lambda: gg.bernoulli(gg.tensor([1, 0])), gg.DTypeError, "int64"),
    (lambda: gg.randperm(-1), gg.ArgumentError, "-1"),
    (lambda: gg.randperm(2.5), gg.ArgumentTypeError, "2.5"),
    (lambda: gg.randperm(3, dtype=gg.float32), gg.DTypeError, "float32"),
    (lambda: gg.normal(0.0, -1.0, (2,)), gg.ArgumentError, "-1.0"),
    (lambda: gg.normal(gg.zeros(2), gg.tensor([1.0, -2.0])), gg.ArgumentError, "-2.0"),
    (lambda: gg.normal(0.0, 1.0), gg.ArgumentError, "size"),
    (lambda: gg.normal(gg.zeros(2), 1.0, (2,)), gg.ArgumentError, r"\(2,\)"),
    (lambda: gg.normal(gg.zeros(2), gg.ones(3)), gg.ShapeError, r"\(2,\).*\(3,\)"),
    (lambda: gg.normal(float("nan"), 1.0, (2,)), gg.ArgumentError, "nan"),
    (lambda: gg.normal(gg.tensor([1, 2]), 1.0), gg.DTypeError, "int64"),
    (lambda: gg.normal(0.0, 1.0, (2,), dtype=gg.int64), gg.DTypeError, "int64"),
    (lambda: gg.rand(2, generator="g"), gg.ArgumentTypeError, "str"),
    (lambda: gg.randn(2, generator=np.random.default_rng()), gg.ArgumentTypeError, "Generator"),
    (lambda: gg.Generator().manual_seed(-1), gg.ArgumentError, "-1"),
    (lambda: gg.Generator().manual_seed(2**64), gg.ArgumentError, str(2**64)),
    (lambda: gg.Generator().manual_seed(1.5), gg.ArgumentTypeError, "1.5"),
    (lambda: gg.Generator().set_state({"x": 1}), gg.ArgumentTypeError, "get_state"),
    (
        lambda: gg.Generator().set_state(
            dict(gg.Generator().get_state(), rng={"bit_generator": "MT19937"})
        ),
        gg.CheckpointError,
        "cpu",
    ),
    (
        lambda: gg.Generator().set_state(dict(gg.Generator().get_state(), device="cuda")),
        gg.DeviceError,
        "cuda",
    ),
    (lambda: gg.Generator("tpu"), gg.DeviceError, "tpu"),
    (lambda: gg.manual_seed(-3), gg.ArgumentError, "-3"),
]


@pytest.mark.parametrize(("call", "error", "message"), RANDOM_ERRORS)
def test_random_function_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_errors_leave_the_generator_untouched():
    g = gg.Generator().manual_seed(4)
    with pytest.raises(gg.ArgumentError):
        gg.multinomial(gg.tensor([0.0, 1.0]), 2, generator=g)
    with pytest.raises(gg.ArgumentError):
        g.manual_seed(-1)
    assert g.initial_seed() == 4
    np.testing.assert_array_equal(
        gg.rand(3, generator=g).numpy(), gg.rand(3, generator=gg.Generator().manual_seed(4)).numpy()
    )


def test_a_generator_of_another_device_is_refused_everywhere():
    # A cuda generator cannot be made without a GPU; one that only claims the device is
    # enough, since the device is checked before the generator is used.
    g = object.__new__(gg.Generator)
    g.device, g._rng = gg.device("cuda:1"), None
    probs = gg.tensor([1.0, 1.0])
    for call in (
        lambda: gg.rand(2, generator=g),
        lambda: gg.randn(2, generator=g),
        lambda: gg.randint(0, 3, (2,), generator=g),
        lambda: gg.randperm(3, generator=g),
        lambda: gg.multinomial(probs, 1, generator=g),
        lambda: gg.bernoulli(probs / 2, generator=g),
        lambda: gg.normal(0.0, 1.0, (2,), generator=g),
        lambda: F.dropout(gg.ones(4), 0.5, generator=g),
        lambda: gg.data.random_split(list(range(4)), [2, 2], generator=g),
        lambda: gg.data.DataLoader(list(range(4)), shuffle=True, generator=g),
    ):
        with pytest.raises(gg.DeviceError, match="cuda:1"):
            call()


@pytest.mark.gpu
def test_a_generator_of_another_device_is_refused():
    g = gg.Generator("cuda")
    for call in (
        lambda: gg.rand(2, generator=g),
        lambda: gg.randperm(3, generator=g),
        lambda: gg.multinomial(gg.tensor([1.0, 1.0]), 1, generator=g),
        lambda: F.dropout(gg.ones(4), 0.5, generator=g),
    ):
        with pytest.raises(gg.DeviceError, match="cuda"):
            call()
    with pytest.raises(gg.DeviceError, match="cpu"):
        gg.randn(2, device="cuda", generator=gg.Generator())


@pytest.mark.gpu
def test_cuda_global_state_round_trip():
    backend = gg.backend.get_backend("cuda")
    gg.manual_seed(0)
    state = backend.rng_state()
    ahead = gg.rand(5, device="cuda").numpy()
    backend.set_rng_state(state)
    np.testing.assert_array_equal(gg.rand(5, device="cuda").numpy(), ahead)
