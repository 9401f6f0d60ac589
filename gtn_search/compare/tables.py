"""The comparison's tables as plain CSV files, for reuse without this package's store.

``ground_truth.csv`` holds one row per architecture: its hash, both cells as compact JSON (the
``normal``/``reduce`` mappings that ``CellSearchSpace.architecture_from_mapping`` reads back), the
test accuracy of every replicate and their mean, and what the training cost. ``proxy_scores.csv``
holds every proxy setting's score of every architecture (empty where it failed) beside its cost. A
new proxy can be scored against the ground truth from these two files alone, without retraining.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gtn_search.configio import write_text_atomic
from search_spaces.architecture import Architecture

GROUND_TRUTH_CSV = "ground_truth.csv"
PROXY_SCORES_CSV = "proxy_scores.csv"


def _cell(arch: Architecture, kind: str) -> str:
    return json.dumps(arch.to_mapping()[kind], separators=(",", ":"))


def _number(value: Any) -> Any:
    return "" if value is None else value


def ground_truth_rows(archs: Sequence[Architecture], truths: Sequence[dict[str, Any]],
                      replicates: int) -> list[dict[str, Any]]:
    """One row per architecture (see the module docstring); a failed training has no accuracies and its reason."""
    rows = []
    for arch, truth in zip(archs, truths):
        ok = truth.get("status") == "ok"
        accuracies = truth.get("replicate_accuracies", [truth.get("test_accuracy")] if ok else [])
        row: dict[str, Any] = {"hash": arch.hash, "normal": _cell(arch, "normal"), "reduce": _cell(arch, "reduce"),
                               "status": truth.get("status"),
                               "test_accuracy": _number(truth.get("test_accuracy") if ok else None)}
        for r in range(replicates):
            row[f"test_accuracy_{r + 1}"] = _number(accuracies[r] if ok and r < len(accuracies) else None)
        row.update({"params": _number(truth.get("params")), "forward_flops": _number(truth.get("forward_flops")),
                    "seconds": _number(truth.get("seconds")), "error": "" if ok else (truth.get("error") or "")})
        rows.append(row)
    return rows


def proxy_score_rows(archs: Sequence[Architecture], proxies: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (architecture, proxy setting): score (empty when it failed), FLOPs and seconds."""
    rows = []
    for setting, results in proxies.items():
        for arch, result in zip(archs, results):
            ok = result.get("status") == "ok"
            flops = float(result.get("train_flops", 0.0)) + float(result.get("eval_flops", 0.0))
            rows.append({"hash": arch.hash, "setting": setting, "status": result.get("status"),
                         "score": _number(result.get("score") if ok else None), "flops": flops,
                         "seconds": _number(result.get("wall_seconds"))})
    return rows


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_tables(out: Path, archs: Sequence[Architecture], truths: Sequence[dict[str, Any]], replicates: int,
                 proxies: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """Write ``ground_truth.csv`` and ``proxy_scores.csv`` into ``out`` (atomically); returns their paths."""
    gt = ground_truth_rows(archs, truths, replicates)
    gt_columns = ["hash", "normal", "reduce", "status", "test_accuracy",
                  *[f"test_accuracy_{r + 1}" for r in range(replicates)], "params", "forward_flops", "seconds", "error"]
    scores = proxy_score_rows(archs, proxies)
    paths = [out / GROUND_TRUTH_CSV, out / PROXY_SCORES_CSV]
    write_text_atomic(paths[0], _csv(gt, gt_columns))
    write_text_atomic(paths[1], _csv(scores, ["hash", "setting", "status", "score", "flops", "seconds"]))
    return paths
