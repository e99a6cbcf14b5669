"""Zipf-distributed ids: a few popular books get most reads, as in real catalogs."""

from __future__ import annotations

import bisect
import itertools
import random

__all__ = ["ZipfSampler"]


class ZipfSampler:
    """Samples ranks 1..n with P(k) ∝ 1/k^s, by inverse CDF lookup.

    Rank k maps to a shuffled id so popularity is not correlated with id order
    (which would let index locality flatter the database)."""

    __slots__ = ("_cdf", "_ids", "_random")

    def __init__(self, ids: list[int], exponent: float = 1.1, seed: int = 7) -> None:
        if not ids:
            raise ValueError("need at least one id to sample from")
        if exponent <= 0:
            raise ValueError("the Zipf exponent must be positive")
        weights = [1.0 / (rank**exponent) for rank in range(1, len(ids) + 1)]
        total = sum(weights)
        self._cdf = [w / total for w in itertools.accumulate(weights)]
        self._random = random.Random(seed)
        self._ids = list(ids)
        self._random.shuffle(self._ids)

    def sample(self) -> int:
        index = bisect.bisect_left(self._cdf, self._random.random())
        return self._ids[min(index, len(self._ids) - 1)]

    def top_share(self, top: int) -> float:
        """Probability mass of the `top` most popular ids."""
        return float(self._cdf[min(top, len(self._cdf)) - 1])
