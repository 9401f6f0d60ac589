"""gtn_search.pareto against independent computations: brute-force dominance and fronts, Deb's
crowding distance written out, an exact 2-D hypervolume sweep and 3-D inclusion-exclusion."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from gtn_search.pareto import (
    crowding_distances,
    dominates,
    hypervolume,
    non_dominated_ranks,
    pareto_front,
)


def brute_dominates(a, b) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def brute_ranks(points) -> list[int]:
    """Peel fronts: rank r = not dominated by any point still unranked after fronts 0..r-1."""
    left = set(range(len(points)))
    ranks = [-1] * len(points)
    rank = 0
    while left:
        front = {i for i in left if not any(brute_dominates(points[j], points[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def brute_crowding(points) -> list[float]:
    """Deb et al. 2002, written out per objective (no ties in the values, so the order is unique)."""
    n, m = len(points), len(points[0])
    dist = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for k in range(m):
        order = sorted(range(n), key=lambda i: points[i][k])
        lo, hi = points[order[0]][k], points[order[-1]][k]
        dist[order[0]] = dist[order[-1]] = math.inf
        for pos in range(1, n - 1):
            if not math.isinf(dist[order[pos]]):
                dist[order[pos]] += (points[order[pos + 1]][k] - points[order[pos - 1]][k]) / (hi - lo)
    return dist


def sweep_hypervolume_2d(points, ref) -> float:
    """Exact 2-D hypervolume (maximising): sweep x downwards, add each new step's rectangle."""
    inside = sorted((p for p in points if p[0] > ref[0] and p[1] > ref[1]), key=lambda p: -p[0])
    volume, top = 0.0, ref[1]
    for x, y in inside:
        if y > top:
            volume += (x - ref[0]) * (y - top)
            top = y
    return volume


def inclusion_exclusion_hypervolume(points, ref) -> float:
    """Exact hypervolume of a small set: the union of boxes [ref, p] by inclusion-exclusion."""
    inside = [p for p in points if all(v > r for v, r in zip(p, ref))]
    volume = 0.0
    for size in range(1, len(inside) + 1):
        for subset in itertools.combinations(inside, size):
            corner = np.min(np.array(subset), axis=0)
            volume += (-1) ** (size + 1) * float(np.prod(corner - np.asarray(ref)))
    return volume


def random_sets(dims: int, count: int = 30, seed: int = 0):
    """Random point sets, half of them on an integer grid (ties and duplicates)."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        n = int(rng.integers(1, 25))
        pts = rng.integers(0, 5, size=(n, dims)).astype(float) if k % 2 else rng.normal(size=(n, dims))
        yield pts


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_ranks_and_front_match_brute_force(dims):
    for pts in random_sets(dims, seed=dims):
        ranks = non_dominated_ranks(pts)
        assert ranks.tolist() == brute_ranks(pts.tolist())
        assert pareto_front(pts) == [i for i, r in enumerate(brute_ranks(pts.tolist())) if r == 0]
    assert non_dominated_ranks(np.zeros((0, 2))).tolist() == []
    assert pareto_front([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0], [0.0, 0.5]]) == [0, 1, 2]  # duplicates kept


def test_dominates_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a, b = rng.integers(0, 3, size=(2, 3)).tolist()
        assert dominates(a, b) == brute_dominates(a, b)
    assert not dominates([1, 1], [1, 1])


@pytest.mark.parametrize("dims", [2, 3])
def test_crowding_matches_deb(dims):
    rng = np.random.default_rng(dims)
    for _ in range(20):
        pts = rng.normal(size=(int(rng.integers(3, 15)), dims))
        assert np.allclose(crowding_distances(pts), brute_crowding(pts.tolist()))
    assert crowding_distances([[1.0, 2.0], [2.0, 1.0]]).tolist() == [math.inf, math.inf]
    # a straight front of 5 evenly spaced points: interior crowding 2 * (2 / 4) = 1.0
    line = [[float(i), float(4 - i)] for i in range(5)]
    assert crowding_distances(line).tolist() == [math.inf, 1.0, 1.0, 1.0, math.inf]


def test_hypervolume_2d_matches_an_exact_sweep():
    for pts in random_sets(2, count=40, seed=5):
        for ref in ([-1.0, -1.0], [0.0, 0.5], [-3.0, -3.0]):
            assert hypervolume(pts, ref) == pytest.approx(sweep_hypervolume_2d(pts.tolist(), ref), abs=1e-9)
    assert hypervolume([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]], [0.0, 0.0]) == pytest.approx(6.0)
    assert hypervolume([[1.0, 1.0]], [1.0, 0.0]) == 0.0  # on the reference: adds nothing
    assert hypervolume(np.zeros((0, 2)), [0.0, 0.0]) == 0.0


def test_hypervolume_3d_matches_inclusion_exclusion_and_monte_carlo():
    rng = np.random.default_rng(7)
    for _ in range(25):
        pts = rng.uniform(size=(int(rng.integers(1, 7)), 3))
        ref = [0.1, 0.0, 0.2]
        assert hypervolume(pts, ref) == pytest.approx(inclusion_exclusion_hypervolume(pts.tolist(), ref), abs=1e-9)
    # Monte Carlo on a larger set: within 4 standard errors
    pts = rng.uniform(size=(40, 3))
    samples = rng.uniform(size=(200_000, 3))
    covered = np.any(np.all(samples[:, None, :] <= pts[None, :, :], axis=2), axis=1)
    estimate, stderr = covered.mean(), covered.std() / math.sqrt(len(samples))
    assert abs(hypervolume(pts, [0.0, 0.0, 0.0]) - estimate) < 4 * stderr


def test_hypervolume_1d_and_bad_input():
    assert hypervolume([[0.5], [2.0]], [0.0]) == 2.0
    with pytest.raises(ValueError, match="reference point has 3 values"):
        hypervolume([[1.0, 2.0]], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="2-D array"):
        non_dominated_ranks([1.0, 2.0])
    assert hypervolume([[math.nan, 1.0], [1.0, 1.0]], [0.0, 0.0]) == 1.0  # non-finite rows are ignored
