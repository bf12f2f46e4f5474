"""Small synthetic datasets for tests and demos: two moons, spirals, and linear regression.

Each returns NumPy arrays `(X float32, y)` and repeats exactly for the same `seed`; with
`seed=None` the seed is drawn from gpugrad's random state (so `gg.manual_seed` fixes it).
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError
from .dataset import make_generator


def _check_count(name: str, value: int, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ArgumentError(f"{name} must be an integer >= {least}, got {value!r}")
    if value > 2**31:  # a data set, not an allocation NumPy would refuse with a bare error
        raise ArgumentError(f"{name} must be at most 2**31, got {value!r}")
    return int(value)


def _check_noise(noise: float) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)):
        raise ArgumentError(f"noise must be a finite number >= 0, got {noise!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ArgumentError(f"noise must be a finite number >= 0, got {noise!r}")
    return float(noise)


def _shuffled(
    X: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(X.shape[0])
    return X[order], y[order]


def make_moons(
    n_samples: int = 100, noise: float = 0.0, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles in the plane: X (n, 2) float32, y (n,) int64 in {0, 1}.

    Class 0 is the upper arc of the unit circle, class 1 the lower arc shifted by (1, -0.5),
    with Gaussian noise of standard deviation `noise` on each coordinate; samples are shuffled.
    """
    n = _check_count("n_samples", n_samples, 2)
    noise = _check_noise(noise)
    rng = make_generator(seed)
    n_upper = n // 2
    n_lower = n - n_upper
    a = np.linspace(0.0, np.pi, n_upper)
    b = np.linspace(0.0, np.pi, n_lower)
    upper = np.stack([np.cos(a), np.sin(a)], axis=1)
    lower = np.stack([1.0 - np.cos(b), 0.5 - np.sin(b)], axis=1)
    X = np.concatenate([upper, lower])
    y = np.concatenate([np.zeros(n_upper, np.int64), np.ones(n_lower, np.int64)])
    if noise:
        X = X + rng.normal(0.0, noise, size=X.shape)
    X, y = _shuffled(X, y, rng)
    return X.astype(np.float32), y


def make_spirals(
    n_samples: int = 300,
    n_classes: int = 2,
    noise: float = 0.1,
    seed: int | None = None,
    turns: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """`n_classes` interleaved spiral arms around the origin: X (n, 2) float32, y (n,) int64.

    Arm c starts near the centre at angle 2πc/K and winds `turns` times outwards to radius 1.
    Gaussian noise is added to the angle, with standard deviation `noise` times the angular
    gap between neighbouring arms (2π/K); samples are spread over the classes as evenly as
    possible and shuffled.
    """
    n = _check_count("n_samples", n_samples, 1)
    k = _check_count("n_classes", n_classes, 1)
    noise = _check_noise(noise)
    if not np.isfinite(turns) or turns <= 0:
        raise ValueError(f"turns must be a finite number > 0, got {turns!r}")
    rng = make_generator(seed)
    sizes = [n // k + (c < n % k) for c in range(k)]
    points, labels = [], []
    for c, m in enumerate(sizes):
        radius = np.linspace(0.05, 1.0, m)
        angle = 2 * np.pi * (c / k + turns * radius)
        angle = angle + rng.normal(0.0, noise, size=m) * 2 * np.pi / k
        points.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(m, c, dtype=np.int64))
    X, y = _shuffled(np.concatenate(points), np.concatenate(labels), rng)
    return X.astype(np.float32), y


def make_regression(
    n_samples: int = 100,
    n_features: int = 10,
    noise: float = 0.1,
    seed: int | None = None,
    bias: float = 0.0,
    return_coef: bool = False,
) -> tuple[np.ndarray, ...]:
    """A linear regression problem: X (n, d) standard normal, y = X·w + bias + noise·ε.

    w has standard-normal entries; X and y are float32. With `return_coef=True` the result
    is `(X, y, w)` (w float32, shape (d,)), handy to check a fitted model.
    """
    n = _check_count("n_samples", n_samples, 1)
    d = _check_count("n_features", n_features, 1)
    noise = _check_noise(noise)
    rng = make_generator(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = X @ w + float(bias) + noise * rng.standard_normal(n)
    X, y, w = X.astype(np.float32), y.astype(np.float32), w.astype(np.float32)
    return (X, y, w) if return_coef else (X, y)
