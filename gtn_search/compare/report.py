"""The comparison's report: ``report.md`` tables and PNG plots, from the results dict."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from gtn_search.configio import write_text_atomic
from gtn_search.provenance import devices_text, mixed_devices_warning

PLOTS = ("scatter.png", "correlation_vs_cost.png")


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def ci_text(c: dict[str, Any], key: str) -> str:
    """``0.412 [0.23, 0.57]``: a correlation dict's ``key`` with its bootstrap interval ``key_ci``."""
    lo, hi = c[f"{key}_ci"]
    return f"{_f(c[key])} [{_f(lo, 2)}, {_f(hi, 2)}]"


def speedup_line(s: dict[str, Any]) -> str:
    """``speed-up of gtn@32: 0.8x in FLOPs, 0.8x in seconds``: one GTN setting's speed-up factors
    over all architectures (an entry of ``results['speedup']``)."""
    return f"speed-up of {s['setting']}: {s['all_flops_text']} in FLOPs, {s['all_seconds_text']} in seconds"


def space_label(spec: str | dict[str, Any]) -> str:
    """How the report names a search space: a preset by name, with the settings a config overrides."""
    if isinstance(spec, str):
        return f"`{spec}`"
    if "name" not in spec:
        return "a custom space"
    settings = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in spec.items() if k != "name")
    return f"`{spec['name']}`" + (f" ({settings})" if settings else "")


def _main_gtn(results: dict[str, Any]) -> dict[str, Any] | None:
    gtn = [r for r in results["table"] if r["kind"] == "gtn"]
    return max(gtn, key=lambda r: r["steps"]) if gtn else None


def _noise_ceiling_lines(results: dict[str, Any]) -> list[str]:
    """The ground truth's own seed-to-seed rank correlation (absent for single-seed ground truth)."""
    nc = results.get("noise_ceiling")
    if not nc or nc["replicates"] < 2:
        return ["Ground truth from one training seed per architecture: its noise ceiling is unknown.", ""]
    lo, hi = nc["pairwise_ci"]
    interval = "" if lo is None or (isinstance(lo, float) and math.isnan(lo)) else f" [{_f(lo, 2)}, {_f(hi, 2)}]"
    return [
        "## Noise ceiling of the ground truth", "",
        (f"Every architecture was final-trained {nc['replicates']} times with independent seeds (n = {nc['n']}). "
         f"Seed-to-seed Spearman between two replicates: **{_f(nc['pairwise'])}**{interval}; estimated reliability "
         f"of their mean (the ground truth used below; Spearman-Brown): **{_f(nc['of_mean'])}**. A proxy cannot be "
         f"expected to correlate with the ground truth much above this."), "",
    ]


def _targets_lines(results: dict[str, Any]) -> list[str]:
    """The pre-registered targets' verdicts (``gtn_search.compare.targets``), if the config set any."""
    t = results.get("targets")
    if not t:
        return []
    mark = {True: "**met**", False: "**not met**", None: "undecided"}
    lines = ["", "## Targets fixed in advance", "",
             (f"Judged setting: `{t['primary']}` (named in the config before any proxy was scored). Peers = every "
              "training-free proxy and every real-data setting of equal or lower cost."), ""]
    if t.get("note"):
        return lines + [t["note"]]
    lines += ["| criterion | required | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {v['criterion']} | {v['required']} | {v['measured']} | {mark[v['met']]} |" for v in t["verdicts"]]
    if t["others"]:
        lines += ["", "The other GTN settings, for information only (not judged: choosing among them after seeing "
                  "the ground truth would be tuning on the test set):", "",
                  "| setting | Spearman (all) | best peer | margin | Spearman (top 50%) | half-width | speed-up (all, FLOPs) |",
                  "|---|---|---|---|---|---|---|"]
        for o in t["others"]:
            lines.append(f"| {o['setting']} | {_f(o['spearman_all'])} | {o['best_peer'] or 'n/a'} "
                         f"{_f(o['best_peer_spearman'])} | {_f(o['margin'])} | {_f(o['spearman_top50'])} | "
                         f"{_f(o['top50_halfwidth'])} | {o['speedup_text']} |")
    return lines


def _devices_lines(results: dict[str, Any]) -> list[str]:
    """Where the proxy scores were computed, with a warning when on more than one device."""
    counts = results.get("proxy_devices")  # absent from results written before devices were recorded
    if not counts:
        return []
    lines = [f"Proxy scores computed on: {devices_text(counts)}.", ""]
    warning = mixed_devices_warning(counts, "the proxy scores")
    return lines + ([f"**{warning}**", ""] if warning else [])


def write_report(results: dict[str, Any], out: Path) -> Path:
    """Write ``report.md`` and the plots into ``out``; returns the report path."""
    plot_scatter(results, out / "scatter.png")
    plot_correlation_vs_cost(results, out / "correlation_vs_cost.png")
    eb = results.get("equal_budget")
    if eb:
        plot_equal_budget(eb, out / "equal_budget.png")
    cfg = results["config"]
    ok = [g for g in results["ground_truth"] if g["status"] == "ok"]
    accs = [g["test_accuracy"] for g in ok]
    lines = [
        "# GTN versus real data: rank correlation under equal compute", "",
        (f"Dataset {results['dataset']}; {len(results['architectures'])} architectures sampled from "
        f"{space_label(cfg['space'])} with seed {cfg['seed']}; proxies "
        f"score them on the `{cfg['blueprint'] if isinstance(cfg['blueprint'], str) else 'custom'}` blueprint. "
        f"Ground truth: final training ({cfg['ground_truth']['recipe']['epochs']} epochs) of each, test accuracy "
        f"{_f(min(accs) if accs else None)} .. {_f(max(accs) if accs else None)} (median "
        f"{_f(statistics.median(accs) if accs else None)}); {len(results['ground_truth']) - len(ok)} failed; "
        f"{results['ground_truth_seconds'] / 60:.1f} min of training."), "",
        *_devices_lines(results),
        *_noise_ceiling_lines(results),
        "## Rank correlation with the ground truth", "",
        ("Spearman and Kendall with bootstrap 95% intervals; *top 50%* = the architectures in the top half by "
        "the proxy's own score (the paper's measure). Cost = mean per architecture. Mean score = the proxy's mean "
        "(validation accuracy for trained proxies)."), "",
        ("| proxy | steps | n | cost (MFLOPs) | seconds | Spearman (all) | Kendall (all) | Spearman (top 50%) | "
        "Kendall (top 50%) | mean score |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["table"]:
        lines.append(f"| {r['setting']} | {r['steps']} | {r['n']} | {r['flops_per_arch'] / 1e6:,.1f} | "
                     f"{r['seconds_per_arch']:.2f} | {ci_text(r['all'], 'spearman')} | "
                     f"{ci_text(r['all'], 'kendall')} | "
                     f"{ci_text(r['top50'], 'spearman')} | {ci_text(r['top50'], 'kendall')} | "
                     f"{'n/a' if r.get('mean_score') is None else format(r['mean_score'], '.4g')} |")
    if results["speedup"]:
        lines += ["", "## Speed-up factor", "",
                  ("Real-data cost (interpolated on its correlation-vs-cost curve) needed to reach each GTN setting's "
                  "Spearman, divided by the GTN setting's cost."), "",
                  "| GTN setting | by FLOPs (all) | by seconds (all) | by FLOPs (top 50%) | by seconds (top 50%) |",
                  "|---|---|---|---|---|"]
        for s in results["speedup"]:
            lines.append(f"| {s['setting']} | {s['all_flops_text']} | {s['all_seconds_text']} | "
                         f"{s['top50_flops_text']} | {s['top50_seconds_text']} |")
    lines += _targets_lines(results)
    if results.get("equal_budget_pending"):
        lines += ["", "## Equal-budget searches", "",
                  ("The equal-budget searches have not finished: this report was written when the ground truth "
                   "and every proxy were done. Run the same command again to continue them; the report is "
                   "rewritten when they finish (`--status` shows how far they are).")]
    if eb:
        lines += ["", "## Equal-budget searches", "",
                  (f"Each search spent the same compute budget ({cfg['equal_budget']['flops']:.3g} FLOPs); the top "
                  f"{cfg['equal_budget']['top_k']} of each by its own proxy were final-trained. GTN meta-training is "
                  f"not included (it is paid once and amortised)."), "",
                  "| evaluator | strategy | seeds | best final test accuracy (mean +- std) | trials per search |",
                  "|---|---|---|---|---|"]
        for v in eb.values():
            trials = statistics.mean(r["trials"] for r in v["runs"])
            lines.append(f"| {v['evaluator']} | {v['strategy']} | {len(v['runs'])} | {_f(v['best_final_mean'], 4)} "
                         f"+- {_f(v['best_final_std'], 4)} | {trials:.0f} |")
    lines += ["", "## Plots", "", "![scatter](scatter.png)", "", "![correlation vs cost](correlation_vs_cost.png)"]
    if eb:
        lines += ["", "![equal budget](equal_budget.png)"]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scatter(results: dict[str, Any], path: Path) -> None:
    """The main GTN proxy's score versus the ground truth, top 10% by GTN marked (paper's Figure 5)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    main = _main_gtn(results) or results["table"][0]
    scores = results["proxy_scores"][main["setting"]]
    pairs = [(s, g["test_accuracy"]) for s, g in zip(scores, results["ground_truth"])
             if s is not None and g["status"] == "ok"]
    if pairs:
        cut = sorted((s for s, _ in pairs), reverse=True)[max(0, math.ceil(0.1 * len(pairs)) - 1)]
        top = [(s, t) for s, t in pairs if s >= cut]
        rest = [(s, t) for s, t in pairs if s < cut]
        ax.scatter([s for s, _ in rest], [t for _, t in rest], s=18, color="#9ecae1", label="architectures")
        ax.scatter([s for s, _ in top], [t for _, t in top], s=30, color="#d62728", label="top 10% by proxy")
    ax.set_xlabel(f"{main['setting']} score (validation)")
    ax.set_ylabel("ground truth (test accuracy after final training)")
    ax.set_title(f"Spearman {_f(main['all']['spearman'])} (all), {_f(main['top50']['spearman'])} (top 50%)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _proxy_styles(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A distinct colour per proxy label (20 before any repeats), the line style by kind: GTN proxies
    solid with circles, real-data proxies dashed with triangles, single settings (free proxies) squares."""
    plt = _plt()
    palette = plt.get_cmap("tab20").colors
    labels = list(dict.fromkeys(r["label"] for r in rows))
    kinds = {r["label"]: r.get("kind") for r in rows}
    styles = {}
    for i, label in enumerate(labels):
        kind = kinds[label]
        styles[label] = {"color": palette[(2 * i) % 20 + (i // 10) % 2],
                         "linestyle": "--" if kind == "real" else "-",
                         "marker": "o" if kind == "gtn" else "^" if kind == "real" else "s"}
    return styles


def plot_correlation_vs_cost(results: dict[str, Any], path: Path) -> None:
    """Spearman versus cost per architecture: a curve per swept proxy, a point per single setting;
    the second row zooms on the trained proxies (GTN and real data), whose costs lie close together."""
    plt = _plt()
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in results["table"]:
        by_label.setdefault(r["label"], []).append(r)
    styles = _proxy_styles(results["table"])
    trained = [r for r in results["table"] if r.get("kind") in ("gtn", "real")]
    rows_of_axes = 2 if trained else 1
    fig, axes = plt.subplots(rows_of_axes, 2, figsize=(12, 4.2 * rows_of_axes), sharey=True, squeeze=False)
    for row in range(rows_of_axes):
        zoom = row == 1
        for ax, subset, title in zip(axes[row], ("all", "top50"), ("all architectures", "top 50% by proxy")):
            for label, rows in by_label.items():
                if zoom and rows[0].get("kind") not in ("gtn", "real"):
                    continue
                rows = sorted(rows, key=lambda r: r["flops_per_arch"])
                xs = [max(r["flops_per_arch"], 1.0) for r in rows]
                ys = [r[subset]["spearman"] for r in rows]
                ax.plot(xs, ys, label=label, markersize=5, **styles[label])
                for r, x, y in zip(rows, xs, ys):
                    if len(rows) > 1:
                        ax.annotate(str(r["steps"]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points",
                                    color=styles[label]["color"])
            ax.set_xscale("log")
            if zoom:
                costs = [max(r["flops_per_arch"], 1.0) for r in trained]
                ax.set_xlim(min(costs) / 1.5, max(costs) * 1.5)
                title += ", trained proxies only"
            ax.set_xlabel("cost per architecture (FLOPs, log)")
            ax.set_title(title, fontsize=10)
            ax.axhline(0, color="grey", lw=0.5)
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("Spearman with the ground truth")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_equal_budget(eb: dict[str, Any], path: Path) -> None:
    """Final test accuracy of the best-so-far architecture versus compute, mean over seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for v in eb.values():
        fractions = sorted({c["fraction"] for r in v["runs"] for c in r["curve"]})
        means = []
        for f in fractions:
            vals = [c["final_test_accuracy"] for r in v["runs"] for c in r["curve"]
                    if c["fraction"] == f and c["final_test_accuracy"] is not None]
            means.append(statistics.mean(vals) if vals else float("nan"))
        ax.plot(fractions, means, marker="o", label=f"{v['evaluator']} / {v['strategy']}")
    ax.set_xlabel("fraction of the compute budget")
    ax.set_ylabel("final test accuracy of the best-so-far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
