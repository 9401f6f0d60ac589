"""Search engine: evaluators, runner, SQLite studies, resume after SIGKILL, parallel and Dask, export."""

from __future__ import annotations

import os
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
from gtn_search.errors import ConfigError, StorageError
from gtn_search.evaluators import make_evaluator
from gtn_search.evaluators.base import Evaluator, Measurement
from gtn_search.registry import EVALUATORS
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig, load_search_config
from gtn_search.storage import Study
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space
from search_spaces.space import CellSearchSpace
from search_spaces.yaml_format import load_architecture

REPO = Path(__file__).resolve().parents[1]
TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}
#: a space of 16 architectures, so that searches propose duplicates
SMALL_SPACE = {"name": "small", "ops": ["identity", "conv_1x1"], "num_nodes": 1, "allow_repeated_inputs": False}


def config(tmp_path: Path, teaching: Path, mnist_root: Path, **overrides) -> SearchConfig:
    data = {
        "study": str(tmp_path / "study.db"), "space": "gtn-nas", "blueprint": TINY_BP,
        "strategy": {"name": "evolution", "options": {"population": 4, "sample_size": 2}},
        "evaluator": {"name": "gtn", "options": {"teaching_set": str(teaching), "val_size": 64}},
        "budget": {"trials": 6}, "seed": 0, "data_root": str(mnist_root),
    }
    data.update(overrides)
    return SearchConfig.model_validate(data)


def test_evaluators_score_on_validation_and_report_cost(tiny_teaching_set, mnist_root):
    arch = get_space("gtn-nas").sample(np.random.default_rng(0))
    bp = Blueprint.from_mapping(TINY_BP)
    gtn = make_evaluator("gtn", {"teaching_set": str(tiny_teaching_set), "val_size": 64}, str(mnist_root))
    r = gtn.evaluate(arch, bp, seed=1)
    assert r.ok and 0 <= r.score <= 1 and r.sgd_steps == 3 and r.images_seen == 48
    assert r.train_flops == pytest.approx(3 * r.metrics["forward_flops"] * 48)
    assert r.eval_flops == pytest.approx(r.metrics["forward_flops"] * 64) and r.params > 0
    assert gtn.evaluate(arch, bp, seed=1).score == r.score  # same seed, same score
    real = make_evaluator("real", {"steps": 3, "batch_size": 16, "val_size": 64}, str(mnist_root))
    r2 = real.evaluate(arch, bp, seed=1)
    assert r2.ok and r2.sgd_steps == 3 and r2.images_seen == 48
    epochs = make_evaluator("real", {"epochs": 0.001, "batch_size": 50, "val_size": 64}, str(mnist_root))
    assert epochs.evaluate(arch, bp, seed=1).sgd_steps == 1  # ceil(0.001 * 50000 / 50)
    import pickle

    assert pickle.loads(pickle.dumps(gtn)).describe() == gtn.describe()


class ExplodingEvaluator(Evaluator):
    """Fails on every other trial (exception or NaN), to test that searches survive failures."""

    from gtn_search.configio import StrictModel as _Base

    class Config(_Base):
        pass

    def _evaluate(self, arch, blueprint, seed):
        if seed % 3 == 0:
            raise RuntimeError("boom")
        score = float("nan") if seed % 3 == 1 else 0.5
        return Measurement(score, 1, 1, 1.0, 1.0, 1)


def test_failed_candidates_are_recorded_and_the_search_goes_on(tmp_path, tiny_teaching_set, mnist_root):
    EVALUATORS.add("exploding", ExplodingEvaluator)
    try:
        cfg = config(tmp_path, tiny_teaching_set, mnist_root, evaluator={"name": "exploding"},
                     budget={"trials": 12}, strategy="random")
        summary = run_search(cfg, progress=False)
    finally:
        EVALUATORS.unregister("exploding")
    study = Study(cfg.study)
    trials = study.trials()
    assert summary.evaluated == 12 and len(trials) == 12
    errors = {t.error.split(":")[0] for t in trials if t.status == "failed"}
    assert errors == {"RuntimeError", "NaN/inf during training"}
    assert all(t.score == 0.5 for t in trials if t.status == "ok")


def test_search_records_everything_and_serves_duplicates_from_cache(tmp_path, tiny_teaching_set, mnist_root):
    cfg = config(tmp_path, tiny_teaching_set, mnist_root, space=SMALL_SPACE, strategy="random",
                 budget={"trials": 20})
    summary = run_search(cfg, progress=False)
    study = Study(cfg.study)
    trials = study.trials()
    assert len(trials) == 20 and summary.cached > 0 and summary.evaluated + summary.cached == 20
    evaluated_hashes = [t.hash for t in trials if t.status == "ok"]
    assert len(evaluated_hashes) == len(set(evaluated_hashes)) == summary.evaluated  # each genotype once
    for t in trials:
        if t.status == "cached":
            original = study.trial(t.cached_from)
            assert original.hash == t.hash and original.score == t.score and t.flops == 0
    assert study.integrity_ok()
    assert study.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_budgets_by_flops_and_seconds(tmp_path, tiny_teaching_set, mnist_root):
    # the same seed proposes the same sequence, so the reference run gives each trial's compute
    ref = run_search(config(tmp_path / "a", tiny_teaching_set, mnist_root, budget={"trials": 6}), progress=False)
    flops = [t.flops for t in Study(ref.study).trials()]
    assert len(flops) == 6 and all(f > 0 for f in flops)
    cfg = config(tmp_path / "b", tiny_teaching_set, mnist_root, budget={"flops": sum(flops[:3]) - 1})
    summary = run_search(cfg, progress=False)
    assert summary.evaluated == 3  # the third trial spends the budget; no fourth is asked
    assert summary.flops == pytest.approx(sum(flops[:3]))
    cfg = config(tmp_path / "c", tiny_teaching_set, mnist_root, budget={"seconds": 0.001, "trials": 50})
    assert run_search(cfg, progress=False).evaluated <= 1


def test_resume_continues_without_re_evaluating(tmp_path, tiny_teaching_set, mnist_root):
    cfg = config(tmp_path, tiny_teaching_set, mnist_root, budget={"trials": 4})
    first = run_search(cfg, progress=False)
    extended = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"trials": 8})})
    second = run_search(extended, progress=False)
    assert first.evaluated == 4 and second.evaluated + second.cached == 8 and second.resumed
    full = run_search(config(tmp_path / "full", tiny_teaching_set, mnist_root, budget={"trials": 8}), progress=False)
    a = [(t.number, t.hash, t.score) for t in Study(cfg.study).trials()]
    b = [(t.number, t.hash, t.score) for t in Study(full.study).trials()]
    assert a == b  # stopping and resuming changes nothing


def test_running_a_finished_search_again_changes_nothing(tmp_path, tiny_teaching_set, mnist_root):
    """`gtn-search compare` re-runs its finished equal-budget searches on every call: the study's
    elapsed time and strategy snapshot must stay as the search left them."""
    cfg = config(tmp_path, tiny_teaching_set, mnist_root, budget={"trials": 3})
    first = run_search(cfg, progress=False)
    study = Study(cfg.study)
    before = (study.get_meta("elapsed"), study.conn.execute("SELECT * FROM snapshots").fetchall())
    study.close()
    again = run_search(cfg, progress=False)
    study = Study(cfg.study)
    assert (study.get_meta("elapsed"), study.conn.execute("SELECT * FROM snapshots").fetchall()) == before
    assert again.seconds == first.seconds == float(before[0])
    assert again.evaluated == first.evaluated == 3 and again.resumed


def test_resume_refuses_another_configuration(tmp_path, tiny_teaching_set, mnist_root):
    run_search(config(tmp_path, tiny_teaching_set, mnist_root, budget={"trials": 1}), progress=False)
    with pytest.raises(StorageError, match="different 'seed'"):
        run_search(config(tmp_path, tiny_teaching_set, mnist_root, seed=5), progress=False)


def _write_config(path: Path, cfg: SearchConfig) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def test_sigkill_mid_search_then_resume_loses_nothing(tmp_path, tiny_teaching_set, mnist_root):
    """Kill -9 a real search process mid-run, run the same command again, compare with no kill."""
    trials = 14
    killed_cfg = config(tmp_path / "killed", tiny_teaching_set, mnist_root, budget={"trials": trials})
    path = _write_config(tmp_path / "killed.yaml", killed_cfg)
    cmd = [sys.executable, "-m", "gtn_search", "search", str(path), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    kills = 0
    for target in (4, 9):
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if Path(killed_cfg.study).exists():
                try:
                    with sqlite3.connect(killed_cfg.study, timeout=5) as con:
                        done = con.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
                if done >= target:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the search finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr
    assert "resumed" in res.stdout
    killed = Study(killed_cfg.study)
    assert killed.integrity_ok()
    reference = run_search(config(tmp_path / "ref", tiny_teaching_set, mnist_root, budget={"trials": trials}),
                           progress=False)
    ref = Study(reference.study)
    got = [(t.number, t.hash, t.status, t.score) for t in killed.trials()]
    want = [(t.number, t.hash, t.status, t.score) for t in ref.trials()]
    assert kills == 2 and got == want  # nothing lost, nothing duplicated, same genotypes and scores


def _processes() -> dict[int, tuple[int, str, str]]:
    """Every process on this machine: pid -> (parent pid, state, start time), from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # it just exited
                continue
            out[int(entry.name)] = (int(fields[1]), fields[0], fields[19])
    return out


def _descendants(pid: int) -> dict[int, str]:
    """The processes below ``pid``: pid -> start time (which tells a reused pid apart)."""
    procs = _processes()
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, start) in procs.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def _still_running(pids: dict[int, str]) -> list[int]:
    procs = _processes()
    return [p for p, start in pids.items() if p in procs and procs[p][2] == start and procs[p][1] not in "ZX"]


def _start_search_and_wait(cfg: SearchConfig, path: Path, finished: int, processes: int, log: Path):
    """Start ``gtn-search search`` in a subprocess; return it once ``finished`` trials are recorded and
    it has ``processes`` processes below it (workers busy)."""
    cmd = [sys.executable, "-m", "gtn_search", "search", str(path), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = 0
        if Path(cfg.study).exists():
            try:
                with sqlite3.connect(cfg.study, timeout=5) as con:
                    done = con.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
            except sqlite3.OperationalError:
                pass
        if done >= finished and len(_descendants(proc.pid)) >= processes:
            return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError(f"the search did not get going (exit status {proc.returncode}): {log.read_text()}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_a_parallel_search_leaves_no_process_behind(tmp_path, tiny_teaching_set, mnist_root, capsys, sig):
    """Workers (and multiprocessing's resource tracker) die with the search, even on SIGKILL; SIGTERM
    stops it like Ctrl-C: one line, its own exit status, in-flight trials left to resume."""
    cfg = config(tmp_path / "s", tiny_teaching_set, mnist_root, workers=2, strategy="random", budget={"trials": 10})
    path = _write_config(tmp_path / "s.yaml", cfg)
    proc = _start_search_and_wait(cfg, path, finished=2, processes=3, log=tmp_path / "stderr.txt")
    below = _descendants(proc.pid)  # 2 workers, the fork server and the resource tracker
    proc.send_signal(sig)
    proc.wait(timeout=60)
    deadline = time.time() + 30  # generous: a killed process exits slowly on a loaded, memory-tight machine
    while _still_running(below) and time.time() < deadline:
        time.sleep(0.1)
    left = _still_running(below)
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} of the search's {len(below)} processes outlived it by 30 s"
    if sig == signal.SIGKILL:
        return
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == ("terminated (SIGTERM): recorded results are kept; run the same "
                                               "command again to resume")
    study = Study(cfg.study)
    before = [(t.number, t.hash, t.status, t.score) for t in study.trials() if t.finished]
    in_flight = len(study.trials("WHERE status = 'running'"))
    study.close()
    assert before and in_flight >= 1
    capsys.readouterr()
    assert main(["search", str(path), "--no-progress"]) == 0
    assert f"resumed; {in_flight} interrupted trial(s) re-run" in capsys.readouterr().out
    after = Study(cfg.study).trials()
    assert len(after) == 10 and all(t.finished for t in after)
    rows = {t.number: (t.number, t.hash, t.status, t.score) for t in after}
    assert [rows[row[0]] for row in before] == before  # nothing recorded before SIGTERM changed


def test_a_second_search_on_a_running_study_is_refused_while_show_and_export_work(tmp_path, tiny_teaching_set,
                                                                                   mnist_root, capsys):
    cfg = config(tmp_path / "s", tiny_teaching_set, mnist_root, strategy="random", budget={"trials": 500})
    path = _write_config(tmp_path / "s.yaml", cfg)
    first = _start_search_and_wait(cfg, path, finished=2, processes=0, log=tmp_path / "stderr.txt")
    try:
        capsys.readouterr()
        assert main(["search", str(path), "--no-progress"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: study {cfg.study} is in use by pid {first.pid} on ") and "\n" not in err
        assert f"(gtn-search search {path} --no-progress) since " in err and "wait for it to finish or stop it" in err
        assert main(["show", cfg.study]) == 0  # readers take no lock
        assert main(["export", cfg.study, "--top", "1", "--out", str(tmp_path / "best")]) == 0
        assert first.poll() is None  # the first search is unharmed
    finally:
        first.kill()
        first.wait()
    recorded = len(Study(cfg.study).trials())
    # the kernel released the dead search's lock: the study resumes
    assert main(["search", str(path), "--no-progress", "--trials", str(recorded + 1)]) == 0
    assert "resumed" in capsys.readouterr().out


def test_relative_paths_in_a_config_are_taken_from_its_folder(tmp_path, tiny_teaching_set, mnist_root, monkeypatch,
                                                              capsys, caplog):
    import shutil

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "teach").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(tiny_teaching_set, project / "teach" / "ts.pt")
    (project / "data").symlink_to(mnist_root)
    data = config(tmp_path, tiny_teaching_set, mnist_root, strategy="random", budget={"trials": 2}).model_dump(mode="json")
    data.update(study="runs/s.db", data_root="data",
                evaluator={"name": "gtn", "options": {"teaching_set": "teach/ts.pt", "val_size": 64}})
    (project / "search.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(elsewhere)
    assert main(["search", str(project / "search.yaml"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"study {project / 'runs' / 's.db'} (new)\n")  # absolute
    assert f"study {project / 'runs' / 's.db'}: 2 evaluated" in out and not any(elsewhere.iterdir())
    monkeypatch.chdir(project / "teach")  # the same config from another folder resumes the same study
    assert main(["search", "../search.yaml", "--no-progress", "--trials", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"study {project / 'runs' / 's.db'} (resuming)\n") and "3 evaluated" in out

    # command-line paths stay relative to the current folder
    cfg = load_search_config(project / "search.yaml", {"study": "x.db", "data_root": "d"})
    assert (cfg.study, cfg.data_root, cfg.base_dir) == (str(project / "teach" / "x.db"), str(project / "teach" / "d"),
                                                        str(project))
    gtn = make_evaluator("gtn", {"teaching_set": "ts.pt"}, base_dir=str(project / "teach"))
    assert gtn.config.teaching_set == str(project / "teach" / "ts.pt")
    assert gtn.describe()["options"]["teaching_set"] == "ts.pt"  # studies keep the options as written

    # a study made when paths were taken from the current folder is still found, with a notice
    (elsewhere / "old").mkdir()
    shutil.copy(project / "runs" / "s.db", elsewhere / "old" / "s.db")
    (project / "old.yaml").write_text(yaml.safe_dump({**data, "study": "old/s.db"}))
    monkeypatch.chdir(elsewhere)
    assert main(["search", str(project / "old.yaml"), "--no-progress", "--trials", "3"]) == 0
    assert capsys.readouterr().out.startswith(f"study {elsewhere / 'old' / 's.db'} (resuming)\n")
    assert f"note: study old/s.db: using {elsewhere / 'old' / 's.db'} (found in the current folder" in caplog.text
    assert not (project / "old").exists()


def test_parallel_workers_give_the_same_trials_as_sequential(tmp_path, tiny_teaching_set, mnist_root):
    base = {"strategy": "random", "budget": {"trials": 6}}
    seq = run_search(config(tmp_path / "seq", tiny_teaching_set, mnist_root, **base), progress=False)
    par = run_search(config(tmp_path / "par", tiny_teaching_set, mnist_root, workers=2, **base), progress=False)
    a = [(t.number, t.hash, t.score) for t in Study(seq.study).trials()]
    b = [(t.number, t.hash, t.score) for t in Study(par.study).trials()]
    assert a == b
    workers = {t.worker for t in Study(par.study).trials()}
    assert len(workers) == 2 and all(str(os.getpid()) not in w for w in workers)


def test_dask_local_cluster(tmp_path, tiny_teaching_set, mnist_root):
    pytest.importorskip("distributed")
    base = {"strategy": "random", "budget": {"trials": 4}}
    seq = run_search(config(tmp_path / "seq", tiny_teaching_set, mnist_root, **base), progress=False)
    dsk = run_search(config(tmp_path / "dask", tiny_teaching_set, mnist_root, workers=2, executor="dask", **base),
                     progress=False)
    a = [(t.number, t.hash, t.score) for t in Study(seq.study).trials()]
    b = [(t.number, t.hash, t.score) for t in Study(dsk.study).trials()]
    assert a == b


def test_cli_search_show_export(tmp_path, tiny_teaching_set, mnist_root, capsys):
    path = _write_config(tmp_path / "s.yaml", config(tmp_path, tiny_teaching_set, mnist_root))
    assert main(["search", str(path), "--no-progress", "--trials", "3"]) == 0
    assert "3 evaluated" in capsys.readouterr().out
    study = str(tmp_path / "study.db")
    assert main(["show", study, "--plot", str(tmp_path / "best.png")]) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "3 ok" in out and (tmp_path / "best.png").stat().st_size > 10_000
    assert main(["export", study, "--top", "2", "--out", str(tmp_path / "best"), "--blueprint", "mnist-final"]) == 0
    files = sorted((tmp_path / "best").glob("*.yaml"))
    assert len(files) == 2
    record = load_architecture(files[0])
    assert record.metadata["rank"] == 1 and record.metadata["evaluator"]["name"] == "gtn"
    assert record.blueprint.channels == 16 and record.metadata["study"] == study
    best = Study(study).best(1)[0]
    assert record.architecture.hash == best.hash and record.metadata["score"] == best.score


@pytest.mark.parametrize("change, message", [
    ({"strategy": "evolutoin"}, "did you mean 'evolution'"),
    ({"evaluator": {"name": "gnt"}}, "did you mean 'gtn'"),
    ({"budget": {"trials": -3}}, "budget.trials"),
    ({"budget": {}}, "at least one of trials"),
    ({"evaluator": {"name": "gtn", "options": {"teaching_set": "/nope/ts.pt"}}}, "does not exist"),
    ({"study": "sqlite://relative.db"}, "sqlite:///relative.db"),
    ({"workers": 0}, "workers"),
    ({"strategy": {"name": "evolution", "options": {"population": 1}}}, "population"),
])
def test_bad_configs_exit_1_with_one_line(tmp_path, tiny_teaching_set, mnist_root, capsys, change, message):
    data = config(tmp_path, tiny_teaching_set, mnist_root).model_dump(mode="json")
    data.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["search", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unreadable_study_file(tmp_path, tiny_teaching_set, mnist_root, capsys):
    bad = tmp_path / "garbage.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    path = _write_config(tmp_path / "s.yaml", config(tmp_path, tiny_teaching_set, mnist_root, study=str(bad)))
    assert main(["search", str(path), "--no-progress"]) == 1
    assert "not a readable SQLite database" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "missing.db")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_exhausted_space_stops_with_a_clear_error(tmp_path, tiny_teaching_set, mnist_root, monkeypatch):
    from gtn_search import runner

    monkeypatch.setattr(runner, "MAX_CACHE_STREAK", 50)
    cfg = config(tmp_path, tiny_teaching_set, mnist_root, space=SMALL_SPACE, strategy="random",
                 budget={"flops": 1e15})
    with pytest.raises(ConfigError, match="the space has 16 architectures"):
        run_search(cfg, progress=False)
    assert Study(cfg.study).totals()["evaluated"] == 16  # everything recorded before stopping


def test_load_search_config_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("evaluator: {name: gtn}\nbudgett: {trials: 3}\n")
    with pytest.raises(ConfigError, match="did you mean 'budget'"):
        load_search_config(path)


class MisbehavingEvaluator(Evaluator):
    """Trial seeds decide: hang forever, kill its own worker process, or score 0.5."""

    from gtn_search.configio import StrictModel as _Base

    class Config(_Base):
        mode: str = "hang"

    def _evaluate(self, arch, blueprint, seed):
        if seed % 3 == 0:
            if self.config.mode == "hang":
                time.sleep(3600)
            os._exit(1)  # the worker dies without a word
        return Measurement(0.5, 1, 1, 1.0, 1.0, 1)


@pytest.mark.parametrize("mode, error", [("hang", "timed out after 8 s"), ("die", "worker process died")])
def test_hung_or_dead_workers_fail_their_trial_and_the_search_goes_on(tmp_path, tiny_teaching_set, mnist_root,
                                                                      mode, error):
    from gtn_search.seeding import derive_seed

    EVALUATORS.add("misbehaving", MisbehavingEvaluator)
    try:
        cfg = config(tmp_path, tiny_teaching_set, mnist_root, evaluator={"name": "misbehaving", "options": {"mode": mode}},
                     budget={"trials": 6}, strategy="random", workers=2, trial_timeout=8)
        start = time.monotonic()
        summary = run_search(cfg, progress=False)
    finally:
        EVALUATORS.unregister("misbehaving")
    trials = Study(cfg.study).trials()
    bad = {t.number for t in trials if derive_seed(0, "trial", t.number) % 3 == 0}
    assert bad and len(bad) < 6 and summary.evaluated == 6 and len(trials) == 6
    assert all(t.status == "ok" and t.score == 0.5 for t in trials if t.number not in bad and mode == "hang")
    assert all(t.status == "failed" and error in t.error for t in trials if t.number in bad)
    assert time.monotonic() - start < 120  # nobody waited for the hour-long sleep


def test_trial_timeout_is_refused_with_dask(tmp_path, tiny_teaching_set, mnist_root):
    cfg = config(tmp_path, tiny_teaching_set, mnist_root, executor="dask", trial_timeout=5)
    with pytest.raises(ConfigError, match="trial_timeout works with local workers only"):
        run_search(cfg, progress=False)


def test_newer_schema_and_locked_study_are_refused_without_damage(tmp_path):
    import hashlib

    path = tmp_path / "s.db"
    study = Study(path)
    study.set_meta("schema_version", "99")
    study.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StorageError, match="schema version 99, written by a newer gtn-search"):
        Study(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the file was not changed

    other = tmp_path / "t.db"
    Study(other).close()
    holder = sqlite3.connect(other, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process is writing
    try:
        study = Study(other, timeout=0.2)
        with pytest.raises(StorageError, match="locked by another process"), study.transaction():
            pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert Study(other).integrity_ok()


class DiesOnceEvaluator(Evaluator):
    """Kills its worker process the first time it sees a trial whose seed is divisible by 3."""

    from gtn_search.configio import StrictModel as _Base

    class Config(_Base):
        marker: str

    def _evaluate(self, arch, blueprint, seed):
        if seed % 3 == 0 and not Path(self.config.marker).exists():
            Path(self.config.marker).touch()
            os._exit(1)  # the Dask worker process dies mid-trial
        return Measurement(float(seed % 7), 1, 1, 1.0, 1.0, 1)


def test_dask_worker_killed_mid_trial_is_retried_and_the_search_completes(tmp_path, tiny_teaching_set, mnist_root):
    pytest.importorskip("distributed")
    EVALUATORS.add("dies-once", DiesOnceEvaluator)
    try:
        marker = tmp_path / "died"
        cfg = config(tmp_path, tiny_teaching_set, mnist_root, evaluator={"name": "dies-once",
                     "options": {"marker": str(marker)}}, strategy="random", budget={"trials": 6},
                     workers=2, executor="dask")
        summary = run_search(cfg, progress=False)
    finally:
        EVALUATORS.unregister("dies-once")
    trials = Study(cfg.study).trials()
    assert marker.exists()  # a worker did die
    assert summary.evaluated == 6 and all(t.status == "ok" for t in trials)  # its trial was retried
    assert [t.score for t in trials] == [float(t.seed % 7) for t in trials]


def test_dask_local_cluster_workers_run_without_malloc_trim_threshold():
    """Dask's default MALLOC_TRIM_THRESHOLD_ halves PyTorch speed; local clusters must not inherit it."""
    pytest.importorskip("distributed")
    from gtn_search.executors import (
        DaskExecutor,
        malloc_trim_setting,
        slow_malloc_warning,
    )

    executor = DaskExecutor(workers=1)
    try:
        settings = executor._client.run(malloc_trim_setting)
    finally:
        executor.shutdown()
    assert len(settings) == 1 and list(settings.values()) == [None]
    assert slow_malloc_warning(settings) is None
    message = slow_malloc_warning({"tcp://a:1": "65536", "tcp://b:2": None})
    assert message is not None and message.startswith("1 of 2 Dask workers run with MALLOC_TRIM_THRESHOLD_=65536")
    assert "pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null" in message


def test_a_trial_submitted_after_a_worker_died_runs_on_a_fresh_pool(tmp_path, tiny_teaching_set, mnist_root):
    """The pool can break between wait() and submit(): the dead trial is reported failed, the new one runs."""
    from gtn_search.executors import ProcessExecutor
    from search_spaces.blueprint import blueprint_preset

    executor = ProcessExecutor(workers=1)
    try:
        evaluator = DiesOnceEvaluator({"marker": str(tmp_path / "died")})
        arch = CellSearchSpace.from_mapping("gtn-nas", where="space").sample(np.random.default_rng(0))
        bp = blueprint_preset("mnist-tiny", where="blueprint")
        executor.submit(0, evaluator, arch, bp, 3)  # this worker dies
        deadline = time.monotonic() + 60
        while not executor._pool._broken and time.monotonic() < deadline:
            time.sleep(0.05)
        assert executor._pool._broken
        executor.submit(1, evaluator, arch, bp, 4)  # used to raise BrokenProcessPool
        outcomes = {}
        while executor.in_flight:
            outcomes.update({n: r for n, r, _ in executor.wait()})
    finally:
        executor.shutdown()
    assert outcomes[0].status == "failed" and "worker process died" in outcomes[0].error
    assert outcomes[1].status == "ok" and outcomes[1].score == 4.0


class ThreadCountEvaluator(Evaluator):
    """Scores a trial with the number of torch threads it ran with."""

    from gtn_search.configio import StrictModel as Config

    def _evaluate(self, arch, blueprint, seed):
        import torch

        return Measurement(float(torch.get_num_threads()), 1, 1, 1.0, 1.0, 1)


def test_every_inline_search_runs_with_its_own_thread_count_and_restores_the_process_setting():
    """Two searches in one process with different threads_per_worker each get theirs (the second
    used to inherit the first one's), and the caller's torch setting is given back afterwards."""
    import torch

    from gtn_search.executors import InlineExecutor
    from search_spaces.blueprint import blueprint_preset

    arch = CellSearchSpace.from_mapping("gtn-nas", where="space").sample(np.random.default_rng(0))
    bp = blueprint_preset("mnist-tiny", where="blueprint")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        for threads in (2, 1, 2):
            executor = InlineExecutor(threads)
            executor.submit(0, ThreadCountEvaluator(), arch, bp, 0)
            executor.submit(1, ThreadCountEvaluator(), arch, bp, 1)
            assert [r.score for _, r, _ in executor.wait()] == [float(threads)] * 2
            executor.shutdown()
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


class HashScoreEvaluator(Evaluator):
    """Scores an architecture by its hash: no data, no torch, deterministic in every version."""

    from gtn_search.configio import StrictModel as _Base

    class Config(_Base):
        pass

    def _evaluate(self, arch, blueprint, seed):
        return Measurement(int(arch.hash[:8], 16) / 16**8, 0, 0, 0.0, 0.0, 0)


#: trials 6..11 of the study below resumed to 12 trials by gtn-search 913e3a1 (before repeats)
PRE_REPEATS_CONTINUATION = [
    "2cded256ca1fb30b4dce4ee1734071c7e2ad983b0dab12e1a77f4846fac6ef11",
    "fd7fafcd0cda8c86d316462ba4f18bb7b410ce2003fb60be1a17cc0c09fadf44",
    "6021abcf682da775c17954941036204b7f9b3717335bd8a3f0ffe1ce61ed8db7",
    "a33886afc9dbfe0bd9fe91674cd9eac6078f0b74481c29234748d3b4c3ad265d",
    "c424a2627713fe89ef4c8e21eaae8707ea15c9d2e53b3e5dbbf2f4fc85bb0df9",
    "a3894ad619752f404553cdc2c911bd0173a57049f2935840cc20f97deb12a375",
]


def test_a_study_from_before_repeated_inputs_resumes_as_it_was_searched(tmp_path):
    """tests/data/studies/pre_repeated_inputs.db: 6 trials of gtn-nas (evolution, seed 0) written by
    gtn-search 913e3a1. Resumed now, it goes on exactly as that version would have, with repeated
    inputs forbidden, while a new study of the same configuration searches the paper's full space."""
    import shutil

    import yaml as _yaml

    EVALUATORS.add("hash-score", HashScoreEvaluator)
    try:
        study_path = tmp_path / "old.db"
        shutil.copy(REPO / "tests" / "data" / "studies" / "pre_repeated_inputs.db", study_path)
        data = {"study": str(study_path), "space": "gtn-nas", "blueprint": TINY_BP,
                "strategy": {"name": "evolution", "options": {"population": 4, "sample_size": 2}},
                "evaluator": {"name": "hash-score"}, "budget": {"trials": 12}, "seed": 0}
        summary = run_search(SearchConfig.model_validate(data), progress=False)
        assert summary.resumed
        trials = Study(str(study_path)).trials()
        assert [t.hash for t in trials][6:] == PRE_REPEATS_CONTINUATION
        fresh = run_search(SearchConfig.model_validate({**data, "study": str(tmp_path / "new.db")}), progress=False)
        new = Study(fresh.study)
        assert _yaml.safe_load(new.get_meta("space"))["name"] == "gtn-nas"
        assert any(node[0][0] == node[1][0] for t in new.trials() for cell in t.genotype.values()
                   for node in cell["nodes"].values())  # the paper's space: some node repeats an input
    finally:
        EVALUATORS.unregister("hash-score")


def test_cells_that_ignore_an_input_build_and_train_on_gtn_data(tiny_teaching_set, mnist_root):
    """With repeated inputs a cell may read only one of its inputs: the unread one is concatenated
    into its output (NASNet, ENAS), so no cell is cut off and every parameter takes part in the
    unrolled inner loop (which differentiates with respect to all of them)."""
    from search_spaces.network import build

    space = get_space("gtn-nas")
    only_in0 = {"nodes": {"n0": [["in0", "conv_3x3"], ["in0", "identity"]], "n1": [["n0", "conv_1x1"], ["in0", "identity"]],
                          "n2": [["n1", "identity"], ["n1", "conv_3x3"]], "n3": [["n2", "conv_3x3"], ["n0", "identity"]],
                          "n4": [["n3", "identity"], ["in0", "max_pool_3x3"]]}}
    only_in1 = {"nodes": {k: [[src.replace("in0", "in1"), op] for src, op in v] for k, v in only_in0["nodes"].items()}}
    arch = space.architecture_from_mapping({"normal": only_in0, "reduce": only_in1})
    bp = Blueprint.from_mapping({**TINY_BP, "stages": 2})
    net = build(arch, bp, seed=0)
    assert net.cells[0].unread_inputs == [1] and net.cells[1].unread_inputs == [0]
    assert [c.out_channels for c in net.cells] == [2 * 2, 2 * 4, 2 * 4]  # one loose end + the unread input
    import torch
    from torch import nn

    x = torch.randn(2, 1, 28, 28)
    nn.functional.cross_entropy(net(x), torch.tensor([0, 1])).backward()
    assert all(p.grad is not None for p in net.parameters())
    gtn = make_evaluator("gtn", {"teaching_set": str(tiny_teaching_set), "val_size": 64}, str(mnist_root))
    assert gtn.evaluate(arch, bp, seed=1).ok


@pytest.mark.parametrize("repeats", [False, True])
def test_a_study_from_before_repeated_inputs_resumes_with_its_space_spelled_out(tmp_path, repeats):
    """A config that pins the space such a study was searched in ({name: gtn-nas,
    allow_repeated_inputs: false}, as benchmarks/configs/compare_fashion.yaml does since the preset
    changed) resumes it exactly as the bare preset name does; asking for repeated inputs is refused."""
    import shutil

    EVALUATORS.add("hash-score", HashScoreEvaluator)
    try:
        study_path = tmp_path / "old.db"
        shutil.copy(REPO / "tests" / "data" / "studies" / "pre_repeated_inputs.db", study_path)
        data = {"study": str(study_path), "space": {"name": "gtn-nas", "allow_repeated_inputs": repeats},
                "blueprint": TINY_BP, "strategy": {"name": "evolution", "options": {"population": 4, "sample_size": 2}},
                "evaluator": {"name": "hash-score"}, "budget": {"trials": 12}, "seed": 0}
        if repeats:
            with pytest.raises(StorageError, match="different 'space'"):
                run_search(SearchConfig.model_validate(data), progress=False)
            assert len(Study(str(study_path)).trials()) == 6  # nothing recorded is lost
            return
        assert run_search(SearchConfig.model_validate(data), progress=False).resumed
        assert [t.hash for t in Study(str(study_path)).trials()][6:] == PRE_REPEATS_CONTINUATION
    finally:
        EVALUATORS.unregister("hash-score")
