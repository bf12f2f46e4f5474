"""random_split: a dataset cut into non-overlapping random Subsets of given sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _args
from ..errors import ArgumentError, ArgumentTypeError
from ..generator import Generator
from ..sampling import randperm
from .dataset import Subset, check_dataset


def _split_lengths(n: int, lengths: Sequence[int | float]) -> list[int]:
    """Sample counts from `lengths`: counts summing to n, or fractions summing to 1.

    Fractions follow PyTorch's rule: floor(n * fraction) each, then the samples left over go
    one at a time to the parts in order, round-robin.
    """
    if isinstance(lengths, np.ndarray):
        lengths = lengths.tolist()
    if not isinstance(lengths, (list, tuple)) or not lengths:
        raise ArgumentTypeError(
            f"random_split: lengths must be a non-empty list of counts or fractions, "
            f"got {lengths!r}"
        )
    if not any(isinstance(x, (float, np.floating)) for x in lengths):
        counts = [
            _args.size("random_split", f"lengths[{i}]", x, minimum=0) for i, x in enumerate(lengths)
        ]
        if sum(counts) != n:
            raise ArgumentError(
                f"random_split: lengths {list(lengths)} sum to {sum(counts)}, but the dataset "
                f"has {n} samples"
            )
        return counts
    fractions = []
    for i, x in enumerate(lengths):
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise ArgumentTypeError(f"random_split: lengths[{i}] must be a number, got {x!r}")
        if not 0.0 <= float(x) <= 1.0:
            raise ArgumentError(
                f"random_split: lengths {list(lengths)} are fractions (some are floats), "
                f"so each must be in [0, 1]; lengths[{i}] is {x!r}"
            )
        fractions.append(float(x))
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ArgumentError(
            f"random_split: fractions {list(lengths)} sum to {sum(fractions)}, not 1"
        )
    counts = [math.floor(n * f) for f in fractions]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


def random_split(
    dataset: Any, lengths: Sequence[int | float], generator: Generator | None = None
) -> list[Subset]:
    """Split `dataset` into non-overlapping random Subsets of the given `lengths` (sample
    counts summing to len(dataset), or fractions summing to 1). The shuffle comes from
    `generator` (a cpu `gg.Generator`) or the global stream."""
    counts = _split_lengths(len(check_dataset("random_split", dataset)), lengths)
    order = randperm(len(dataset), generator=generator).numpy()
    ends = np.cumsum(counts)
    return [Subset(dataset, order[end - count : end]) for count, end in zip(counts, ends)]
