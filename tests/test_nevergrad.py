"""The ng: strategy over Nevergrad's registry: every optimizer runs and resumes, or is refused up front.

The whole registry is swept by ``benchmarks/nevergrad_registry.py``; here a representative subset
(the optimizers issue 12 names, the common ones, one needing an optional package).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import yaml

from benchmarks.nevergrad_registry import check_optimizer
from gtn_search.errors import MissingPackageError, NotResumableError, UnknownNameError
from search_spaces.presets import get_space
from strategies import make_strategy

SPACE = get_space("gtn-nas")
#: replayed wrongly before (unseeded global numpy draws, cma's clock seed in a background thread)
RESUMABLE = ["CMAL2", "CMALL", "BigLognormalDiscreteOnePlusOne", "Carola8", "PolyLN", "NGOpt", "OnePlusOne", "DE",
             "PSO", "TwoPointsDE", "RandomSearch"]
#: an optimizer that needs an optional package, and the package
OPTIONAL = ("PymooNSGA2", "pymoo")


@pytest.mark.parametrize("name", RESUMABLE)
def test_runs_and_resumes_exactly(name):
    result = check_optimizer(name, asks=10)
    assert result["category"] == "ok", result


def test_optimizer_needing_a_missing_package_is_refused_when_built():
    name, package = OPTIONAL
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    result = check_optimizer(name, asks=10)
    assert result["category"] == "missing-package" and result["package"] == package, result
    assert f"ng:{name} needs the package '{package}' (pip install {package})" in result["message"]


class _FakeOptimizers:
    """Optimizer factories for the registry: one drawing fresh OS entropy, one lacking its package."""

    @staticmethod
    def unseeded(parametrization, budget=None, num_workers=1):  # type: ignore[no-untyped-def]
        import nevergrad as ng

        class Unseeded(ng.optimizers.base.Optimizer):
            def _internal_ask_candidate(self):  # type: ignore[no-untyped-def]
                data = np.random.default_rng().normal(size=self.dimension)
                return self.parametrization.spawn_child().set_standardized_data(data)

        return Unseeded(parametrization, budget, num_workers)

    @staticmethod
    def needs_a_package(parametrization, budget=None, num_workers=1):  # type: ignore[no-untyped-def]
        import nevergrad as ng

        class NeedsPackage(ng.optimizers.base.Optimizer):
            def _internal_ask_candidate(self):  # type: ignore[no-untyped-def]
                raise ModuleNotFoundError("No module named 'fancy_opt'", name="fancy_opt")

        return NeedsPackage(parametrization, budget, num_workers)


def test_non_replayable_and_missing_package_optimizers_are_refused_with_one_line(monkeypatch):
    import nevergrad as ng

    monkeypatch.setitem(ng.optimizers.registry.data, "TestUnseeded", _FakeOptimizers.unseeded)
    monkeypatch.setitem(ng.optimizers.registry.data, "TestNeedsPackage", _FakeOptimizers.needs_a_package)
    with pytest.raises(NotResumableError, match=r"^strategy ng:TestUnseeded cannot be resumed: .* choose another "
                                                r"optimizer, e\.g\. ng:NGOpt$"):
        make_strategy("ng:TestUnseeded", SPACE, budget=50)
    with pytest.raises(MissingPackageError, match=r"^strategy ng:TestNeedsPackage needs the package 'fancy_opt' "
                                                  r"\(pip install fancy_opt\)"):
        make_strategy("ng:TestNeedsPackage", SPACE, budget=50)


def test_the_callers_global_numpy_state_is_left_alone():
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    s = make_strategy("ng:DE", SPACE, seed=0, budget=40)  # DE draws from numpy's global state
    for _ in range(10):
        c = s.ask()
        s.tell(c.number, 0.5)
    assert np.array_equal(np.random.rand(3), expected)


def test_unknown_name_is_one_short_line_with_a_suggestion(capsys):
    from gtn_search.cli import main

    with pytest.raises(UnknownNameError) as info:
        make_strategy("ng:CMAL22", SPACE)
    message = str(info.value)
    assert "did you mean 'CMAL2'" in message and "gtn-search strategies --nevergrad" in message
    assert len(message) < 200, message
    assert main(["strategies", "--nevergrad"]) == 0
    listed = capsys.readouterr().out.split()
    assert "ng:CMAL2" in listed and len(listed) > 500


def test_cli_refuses_a_missing_package_optimizer_before_the_study_starts(tmp_path, capsys):
    from gtn_search.cli import main

    name, package = OPTIONAL
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    study = tmp_path / "study.db"
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({"study": str(study), "strategy": f"ng:{name}",
                                      "evaluator": "synthetic", "budget": {"trials": 5}}))
    assert main(["search", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {config}: strategy ng:{name} needs the package '{package}' (pip install {package}); " \
                  f"or choose another optimizer, e.g. ng:NGOpt\n"
    assert not study.exists() and list(tmp_path.iterdir()) == [config]



def test_meta_models_are_refused_where_numpy_breaks_them():
    """Nevergrad's meta-models call float() on a 1-element array, a TypeError from numpy 2.4 on."""
    result = check_optimizer("Neural1MetaModel", asks=10)  # failed at ask 28 of a study on gtn-nas
    try:
        float(np.zeros(1))  # type: ignore[arg-type]
    except TypeError:
        assert result["category"] == "refused" and "its meta-model calls float()" in result["message"], result
    else:
        assert result["category"] == "ok", result


def test_a_study_extended_with_a_larger_budget_resumes():
    """The runner passes budget.trials as the optimizer's budget; --trials 80 later must not break replay."""
    def make(budget: int):  # type: ignore[no-untyped-def]
        return make_strategy("ng:CMARS", SPACE, seed=0, budget=budget)  # RandomSearch for a tenth, then CMA

    full, s = make(40), make(40)
    for _ in range(10):
        for strategy in (full, s):
            c = strategy.ask()
            strategy.tell(c.number, int(c.architecture.hash[:6], 16) / 2**24)
    extended = make(80)
    extended.load_state_dict(s.state_dict())
    assert extended.ask().architecture == full.ask().architecture


def test_a_slow_optimizer_is_announced(monkeypatch, caplog):
    from strategies import nevergrad_adapter

    monkeypatch.setattr(nevergrad_adapter, "SLOW_ASK_SECONDS", 0.0)  # BO and BOSplit take 0.4 s and more
    make_strategy("ng:OnePlusOne", SPACE, budget=77)
    assert "strategy ng:OnePlusOne is slow" in caplog.text
