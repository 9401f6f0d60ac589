"""Judging a comparison against targets fixed in advance (gtn_search.compare.targets)."""

from __future__ import annotations

import math

import pytest

from gtn_search.compare.targets import judge, speedup_over_all

TARGETS = {"primary": "gtn@32", "margin_over_peers": 0.1, "top50_spearman": 0.56, "top50_halfwidth": 0.15,
           "speedup": 9.0}


def row(setting, kind, flops, rho, top=None, ci=(math.nan, math.nan)):
    top = rho if top is None else top
    return {"setting": setting, "kind": kind, "flops_per_arch": flops,
            "all": {"spearman": rho, "spearman_ci": (math.nan, math.nan)},
            "top50": {"spearman": top, "spearman_ci": ci}}


def table(**changes):
    rows = {
        "gtn@8": row("gtn@8", "gtn", 3.0, 0.2),
        "gtn@32": row("gtn@32", "gtn", 10.0, 0.5, top=0.6, ci=(0.5, 0.7)),
        "real@16": row("real@16", "real", 20.0, 0.3),
        "real@64": row("real@64", "real", 80.0, 0.6),
        "params": row("params", "params", 0.0, 0.35),
        "synflow": row("synflow", "synflow", 5.0, math.nan),  # a constant proxy: no correlation, no peer
    }
    rows.update(changes)
    return [r for r in rows.values() if r is not None]


def equal_budget(gtn_random, real_random, gtn_evo, real_evo):
    def entry(setting, strategy, mean):
        return {"evaluator": setting, "strategy": strategy, "runs": [{}, {}, {}], "best_final_mean": mean,
                "best_final_std": 0.01}
    return {"gtn@32|random": entry("gtn@32", "random", gtn_random), "real@64|random": entry("real@64", "random", real_random),
            "gtn@32|evolution": entry("gtn@32", "evolution", gtn_evo),
            "real@64|evolution": entry("real@64", "evolution", real_evo)}


def verdicts(results, **targets):
    out = judge(results, {**TARGETS, **targets})
    return {v["criterion"]: v for v in out["verdicts"]}, out


def test_each_criterion_against_an_independent_computation():
    results = {"table": table(), "equal_budget": equal_budget(0.82, 0.81, 0.80, 0.805)}
    v, out = verdicts(results)
    margin = v["Spearman over all architectures vs the best peer"]
    # peers: params (0.35); real@16 costs more than gtn@32 (20 > 10) and synflow has no correlation
    assert margin["met"] is True and "params 0.350: +0.150" in margin["measured"]
    assert v["Spearman over the top 50%"]["met"] is True and "half-width 0.100" in v["Spearman over the top 50%"]["measured"]
    # real data reaches 0.5 between (20, 0.3) and (80, 0.6), log-linearly: 20 * 4 ** (2/3) FLOPs
    need = 20 * 4 ** (2 / 3)
    assert speedup_over_all(results["table"], results["table"][1]) == (pytest.approx(need / 10), "exact")
    assert v["speed-up over all architectures (FLOPs)"]["met"] is False
    assert v["speed-up over all architectures (FLOPs)"]["measured"] == f"{need / 10:.1f}x"
    assert v["equal-budget searches (random)"]["met"] is True
    assert v["equal-budget searches (evolution)"]["met"] is False
    assert "gtn@32 0.8000 +- 0.0100 vs real@64 0.8050" in v["equal-budget searches (evolution)"]["measured"]
    (other,) = out["others"]
    assert other["setting"] == "gtn@8" and other["best_peer"] == "params" and other["margin"] == pytest.approx(-0.15)


def test_a_real_data_setting_as_cheap_as_gtn_is_a_peer():
    cheap = row("real@4", "real", 10.0, 0.45)
    v, _ = verdicts({"table": table(**{"real@4": cheap})})
    margin = v["Spearman over all architectures vs the best peer"]
    assert margin["met"] is False and "real@4 0.450: +0.050" in margin["measured"]
    assert v["equal-budget searches"]["met"] is None  # no searches: undecided, not met


@pytest.mark.parametrize("gtn_rho, required, expected, text", [
    (0.7, 9.0, None, ">= 8.0x (real data never reached it)"),   # only a lower bound, below the target
    (0.7, 5.0, True, ">= 8.0x (real data never reached it)"),   # a lower bound above the target decides
    (0.25, 9.0, False, "<= 2.0x (the cheapest real-data setting already reaches it)"),
])
def test_speedup_bounds_decide_only_on_their_side(gtn_rho, required, expected, text):
    results = {"table": table(**{"gtn@32": row("gtn@32", "gtn", 10.0, gtn_rho)})}
    v, _ = verdicts(results, speedup=required)
    s = v["speed-up over all architectures (FLOPs)"]
    assert s["met"] is expected and s["measured"] == text


def test_a_wide_top50_interval_fails_the_target_even_with_a_high_spearman():
    wide = row("gtn@32", "gtn", 10.0, 0.5, top=0.7, ci=(0.3, 0.9))
    v, _ = verdicts({"table": table(**{"gtn@32": wide})})
    assert v["Spearman over the top 50%"]["met"] is False
    assert v["Spearman over the top 50%"]["measured"] == "0.700, half-width 0.300"


def test_a_missing_primary_is_reported_not_raised():
    out = judge({"table": table(**{"gtn@32": None})}, TARGETS)
    assert out["verdicts"] == [] and "not in the results" in out["note"]
