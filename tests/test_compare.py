"""``gtn-search compare`` end to end on a tiny configuration: report, plots, numbers, resume, errors."""

from __future__ import annotations

import json
import math
import re

import pytest
import yaml
from scipy import stats

import gtn_search.compare.run as compare_run
from gtn_search.cli import main
from gtn_search.compare import load_compare_config, run_compare
from gtn_search.compare.analysis import correlation, cost_to_reach, noise_ceiling, top_fraction
from gtn_search.evaluators.base import Evaluator

TINY_BP = {"input_shape": [1, 28, 28], "channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}


def tiny_config(tmp_path, teaching, mnist_root, **extra):
    return {
        "out": str(tmp_path / "cmp"), "dataset": "mnist", "blueprint": TINY_BP, "num_architectures": 5, "seed": 0,
        "ground_truth": {"recipe": {"epochs": 0.004, "batch_size": 64, "eval_batch": 2000}},
        "proxies": [
            {"label": "gtn", "evaluator": {"name": "gtn", "options": {"teaching_set": str(teaching), "val_size": 64}},
             "steps": [1, 3]},
            {"label": "real", "evaluator": {"name": "real", "options": {"batch_size": 16, "val_size": 64}},
             "steps": [2, 8]},
            {"label": "naswot", "evaluator": {"name": "naswot", "options": {"batch_size": 16}}},
            {"label": "params", "evaluator": {"name": "params"}},
        ],
        "bootstrap": 50, "data_root": str(mnist_root), "limit": 1000, **extra,
    }


def test_analysis_helpers():
    c = correlation([1, 2, 3, 4, 5], [2, 4, 6, 8, 10], bootstrap=100)
    assert c.spearman == pytest.approx(1.0) and c.kendall == pytest.approx(1.0)
    assert correlation([1, 2, 3, 4], [4, 3, 2, 1], bootstrap=0).spearman == pytest.approx(-1.0)
    assert math.isnan(correlation([1, 1, 1], [1, 2, 3], bootstrap=0).spearman)  # constant proxy
    assert top_fraction([0.1, 0.9, 0.5, 0.7], [1, 2, 3, 4], 0.5) == ([0.9, 0.7, 0.5], [2, 4, 3])  # >= 3 kept
    curve = [(10, 0.2), (100, 0.4), (1000, 0.8)]
    assert cost_to_reach(curve, 0.6) == pytest.approx(10 ** 2.5)  # log-linear between 100 and 1000
    assert cost_to_reach(curve, 0.1) == 10 and cost_to_reach(curve, 0.9) is None


def test_noise_ceiling_is_the_seed_to_seed_rank_correlation():
    table = [[0.90, 0.91, 0.89], [0.80, 0.84, 0.82], [0.85, 0.83, 0.86], [0.70, 0.72, 0.71], [0.95, 0.90, 0.93]]
    nc = noise_ceiling(table, bootstrap=200)
    cols = list(zip(*table))
    pairs = [stats.spearmanr(cols[a], cols[b]).statistic for a, b in ((0, 1), (0, 2), (1, 2))]
    assert nc.replicates == 3 and nc.n == 5 and nc.pairwise == pytest.approx(sum(pairs) / 3)
    assert nc.of_mean == pytest.approx(3 * nc.pairwise / (1 + 2 * nc.pairwise))
    two = noise_ceiling([row[:2] for row in table], bootstrap=200)
    assert two.pairwise == pytest.approx(pairs[0]) and two.pairwise_ci[0] <= two.pairwise <= two.pairwise_ci[1]
    assert math.isnan(noise_ceiling([[0.9], [0.8], [0.7]]).pairwise)


def test_replicated_ground_truth_reuses_the_single_seed_run_and_reports_the_noise_ceiling(
        tmp_path, tiny_teaching_set, mnist_root, monkeypatch):
    base = tiny_config(tmp_path, tiny_teaching_set, mnist_root, num_architectures=4)
    base["proxies"] = [p for p in base["proxies"] if p["label"] == "params"]
    single = run_compare(load_compare_config_from(tmp_path, base), progress=False)
    assert "noise ceiling is unknown" in (tmp_path / "cmp" / "report.md").read_text()
    calls = []
    real_train = compare_run.train_final
    monkeypatch.setattr(compare_run, "train_final", lambda *a, **k: calls.append(a[-1]) or real_train(*a, **k))
    base["ground_truth"] = {**base["ground_truth"], "replicates": 2}
    double = run_compare(load_compare_config_from(tmp_path, base), progress=False)
    assert len(calls) == 4 and 0 not in calls  # only replicate 1 trained; replicate 0 is the stored single run
    for one, two in zip(single["ground_truth"], double["ground_truth"]):
        first, second = two["replicate_accuracies"]
        assert first == one["test_accuracy"] and two["test_accuracy"] == pytest.approx((first + second) / 2)
    reps = [g["replicate_accuracies"] for g in double["ground_truth"]]
    expected = stats.spearmanr([r[0] for r in reps], [r[1] for r in reps]).statistic
    nc = double["noise_ceiling"]
    assert nc["replicates"] == 2 and nc["pairwise"] == pytest.approx(expected, nan_ok=True)
    assert "Noise ceiling of the ground truth" in (tmp_path / "cmp" / "report.md").read_text()
    _check_tables(tmp_path / "cmp", double)
    from gtn_search.compare.run import Comparison
    from gtn_search.compare.status import comparison_progress

    comparison = Comparison(load_compare_config_from(tmp_path, base), progress=False, read_only=True)
    assert comparison_progress(comparison).noise_ceiling.pairwise == pytest.approx(nc["pairwise"], nan_ok=True)
    comparison.store.close()


def _check_tables(out, results):
    """ground_truth.csv and proxy_scores.csv hold the comparison's numbers, and the cells read back
    into the very architectures (a new proxy can be judged from the files alone)."""
    import csv

    from search_spaces.presets import get_space

    with open(out / "ground_truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    truths = results["ground_truth"]
    assert [r["hash"] for r in rows] == results["architectures"]
    space = get_space("gtn-nas")
    for row, truth in zip(rows, truths):
        arch = space.architecture_from_mapping({"normal": json.loads(row["normal"]), "reduce": json.loads(row["reduce"])})
        assert arch.hash == row["hash"] and row["status"] == truth["status"] == "ok"
        assert float(row["test_accuracy"]) == truth["test_accuracy"]
        assert [float(row[f"test_accuracy_{r}"]) for r in (1, 2)] == truth["replicate_accuracies"]
        assert int(row["params"]) == truth["params"] and float(row["seconds"]) == truth["seconds"]
    with open(out / "proxy_scores.csv", newline="") as f:
        scores = list(csv.DictReader(f))
    assert len(scores) == len(results["proxy_scores"]) * len(rows)
    for setting, values in results["proxy_scores"].items():
        mine = [r for r in scores if r["setting"] == setting]
        assert [r["hash"] for r in mine] == results["architectures"]
        assert [float(r["score"]) for r in mine] == values


def test_compare_end_to_end_and_resume(tmp_path, tiny_teaching_set, mnist_root, monkeypatch, capsys):
    cfg = load_compare_config_from(tmp_path, tiny_config(tmp_path, tiny_teaching_set, mnist_root))
    assert main(["compare", str(tmp_path / "compare.yaml"), "--status"]) == 1  # nothing computed yet: one line
    err = capsys.readouterr().err
    assert "compare.db does not exist: nothing of this comparison has been computed yet" in err
    assert "Traceback" not in err and not (tmp_path / "cmp").exists()  # and nothing created
    first = run_compare(cfg, progress=False)
    out = tmp_path / "cmp"
    settings = [r["setting"] for r in first["table"]]
    assert settings == ["gtn@1", "gtn@3", "real@2", "real@8", "naswot", "params"]
    for r in first["table"]:
        assert r["n"] == 5 and r["flops_per_arch"] >= 0
        pairs = [(s, g["test_accuracy"]) for s, g in zip(first["proxy_scores"][r["setting"]], first["ground_truth"])]
        expected = stats.spearmanr([p for p, _ in pairs], [t for _, t in pairs]).statistic
        assert r["all"]["spearman"] == pytest.approx(expected, nan_ok=True)
        assert r["mean_score"] == pytest.approx(sum(p for p, _ in pairs) / len(pairs))
    costs = {r["setting"]: r["flops_per_arch"] for r in first["table"]}
    assert costs["real@8"] > costs["real@2"] > 0 and costs["params"] == 0
    assert [s["setting"] for s in first["speedup"]] == ["gtn@1", "gtn@3"]
    report = (out / "report.md").read_text()
    assert "| gtn@3 | 3 | 5 |" in report and "Speed-up factor" in report
    for name in ("scatter.png", "correlation_vs_cost.png"):
        assert (out / name).stat().st_size > 10_000
    assert json.loads((out / "results.json").read_text())["architectures"] == first["architectures"]

    # run again with equal-budget searches added: nothing computed before is computed again
    calls = {"train": 0, "evaluate": 0}
    real_train, real_eval = compare_run.train_final, Evaluator.evaluate

    def counting_train(*a, **k):
        calls["train"] += 1
        return real_train(*a, **k)

    def counting_eval(self, *a, **k):
        calls["evaluate"] += 1
        return real_eval(self, *a, **k)

    monkeypatch.setattr(compare_run, "train_final", counting_train)
    monkeypatch.setattr(Evaluator, "evaluate", counting_eval)
    budget = 3 * costs["real@2"]
    eb = {"evaluators": ["gtn@3", "real"], "strategies": ["random"], "seeds": [0, 1], "flops": budget, "top_k": 1}
    second = run_compare(load_compare_config_from(tmp_path, tiny_config(tmp_path, tiny_teaching_set, mnist_root,
                                                                        equal_budget=eb,
                                                                        targets={"primary": "gtn@3"})),
                         progress=False)
    assert second["table"] == first["table"]  # the same stored numbers
    assert second["targets"]["primary"] == "gtn@3" and len(second["targets"]["verdicts"]) == 4
    assert [o["setting"] for o in second["targets"]["others"]] == ["gtn@1"]
    assert "## Targets fixed in advance" in (out / "report.md").read_text()
    searches = second["equal_budget"]
    assert set(searches) == {"gtn@3|random", "real@2|random"}
    for v in searches.values():
        assert len(v["runs"]) == 2 and v["best_final_mean"] is not None
        for run in v["runs"]:
            assert run["flops"] >= budget and run["curve"][-1]["fraction"] == 1.0
    assert calls["evaluate"] > 0  # only the searches evaluated
    trained = calls["train"]
    assert 0 < trained <= 2 * 2 * 4  # top-1 + 3 curve points per search, minus what was already trained
    assert (out / "equal_budget.png").stat().st_size > 10_000 and "Equal-budget searches" in (out / "report.md").read_text()
    calls.update(train=0, evaluate=0)
    run_compare(load_compare_config_from(tmp_path, tiny_config(tmp_path, tiny_teaching_set, mnist_root,
                                                               equal_budget=eb)), progress=False)
    assert calls == {"train": 0, "evaluate": 0}  # a finished comparison recomputes nothing
    _check_status(tmp_path, tiny_config(tmp_path, tiny_teaching_set, mnist_root, equal_budget=eb), second)


def test_the_report_is_written_before_the_equal_budget_searches(tmp_path, tiny_teaching_set, mnist_root,
                                                                 monkeypatch):
    """The searches come last and can take hours: the correlations, peers and noise ceiling are
    reported as soon as the ground truth and every proxy are done, with the searches marked pending."""
    eb = {"evaluators": ["gtn@3"], "strategies": ["random"], "seeds": [0], "flops": 1e6, "top_k": 1}
    data = tiny_config(tmp_path, tiny_teaching_set, mnist_root, equal_budget=eb, targets={"primary": "gtn@3"})
    data["proxies"] = data["proxies"][:1] + data["proxies"][2:]  # no real-data sweep: faster

    def interrupted(self):
        raise KeyboardInterrupt  # the session ends during the searches

    monkeypatch.setattr(compare_run.Comparison, "equal_budget", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_compare(load_compare_config_from(tmp_path, data), progress=False)
    out = tmp_path / "cmp"
    interim = json.loads((out / "results.json").read_text())
    assert interim["equal_budget"] is None and interim["equal_budget_pending"] is True
    assert [r["setting"] for r in interim["table"]] == ["gtn@1", "gtn@3", "naswot", "params"]
    verdict = interim["targets"]["verdicts"][-1]
    assert verdict["measured"].startswith("pending") and verdict["met"] is None
    report = (out / "report.md").read_text()
    assert "| gtn@3 | 3 | 5 |" in report and "The equal-budget searches have not finished" in report
    assert (out / "ground_truth.csv").exists()
    monkeypatch.undo()
    final = run_compare(load_compare_config_from(tmp_path, data), progress=False)
    assert final["equal_budget_pending"] is False and final["equal_budget"]
    assert json.loads(json.dumps(final["table"])) == interim["table"]
    assert "have not finished" not in (out / "report.md").read_text()


def _check_status(tmp_path, data, results):
    """``compare --status`` on a finished comparison that then lost rows (as a kill would) and gained a
    search: it counts what is stored, and reads without writing."""
    import sqlite3

    import contextlib
    import io

    from gtn_search.compare.report import ci_text

    status_config = tmp_path / "status.yaml"
    status_config.write_text(yaml.safe_dump(data))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # complete: each setting's correlation, as the report has it
        assert main(["compare", str(status_config), "--status"]) == 0
    lines = out.getvalue().splitlines()
    for row in results["table"]:
        line = next(x for x in lines if x.startswith(f"  proxy {row['setting']}:"))
        assert line.endswith(f"; Spearman with the ground truth {ci_text(row['all'], 'spearman')} (all), "
                             f"{ci_text(row['top50'], 'spearman')} (top 50%)"), line
    for speedup in results["speedup"]:  # and, the real-data curve being complete, the speed-ups
        assert (f"  speed-up of {speedup['setting']}: {speedup['all_flops_text']} in FLOPs, "
                f"{speedup['all_seconds_text']} in seconds (all architectures)") in lines
    lost = results["architectures"][0]
    conn = sqlite3.connect(tmp_path / "cmp" / "compare.db", isolation_level=None)
    conn.execute("DELETE FROM ground_truth WHERE hash=?", (lost,))
    conn.execute("DELETE FROM proxy WHERE flops=0 AND hash IN (?, ?)", tuple(results["architectures"][1:3]))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data["equal_budget"] = {**data["equal_budget"], "seeds": [0, 1, 2]}
    status_config.write_text(yaml.safe_dump(data))
    runs = {k: v["runs"] for k, v in results["equal_budget"].items()}
    picked = {c["hash"] for rs in runs.values() for r in rs for c in r["curve"] + r["top"] if c["hash"]}
    files = {p: p.read_bytes() for p in (tmp_path / "cmp").rglob("*.db")}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compare", str(status_config), "--status"]) == 0
    expected = ["  ground truth, replicate 1 of 1 (seed 0): 4 of 5 done"]
    expected += [f"  proxy {s}: {3 if s == 'params' else 5} of 5 done"  # params rows cost 0 FLOPs
                 for s in ("gtn@1", "gtn@3", "real@2", "real@8", "naswot", "params")]
    for setting in ("gtn@3", "real@2"):
        expected += [f"  search {setting} random seed {seed}: finished, {r['trials']} evaluations, 100% of its budget"
                     for seed, r in enumerate(runs[f"{setting}|random"])]
        expected.append(f"  search {setting} random seed 2: not started")
    expected.append(f"  final trainings of what the 4 finished searches picked: {len(picked - {lost})} of "
                    f"{len(picked)} done")
    lines = out.getvalue().splitlines()[1:]
    assert lines[7].startswith("  time left for ground truth and proxies: about ")  # after the 7 counts
    # the 2 searches not started (seed 2), at their evaluators' pace on the stored proxy rows, then at
    # most 1 top-1 and 2 curve points each (plus any lost pick) to final-train at the ground truth's pace
    more = len(picked & {lost}) + 2 * 3
    assert re.fullmatch(rf"  time left for the equal-budget searches: about \d+ (s|min|h), then up to {more} "
                        r"final trainings of their picks, about \d+ (s|min|h)", lines[-1]), lines[-1]
    lines = lines[:7] + lines[8:-1]
    left = re.compile(r", about \d+ (s|min|h) left \(\d+ (s|min|h) each, 1 worker\)$")
    assert [left.sub("", line) for line in lines] == expected
    # the lines with something left (the lost ground truth, the lost params rows) carry their estimate
    assert [line for line in lines if left.search(line)] == [lines[0], lines[6]]
    assert {p: p.read_bytes() for p in (tmp_path / "cmp").rglob("*.db")} == files  # nothing written


def test_status_estimates_the_time_left_at_the_median_pace():
    from gtn_search.compare.status import Count, Progress, duration

    assert [duration(s) for s in (40, 150, 7200)] == ["40 s", "2 min", "2.0 h"]
    gt = Count("ground truth", ok=3, failed=0, total=5, pace=120.0, workers=2)
    assert gt.seconds_left == 120.0
    assert gt.line() == "ground truth: 3 of 5 done, about 2 min left (2 min each, 2 workers)"
    new = Count("proxy gtn@32", ok=0, failed=0, total=5)
    done = Count("proxy params", ok=5, failed=0, total=5, pace=0.1)
    assert new.seconds_left is None and new.line() == "proxy gtn@32: 0 of 5 done" and done.seconds_left == 0.0
    assert done.line() == "proxy params: 5 of 5 done"
    lines = Progress("out", 5, [gt], [new, done]).lines()
    assert lines[-1] == "  time left for ground truth and proxies: about 2 min (+ 1 setting not started, no pace yet)"
    # a setting scored on the way by a longer one's training adds no time of its own
    swept = Count("proxy real@16", ok=1, failed=0, total=5, pace=9.0, swept_with="proxy real@512")
    assert swept.seconds_left == 0.0 and swept.line() == "proxy real@16: 1 of 5 done (scored on the way by proxy real@512)"
    assert Progress("out", 5, [gt], [swept]).lines()[-1] == "  time left for ground truth and proxies: about 2 min"
    # with replicates, the noise ceiling over the architectures trained by every replicate so far
    from gtn_search.compare.analysis import noise_ceiling as ceiling

    two = [Count("ground truth, replicate 1 of 2", 5, 0, 5), Count("ground truth, replicate 2 of 2", 4, 0, 5)]
    nc = ceiling([[0.90, 0.91], [0.80, 0.82], [0.85, 0.84], [0.70, 0.72]], bootstrap=100)
    lines = Progress("out", 5, two, [], noise_ceiling=nc).lines()
    assert lines[3] == (f"  noise ceiling so far (4 architectures with every replicate trained): seed-to-seed Spearman "
                        f"{nc.pairwise:.3f} [{nc.pairwise_ci[0]:.2f}, {nc.pairwise_ci[1]:.2f}]")
    # an equal-budget search: the FLOPs left of its budget at its evaluator's FLOPs per second
    from gtn_search.compare.status import SearchProgress

    assert SearchProgress("gtn@32 random seed 0", True, 3, 4e9, 1e10, rate=2e7).seconds_left == 300.0
    assert SearchProgress("gtn@32 random seed 1", False, 0, 0.0, 1e10).seconds_left is None
    assert SearchProgress("done", True, 9, 1.1e10, 1e10).seconds_left == 0.0
    searching = Progress("out", 5, [], [], [SearchProgress("s", True, 3, 4e9, 1e10, rate=2e7)], (0, 0), picks_to_come=2,
                         training_pace=600.0, workers=2, replicates=2)
    assert searching.lines()[-1] == ("  time left for the equal-budget searches: about 5 min, then up to 4 final "
                                     "trainings of their picks, about 20 min")
    # the searches done, their picks partly trained: counted per training (architecture x replicate)
    finals = Progress("out", 5, [], [], [SearchProgress("s", True, 9, 1.1e10, 1e10, rate=2e7)], (4, 34),
                      search_final_archs=(0, 17), training_pace=600.0, workers=2, replicates=2)
    assert finals.lines()[-2:] == [
        "  final trainings of what the 1 finished searches picked: 4 of 34 done (0 of 17 architectures with all 2 "
        "replicates trained)",
        "  time left for the equal-budget searches: about 0 s, then up to 30 final trainings of their picks, about 2.5 h"]


def test_compare_with_worker_processes_gives_the_sequential_numbers(tmp_path, tiny_teaching_set, mnist_root):
    base = tiny_config(tmp_path, tiny_teaching_set, mnist_root)
    base["proxies"] = [p for p in base["proxies"] if p["label"] in ("gtn", "params")]
    base["num_architectures"] = 4
    seq = run_compare(load_compare_config_from(tmp_path, {**base, "out": str(tmp_path / "seq")}), progress=False)
    par = run_compare(load_compare_config_from(tmp_path, {**base, "out": str(tmp_path / "par"), "workers": 2}),
                      progress=False)
    assert par["architectures"] == seq["architectures"]
    for a, b in zip(par["ground_truth"], seq["ground_truth"]):
        assert a["status"] == b["status"] == "ok"
        assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=0.01)
    assert par["proxy_scores"]["params"] == seq["proxy_scores"]["params"]
    for s in ("gtn@1", "gtn@3"):
        assert par["proxy_scores"][s] == pytest.approx(seq["proxy_scores"][s], abs=0.04)
    assert (tmp_path / "par" / "report.md").exists()

    # equal-budget searches: the final trainings of what they found run in the worker processes
    cost = {r["setting"]: r["flops_per_arch"] for r in seq["table"]}["gtn@3"]
    base["equal_budget"] = {"evaluators": ["gtn@3"], "strategies": ["random"], "seeds": [0], "flops": 4 * cost,
                            "top_k": 2}
    seq = run_compare(load_compare_config_from(tmp_path, {**base, "out": str(tmp_path / "seq")}), progress=False)
    par = run_compare(load_compare_config_from(tmp_path, {**base, "out": str(tmp_path / "par"), "workers": 2}),
                      progress=False)
    a, b = seq["equal_budget"]["gtn@3|random"]["runs"][0], par["equal_budget"]["gtn@3|random"]["runs"][0]
    assert a["trials"] == b["trials"] >= 4 and [c["hash"] for c in a["curve"]] == [c["hash"] for c in b["curve"]]
    assert [t["final_test_accuracy"] for t in b["top"]] == pytest.approx([t["final_test_accuracy"] for t in a["top"]],
                                                                        abs=0.01)
    assert all(t["final_test_accuracy"] is not None for t in b["top"])


def test_workers_compute_the_training_free_peers_first(tmp_path, tiny_teaching_set, mnist_root):
    cfg = load_compare_config_from(tmp_path, tiny_config(tmp_path, tiny_teaching_set, mnist_root))
    comparison = compare_run.Comparison(cfg, progress=False)
    listed = list(cfg.settings())
    assert listed == ["gtn@1", "gtn@3", "real@2", "real@8", "naswot", "params"]
    assert comparison.proxy_setting_order(dict.fromkeys(listed)) == ["naswot", "params", "gtn@1", "gtn@3", "real@2",
                                                                     "real@8"]


def test_speedup_is_an_upper_bound_when_the_cheapest_real_proxy_already_matches():
    def row(setting, kind, flops, rho):
        c = {"spearman": rho}
        return {"setting": setting, "kind": kind, "flops_per_arch": flops, "seconds_per_arch": flops / 100,
                "all": c, "top50": c}

    table = [row("gtn@8", "gtn", 10.0, 0.1), row("gtn@32", "gtn", 10.0, 0.5),
             row("real@16", "real", 20.0, 0.2), row("real@64", "real", 200.0, 0.6)]
    low, high = compare_run.Comparison.speedups(table)
    assert low["all_flops"] == pytest.approx(2.0) and low["all_flops_text"].startswith("<= 2.0x")
    need = 10 ** (math.log10(20) + (0.5 - 0.2) / (0.6 - 0.2) * (math.log10(200) - math.log10(20)))
    assert high["all_flops"] == pytest.approx(need / 10.0) and high["all_flops_text"] == f"{need / 10:.1f}x"


def load_compare_config_from(tmp_path, data):
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_compare_config(path)


@pytest.mark.parametrize("change, message", [
    ({"equal_budget": {"evaluators": ["gtm"], "flops": 1e9}}, "not proxy labels"),
    ({"proxies": []}, "proxies"),
    ({"num_architectures": 2}, "num_architectures"),
    ({"targets": {"primary": "real@2"}}, "targets.primary 'real@2' is not a GTN proxy setting (gtn@1, gtn@3)"),
    ({"equal_budget": {"evaluators": ["gtn"], "flops": "1e9"}}, "signed exponent, e.g. 1.000e+09"),
    ({"equal_budget": {"evaluators": ["gtn"], "flops": 1e9, "curve_fractions": [1.5]}}, "curve_fractions"),
    ({"proxies": [{"label": "a", "evaluator": {"name": "real", "options": {"steps": 3}}, "steps": [1]}]},
     "not in the evaluator options"),
])
def test_bad_compare_configs_exit_1(tmp_path, capsys, change, message):
    data = tiny_config(tmp_path, tmp_path / "ts.pt", tmp_path)
    data.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["compare", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_comparison_in_use_by_another_run_is_refused(tmp_path, tiny_teaching_set, mnist_root):
    import os
    from pathlib import Path

    from gtn_search.errors import StorageError
    from gtn_search.studylock import StudyLock

    cfg = load_compare_config_from(tmp_path, tiny_config(tmp_path, tiny_teaching_set, mnist_root))
    with StudyLock(Path(cfg.out) / "compare.db"), \
            pytest.raises(StorageError, match=f"comparison {cfg.out}/compare.db is in use by pid {os.getpid()} on "):
        run_compare(cfg, progress=False)
    assert not (Path(cfg.out) / "results.json").exists()  # nothing was computed


def test_relative_paths_in_a_compare_config_are_taken_from_its_folder(tmp_path, monkeypatch):
    from pathlib import Path

    folder, elsewhere = tmp_path / "cfg", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = {"out": "runs/cmp", "data_root": "data",
            "proxies": [{"label": "gtn", "evaluator": {"name": "gtn", "options": {"teaching_set": "ts.pt"}}}]}
    cfg = load_compare_config_from(folder, data)
    assert (cfg.out, cfg.data_root, cfg.base_dir) == (str(folder / "runs" / "cmp"), str(folder / "data"), str(folder))
    cfg = load_compare_config(folder / "compare.yaml", {"out": "mine"})  # command-line paths: the current folder
    assert cfg.out == str(elsewhere / "mine")
    # the benchmark configuration keeps its repository-root paths with base_dir, from any folder
    repo = Path(__file__).resolve().parents[1]
    bench = load_compare_config(repo / "benchmarks" / "configs" / "compare_fashion.yaml")
    assert bench.out == str(repo / "benchmarks" / "results" / "compare_fashion") and bench.base_dir == str(repo)


def test_the_report_names_the_space_with_its_overridden_settings():
    from gtn_search.compare.report import space_label

    assert space_label("gtn-nas") == "`gtn-nas`"
    assert space_label({"name": "gtn-nas", "allow_repeated_inputs": False}) == "`gtn-nas` (allow_repeated_inputs: false)"
    assert space_label({"name": "gtn-nas"}) == "`gtn-nas`"
    assert space_label({"ops": ["identity"], "num_nodes": 1}) == "a custom space"



def test_a_step_sweep_is_trained_once_per_architecture_with_the_separate_scores(tmp_path, tiny_teaching_set,
                                                                                mnist_root, monkeypatch):
    """gtn@1/gtn@3 and real@2/real@8 each come from one training per architecture (scored on the
    way), stored under each setting's own key with exactly the numbers a separate evaluation gives."""
    from gtn_search.compare.run import Comparison
    from gtn_search.evaluators.base import SeedBatchingEvaluator
    from gtn_search.seeding import derive_seed

    base = tiny_config(tmp_path, tiny_teaching_set, mnist_root)
    base["proxies"] = [p for p in base["proxies"] if p["label"] in ("gtn", "real")]
    base["num_architectures"] = 4
    cfg = load_compare_config_from(tmp_path, base)
    trainings: list[list[int]] = []

    def counting(original):  # type: ignore[no-untyped-def]
        def trained(self, arch, blueprint, seeds, steps, clock):  # type: ignore[no-untyped-def]
            trainings.append(list(steps))
            return original(self, arch, blueprint, seeds, steps, clock)
        return trained

    for cls in SeedBatchingEvaluator.__subclasses__():
        monkeypatch.setattr(cls, "_trained", counting(cls._trained))
    results = run_compare(cfg, progress=False)
    assert sorted(trainings) == [[1, 3]] * 4 + [[2, 8]] * 4
    comparison = Comparison(cfg, progress=False)
    evaluators = comparison.proxy_evaluators()
    for i, arch in enumerate(comparison.architectures()):
        seed = derive_seed(cfg.seed, "compare-proxy", arch.hash)
        for setting in ("gtn@1", "gtn@3", "real@2", "real@8"):
            alone = evaluators[setting][0].evaluate(arch, comparison.blueprint, seed)
            stored = comparison.store.proxy(evaluators[setting][3], arch.hash)
            assert stored["score"] == alone.score == results["proxy_scores"][setting][i]
            assert (stored["sgd_steps"], stored["train_flops"], stored["eval_flops"]) == \
                (alone.sgd_steps, alone.train_flops, alone.eval_flops)
    comparison.store.close()


@pytest.mark.parametrize("kills", [1, 5], ids=["dies-once", "always-dies"])
def test_a_worker_that_dies_costs_only_its_own_job(tmp_path, tiny_teaching_set, mnist_root, monkeypatch, kills):
    """A ground-truth training that kills its worker (as the OOM killer would) does not stop the
    comparison: the jobs of the dead pool run again, the suspects alone; one that dies alone twice
    is recorded as failed with the reason, every other architecture is trained."""
    import tests.dying_jobs as dying
    from gtn_search.compare.run import Comparison

    base = tiny_config(tmp_path, tiny_teaching_set, mnist_root, workers=2, num_architectures=4)
    base["proxies"] = [p for p in base["proxies"] if p["label"] == "params"]
    cfg = load_compare_config_from(tmp_path, base)
    victim = Comparison(cfg, progress=False).architectures()[1]
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    monkeypatch.setenv("GTN_TEST_KILL", victim.hash)
    monkeypatch.setenv("GTN_TEST_KILL_DIR", str(attempts))
    monkeypatch.setenv("GTN_TEST_KILL_TIMES", str(kills))
    monkeypatch.setattr(compare_run, "_ground_truth_job", dying.ground_truth_that_kills_its_worker)
    results = run_compare(cfg, progress=False)
    truths = dict(zip(results["architectures"], results["ground_truth"]))
    if kills == 1:
        assert len(list(attempts.iterdir())) == 2  # died once, then trained
        assert all(t["status"] == "ok" for t in truths.values())
    else:
        assert len(list(attempts.iterdir())) == 3  # with the pool, then twice alone
        assert truths[victim.hash]["status"] == "failed"
        assert truths[victim.hash]["error"].startswith("the worker process died each of the 2 times this ran alone")
        assert all(t["status"] == "ok" for h, t in truths.items() if h != victim.hash)
