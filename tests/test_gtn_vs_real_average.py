"""gtn_vs_real.py's check of the GTN's moving average against the raw GTN: the same learners on both
teaching sets, paired differences computed right."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import pytest
import torch

from gtn_search.gtn.meta_train import MetaTrainer
from tests.test_gtn import random_data, tiny_config

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gtn_vs_real_average_bench", BENCH / "gtn_vs_real.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_differences_against_a_hand_computation(bench):
    got = bench.paired([0.9, 0.8, 0.7], [0.85, 0.8, 0.6])
    diffs = [5.0, 0.0, 10.0]
    assert got["mean_points"] == pytest.approx(5.0)
    assert got["se_points"] == pytest.approx(statistics.stdev(diffs) / 3 ** 0.5)


def test_moving_average_check_scores_both_teaching_sets_with_the_same_learners(bench):
    data = random_data()
    config = tiny_config(ema_decay=0.5, monitor_every=0)
    trainer = MetaTrainer(config, data)
    trainer.run(progress=False)
    device = torch.device("cpu")
    averaged_test, _ = bench.teaching_set_accuracies(config, data, trainer.teaching_set(), 4, "eval",
                                                     data.test_x, data.test_y, device)
    row = bench.moving_average_check(config, data, trainer, trainer.teaching_set(), averaged_test, 4, device)
    raw_val, _ = bench.teaching_set_accuracies(config, data, trainer.teaching_set(averaged=False), 4, "eval",
                                               data.val_x, data.val_y, device)
    avg_val, _ = bench.teaching_set_accuracies(config, data, trainer.teaching_set(), 4, "eval",
                                               data.val_x, data.val_y, device)
    assert row["ema_decay"] == 0.5
    assert row["val"]["raw_per_learner"] == raw_val and row["val"]["averaged_per_learner"] == avg_val
    assert row["test"]["averaged_per_learner"] == averaged_test
    expected = statistics.mean(100 * (a - b) for a, b in zip(avg_val, raw_val))
    assert row["val"]["averaged_minus_raw"]["mean_points"] == pytest.approx(expected)
    assert row["val"]["raw"][0] == pytest.approx(statistics.mean(raw_val))
