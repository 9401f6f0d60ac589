"""The recipe screen compares variants on the same fresh learners: paired differences, best first."""
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module():
    sys.path.insert(0, str(BENCH))  # the screen reuses gtn_vs_real.py's learners and meta-training
    try:
        spec = importlib.util.spec_from_file_location("mnist_recipe_bench", BENCH / "mnist_recipe.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def _row(name, accs, learners=("conv16-32-fc64", "conv9-47-fc56", "conv16-32-fc64")):
    return {"variant": name, "overrides": {}, "iterations": 10, "meta_seconds": 1.0,
            "seconds_per_iteration": 0.1, "val_accuracy_mean": statistics.mean(accs),
            "val_accuracy_std": statistics.stdev(accs), "per_learner": list(accs), "learners": list(learners)}


def _write(out: Path, row):
    (out / row["variant"]).mkdir(parents=True)
    (out / row["variant"] / "screen.json").write_text(json.dumps(row))


def test_summary_pairs_each_variant_with_the_baseline_learner_by_learner(tmp_path, capsys):
    summary = _module().summary
    _write(tmp_path, _row("baseline", [0.960, 0.950, 0.970]))
    _write(tmp_path, _row("soft_labels", [0.962, 0.953, 0.971]))        # +0.2, +0.3, +0.1 points
    _write(tmp_path, _row("other_learners", [0.99, 0.99, 0.99], learners=("a", "b", "c")))
    rows = summary(tmp_path)
    assert [r["variant"] for r in rows] == ["other_learners", "soft_labels", "baseline"]
    soft = rows[1]
    assert soft["paired_delta_points"] == pytest.approx(0.2)
    assert soft["paired_delta_se"] == pytest.approx(0.1 / 3 ** 0.5)
    assert "paired_delta_points" not in rows[0]  # other learners: no paired difference is claimed
    assert json.loads((tmp_path / "results.json").read_text())[1]["paired_delta_points"] == pytest.approx(0.2)
    assert "+0.20 +- 0.06 pts" in capsys.readouterr().out
    assert "paired_vs_soft_labels_points" not in soft  # a variant is not paired with itself
    base = rows[2]
    assert base["paired_vs_soft_labels_points"] == pytest.approx(-0.2)  # the second reference column


def test_every_screened_variant_is_a_valid_preset_override():
    module = _module()
    from gtn_search.gtn.config import load_config

    for name, overrides in module.VARIANTS.items():
        config = load_config("mnist-cpu", overrides)
        for key, value in overrides.items():
            got = getattr(config, key)
            assert (list(got) if isinstance(got, tuple) else got) == value, name
