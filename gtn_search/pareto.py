"""Pareto dominance, NSGA-II ranks and crowding, and the hypervolume, on maximised values.

Every function here takes *fitness vectors*: one row per candidate, one column per objective,
every column oriented so that larger is better (a minimised objective such as parameters enters
as its negative; :meth:`gtn_search.objectives.ObjectiveSet.fitness` does that). That is the
orientation strategies are told (see :mod:`strategies.base`).

* :func:`non_dominated_ranks` - the fast non-dominated sort of NSGA-II (Deb et al. 2002): rank 0
  is the Pareto front, rank 1 the front of the rest, and so on;
* :func:`crowding_distances` - NSGA-II's crowding distance within one front (boundary points get
  infinity), which prefers candidates in sparse regions of the front;
* :func:`pareto_front` - the indices of the non-dominated rows;
* :func:`hypervolume` - the volume dominated by the points and bounded by a reference point, by
  Nevergrad's dimension-sweep implementation (Fonseca et al. 2006).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Points = Sequence[Sequence[float]] | np.ndarray


def _matrix(points: Points) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.size == 0:
        return arr.reshape(0, arr.shape[1] if arr.ndim == 2 else 0)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array of fitness vectors (one row per candidate), got shape {arr.shape}")
    return arr


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True if ``a`` is at least as good as ``b`` everywhere and better somewhere (maximising)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(x >= y) and np.any(x > y))


def non_dominated_ranks(points: Points) -> np.ndarray:
    """NSGA-II's fast non-dominated sort: the front number of each row (0 = non-dominated)."""
    arr = _matrix(points)
    n = len(arr)
    ranks = np.full(n, -1, dtype=int)
    if n == 0:
        return ranks
    ge = np.all(arr[:, None, :] >= arr[None, :, :], axis=2)
    gt = np.any(arr[:, None, :] > arr[None, :, :], axis=2)
    dom = ge & gt  # dom[i, j]: i dominates j
    dominated_by = dom.sum(axis=0)  # how many rows dominate each row
    front = np.flatnonzero(dominated_by == 0)
    rank = 0
    while front.size:
        ranks[front] = rank
        dominated_by = dominated_by - dom[front].sum(axis=0)
        dominated_by[ranks >= 0] = -1
        front = np.flatnonzero(dominated_by == 0)
        rank += 1
    return ranks


def pareto_front(points: Points) -> list[int]:
    """Indices of the non-dominated rows (duplicates of a front point are all kept), in input order."""
    return [int(i) for i in np.flatnonzero(non_dominated_ranks(points) == 0)]


def crowding_distances(points: Points) -> np.ndarray:
    """NSGA-II crowding distance of each row within the set given (usually one front).

    Per objective, rows are sorted; the two extremes get infinity and every other row adds the
    gap between its neighbours divided by the objective's range. Larger = more isolated.
    """
    arr = _matrix(points)
    n = len(arr)
    dist = np.zeros(n)
    if n <= 2:
        dist[:] = np.inf
        return dist
    for m in range(arr.shape[1]):
        order = np.argsort(arr[:, m], kind="stable")
        values = arr[order, m]
        span = values[-1] - values[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (values[2:] - values[:-2]) / span
    return dist


def hypervolume(points: Points, reference: Sequence[float]) -> float:
    """Volume dominated by ``points`` and bounded below by ``reference`` (maximised values).

    Points that do not strictly exceed the reference in every objective add nothing. Computed by
    Nevergrad's :class:`~nevergrad.optimization.multiobjective.HypervolumeIndicator` on the
    negated values (it minimises).
    """
    from nevergrad.optimization.multiobjective import HypervolumeIndicator

    ref = np.asarray(reference, dtype=float)
    arr = _matrix(points)
    if arr.size and arr.shape[1] != ref.size:
        raise ValueError(f"reference point has {ref.size} values, the points {arr.shape[1]}")
    inside = [row for row in arr if np.all(np.isfinite(row)) and np.all(row > ref)]
    if not inside:
        return 0.0
    if ref.size == 1:
        return float(max(row[0] for row in inside) - ref[0])
    indicator = HypervolumeIndicator(-ref)
    return float(indicator.compute([-row for row in inside]))
