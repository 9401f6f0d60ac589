"""Objectives and constraints of a search, Pareto results, and the study schema migration (issue 16)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from gtn_search.cli import main
from gtn_search.configio import StrictModel, parse_model
from gtn_search.evaluators.base import Evaluator, Measurement
from gtn_search.objectives import Constraint, ObjectiveSet, static_measures
from gtn_search.registry import EVALUATORS
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig
from gtn_search.storage import SCHEMA_VERSION, Study
from search_spaces.blueprint import Blueprint
from search_spaces.network import build
from search_spaces.presets import get_space

REPO = Path(__file__).resolve().parents[1]
TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}


class RecordingEvaluator(Evaluator):
    """Scores an architecture by its hash and appends every architecture it trains to a log file."""

    class Config(StrictModel):
        log: str

    def _evaluate(self, arch, blueprint, seed):
        with open(self.config.log, "a") as fh:
            fh.write(arch.hash + "\n")
        return Measurement(int(arch.hash[:8], 16) / 16**8, 1, 1, 1.0, 1.0, 1)


@pytest.fixture
def recording(tmp_path):
    EVALUATORS.add("recording", RecordingEvaluator)
    log = tmp_path / "trained.log"
    log.touch()
    try:
        yield log
    finally:
        EVALUATORS.unregister("recording")


def search_data(tmp_path: Path, log: Path | None = None, **overrides) -> dict:
    data = {
        "study": str(tmp_path / "study.db"), "space": "gtn-nas", "blueprint": TINY_BP, "strategy": "random",
        "evaluator": ({"name": "recording", "options": {"log": str(log)}} if log is not None
                      else {"name": "synthetic"}),
        "budget": {"trials": 30}, "seed": 0,
    }
    data.update(overrides)
    return data


def independent_params(arch, bp: dict) -> int:
    """Parameters of the real network (built with weights on the CPU), auxiliary head excluded."""
    net = build(arch, Blueprint.from_mapping(bp))
    aux = set() if net.aux_head is None else {id(p) for p in net.aux_head.parameters()}
    return sum(p.numel() for p in net.parameters() if id(p) not in aux)


# -- configuration ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, op, bound", [("<= 1e5", "<=", 1e5), ("< 5", "<", 5.0), (">= 1000", ">=", 1000.0),
                                             (3e7, "<=", 3e7), ("2.5e4", "<=", 2.5e4)])
def test_constraint_bounds_parse(text, op, bound):
    c = Constraint.parse("params", text)
    assert (c.op, c.bound) == (op, bound)
    assert c.violation(bound) is None if op in ("<=", ">=") else c.violation(bound) is not None


@pytest.mark.parametrize("change, message", [
    ({"objectives": {"score": "max", "param": "min"}}, "unknown objective 'param' (did you mean 'params'?)"),
    ({"objectives": {"score": "maximise"}}, "objectives.score"),
    ({"objectives": {}}, "at least one objective"),
    ({"constraints": {"score": ">= 0.9"}}, "known only after training"),
    ({"constraints": {"params": "about 1e5"}}, "must be a bound like"),
    ({"constraints": {"params": "<= 1e400"}}, "finite"),
    ({"objectives": {"score": "max"}, "scalarization": {"weights": {"params": 1.0}}}, "are not objectives"),
    ({"objectives": {"score": "max", "params": "min"}, "reference_point": {"flops": 1.0}}, "are not objectives"),
    ({"measure": {"latency_batch": 0}}, "measure.latency_batch"),
    ({"objectives": {"score": "max", "params": "min"}, "strategy": "evolution"}, "add 'scalarization"),
])
def test_bad_objective_configs_exit_1_with_one_line(tmp_path, capsys, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(search_data(tmp_path, **change)))
    assert main(["search", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "study.db").exists()  # refused before a study was made


def test_configs_without_objectives_keep_their_study_identity(tmp_path):
    cfg = parse_model(SearchConfig, search_data(tmp_path), "c")
    assert set(cfg.identity()) == {"space", "blueprint", "strategy", "evaluator", "seed"}
    mo = parse_model(SearchConfig, search_data(tmp_path, objectives={"score": "max", "params": "min"},
                                               reference_point={"params": 1e5}), "c")
    assert mo.identity()["objectives"] == {"score": "max", "params": "min"}
    assert "reference_point" not in mo.identity()  # reporting only: may change when resuming


def test_fitness_orientation_and_scalarization():
    s = ObjectiveSet(names=("score", "params"), directions=("max", "min"))
    assert s.fitness({"score": 0.9, "params": 1000}) == (0.9, -1000.0)
    assert s.told_value({"score": 0.9, "params": 1000}) == (0.9, -1000.0)
    assert s.fitness({"score": 0.9}) is None
    s.weights = {"score": 1.0, "params": 1e-4}
    assert s.told_value({"score": 0.9, "params": 1000}) == pytest.approx(0.9 - 0.1)


# -- constraints --------------------------------------------------------------------------------------
def test_no_infeasible_candidate_is_ever_trained(tmp_path, recording):
    space = get_space("gtn-nas")
    bp = Blueprint.from_mapping(TINY_BP)
    rng = np.random.default_rng(0)
    sizes = [static_measures(space.sample(rng), bp, {"params"})["params"] for _ in range(40)]
    bound = float(np.median(sizes))
    summary = run_search(parse_model(SearchConfig, search_data(
        tmp_path, recording, objectives={"score": "max", "params": "min"}, constraints={"params": f"<= {bound}"},
        budget={"trials": 30}), "c"), progress=False)
    study = Study(summary.study, create=False)
    trials = study.trials()
    trained = recording.read_text().split()
    infeasible = [t for t in trials if t.status == "infeasible"]
    ok = [t for t in trials if t.status == "ok"]
    assert infeasible and ok and summary.infeasible == len(infeasible)
    assert sorted(trained) == sorted(t.hash for t in ok)  # exactly the feasible ones were trained
    for t in trials:
        if t.status in ("cached", "running"):
            continue
        arch = space.architecture_from_mapping(t.genotype)
        params = independent_params(arch, TINY_BP)
        assert t.objectives["params"] == params
        assert (params > bound) == (t.status == "infeasible")
        if t.status == "infeasible":
            assert t.violations == {"params": f"params {params:.4g} violates <= {bound:.4g}"}
            assert t.wall_seconds == 0 and t.flops == 0
    snapshot = study.snapshot()
    assert snapshot is not None and snapshot[1]["told"] == len(trials)  # the strategy heard of every one


def test_a_latency_bound_is_checked_by_the_worker_before_training(tmp_path, recording):
    summary = run_search(parse_model(SearchConfig, search_data(
        tmp_path, recording, objectives={"score": "max", "latency_ms": "min"},
        constraints={"latency_ms": "< 1e-6"}, measure={"latency_repeats": 3, "latency_warmup": 0},
        budget={"trials": 3}), "c"), progress=False)
    trials = Study(summary.study, create=False).trials()
    assert [t.status for t in trials] == ["infeasible"] * 3
    assert recording.read_text() == ""  # nothing trained
    assert all(t.objectives["latency_ms"] > 0 and "latency_ms" in t.error for t in trials)


def test_latency_is_measured_and_stored_for_feasible_trials(tmp_path, recording):
    summary = run_search(parse_model(SearchConfig, search_data(
        tmp_path, recording, objectives={"score": "max", "latency_ms": "min"},
        measure={"latency_repeats": 3, "latency_warmup": 1, "latency_batch": 4}, budget={"trials": 3}), "c"),
        progress=False)
    trials = Study(summary.study, create=False).trials()
    assert all(t.status == "ok" and 0 < t.objectives["latency_ms"] < 10_000 for t in trials)
    assert all(t.objectives["score"] == t.score for t in trials)


# -- scalarization ------------------------------------------------------------------------------------
def test_a_single_objective_strategy_gets_the_declared_weighted_sum(tmp_path, recording):
    weights = {"score": 1.0, "params": 1e-4}
    summary = run_search(parse_model(SearchConfig, search_data(
        tmp_path, recording, objectives={"score": "max", "params": "min"}, scalarization={"weights": weights},
        strategy={"name": "evolution", "options": {"population": 4, "sample_size": 2}}, budget={"trials": 8}), "c"),
        progress=False)
    study = Study(summary.study, create=False)
    told = {json.dumps(v): s for v, s in study.snapshot()[1]["own"]["population"]}
    space = get_space("gtn-nas")
    expected = {json.dumps(space.encode(space.architecture_from_mapping(t.genotype))):
                t.score - 1e-4 * t.objectives["params"] for t in study.trials("WHERE status = 'ok'")}
    assert told and all(told[k] == pytest.approx(expected[k]) for k in told)


# -- multi-objective studies: resume, show, export ------------------------------------------------------
MO = {"objectives": {"score": "max", "params": "min"}, "space": "gtn-nas",
      "strategy": {"name": "mo-evolution", "options": {"population": 10, "sample_size": 3}}}


def _done(study: Path) -> int:
    try:
        with sqlite3.connect(study, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("evaluator", ["synthetic", "gtn"])
def test_a_multi_objective_search_resumes_after_sigkill_with_the_same_front(tmp_path, request, evaluator):
    """Kill -9 the search twice, run the same command again: the same trials, objective values and
    front as an uninterrupted run (the zero-cost synthetic evaluator, and a real GTN search on MNIST)."""
    from gtn_search.pareto_report import pareto_summary

    if evaluator == "gtn":
        trials, targets = 14, (4, 9)
        extra = {"evaluator": {"name": "gtn", "options": {"teaching_set": str(request.getfixturevalue(
            "tiny_teaching_set")), "val_size": 64}}, "data_root": str(request.getfixturevalue("mnist_root")),
            "threads_per_worker": 1}  # float sums depend on the thread count: the same in both runs
    else:
        trials, targets, extra = 100, (20, 55), {}
    data = search_data(tmp_path / "killed", **MO, **extra, budget={"trials": trials})
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # the objectives' order is the declared one
    cmd = [sys.executable, "-m", "gtn_search", "search", str(path), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    kills = 0
    for target in targets:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and _done(Path(data["study"])) < target:
            time.sleep(0.02)
        assert proc.poll() is None, "the search finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr
    reference = run_search(parse_model(SearchConfig, search_data(tmp_path / "ref", **MO, **extra,
                                                                 budget={"trials": trials}), "c"), progress=False)
    killed, ref = Study(data["study"], create=False), Study(reference.study, create=False)
    row = lambda t: (t.number, t.hash, t.status, t.score, t.objectives)
    assert kills == 2 and [row(t) for t in killed.trials()] == [row(t) for t in ref.trials()]
    a, b = pareto_summary(killed), pareto_summary(ref)
    assert a.front and [t.number for t in a.front] == [t.number for t in b.front]
    assert a.hypervolume == b.hypervolume > 0


def brute_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point dominates (score max, params min)."""
    return [i for i, (s, p) in enumerate(points)
            if not any(s2 >= s and p2 <= p and (s2 > s or p2 < p) for s2, p2 in points)]


def sweep_hypervolume(front: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by (score max, params min) points against (score_ref, params_ref), by a sweep."""
    area, best = 0.0, ref[0]
    for s, p in sorted(front, key=lambda x: x[1]):  # fewest params first
        if s > best and p < ref[1]:
            area += (s - best) * (ref[1] - p)
            best = s
    return area


def test_show_and_export_report_the_front_and_its_hypervolume(tmp_path, capsys):
    summary = run_search(parse_model(SearchConfig, search_data(tmp_path, **MO, budget={"trials": 60}), "c"),
                         progress=False)
    png = tmp_path / "front.png"
    assert main(["show", summary.study, "--pareto-plot", str(png), "--reference", "params=20000"]) == 0
    out = capsys.readouterr().out
    ok = Study(summary.study, create=False).trials("WHERE status = 'ok'")
    points = [(t.objectives["score"], t.objectives["params"]) for t in ok]
    front = sorted((points[i] for i in brute_front(points)), key=lambda x: -x[0])  # ties: every genotype
    assert f"Pareto front: {len(front)} non-dominated of {len(ok)} evaluated trials" in out
    hv = sweep_hypervolume(front, (0.0, 20000.0))
    assert f"hypervolume {hv:.6g} against the reference point score=0 (default), params=20000 (declared)" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"

    assert main(["export", summary.study, "--pareto", "--out", str(tmp_path / "front")]) == 0
    files = sorted((tmp_path / "front").glob("pareto*.yaml"))
    assert len(files) == len(front)
    exported = [yaml.safe_load(f.read_text())["metadata"]["objectives"] for f in files]
    assert [(e["score"], e["params"]) for e in exported] == front  # best score first


def test_pareto_output_is_refused_for_a_single_objective_study(tmp_path, capsys):
    summary = run_search(parse_model(SearchConfig, search_data(tmp_path, budget={"trials": 3}), "c"), progress=False)
    assert main(["show", summary.study, "--pareto-plot", str(tmp_path / "p.png")]) == 1
    assert "a Pareto front needs two or more" in capsys.readouterr().err
    assert main(["export", summary.study, "--pareto", "--out", str(tmp_path / "x")]) == 1
    assert "optimises one objective" in capsys.readouterr().err
    assert main(["show", summary.study, "--reference", "params"]) == 1
    assert "NAME=VALUE" in capsys.readouterr().err


# -- schema migration ---------------------------------------------------------------------------------
def test_a_version_1_study_is_read_as_it_is_and_migrated_when_a_search_writes(tmp_path):
    path = tmp_path / "v1.db"
    shutil.copy(REPO / "tests" / "data" / "study_v1.db", path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    old = Study(path, create=False)
    rows = [(t.number, t.hash, t.status, t.score, t.params) for t in old.trials()]
    assert rows and all(t.objectives == {} for t in old.trials()) and old.get_meta("schema_version") == "1"
    old.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # reading changed nothing

    study = Study(path)
    assert study.get_meta("schema_version") == str(SCHEMA_VERSION) and study.get_meta("migrated_from") == "1"
    assert [(t.number, t.hash, t.status, t.score, t.params) for t in study.trials()] == rows
    assert study.integrity_ok()
    number = max(r[0] for r in rows) + 1
    study.record_ask(number, "h", {}, 0, study.next_event())
    from gtn_search.evaluators.base import EvalResult

    study.record_result(number, EvalResult("infeasible", error="params 2e5 violates <= 1e5"), study.next_event(),
                        objectives={"params": 2e5})
    assert study.trial(number).status == "infeasible" and study.trial(number).objectives == {"params": 2e5}
    study.close()


def test_a_resumed_study_takes_the_new_reference_point(tmp_path, capsys):
    data = search_data(tmp_path, **MO, budget={"trials": 6}, reference_point={"score": 0.9, "params": 1e5})
    run_search(parse_model(SearchConfig, data, "c"), progress=False)
    assert main(["show", data["study"]]) == 0
    assert "hypervolume 0 against the reference point score=0.9 (declared)" in capsys.readouterr().out
    run_search(parse_model(SearchConfig, {**data, "reference_point": {"score": 0.0}}, "c"), progress=False)
    assert main(["show", data["study"]]) == 0
    assert "against the reference point score=0 (declared), params=" in capsys.readouterr().out


def test_the_search_command_ends_with_the_front_and_its_hypervolume(tmp_path, capsys):
    path = tmp_path / "mo.yaml"
    path.write_text(yaml.safe_dump(search_data(tmp_path, **MO, budget={"trials": 12},
                                               constraints={"params": "<= 330"}), sort_keys=False))
    assert main(["search", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "non-dominated of" in out and "hypervolume" in out and "were not trained" in out


def test_static_measures_match_the_real_network(tmp_path):
    """params and FLOPs counted on the meta device equal those of the network built with weights."""
    from search_spaces.memory import estimate_training_memory
    from search_spaces.network import count_flops

    space = get_space("gtn-nas")
    rng = np.random.default_rng(3)
    bp = Blueprint.from_mapping({**TINY_BP, "auxiliary_weight": 0.4, "stages": 2})  # an aux head to leave out
    for _ in range(3):
        arch = space.sample(rng)
        got = static_measures(arch, bp, {"params", "flops", "memory_mb"}, memory_batch=32)
        net = build(arch, bp, seed=0)
        assert got["params"] == independent_params(arch, bp.model_dump(mode="json"))
        assert got["params"] < sum(p.numel() for p in net.parameters())  # the aux head is not counted
        assert got["flops"] == count_flops(net, bp.input_shape)
        assert got["memory_mb"] == estimate_training_memory(arch, bp, 32).bytes / 2**20 > 0
