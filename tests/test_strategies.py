"""One suite for every registered strategy (as nevergrad tests every optimizer), plus specifics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gtn_search.errors import ConfigError, UnknownNameError
from gtn_search.registry import STRATEGIES
from search_spaces.presets import get_space
from strategies import RegularizedEvolution, Strategy, make_strategy

SPACE = get_space("gtn-nas")
TARGET = SPACE.encode(SPACE.sample(np.random.default_rng(99)))
BUDGET = 300
#: every registered strategy, plus the Nevergrad optimizers and Optuna samplers the issues name
NAMES = sorted(set(STRATEGIES.names()) - {"nevergrad", "optuna"}) + [
    "ng:NGOpt", "ng:TwoPointsDE", "ng:DiscreteOnePlusOne", "ng:PortfolioDiscreteOnePlusOne",
    "optuna:TPESampler", "optuna:NSGAIISampler", "optuna:CmaEsSampler", "optuna:RandomSampler",
    "toy-hill-climb",  # the throw-away plugin package, discovered through its entry point
]
PLUGIN = "toy-hill-climb"
OPTIONS = {"evolution": {"population": 20, "sample_size": 5}, "mo-evolution": {"population": 20, "sample_size": 5}}


def objective(arch) -> float:
    """Fraction of choices equal to a hidden target architecture's (1.0 at the optimum)."""
    v = SPACE.encode(arch)
    return sum(a == b for a, b in zip(v, TARGET)) / len(v)


def chance() -> tuple[float, float]:
    """Mean and standard deviation of the objective for a uniformly random architecture."""
    rng = np.random.default_rng(0)
    scores = [objective(SPACE.sample(rng)) for _ in range(2000)]
    return float(np.mean(scores)), float(np.std(scores))


def strategy(name: str, seed: int = 0) -> Strategy:
    options = dict(OPTIONS.get(name, {}))
    if name.startswith("ng:"):
        options["budget"] = BUDGET
    return make_strategy(name, SPACE, seed, **options)


def run(s: Strategy, trials: int, in_flight: int = 1, restore_at: int | None = None,
        make=None) -> list[tuple[str, float]]:
    """Ask/tell loop with up to ``in_flight`` candidates outstanding (told oldest first).

    With ``restore_at``, after that many results the strategy's state goes through JSON into a
    fresh strategy from ``make()``, which carries on (including the candidates in flight).
    """
    history, pending, asked = [], [], 0
    while len(history) < trials:
        while len(pending) < in_flight and asked < trials:
            pending.append(s.ask())
            asked += 1
        if restore_at is not None and len(history) == restore_at:
            state = json.loads(json.dumps(s.state_dict()))  # must be plain JSON
            s = make()
            s.load_state_dict(state)
            assert sorted(s.pending) == sorted(c.number for c in pending)
            restore_at = None
        c = pending.pop(0)
        score = objective(c.architecture)
        s.tell(c.number, score)
        history.append((c.architecture.hash, score))
    return history


@pytest.fixture(autouse=True)
def _plugin_when_needed(request):
    """Install the throw-away plugin package before the tests that use it."""
    if "name" in request.fixturenames and request.getfixturevalue("name") == PLUGIN:
        request.getfixturevalue("toy_plugin")


@pytest.mark.parametrize("name", NAMES)
def test_finds_better_than_chance(name):
    mean, std = chance()
    best = max(score for _, score in run(strategy(name), BUDGET))
    assert best >= mean + 2.5 * std, (name, best, mean, std)


@pytest.mark.parametrize("name", NAMES)
def test_reproducible_with_a_seed(name):
    a, b = run(strategy(name, seed=5), 60), run(strategy(name, seed=5), 60)
    assert a == b
    assert run(strategy(name, seed=6), 60) != a


@pytest.mark.parametrize("name", NAMES)
def test_survives_save_and_restore_mid_run(name):
    full = run(strategy(name, seed=3), 80, in_flight=3)
    # restored into a strategy built with another seed: the saved state (RNG included) wins
    resumed = run(strategy(name, seed=3), 80, in_flight=3, restore_at=40, make=lambda: strategy(name, seed=999))
    assert resumed == full


@pytest.mark.parametrize("name", NAMES)
def test_failed_candidates_do_not_break_the_strategy(name):
    s = strategy(name)
    for i in range(30):
        c = s.ask()
        s.tell(c.number, None if i % 3 == 0 else (math.nan if i % 3 == 1 else objective(c.architecture)))
    assert s.num_told == 30
    with pytest.raises(ConfigError, match="was not asked or was already told"):
        s.tell(0, 0.5)


def test_regularized_evolution_ages_out_the_oldest_and_beats_random():
    s = RegularizedEvolution(SPACE, seed=0, population=10, sample_size=3)
    history = run(s, 40)
    assert len(s.population) == 10
    assert [a.hash for a, _ in s.population] == [h for h, _ in history[-10:]]  # the 10 youngest remain
    evo = [max(score for _, score in run(RegularizedEvolution(SPACE, seed=k, population=20, sample_size=5), BUDGET))
           for k in range(3)]
    rnd = [max(score for _, score in run(make_strategy("random", SPACE, seed=k), BUDGET)) for k in range(3)]
    assert np.mean(evo) > np.mean(rnd) + 0.1, (evo, rnd)


def test_evolution_first_population_is_random_then_mutations():
    s = RegularizedEvolution(SPACE, seed=0, population=5, sample_size=2)
    first = run(s, 5)
    child = s.ask().architecture
    parents = {h for h, _ in first}
    # one mutation away from a member: it changes one of the two cells (the vector encoding of
    # the canonical form can differ in many places, as a rewired node may be renumbered)
    cells_changed = min(sum(child.cell(k) != p.cell(k) for k in ("normal", "reduce"))
                        for p in (a for a, _ in s.population))
    assert child.hash not in parents and cells_changed == 1


def test_bad_strategy_names_and_options():
    with pytest.raises(UnknownNameError, match="did you mean 'evolution'"):
        make_strategy("evolutoin", SPACE)
    with pytest.raises(UnknownNameError, match="did you mean 'NGOpt'"):
        make_strategy("ng:NGOp", SPACE)
    with pytest.raises(ConfigError, match="sample_size"):
        make_strategy("evolution", SPACE, population=5, sample_size=9)
    with pytest.raises(ConfigError, match="bad options"):
        make_strategy("random", SPACE, temperature=3)
    with pytest.raises(ConfigError, match="encoding"):
        make_strategy("ng:NGOpt", SPACE, encoding="onehot")


def test_categorical_encoding_and_descriptions():
    s = make_strategy("ng:TwoPointsDE", SPACE, seed=0, encoding="categorical", budget=BUDGET)
    mean, std = chance()
    assert max(score for _, score in run(s, BUDGET)) >= mean + 2.5 * std
    assert all(e.description for e in STRATEGIES.entries())


def test_plugin_is_listed_by_the_cli(toy_plugin, capsys):
    from gtn_search.cli import main

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert PLUGIN in out and "entry point toy_gtn_plugin:HillClimb" in out and "Hill climbing" in out


@pytest.mark.parametrize("name, option, hint", [("ng:NGOpt", "optimizer", "it is in the name"),
                                                ("optuna:TPESampler", "sampler", "it is in the name")])
def test_options_the_name_sets_are_refused_in_strategy_options(name, option, hint):
    with pytest.raises(ConfigError, match=hint):
        make_strategy(name, SPACE, 0, **{option: 1})


@pytest.mark.parametrize("option", ["seed", "space"])
def test_options_the_search_sets_are_refused_in_strategy_options(tmp_path, option):
    from gtn_search.runner import SearchRunner
    from gtn_search.search_config import SearchConfig

    cfg = SearchConfig.model_validate({"study": str(tmp_path / "s.db"), "evaluator": "synthetic",
                                       "strategy": {"name": "evolution", "options": {option: 3}}})
    with pytest.raises(ConfigError, match=f"option '{option}' cannot be set in the strategy's options; the search"):
        SearchRunner(cfg, progress=False)
