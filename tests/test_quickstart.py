"""The README's main job, at a tiny size: quickstart with the shipped teaching set."""

from __future__ import annotations

import json

from gtn_search.cli import main
from gtn_search.cli.quickstart import shipped_teaching_set
from gtn_search.gtn.teaching_set import TeachingSet
from gtn_search.storage import Study
from search_spaces.yaml_format import load_architecture


def test_shipped_teaching_set_is_valid():
    path = shipped_teaching_set()
    assert path is not None, "gtn_search/assets/mnist-nas-quickstart.pt is missing from the package"
    teaching = TeachingSet.load(path, dataset="mnist")
    assert teaching.info["config"]["learner"]["kind"] == "nas"
    assert teaching.info["meta_iterations_done"] >= 100


def test_quickstart_end_to_end_and_resume(tmp_path, mnist_root, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--data-root", str(mnist_root), "--out", str(out), "--final-epochs", "0.01",
            "--trials", "3", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "shipped with gtn-search" in text and "3 evaluated" in text
    for name in ("teaching_set.pt", "study.db", "best_over_time.png", "best_cell.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    (final,) = (out / "final").glob("*/result.json")
    result = json.loads(final.read_text())
    assert f"MNIST test accuracy {100 * result['test_accuracy']:.2f}%" in text
    assert result["blueprint"]["channels"] == 8 and result["epochs"] == 0.01  # the mnist-search network
    assert "[4/4] final training" in text and "time per phase: data and teaching set" in text
    exported = sorted((out / "best").glob("*.yaml"))
    assert len(exported) == 3
    best = Study(out / "study.db", create=False).best(1)[0]
    assert load_architecture(exported[0]).architecture.hash == best.hash
    assert main(args[:-3] + ["--trials", "4", "--no-progress"]) == 0  # resumes: one more trial
    text = capsys.readouterr().out
    assert "resumed" in text and "MNIST test accuracy" in text
    assert len(Study(out / "study.db", create=False).trials()) == 4
