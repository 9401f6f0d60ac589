"""``gtn-search report``: one self-contained HTML file for a study or a comparison."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gtn_search.cli import main
from gtn_search.configio import StrictModel
from gtn_search.evaluators.base import Evaluator, Measurement
from gtn_search.html_report import write_html_report
from gtn_search.registry import EVALUATORS
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig
from gtn_search.storage import Study

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}


class _HalfFailing(Evaluator):
    """Scores from the seed; every third trial fails with a reason."""

    class Config(StrictModel):
        pass

    def _evaluate(self, arch, blueprint, seed):
        if seed % 3 == 0:
            raise RuntimeError("simulated divergence")
        return Measurement((seed % 1000) / 1000, 4, 64, 2.0e6 + seed % 7, 1.0e6, 1000 + seed % 97)


class _Page(HTMLParser):
    """Collects tags, the URLs the page would load and the table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action") and value:
                self.urls.append(value)
        if tag == "tr":
            self.rows += 1


@pytest.fixture()
def study(tmp_path):
    EVALUATORS.add("half_failing", _HalfFailing)
    try:
        cfg = SearchConfig.model_validate({
            "study": str(tmp_path / "study.db"), "space": "gtn-nas", "blueprint": TINY_BP, "strategy": "random",
            "evaluator": {"name": "half_failing"}, "budget": {"trials": 9}, "seed": 0})
        run_search(cfg, progress=False)
    finally:
        EVALUATORS.unregister("half_failing")
    return Path(cfg.study)


def _parse(path: Path) -> tuple[str, _Page]:
    text = path.read_text()
    page = _Page()
    page.feed(text)
    page.close()
    return text, page


def test_study_report_is_self_contained_and_holds_the_study(study, tmp_path):
    out = write_html_report(study, tmp_path / "report.html", top=3)
    text, page = _parse(out)
    assert page.tags[0] == "html" and "table" in page.tags and "script" in page.tags
    assert page.urls and all(u.startswith("data:image/png;base64,") for u in page.urls)  # nothing from outside
    assert not re.search(r"https?:|url\(|@import|fetch\(|XMLHttpRequest", text)
    db = Study(study, create=False)
    try:
        trials, best = db.trials(), db.best(3)
    finally:
        db.close()
    assert page.rows >= len(trials) + 1  # every trial in the sortable table
    for t in best:
        assert f"{t.score:.4f}" in text and t.hash[:16] in text
    failed = [t for t in trials if t.status == "failed"]
    assert failed and text.count("simulated divergence") >= len(failed)
    assert text.count("data:image/png;base64,") == 2 + len(best)  # two plots, one drawing per top trial
    assert "normal:" in text and "reduce:" in text  # the YAML of the top cells


def test_compare_report_shows_the_correlation_table(tmp_path):
    folder = tmp_path / "cmp"
    folder.mkdir()
    ci = {"spearman": 0.4651, "spearman_ci": [-0.01, 0.81], "kendall": 0.3, "kendall_ci": [0.0, 0.6], "n": 40}
    results = {
        "config": {"blueprint": "mnist-tiny", "ground_truth": {"recipe": {"epochs": 1}}}, "dataset": "fashion_mnist",
        "architectures": ["a", "b"], "ground_truth": [{"status": "ok", "test_accuracy": 0.81}],
        "noise_ceiling": {"replicates": 2, "n": 40, "pairwise": 0.6123, "pairwise_ci": [0.4, 0.75], "of_mean": 0.76},
        "table": [{"setting": "gtn@32", "steps": 32, "n": 40, "flops_per_arch": 1.1e10, "seconds_per_arch": 5.67,
                   "all": ci, "top50": ci, "mean_score": 0.518}],
        "speedup": [{"setting": "gtn@32", **{f"{s}_{u}_text": "9.7x" for s in ("all", "top50")
                                               for u in ("flops", "seconds")}}],
        "equal_budget": None,
    }
    (folder / "results.json").write_text(json.dumps(results))
    shutil.copyfile(Path(__file__).parent.parent / "benchmarks/results/compare_fashion/scatter.png",
                    folder / "scatter.png")
    text, page = _parse(write_html_report(folder, tmp_path / "cmp.html"))
    assert "0.465 [-0.01, 0.81]" in text and "0.612 [0.40, 0.75]" in text and "9.7x" in text
    assert all(u.startswith("data:image/png;base64,") for u in page.urls) and len(page.urls) == 1


def test_report_errors_are_one_line(tmp_path, capsys, study):
    assert main(["report", str(tmp_path / "missing.db"), "--out", str(tmp_path / "r.html")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(study), "--out", str(tmp_path / "r.pdf")]) == 1
    assert "expected an .html path" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 1
    assert "without results.json" in capsys.readouterr().err
    assert main(["report", str(study), "--out", str(tmp_path / "ok.html")]) == 0
    assert "self-contained" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(study, tmp_path):
    out = write_html_report(study, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1280,2000", out.as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000


def test_a_multi_objective_study_report_shows_its_front(tmp_path):
    from gtn_search.pareto_report import pareto_summary

    cfg = SearchConfig.model_validate({
        "study": str(tmp_path / "mo.db"), "space": "gtn-nas", "blueprint": TINY_BP, "strategy": "random",
        "evaluator": "synthetic", "budget": {"trials": 20}, "seed": 0,
        "objectives": {"score": "max", "params": "min"}, "constraints": {"params": "<= 330"}})
    run_search(cfg, progress=False)
    text, page = _parse(write_html_report(Path(cfg.study), tmp_path / "mo.html", top=2))
    db = Study(cfg.study, create=False)
    try:
        summary, infeasible = pareto_summary(db), db.counts().get("infeasible", 0)
    finally:
        db.close()
    assert "<h2>Pareto front</h2>" in text and f"hypervolume <b>{summary.hypervolume:.6g}</b>" in text
    assert infeasible and f"<b>{infeasible}</b>infeasible (never trained)" in text
    assert all(f">{t.hash[:12]}<" in text for t in summary.front)
    assert text.count("data:image/png;base64,") == 3 + 2  # best, score vs cost, Pareto; a drawing per top trial
