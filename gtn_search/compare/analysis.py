"""Rank correlation of proxy scores with the ground truth, bootstrap intervals and the speed-up factor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Correlation:
    """Spearman and Kendall rank correlation, each with a bootstrap 95% interval."""

    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]


def _rho(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan, math.nan
    return float(stats.spearmanr(x, y).statistic), float(stats.kendalltau(x, y).statistic)


def correlation(proxy: list[float], truth: list[float], bootstrap: int = 1000, seed: int = 0) -> Correlation:
    """Rank correlation of ``proxy`` with ``truth`` (paired lists), with percentile bootstrap CIs."""
    x, y = np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float)
    s, k = _rho(x, y)
    ci_s = ci_k = (math.nan, math.nan)
    if bootstrap and len(x) >= 3:
        rng = np.random.default_rng(seed)
        draws = np.array([_rho(x[i], y[i]) for i in rng.integers(0, len(x), (bootstrap, len(x)))])
        ok = ~np.isnan(draws).any(axis=1)
        if ok.sum() >= 10:
            lo, hi = np.percentile(draws[ok], [2.5, 97.5], axis=0)
            ci_s, ci_k = (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))
    return Correlation(len(x), s, ci_s, k, ci_k)


def top_fraction(proxy: list[float], truth: list[float], fraction: float = 0.5) -> tuple[list[float], list[float]]:
    """The pairs whose proxy score is in the top ``fraction`` (the paper's "top 50%")."""
    n = max(3, math.ceil(len(proxy) * fraction))
    order = np.argsort(-np.asarray(proxy, dtype=float), kind="stable")[:n]
    return [proxy[i] for i in order], [truth[i] for i in order]


def cost_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """The cost at which a correlation-vs-cost curve first reaches ``target`` (log-linear interpolation).

    ``curve`` is ``[(cost, correlation), ...]``; returns None when it never reaches the target.
    """
    points = sorted((c, r) for c, r in curve if c > 0 and not math.isnan(r))
    for i, (c, r) in enumerate(points):
        if r >= target:
            if i == 0:
                return c
            c0, r0 = points[i - 1]
            frac = (target - r0) / (r - r0) if r > r0 else 1.0
            return math.exp(math.log(c0) + frac * (math.log(c) - math.log(c0)))
    return None


@dataclass
class NoiseCeiling:
    """How well the ground truth ranks architectures against itself, from independent replicates.

    ``pairwise`` is the Spearman correlation between two replicates (with a bootstrap interval; the
    mean over all pairs when there are more than two); ``of_mean`` is the Spearman-Brown estimate of
    the reliability of the mean of all ``replicates``: ``R r / (1 + (R - 1) r)``.
    """

    replicates: int
    n: int
    pairwise: float
    pairwise_ci: tuple[float, float]
    of_mean: float


def noise_ceiling(accuracies: list[list[float]], bootstrap: int = 1000, seed: int = 0) -> NoiseCeiling:
    """The noise ceiling from per-architecture replicate accuracies (``accuracies[i][r]``)."""
    table = np.asarray(accuracies, dtype=float)
    n, reps = table.shape if table.ndim == 2 else (len(table), 1)
    if reps < 2:
        return NoiseCeiling(reps, n, math.nan, (math.nan, math.nan), math.nan)
    first = correlation(list(table[:, 0]), list(table[:, 1]), bootstrap, seed)
    pairs = [_rho(table[:, a], table[:, b])[0] for a in range(reps) for b in range(a + 1, reps)]
    r = float(np.mean(pairs)) if reps > 2 else first.spearman
    ci = first.spearman_ci if reps == 2 else (math.nan, math.nan)
    return NoiseCeiling(reps, n, r, ci, reps * r / (1 + (reps - 1) * r) if not math.isnan(r) else math.nan)
