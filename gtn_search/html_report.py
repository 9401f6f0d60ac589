"""One self-contained HTML file for a study or a comparison: no server, no network, images inline.

``write_html_report(source, out)`` reads either a study (a ``.db`` file written by ``gtn-search
search``) or a comparison folder (written by ``gtn-search compare``: ``results.json`` and its
plots) and writes one HTML page. Plots are PNGs embedded as ``data:`` URIs, styles and the small
table-sorting script are inline, so the file opens anywhere, offline, and can be mailed or archived
as it is. Nothing in it refers to another file or host.

For a study: the configuration and counts, best-so-far versus trials and versus compute, score
versus cost, the top-k with their cell drawings and YAML, every trial in a sortable table, and the
failures with their reasons. For a comparison: the ground truth and its noise ceiling, the
rank-correlation table with bootstrap intervals, the speed-up factors, the equal-budget searches and
the comparison's plots.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gtn_search import __version__
from gtn_search.configio import write_text_atomic
from gtn_search.errors import ConfigError

_STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1b1b1b; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .meta code { color: #1b1b1b; }
table { border-collapse: collapse; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f4f6; cursor: pointer; user-select: none; } th.sorted-asc::after { content: " \\25B2"; }
th.sorted-desc::after { content: " \\25BC"; } td.text, th.text { text-align: left; }
tr.failed td { background: #fff1f0; } tr.cached td { color: #777; }
img { max-width: 100%; } .plots img { border: 1px solid #eee; margin: .4em 0; }
.top { display: grid; grid-template-columns: minmax(300px, 3fr) minmax(240px, 2fr); gap: 1em; align-items: start;
       border: 1px solid #e5e7eb; border-radius: 6px; padding: .8em; margin: .8em 0; }
pre { background: #f8f8f8; padding: .6em; overflow: auto; font-size: 12px; max-height: 360px; margin: 0; }
.kpi { display: inline-block; margin: 0 1.6em .4em 0; } .kpi b { font-size: 1.3em; display: block; }
"""

_SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains("sorted-asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


# -- small HTML helpers ---------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(x: float | int | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,}" if isinstance(x, int) else f"{x:.{digits}f}"


def _png(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _png_file(path: Path, alt: str) -> str:
    return _png(path.read_bytes(), alt) if path.is_file() else ""


def _rendered(draw: Callable[[Path], Any], alt: str) -> str:
    """A PNG drawn by ``draw(path)`` into a temporary file, embedded."""
    with tempfile.TemporaryDirectory(prefix="gtn-search-report-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return _png(path.read_bytes(), alt)


def _cell(value: Any, sort_value: Any = None, text: bool = False) -> str:
    key = value if sort_value is None else sort_value
    cls = ' class="text"' if text else ""
    return f'<td{cls} data-v="{_e("" if key is None else key)}">{_e(value)}</td>'


def _table(headers: Sequence[tuple[str, bool]], rows: Sequence[str], sortable: bool = True) -> str:
    head = "".join(f'<th{" class=text" if text else ""}>{_e(h)}</th>' for h, text in headers)
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _page(title: str, body: list[str]) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}"
        f"<p class=\"meta\">Written by gtn-search {_e(__version__)} on {stamp}. Self-contained: nothing is loaded "
        f"from anywhere else.</p><script>{_SORT_SCRIPT}</script></body></html>\n"
    )


# -- a study --------------------------------------------------------------------------------------
def _score_vs_cost(trials: list[Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [t for t in trials if t.status == "ok" and t.score is not None]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    a1.scatter([t.flops / 1e9 for t in ok], [t.score for t in ok], s=14, color="#3182bd", alpha=0.8)
    a1.set_xlabel("evaluation cost (GFLOPs)")
    a1.set_ylabel("score")
    params = [t.objectives.get("params", t.params or 0) for t in ok]  # measured objective, else the evaluator's
    a2.scatter(params, [t.score for t in ok], s=14, color="#e6550d", alpha=0.8)
    if any(v > 0 for v in params):
        a2.set_xscale("log")
    a2.set_xlabel("parameters of the scored network")
    a2.set_ylabel("score")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    fig.suptitle("score versus cost, one point per evaluated trial")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _study_body(path: Path, top: int) -> tuple[str, list[str]]:
    from gtn_search.report import plot_best_over_time, study_config
    from gtn_search.runner import resolve_blueprint
    from gtn_search.storage import Study
    from search_spaces.drawing import draw_architecture
    from search_spaces.space import CellSearchSpace
    from search_spaces.yaml_format import ArchitectureRecord, dump_architecture

    study = Study(path, create=False)
    try:
        cfg = study_config(study)
        trials = study.trials()
        counts, totals = study.counts(), study.totals()
        best = study.best(top)
        space = CellSearchSpace.from_mapping(cfg["space"], where=f"study {path}: space")
        blueprint = resolve_blueprint(cfg["blueprint"])
        curves = _rendered(lambda p: plot_best_over_time(study, p), "best score so far") if counts.get("ok") else ""
        pareto = _pareto_section(study) if len(cfg.get("objectives") or {}) > 1 else []
    finally:
        study.close()
    space_name = cfg["space"] if isinstance(cfg["space"], str) else cfg["space"].get("name", "custom space")
    bp_name = cfg["blueprint"] if isinstance(cfg["blueprint"], str) else "custom blueprint"
    title = f"gtn-search study {path.name}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=\"meta\">File <code>{_e(path.resolve())}</code>; strategy <code>{_e(cfg['strategy']['name'])}</code>"
        f", evaluator <code>{_e(cfg['evaluator']['name'])}</code> <code>{_e(json.dumps(cfg['evaluator']['options']))}"
        f"</code>, space <code>{_e(space_name)}</code>, blueprint <code>{_e(bp_name)}</code>, seed "
        f"<code>{_e(cfg['seed'])}</code>, budget <code>{_e(json.dumps(cfg.get('budget', {})))}</code>.</p>",
        "<div>",
        *(f'<span class="kpi"><b>{_e(v)}</b>{_e(k)}</span>' for k, v in (
            ("evaluated", counts.get("ok", 0)), ("failed", counts.get("failed", 0)),
            *((("infeasible (never trained)", counts["infeasible"]),) if counts.get("infeasible") else ()),
            ("duplicates served from the study", counts.get("cached", 0)), ("unfinished", counts.get("running", 0)),
            ("best score", _num(best[0].score) if best else "n/a"),
            ("compute (TFLOPs)", f"{totals['flops'] / 1e12:.3f}"), ("trial seconds", f"{totals['seconds']:.1f}"))),
        "</div>",
        "<h2>Best so far</h2>",
        f"<div class=\"plots\">{curves or '<p>No evaluated trials yet.</p>'}</div>",
    ]
    body += pareto
    if counts.get("ok"):
        body += ["<h2>Score versus cost</h2>",
                 f"<div class=\"plots\">{_rendered(lambda p: _score_vs_cost(trials, p), 'score versus cost')}</div>"]
    body.append(f"<h2>Top {len(best)}</h2>")
    for rank, t in enumerate(best, 1):
        arch = space.architecture_from_mapping(t.genotype, where=f"study {path}: trial {t.number}")
        yaml_text = dump_architecture(ArchitectureRecord(arch, space, blueprint, {"rank": rank, "score": t.score,
                                                                                    "trial": t.number}))
        drawing = _rendered(lambda p, a=arch, r=rank: draw_architecture(a, p, title=f"rank {r}: {a.short_hash}"),
                            f"cells of rank {rank}")
        body.append(
            f"<div class=\"top\"><div><b>Rank {rank}</b>: trial {t.number}, score <b>{_num(t.score)}</b>, "
            f"{_num(t.params or 0)} parameters, {t.flops / 1e9:.2f} GFLOPs, {(t.wall_seconds or 0):.2f} s, "
            f"hash <code>{_e(t.hash[:16])}</code>{drawing}</div><pre>{_e(yaml_text)}</pre></div>")
    rows = []
    for t in trials:
        rows.append(f'<tr class="{_e(t.status)}">' + "".join([
            _cell(t.number), _cell(t.status, text=True), _cell(_num(t.score), t.score),
            _cell(_num(t.params) if t.params is not None else "", t.params),
            _cell(f"{t.flops / 1e9:.3f}", t.flops), _cell(f"{(t.wall_seconds or 0):.2f}", t.wall_seconds),
            _cell(t.sgd_steps if t.sgd_steps is not None else "", t.sgd_steps), _cell(t.worker or "", text=True),
            _cell(t.hash[:12], text=True),
            _cell(f"trial {t.cached_from}" if t.cached_from is not None else "", t.cached_from, text=True),
            _cell(t.error or "", text=True)]) + "</tr>")
    body += ["<h2>All trials</h2>", "<p class=\"meta\">Click a column to sort.</p>",
             _table([("trial", False), ("status", True), ("score", False), ("params", False), ("GFLOPs", False),
                     ("seconds", False), ("SGD steps", False), ("worker", True), ("hash", True),
                     ("duplicate of", True), ("error", True)], rows)]
    failed = [t for t in trials if t.status == "failed"]
    body.append("<h2>Failures</h2>")
    if failed:
        body.append("<ul>" + "".join(f"<li>trial {t.number} (<code>{_e(t.hash[:12])}</code>): {_e(t.error)}</li>"
                                     for t in failed) + "</ul>")
    else:
        body.append("<p>None.</p>")
    return title, body


def _pareto_section(study: Any) -> list[str]:
    """The non-dominated trials of a study with several objectives: plot, hypervolume, table."""
    from gtn_search.pareto_report import pareto_summary, plot_pareto

    summary = pareto_summary(study)
    names = summary.objectives.names
    out = ["<h2>Pareto front</h2>",
           f"<p class=\"meta\">{len(summary.front)} non-dominated of {len(summary.points)} evaluated trials "
           f"(objectives {_e(', '.join(f'{n} ({d})' for n, d in zip(names, summary.objectives.directions)))}); "
           f"hypervolume <b>{summary.hypervolume:.6g}</b> against the reference point "
           f"{_e(', '.join(summary.reference_how))}.</p>"]
    if not summary.points:
        return [*out, "<p>No evaluated trials with every objective value yet.</p>"]
    out.append(f"<div class=\"plots\">{_rendered(lambda p: plot_pareto(summary, p), 'Pareto fronts')}</div>")
    rows = ["<tr>" + _cell(t.number) + "".join(_cell(_num(t.objectives[n]), t.objectives[n]) for n in names)
            + _cell(t.hash[:12], text=True) + "</tr>" for t in summary.front]
    out.append(_table([("trial", False), *((n, False) for n in names), ("hash", True)], rows))
    return out


# -- a comparison ---------------------------------------------------------------------------------
def _ci(c: dict[str, Any], key: str) -> tuple[str, Any]:
    value = c.get(key)
    lo, hi = c.get(f"{key}_ci", (None, None))
    text = _num(value, 3)
    if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
        text += f" [{lo:.2f}, {hi:.2f}]"
    return text, value


def _compare_body(folder: Path) -> tuple[str, list[str]]:
    try:
        results = json.loads((folder / "results.json").read_text())
        cfg, table, gt = results["config"], results["table"], results["ground_truth"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{folder / 'results.json'}: not a readable gtn-search comparison ({exc}); run "
                          f"'gtn-search compare' into that folder first") from None
    accs = [g["test_accuracy"] for g in gt if g.get("status") == "ok"]
    title = f"gtn-search comparison {folder.name}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=\"meta\">Folder <code>{_e(folder.resolve())}</code>; dataset <code>{_e(results['dataset'])}</code>, "
        f"{len(results['architectures'])} architectures, proxies on blueprint "
        f"<code>{_e(cfg['blueprint'] if isinstance(cfg['blueprint'], str) else 'custom')}</code>; ground truth: "
        f"final training ({_e(json.dumps(cfg['ground_truth']['recipe']))}), test accuracy "
        f"{_num(min(accs) if accs else None)} .. {_num(max(accs) if accs else None)}.</p>",
    ]
    nc = results.get("noise_ceiling")
    if nc and nc.get("replicates", 1) >= 2:
        text, _ = _ci({"p": nc["pairwise"], "p_ci": nc["pairwise_ci"]}, "p")
        body.append(f"<h2>Noise ceiling</h2><p>{nc['replicates']} training seeds per architecture: seed-to-seed "
                    f"Spearman <b>{_e(text)}</b>, reliability of their mean (Spearman-Brown) "
                    f"<b>{_num(nc['of_mean'], 3)}</b>.</p>")
    else:
        body.append("<h2>Noise ceiling</h2><p>One training seed per architecture: unknown.</p>")
    rows = []
    for r in table:
        cells = [_cell(r["setting"], text=True), _cell(r["steps"]), _cell(r["n"]),
                 _cell(f"{r['flops_per_arch'] / 1e6:,.1f}", r["flops_per_arch"]),
                 _cell(f"{r['seconds_per_arch']:.2f}", r["seconds_per_arch"])]
        for subset in ("all", "top50"):
            for key in ("spearman", "kendall"):
                text, value = _ci(r[subset], key)
                cells.append(_cell(text, value))
        cells.append(_cell(_num(r.get("mean_score")), r.get("mean_score")))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body += ["<h2>Rank correlation with the ground truth</h2>",
             "<p class=\"meta\">Bootstrap 95% intervals in brackets; top 50% = the architectures in the top half by "
             "the proxy's own score. Click a column to sort.</p>",
             _table([("proxy", True), ("steps", False), ("n", False), ("cost (MFLOPs)", False), ("seconds", False),
                     ("Spearman (all)", False), ("Kendall (all)", False), ("Spearman (top 50%)", False),
                     ("Kendall (top 50%)", False), ("mean score", False)], rows)]
    if results.get("speedup"):
        rows = ["<tr>" + "".join(_cell(s[k] if k == "setting" else s[f"{k}_text"], text=True)
                                 for k in ("setting", "all_flops", "all_seconds", "top50_flops", "top50_seconds"))
                + "</tr>" for s in results["speedup"]]
        body += ["<h2>Speed-up factor</h2>",
                 _table([("GTN setting", True), ("by FLOPs (all)", True), ("by seconds (all)", True),
                         ("by FLOPs (top 50%)", True), ("by seconds (top 50%)", True)], rows, sortable=False)]
    eb = results.get("equal_budget")
    if eb:
        rows = ["<tr>" + "".join([_cell(v["evaluator"], text=True), _cell(v["strategy"], text=True),
                                  _cell(len(v["runs"])), _cell(_num(v["best_final_mean"]), v["best_final_mean"]),
                                  _cell(_num(v["best_final_std"]), v["best_final_std"])]) + "</tr>"
                for v in eb.values()]
        body += ["<h2>Equal-budget searches</h2>",
                 _table([("evaluator", True), ("strategy", True), ("seeds", False), ("best final test accuracy", False),
                         ("std", False)], rows)]
    pictures = [_png_file(folder / name, name) for name in ("scatter.png", "correlation_vs_cost.png",
                                                              "equal_budget.png")]
    body += ["<h2>Plots</h2>", f"<div class=\"plots\">{''.join(pictures)}</div>"]
    return title, body


def write_html_report(source: str | os.PathLike[str], out: str | os.PathLike[str], top: int = 5) -> Path:
    """Write the report of a study file or a comparison folder to ``out`` (one HTML file)."""
    src, dest = Path(source), Path(out)
    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    if dest.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {dest}: expected an .html path")
    if src.is_dir():
        if not (src / "results.json").is_file():
            raise ConfigError(f"{src} is a folder without results.json; give a study file (.db) or a folder "
                              f"written by 'gtn-search compare'")
        title, body = _compare_body(src)
    elif src.is_file():
        title, body = _study_body(src, top)
    else:
        raise ConfigError(f"{src} does not exist; give a study file (.db) or a comparison folder")
    return write_text_atomic(dest, _page(title, body))
