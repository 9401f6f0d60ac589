"""The optuna: strategy: options checked, several objectives, infeasible tells, refusals, exact replay.

The shared suite (``tests/test_strategies.py``) runs TPE, NSGA-II, CMA-ES and random samplers on
one objective; here what is particular to Optuna.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("optuna")

import optuna

from gtn_search.errors import (
    ConfigError,
    MissingPackageError,
    NotResumableError,
    UnknownNameError,
)
from gtn_search.pareto import dominates, hypervolume, pareto_front
from search_spaces.presets import get_space
from strategies import Strategy, make_strategy, optuna_adapter

SPACE = get_space("gtn-nas")
#: two conflicting objectives: the fractions of choices equal to two hidden targets
TARGETS = [SPACE.encode(SPACE.sample(np.random.default_rng(k))) for k in (99, 100)]
#: samplers that optimise several objectives: options and trials for a short run (the genetic ones
#: need a few generations: with 100 trials NSGA-II's front is no better than random's)
MULTI = {"TPESampler": ({}, 100), "NSGAIISampler": ({"population_size": 20}, 300),
         "NSGAIIISampler": ({"population_size": 20}, 300)}


def two_objectives(arch) -> tuple[float, float]:
    v = SPACE.encode(arch)
    a, b = (sum(x == y for x, y in zip(v, t)) / len(v) for t in TARGETS)
    return a, b


def make(name: str, seed: int = 0, objectives: int = 1, **options) -> Strategy:
    s = make_strategy(name, SPACE, seed, **options)
    s.set_objectives(objectives)
    return s


def run(s: Strategy, trials: int, in_flight: int = 1, restore_at: int | None = None, remake=None):
    """Ask/tell on two objectives, ``in_flight`` outstanding; every 7th candidate infeasible, every
    11th failed. With ``restore_at``: the state goes through JSON into ``remake()`` after that many."""
    history, pending, asked = [], [], 0
    while len(history) < trials:
        while len(pending) < in_flight and asked < trials:
            pending.append(s.ask())
            asked += 1
        if restore_at is not None and len(history) == restore_at:
            state = json.loads(json.dumps(s.state_dict()))
            s = remake()
            s.load_state_dict(state)
            restore_at = None
        c = pending.pop(0)
        if c.number % 7 == 6:
            s.tell_infeasible(c.number, {"params": "3.1e6 > 2e6"})
            history.append((c.architecture.hash, None))
        elif c.number % 11 == 10:
            s.tell(c.number, None)
            history.append((c.architecture.hash, None))
        else:
            values = two_objectives(c.architecture)
            s.tell(c.number, values)
            history.append((c.architecture.hash, values))
    return history, s


def test_options_are_checked_with_one_line():
    with pytest.raises(ConfigError, match=r"^strategy optuna:TPESampler: unknown option 'n_startup' \(did you mean "
                                          r"'n_startup_trials'\?\); valid: .*n_ei_candidates.*encoding$"):
        make_strategy("optuna:TPESampler", SPACE, n_startup=5)
    with pytest.raises(ConfigError, match="option 'constraints_func' cannot be set"):
        make_strategy("optuna:NSGAIISampler", SPACE, constraints_func=lambda t: [0.0])
    with pytest.raises(ConfigError, match=r"^strategy optuna:NSGAIISampler: bad options \{'population_size': 1\}"):
        make_strategy("optuna:NSGAIISampler", SPACE, population_size=1)
    with pytest.raises(ConfigError, match=r"'encoding' must be 'categorical' or 'ordinal', got 'onehot'"):
        make_strategy("optuna:TPESampler", SPACE, encoding="onehot")
    with pytest.raises(UnknownNameError, match=r"unknown Optuna sampler 'TPESamplr' \(did you mean 'TPESampler'\?\); "
                                               r"known: .*NSGAIISampler"):
        make_strategy("optuna:TPESamplr", SPACE)
    with pytest.raises(UnknownNameError, match="unknown Optuna sampler 'BaseSampler'"):  # abstract
        make_strategy("optuna:BaseSampler", SPACE)
    for name in ("GridSampler", "PartialFixedSampler"):
        with pytest.raises(ConfigError, match=rf"^strategy optuna:{name} (needs its grid|wraps a base sampler)"):
            make_strategy(f"optuna:{name}", SPACE)
    assert "optuna:GridSampler" not in [f"optuna:{n}" for n in optuna_adapter.optuna_samplers()]
    # the registered name with a sampler option is the same strategy
    assert make_strategy("optuna", SPACE, sampler="RandomSampler").sampler_name == "RandomSampler"


def test_encodings_default_per_sampler_and_can_be_overridden():
    assert make_strategy("optuna:TPESampler", SPACE).encoding == "categorical"
    assert make_strategy("optuna:CmaEsSampler", SPACE).encoding == "ordinal"
    s = make_strategy("optuna:TPESampler", SPACE, encoding="ordinal")
    trial_params = s._distributions()
    assert all(isinstance(d, optuna.distributions.IntDistribution) for d in trial_params.values())
    assert len(trial_params) == sum(c > 1 for c in SPACE.cardinalities())


def test_single_objective_sampler_refuses_two_objectives():
    s = make_strategy("optuna:CmaEsSampler", SPACE)
    with pytest.raises(ConfigError, match=r"^strategy optuna:CmaEsSampler cannot optimise 2 objectives \(.*\); add "
                                          r"'scalarization: .* e\.g\. optuna:NSGAIISampler or optuna:TPESampler$"):
        s.set_objectives(2)


@functools.cache
def front_hypervolume(sampler: str, seed: int, trials: int) -> float:
    """The hypervolume (reference 0, 0) of the front found in ``trials`` trials, two in flight, with
    failures and infeasible ones; the front is checked to be a valid non-dominated set."""
    options = MULTI[sampler][0] if sampler in MULTI else {}
    history, s = run(make(f"optuna:{sampler}", seed, objectives=2, **options), trials, in_flight=2)
    points = np.array([v for _, v in history if v is not None])
    front = points[pareto_front(points)]
    assert not any(dominates(p, q) for p in front for q in front)
    assert all(any(np.all(f >= p) for f in front) for p in points)
    states = [t.state for t in s._current_study().trials]
    assert states.count(optuna.trial.TrialState.FAIL) == len(history) - len(points)
    return hypervolume(front, [0.0, 0.0])


@pytest.mark.parametrize("name", sorted(MULTI))
def test_several_objectives_beat_random_hypervolume(name):
    """Over 3 seeds, the front's hypervolume is on average above Optuna's random sampler's."""
    trials = MULTI[name][1]
    ours = [front_hypervolume(name, seed, trials) for seed in range(3)]
    rnd = [front_hypervolume("RandomSampler", seed, trials) for seed in range(3)]
    assert np.mean(ours) > np.mean(rnd), (ours, rnd)


@pytest.mark.parametrize("name", ["TPESampler", "NSGAIISampler"])
def test_two_objectives_replay_equals_the_uninterrupted_run(name):
    options = MULTI[name][0]
    full, _ = run(make(f"optuna:{name}", 3, objectives=2, **options), 60, in_flight=3)
    resumed, s = run(make(f"optuna:{name}", 3, objectives=2, **options), 60, in_flight=3, restore_at=30,
                     remake=lambda: make(f"optuna:{name}", 999, objectives=2, **options))
    assert resumed == full
    assert len(s._current_study().trials) == 60


def test_infeasible_and_failed_candidates_are_failed_trials():
    s = make("optuna:TPESampler", objectives=2)
    a, b, c = s.ask(), s.ask(), s.ask()
    s.tell_infeasible(a.number, {"params": "3.1e6 > 2e6"})
    s.tell(b.number, None)
    s.tell(c.number, (0.5, -0.25))
    trials = s._current_study().trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2 + [optuna.trial.TrialState.COMPLETE]
    assert trials[2].values == [0.5, -0.25]
    assert s.state_dict()["own"]["events"][-3:] == [["tell", 0, None], ["tell", 1, None], ["tell", 2, [0.5, -0.25]]]


def test_missing_optuna_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    with pytest.raises(MissingPackageError, match=r"^strategy optuna:TPESampler needs the package 'optuna': "
                                                  r"pip install 'gtn-search\[optuna\]'$"):
        make_strategy("optuna:TPESampler", SPACE)


class UnseededSampler(optuna.samplers.RandomSampler):
    """A sampler that ignores its seed (draws fresh OS entropy)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed=None)


class NeedsPackageSampler(optuna.samplers.RandomSampler):
    """A sampler whose optional package is missing (as CmaEsSampler without cmaes)."""

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        raise ModuleNotFoundError("No module named 'fancy_opt'", name="fancy_opt")


def test_samplers_that_do_not_replay_or_lack_a_package_are_refused_when_built(monkeypatch):
    for cls in (UnseededSampler, NeedsPackageSampler):
        monkeypatch.setattr(optuna.samplers, cls.__name__, cls, raising=False)
    monkeypatch.setattr(optuna.samplers, "__all__", [*optuna.samplers.__all__, "UnseededSampler",
                                                     "NeedsPackageSampler"])
    with pytest.raises(NotResumableError, match=r"^strategy optuna:UnseededSampler cannot be resumed: .* choose "
                                                r"another sampler, e\.g\. optuna:TPESampler$"):
        make_strategy("optuna:UnseededSampler", SPACE)
    with pytest.raises(MissingPackageError, match=r"^strategy optuna:NeedsPackageSampler needs the package "
                                                  r"'fancy_opt' \(pip install fancy_opt\); or choose "
                                                  r"another sampler"):
        make_strategy("optuna:NeedsPackageSampler", SPACE)


def test_a_replay_that_differs_is_refused():
    s = make("optuna:TPESampler")
    for _ in range(3):
        c = s.ask()
        s.tell(c.number, 0.5)
    state = json.loads(json.dumps(s.state_dict()))
    state["own"]["events"][2][2][0] += 1  # not what the sampler proposes
    with pytest.raises(NotResumableError, match="replaying ask 1 gave a different candidate"):
        make("optuna:TPESampler").load_state_dict(state)
    state["own"]["sampler"] = "RandomSampler"
    with pytest.raises(ConfigError, match="saved state is for Optuna sampler RandomSampler"):
        make("optuna:TPESampler").load_state_dict(state)


def test_optuna_logs_and_experimental_warnings_are_silenced_and_settings_kept():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("optuna")
    handler, level = Keep(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = make_strategy("optuna:BruteForceSampler", SPACE)  # an experimental class
            for _ in range(3):
                c = s.ask()
                s.tell(c.number, 0.5)
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if r.levelno < logging.WARNING], [r.getMessage() for r in records]
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    assert logger.level == level


def test_cli_lists_the_samplers(capsys):
    from gtn_search.cli import main

    assert main(["strategies", "--optuna"]) == 0
    names = capsys.readouterr().out.split()
    assert {"optuna:TPESampler", "optuna:NSGAIISampler", "optuna:CmaEsSampler"} <= set(names)
    assert "optuna:GridSampler" not in names
    assert main(["strategies"]) == 0
    assert "optuna:<Sampler>" in capsys.readouterr().out


@pytest.mark.parametrize("name, mo", [("TPESampler", False), ("NSGAIISampler", True)], ids=["TPE", "NSGA-II-mo"])
def test_a_search_with_an_optuna_sampler_resumes_as_if_uninterrupted(tmp_path, name, mo):
    """A study extended from 12 to 24 trials (snapshot, replay) equals one run to 24 at once; with
    NSGA-II on two objectives and a size constraint that makes some candidates infeasible."""
    from gtn_search.runner import SearchRunner
    from gtn_search.search_config import SearchConfig
    from gtn_search.storage import Study

    options = {"population_size": 6} if name == "NSGAIISampler" else {"n_startup_trials": 5}
    extra = {"objectives": {"score": "max", "params": "min"}, "constraints": {"params": "<= 2500"}} if mo else {}

    def search(study: str, trials: int) -> list[tuple[str, str]]:
        config = SearchConfig.model_validate({
            "study": str(tmp_path / f"{study}.db"), "space": "gtn-nas", "blueprint": "mnist-tiny",
            "strategy": {"name": f"optuna:{name}", "options": options}, "evaluator": {"name": "synthetic"},
            "budget": {"trials": trials}, "seed": 0, "workers": 1, **extra,
        })
        SearchRunner(config, progress=False, snapshot_every=5).run()
        db = Study(config.study)
        try:
            return [(t.hash, t.status) for t in db.trials()]
        finally:
            db.close()

    search("extended", 12)
    extended = search("extended", 24)
    assert extended == search("whole", 24)
    if mo:
        assert {"ok", "infeasible"} <= {status for _, status in extended}, extended
