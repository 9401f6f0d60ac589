"""Shared set-up for the paired A/B benchmarks of a learner code path (``pool_fold.py``,
``factorized_reduce.py``): the same random ``gtn-nas`` cells run through two versions of one code
path in one process, alternating which goes first per cell, so the machine's drift cancels in the
per-cell ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gtn_search.evaluators.common import candidate_blueprint, dataset_for, validation_split  # noqa: E402
from gtn_search.evaluators.gtn_evaluator import load_teaching_set  # noqa: E402
from gtn_search.host_memory import retain_freed_memory  # noqa: E402
from search_spaces.blueprint import Blueprint, blueprint_preset  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402

#: The Fashion-MNIST teaching set the GTN trials train on (the first comparison's).
TEACHING = "benchmarks/results/compare_fashion/teaching_set.pt"


@dataclass
class Workload:
    """What both paths run: GTN trials on ``tiny`` and final-training steps on ``final`` (mnist-search)."""

    space: Any
    teaching: Any
    data: Any
    tiny: Blueprint
    final: Blueprint
    val_x: torch.Tensor
    val_y: torch.Tensor
    batch_x: torch.Tensor
    batch_y: torch.Tensor


def workload(data_root: str, threads: int) -> Workload:
    """Set the thread count and load the teaching set, the data and both blueprints."""
    torch.set_num_threads(threads)
    retain_freed_memory()
    teaching = load_teaching_set(TEACHING)
    data = dataset_for(teaching.dataset, data_root)
    x, y = validation_split(data, 1000)
    return Workload(
        space=get_space("gtn-nas"),
        teaching=teaching,
        data=data,
        tiny=candidate_blueprint(blueprint_preset("mnist-tiny"), data, "learner", "batch_stats", True),
        final=blueprint_preset("mnist-search").model_copy(update={"num_classes": 10}),
        val_x=x,
        val_y=y,
        batch_x=data.train_x[:96],
        batch_y=data.train_y[:96],
    )


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds ``fn`` took, and what it returned."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def paired_rows(times: dict[str, dict[str, list[float]]], names: dict[str, str], old: str, new: str) -> dict[str, dict]:
    """Median seconds of each path and the paired per-cell speed-up ``old / new``; prints a table."""
    rows = {}
    print(f"{'work':<48} {old + ' (s)':>12} {new + ' (s)':>12} {'speed-up':>9}")
    for key, label in names.items():
        a, b = statistics.median(times[key][old]), statistics.median(times[key][new])
        ratios = [p / q for p, q in zip(times[key][old], times[key][new])]
        rows[key] = {"work": label, f"{old}_s": a, f"{new}_s": b, "speedup_median_paired": statistics.median(ratios),
                     "speedup_min": min(ratios), "speedup_max": max(ratios)}
        print(f"{label:<48} {a:>12.3f} {b:>12.3f} {statistics.median(ratios):>8.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f})")
    return rows
