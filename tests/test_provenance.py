"""Every score records the device it was computed on; studies and comparisons that mix devices say so."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import torch

from gtn_search.compare.report import _devices_lines
from gtn_search.compare.status import Count, Progress
from gtn_search.evaluators import make_evaluator
from gtn_search.evaluators.base import Evaluator
from gtn_search.provenance import UNRECORDED, device_label, devices_of, mixed_devices_warning
from gtn_search.report import summary_table
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig
from gtn_search.storage import Study
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space

from .test_device import NoOptions

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}
H200 = "cuda (NVIDIA H200)"


class Failing(Evaluator):
    """Fails every candidate (a candidate's fault, not the search's)."""

    Config = NoOptions

    def _evaluate(self, arch, blueprint, seed):  # type: ignore[no-untyped-def]
        raise RuntimeError("this candidate broke")


def test_the_label_names_the_device_kind_and_the_gpu_model(monkeypatch):
    assert device_label(torch.device("cpu")) == "cpu"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert device_label(torch.device("cuda:0")) == H200


def test_every_evaluation_records_its_device_ok_failed_and_swept(mnist_root):
    arch = get_space("gtn-nas").sample(np.random.default_rng(0))
    bp = Blueprint.from_mapping(TINY_BP)
    ok = make_evaluator("params", {}, str(mnist_root), device="cpu").evaluate(arch, bp, 0)
    assert ok.ok and ok.metrics["device"] == "cpu" and "forward_flops" in ok.metrics  # added, nothing lost
    failed = Failing({}, device="cpu").evaluate(arch, bp, 0)
    assert failed.status == "failed" and failed.metrics == {"device": "cpu"}
    real = make_evaluator("real", {"dataset": "mnist", "steps": 4, "batch_size": 8, "val_size": 32, "lr": 0.05},
                          str(mnist_root), device="cpu")
    assert real.can_sweep()
    swept = real.evaluate_sweep(arch, bp, 0, [2, 4])
    assert [r.metrics["device"] for r in swept.values()] == ["cpu", "cpu"]


def test_mixed_devices_give_one_warning_and_unrecorded_rows_are_not_another_device():
    assert devices_of([{"device": "cpu"}, {}, None, {"device": H200}]) == {"cpu": 1, UNRECORDED: 2, H200: 1}
    assert mixed_devices_warning({"cpu": 5}, "x") is None
    assert mixed_devices_warning({"cpu": 5, UNRECORDED: 7}, "x") is None
    warning = mixed_devices_warning({"cpu": 120, H200: 30, UNRECORDED: 3}, "this study's scores")
    assert warning is not None and "\n" not in warning
    assert warning.startswith("warning: this study's scores were computed on 2 devices: cpu (120), "
                              "cuda (NVIDIA H200) (30)")


def test_show_warns_when_a_study_mixes_devices(tmp_path, mnist_root):
    cfg = SearchConfig.model_validate({
        "study": str(tmp_path / "s.db"), "space": "gtn-nas", "blueprint": TINY_BP, "strategy": "random",
        "evaluator": {"name": "params", "options": {}}, "budget": {"trials": 4}, "seed": 0, "device": "cpu",
        "data_root": str(mnist_root)})
    run_search(cfg, progress=False)
    study = Study(cfg.study, create=False)
    try:
        assert all(t.metrics["device"] == "cpu" for t in study.trials())
        assert "warning" not in summary_table(study)
    finally:
        study.close()
    with sqlite3.connect(cfg.study) as conn:  # as if the study had been resumed on a GPU
        number, metrics = conn.execute("SELECT number, metrics FROM trials ORDER BY number LIMIT 1").fetchone()
        conn.execute("UPDATE trials SET metrics=? WHERE number=?", (json.dumps({**json.loads(metrics),
                                                                                "device": H200}), number))
    study = Study(cfg.study, create=False)
    try:
        text = summary_table(study)
    finally:
        study.close()
    assert "warning: this study's scores were computed on 2 devices: cpu (3), cuda (NVIDIA H200) (1)" in text


def test_the_comparison_report_and_status_name_the_devices():
    assert _devices_lines({}) == []  # results written before devices were recorded
    one = _devices_lines({"proxy_devices": {"cpu": 300}})
    assert one == ["Proxy scores computed on: cpu (300).", ""]
    mixed = _devices_lines({"proxy_devices": {"cpu": 300, H200: 20}})
    assert mixed[0] == "Proxy scores computed on: cpu (300), cuda (NVIDIA H200) (20)."
    assert mixed[2].startswith("**warning: the proxy scores were computed on 2 devices")
    progress = Progress("out", 3, [Count("ground truth", 3, 0, 3)], [Count("proxy p", 3, 0, 3)],
                        devices_warning=mixed_devices_warning({"cpu": 2, H200: 1}, "the proxy scores"))
    assert any(line.strip().startswith("warning: the proxy scores were computed on 2 devices")
               for line in progress.lines())


@pytest.mark.parametrize("status", ["ok", "failed"])
def test_rows_without_metrics_count_as_not_recorded(status):
    assert devices_of([{"status": status, "metrics": None}.get("metrics")]) == {UNRECORDED: 1}
