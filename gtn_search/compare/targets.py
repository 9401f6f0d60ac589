"""Judging a comparison against success criteria fixed in advance (``targets`` in the compare YAML).

One GTN setting, named before any proxy is scored (``targets.primary``), is judged on four criteria;
each verdict carries the measured figure, so a missed target is reported with its number:

1. **Margin over peers**: its Spearman over all architectures minus the best Spearman among the
   training-free peers (every proxy that is neither a GTN nor a real-data setting: params, FLOPs,
   synflow, NASWOT, jacob_cov, ...) and the real-data settings that cost no more FLOPs than it.
2. **Top 50%**: Spearman over the top half by its own score, and the half-width of its bootstrap
   95% interval.
3. **Speed-up over all architectures**: real-data FLOPs needed to reach its Spearman over all
   architectures (log-linear interpolation on the real-data settings' correlation-vs-cost points)
   divided by its FLOPs. When real data never reaches it the factor is only bounded below, when
   the cheapest real-data setting already reaches it only bounded above; a bound decides the
   target only when it falls on the deciding side.
4. **Equal-budget searches**: per strategy, the mean best final test accuracy of its searches
   against the real-data searches'.

Every other GTN setting gets the same figures in a second table, for information: choosing the
best-looking setting after seeing the ground truth would be tuning on the test set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gtn_search.compare.analysis import cost_to_reach

#: proxy kinds that are trained on data; every other kind is a training-free peer
TRAINED_KINDS = ("gtn", "real")


@dataclass
class Verdict:
    """One criterion: what was required, what was measured, and whether it holds (None: undecided)."""

    criterion: str
    required: str
    measured: str
    met: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SettingFigures:
    """The figures the criteria look at, for one GTN setting."""

    setting: str
    spearman_all: float
    best_peer: str | None
    best_peer_spearman: float | None
    margin: float | None
    spearman_top50: float
    top50_halfwidth: float | None
    #: (value, 'exact' | 'at least' | 'at most') or None when there is no real-data curve
    speedup: tuple[float, str] | None


def _nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _peers(table: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    """The training-free settings and the real-data settings costing no more FLOPs than ``row``."""
    return [r for r in table if r["setting"] != row["setting"] and not _nan(r["all"]["spearman"])
            and (r["kind"] not in TRAINED_KINDS or (r["kind"] == "real" and r["flops_per_arch"] <= row["flops_per_arch"]))]


def speedup_over_all(table: list[dict[str, Any]], row: dict[str, Any]) -> tuple[float, str] | None:
    """Real-data FLOPs to reach ``row``'s Spearman over all architectures / its FLOPs, with a qualifier."""
    rho, cost = row["all"]["spearman"], row["flops_per_arch"]
    curve = sorted((r["flops_per_arch"], r["all"]["spearman"]) for r in table
                   if r["kind"] == "real" and r["flops_per_arch"] > 0 and not _nan(r["all"]["spearman"]))
    if not curve or _nan(rho) or cost <= 0:
        return None
    need = cost_to_reach(curve, rho)
    if need is None:
        return curve[-1][0] / cost, "at least"
    if curve[0][1] >= rho:
        return need / cost, "at most"
    return need / cost, "exact"


def figures(table: list[dict[str, Any]], row: dict[str, Any]) -> SettingFigures:
    peers = _peers(table, row)
    best = max(peers, key=lambda r: r["all"]["spearman"], default=None)
    rho = row["all"]["spearman"]
    lo, hi = row["top50"]["spearman_ci"]
    return SettingFigures(
        setting=row["setting"], spearman_all=rho,
        best_peer=best["setting"] if best else None,
        best_peer_spearman=best["all"]["spearman"] if best else None,
        margin=None if best is None or _nan(rho) else rho - best["all"]["spearman"],
        spearman_top50=row["top50"]["spearman"],
        top50_halfwidth=None if _nan(lo) or _nan(hi) else (hi - lo) / 2,
        speedup=speedup_over_all(table, row),
    )


def _speedup_text(s: tuple[float, str] | None) -> str:
    if s is None:
        return "n/a (no real-data setting)"
    value, kind = s
    return {"exact": f"{value:.1f}x", "at least": f">= {value:.1f}x (real data never reached it)",
            "at most": f"<= {value:.1f}x (the cheapest real-data setting already reaches it)"}[kind]


def _speedup_met(s: tuple[float, str] | None, required: float) -> bool | None:
    if s is None:
        return None
    value, kind = s
    if kind == "exact":
        return value >= required
    if kind == "at least":
        return True if value >= required else None
    return False if value < required else None


def _equal_budget(eb: dict[str, Any] | None, gtn_setting: str, settings_kind: dict[str, str],
                  pending: bool = False) -> list[Verdict]:
    if not eb:
        return [Verdict("equal-budget searches", "GTN's cells at least as good as real data's",
                        "pending (the searches have not finished)" if pending else "not run", None)]
    out = []
    strategies = sorted({v["strategy"] for v in eb.values()})
    for strategy in strategies:
        runs = {v["evaluator"]: v for v in eb.values() if v["strategy"] == strategy}
        gtn = runs.get(gtn_setting) or next((v for k, v in runs.items() if settings_kind.get(k) == "gtn"), None)
        real = [v for k, v in runs.items() if settings_kind.get(k) == "real"]
        if gtn is None or not real or gtn["best_final_mean"] is None:
            out.append(Verdict(f"equal-budget searches ({strategy})", "GTN's cells at least as good as real data's",
                               "n/a (a GTN and a real-data search are both needed)", None))
            continue
        best_real = max(real, key=lambda v: -1.0 if v["best_final_mean"] is None else v["best_final_mean"])
        g, r = gtn["best_final_mean"], best_real["best_final_mean"]
        measured = (f"{gtn['evaluator']} {g:.4f} +- {gtn['best_final_std']:.4f} vs {best_real['evaluator']} "
                    + ("n/a" if r is None else f"{r:.4f} +- {best_real['best_final_std']:.4f}")
                    + f" ({len(gtn['runs'])} seeds)")
        out.append(Verdict(f"equal-budget searches ({strategy})", "mean best final test accuracy >= real data's",
                           measured, None if r is None else g >= r))
    return out


def judge(results: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
    """The verdicts for ``targets['primary']`` and the same figures for every other GTN setting."""
    table = results["table"]
    rows = {r["setting"]: r for r in table}
    primary = rows.get(targets["primary"])
    if primary is None:
        return {"primary": targets["primary"], "verdicts": [], "others": [],
                "note": f"setting {targets['primary']} is not in the results"}
    f = figures(table, primary)
    margin_req = targets["margin_over_peers"]
    verdicts = [
        Verdict("Spearman over all architectures vs the best peer",
                f"at least {margin_req:+.2f} above every training-free peer and every real-data setting of equal "
                f"or lower cost",
                "n/a (no peer)" if f.margin is None else
                f"{f.spearman_all:.3f} vs {f.best_peer} {f.best_peer_spearman:.3f}: {f.margin:+.3f}",
                None if f.margin is None else f.margin >= margin_req),
        Verdict("Spearman over the top 50%", f">= {targets['top50_spearman']:.2f}, 95% interval half-width <= "
                f"{targets['top50_halfwidth']:.2f}",
                f"{f.spearman_top50:.3f}, half-width " + ("n/a" if f.top50_halfwidth is None
                                                           else f"{f.top50_halfwidth:.3f}"),
                None if _nan(f.spearman_top50) or f.top50_halfwidth is None else
                f.spearman_top50 >= targets["top50_spearman"] and f.top50_halfwidth <= targets["top50_halfwidth"]),
        Verdict("speed-up over all architectures (FLOPs)", f">= {targets['speedup']:g}x",
                _speedup_text(f.speedup), _speedup_met(f.speedup, targets["speedup"])),
        *_equal_budget(results.get("equal_budget"), primary["setting"], {r["setting"]: r["kind"] for r in table},
                       bool(results.get("equal_budget_pending"))),
    ]
    others = [figures(table, r) for r in table if r["kind"] == "gtn" and r["setting"] != primary["setting"]]
    return {"primary": primary["setting"], "verdicts": [v.to_dict() for v in verdicts],
            "others": [{**asdict(o), "speedup_text": _speedup_text(o.speedup)} for o in others]}
