"""Multi-objective strategies: mo-evolution and Nevergrad's multi-objective mode.

The toy problem (from ``benchmarks/mo_hypervolume.py``): over the gtn-nas choice vector, maximise
the agreement with hidden target A and with hidden target B (they share 4 of 30 choices, so the
objectives conflict). Figures measured here (300 trials, P=20, S=5, reference (0, 0)): hypervolume
mo-evolution 0.109 / 0.200 / 0.109 vs random 0.090 / 0.073 / 0.086 on seeds 0 / 1 / 2.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.mo_hypervolume import SPACE, toy_objectives
from gtn_search.errors import ConfigError
from gtn_search.pareto import hypervolume, pareto_front
from strategies import ParetoEvolution, Strategy, make_strategy
from strategies.nevergrad_adapter import FAILED_LOSS

TRIALS = 300
MO_OPTIONS = {"population": 20, "sample_size": 5}


def two_objective(name: str, seed: int = 0, budget: int = TRIALS, **options) -> Strategy:
    if name.startswith("ng:"):
        options["budget"] = budget
    elif name == "mo-evolution":
        options = {**MO_OPTIONS, **options}
    strategy = make_strategy(name, SPACE, seed, **options)
    strategy.set_objectives(2)
    return strategy


def outcome(number: int, arch) -> tuple[str, tuple[float, float] | None]:
    """Every 7th candidate fails, every 11th is infeasible, the rest get the toy objectives."""
    if number % 7 == 3:
        return "failed", None
    if number % 11 == 5:
        return "infeasible", None
    return "ok", toy_objectives(arch)


def run(s: Strategy, trials: int, in_flight: int = 1, restore_at: int | None = None, make=None,
        order_seed: int = 0) -> tuple[Strategy, list]:
    """Ask/tell with up to ``in_flight`` candidates out, told in a random order (asynchronous).

    With ``restore_at``, after that many results the state goes through JSON into ``make()``.
    """
    order = np.random.default_rng(order_seed)
    history, pending, asked = [], [], 0
    while len(history) < trials:
        while len(pending) < in_flight and asked < trials:
            pending.append(s.ask())
            asked += 1
        if restore_at is not None and len(history) == restore_at:
            state = json.loads(json.dumps(s.state_dict()))
            s = make()
            s.load_state_dict(state)
            assert sorted(s.pending) == sorted(c.number for c in pending)
            restore_at = None
        c = pending.pop(int(order.integers(len(pending))))
        kind, value = outcome(c.number, c.architecture)
        if kind == "infeasible":
            s.tell_infeasible(c.number, {"params": "1e9 > 1e6"})
        else:
            s.tell(c.number, value)
        history.append((c.number, c.architecture.hash, kind, value))
    return s, history


def front_of(history) -> list[tuple[float, float]]:
    values = [v for _, _, kind, v in history if kind == "ok"]
    return sorted({values[i] for i in pareto_front(values)})


def toy_hypervolume(name: str, seed: int) -> float:
    s = two_objective(name, seed)
    values = []
    for _ in range(TRIALS):
        c = s.ask()
        values.append(toy_objectives(c.architecture))
        s.tell(c.number, values[-1])
    return hypervolume(values, (0.0, 0.0))


def test_mo_evolution_beats_random_on_hypervolume_at_equal_trials():
    evo = [toy_hypervolume("mo-evolution", seed) for seed in range(3)]
    rnd = [toy_hypervolume("random", seed) for seed in range(3)]
    print(f"hypervolume at {TRIALS} trials, seeds 0-2: mo-evolution {evo}, random {rnd}")
    assert all(e > r for e, r in zip(evo, rnd)), (evo, rnd)
    assert np.mean(evo) > np.mean(rnd) + 0.03, (evo, rnd)


@pytest.mark.parametrize("name", ["mo-evolution", "ng:DE", "ng:NGOpt", "random"])
def test_resume_mid_run_gives_the_identical_front(name):
    uninterrupted, full = run(two_objective(name, seed=3), 90, in_flight=3)
    # restored into a strategy built with another seed: the saved state (RNG included) wins
    restored, resumed = run(two_objective(name, seed=3), 90, in_flight=3, restore_at=45,
                            make=lambda: two_objective(name, seed=999))
    assert resumed == full
    assert json.dumps(restored.state_dict()) == json.dumps(uninterrupted.state_dict())  # population, events
    assert front_of(resumed) == front_of(full) and len(front_of(full)) >= 2
    assert {kind for _, _, kind, _ in full} == {"ok", "failed", "infeasible"}


def test_mo_evolution_population_front_and_failures():
    s, history = run(two_objective("mo-evolution", population=10, sample_size=3), 60, in_flight=4)
    assert isinstance(s, ParetoEvolution) and len(s.population) == 10
    ok = {h for _, h, kind, _ in history if kind == "ok"}
    assert {m.architecture.hash for m in s.population} <= ok  # failures and infeasible never join
    assert all(len(m.values) == 2 for m in s.population)
    front = s.pareto_front()
    assert front and all(not any(all(x >= y for x, y in zip(o, v)) and o != v for _, o in front) for _, v in front)


def test_removal_worst_by_nsga2_order_ties_to_the_oldest():
    s = two_objective("mo-evolution", population=3, sample_size=2)
    values = [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0), (0.0, 0.0), (0.5, 0.5), (0.2, 0.2)]
    numbers = [s.ask().number for _ in values]
    for number, value in zip(numbers[:4], values[:4]):
        s.tell(number, value)
    # (0, 0) twice in the last front, both with infinite crowding: the older (birth 2) left
    assert [(m.values, m.birth) for m in s.population] == [((1.0, 0.0), 0), ((0.0, 1.0), 1), ((0.0, 0.0), 3)]
    s.tell(numbers[4], values[4])  # dominates (0, 0), which leaves
    s.tell(numbers[5], values[5])  # dominated by (0.5, 0.5): it leaves at once
    assert [m.values for m in s.population] == [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)]
    # a front of 4 on a line, population 3: the interior point with the smallest crowding leaves
    s = two_objective("mo-evolution", population=3, sample_size=2)
    for value in [(0.0, 1.0), (0.1, 0.9), (0.6, 0.4), (1.0, 0.0)]:
        s.tell(s.ask().number, value)
    assert [m.values for m in s.population] == [(0.0, 1.0), (0.6, 0.4), (1.0, 0.0)]


def test_removal_oldest_is_ageing():
    s = two_objective("mo-evolution", population=3, sample_size=2, removal="oldest")
    for value in [(1.0, 1.0), (0.0, 0.0), (0.1, 0.1), (0.2, 0.2)]:
        s.tell(s.ask().number, value)
    assert [m.values for m in s.population] == [(0.0, 0.0), (0.1, 0.1), (0.2, 0.2)]


def test_tournament_takes_the_lowest_rank_then_the_largest_crowding(monkeypatch):
    s = two_objective("mo-evolution", population=5, sample_size=5)
    values = [(0.0, 0.0), (0.0, 1.0), (0.3, 0.7), (0.4, 0.6), (1.0, 0.0)]
    for value in values:
        s.tell(s.ask().number, value)
    parents = []
    monkeypatch.setattr(type(SPACE), "mutate", lambda self, arch, rng, **kw: parents.append(arch) or arch)
    s.ask()
    # the whole population is sampled: rank 0 = all but (0, 0); largest crowding: the extremes
    # (0, 1) and (1, 0), infinite; the one drawn first wins
    assert parents[0] in {s.population[1].architecture, s.population[4].architecture}


def test_mo_evolution_with_one_objective_and_bad_options():
    s = make_strategy("mo-evolution", SPACE, 0, population=4, sample_size=2)
    for i in range(12):
        c = s.ask()
        s.tell(c.number, i / 12)
    assert sorted(m.values[0] for m in s.population) == [8 / 12, 9 / 12, 10 / 12, 11 / 12]
    with pytest.raises(ConfigError, match=r"^mo-evolution: 'removal' must be one of worst, oldest, got 'youngest'$"):
        make_strategy("mo-evolution", SPACE, removal="youngest")
    with pytest.raises(ConfigError, match="'sample_size' must be in"):
        make_strategy("mo-evolution", SPACE, population=5, sample_size=6)
    with pytest.raises(ConfigError, match="'population' must be an integer >= 2"):
        make_strategy("mo-evolution", SPACE, population=1)
    state = two_objective("mo-evolution").state_dict()
    with pytest.raises(ConfigError, match="saved state was made with removal 'worst'"):
        two_objective("mo-evolution", removal="oldest").load_state_dict(state)
    s = two_objective("mo-evolution")
    with pytest.raises(ConfigError, match="expected 2 objective values"):
        s.tell(s.ask().number, 0.5)


def test_single_objective_strategies_refuse_two_objectives():
    s = make_strategy("evolution", SPACE, 0, population=20, sample_size=5)
    with pytest.raises(ConfigError, match=r"strategy 'evolution' optimises a single objective but the search declares "
                                          r"2; add 'scalarization: .*mo-evolution"):
        s.set_objectives(2)


@pytest.mark.parametrize("name", ["ng:DE", "ng:NGOpt"])
def test_nevergrad_multi_objective_tells_losses_and_handles_failures(name):
    s = two_objective(name, budget=60)
    assert s._optimizer.num_objectives == 2  # known before the first ask
    first = [s.ask()]  # one at a time: a sequential optimizer asks only after the previous tell
    s.tell(first[0].number, None)  # a failure before any success: the reference point is not set by it
    first.append(s.ask())
    s.tell_infeasible(first[1].number, {"params": "2e6 > 1e6"})
    assert [e for e in s._events if e[0] == "tell"] == [["tell", first[0].number, FAILED_LOSS],
                                                         ["tell", first[1].number, FAILED_LOSS]]
    assert s._optimizer._hypervolume_pareto is None and s._optimizer.num_tell == 2
    early = json.loads(json.dumps(s.state_dict()))
    failed = {first[0].number, first[1].number}
    for i in range(40):
        c = s.ask()  # a sequential optimizer would block here had a failure not been told
        if i % 4 == 0:
            failed.add(c.number)
            s.tell(c.number, (math.nan, 0.5))  # NaN anywhere: failed
        else:
            value = toy_objectives(c.architecture)
            s.tell(c.number, value)
            assert s._events[-1] == ["tell", c.number, [-value[0], -value[1]]]
    pareto = s._optimizer._hypervolume_pareto
    assert np.all(np.isfinite(pareto._upper_bounds))  # the reference point (DE keeps no hypervolume)
    assert pareto._no_hypervolume or 0 < pareto.best_volume < math.inf
    told = {tuple(e[2]) for e in s._events if e[0] == "tell" and e[1] not in failed}
    front = sorted(tuple(float(v) for v in p.losses) for p in s._optimizer.pareto_front())
    assert front and all(p in told for p in front)  # only successes on Nevergrad's front
    # replays exactly, from the state after the early failures and from the final state
    for state in (early, json.loads(json.dumps(s.state_dict()))):
        r = two_objective(name, seed=7, budget=60)
        r.load_state_dict(state)
        assert r._events == state["own"]["events"] and r._optimizer.num_tell == s._optimizer.num_tell - 40 * (
            state is early)
    assert sorted(tuple(float(v) for v in p.losses) for p in r._optimizer.pareto_front()) == front
    assert r.ask().architecture == s.ask().architecture
