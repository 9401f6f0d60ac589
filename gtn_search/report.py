"""Study reports: the summary table, the best-score-over-time plot, and top-k YAML export."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gtn_search.errors import ConfigError, StorageError
from gtn_search.provenance import devices_of, mixed_devices_warning
from gtn_search.storage import Study, TrialRecord


def study_config(study: Study) -> dict[str, Any]:
    """The search config a study was created with."""
    text = study.get_meta("config")
    if text is None:
        raise StorageError(f"study {study.path} has no search configuration (was it created by gtn-search search?)")
    return json.loads(text)


def summary_table(study: Study, top: int = 10) -> str:
    """A plain-text summary: counts, compute, and the top trials."""
    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    cfg = study_config(study)
    counts, totals = study.counts(), study.totals()
    lines = [
        (f"study {study.path}: strategy {cfg['strategy']['name']}, evaluator {cfg['evaluator']['name']}, "
        f"space {cfg['space'] if isinstance(cfg['space'], str) else cfg['space'].get('name')}, seed {cfg['seed']}"),
        (f"trials: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        + (f"{counts['infeasible']} infeasible (never trained), " if counts.get("infeasible") else "")
        + f"{counts.get('cached', 0)} cached duplicates, {counts.get('running', 0)} unfinished; compute "
        f"{totals['seconds']:.1f} s, {totals['flops'] / 1e12:.3f} TFLOPs"),
        "",
        f"{'rank':>4} {'trial':>6} {'score':>8} {'params':>9} {'GFLOPs':>8} {'seconds':>8}  hash",
    ]
    for rank, t in enumerate(study.best(top), 1):
        lines.append(f"{rank:>4} {t.number:>6} {t.score:>8.4f} {t.params or 0:>9,} {t.flops / 1e9:>8.2f} "
                     f"{t.wall_seconds or 0:>8.2f}  {t.hash[:12]}")
    if len(cfg.get("objectives") or {}) > 1:
        from gtn_search.pareto_report import front_table, pareto_summary

        lines += ["", front_table(pareto_summary(study), top)]
    infeasible = study.trials("WHERE status = 'infeasible'")
    if infeasible:
        lines += ["", f"last infeasible candidates ({len(infeasible)} in all):"]
        lines += [f"  trial {t.number}: {t.error}" for t in infeasible[-3:]]
    failed = study.trials("WHERE status = 'failed'")
    if failed:
        lines.append("")
        lines.append(f"last failures ({len(failed)} in all):")
        for t in failed[-3:]:
            lines.append(f"  trial {t.number}: {t.error}")
    mixed = mixed_devices_warning(devices_of(t.metrics for t in study.trials("WHERE status IN ('ok', 'failed')")),
                                  "this study's scores")
    if mixed:
        lines += ["", mixed]
    return "\n".join(lines)


def best_over_time(trials: list[TrialRecord]) -> tuple[list[int], list[float], list[float], list[float]]:
    """For evaluated trials in finishing order: count, cumulative FLOPs, seconds, best score so far."""
    done = sorted((t for t in trials if t.status in ("ok", "failed")), key=lambda t: t.tell_event or 0)
    n, flops, secs, best = [], [], [], []
    cf = cs = 0.0
    b = float("nan")
    for i, t in enumerate(done, 1):
        cf += t.flops
        cs += t.wall_seconds or 0.0
        if t.status == "ok" and (t.score is not None) and not (t.score <= b):
            b = t.score
        n.append(i)
        flops.append(cf)
        secs.append(cs)
        best.append(b)
    return n, flops, secs, best


def plot_best_over_time(study: Study, path: str | os.PathLike[str]) -> Path:
    """Best score so far versus trials and versus compute (FLOPs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, flops, _, best = best_over_time(study.trials())
    if not n:
        raise ConfigError(f"study {study.path} has no evaluated trials to plot yet")
    scores = [t.score for t in sorted(study.trials("WHERE status = 'ok'"), key=lambda t: t.tell_event or 0)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(range(1, len(scores) + 1), scores, ".", color="#9ecae1", label="trial score")
    a1.step(n, best, where="post", color="#08519c", label="best so far")
    a1.set_xlabel("evaluated trials")
    a1.set_ylabel("validation accuracy")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    a2.step([f / 1e12 for f in flops], best, where="post", color="#d94801")
    a2.set_xlabel("compute (TFLOPs)")
    a2.set_ylabel("best validation accuracy")
    a2.grid(alpha=0.3)
    fig.suptitle(f"study {Path(study.path).name}")
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def export_top(study: Study, out_dir: str | os.PathLike[str], top: int = 5, blueprint: Any = None) -> list[Path]:
    """Write the top-k architectures as YAML files (genotype, blueprint, score, evaluator, study, seed)."""
    if top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    chosen = [(t, {"rank": rank}) for rank, t in enumerate(study.best(top), 1)]
    return _export(study, out_dir, chosen, blueprint, "rank")


def export_pareto(study: Study, out_dir: str | os.PathLike[str], blueprint: Any = None) -> list[Path]:
    """Write every non-dominated trial as YAML (with its objective values), best first objective first."""
    from gtn_search.pareto_report import front_records, pareto_summary

    summary = pareto_summary(study)
    if summary.objectives.count < 2:
        raise ConfigError(f"study {study.path} optimises one objective ({summary.objectives.names[0]}); --pareto "
                          f"needs a study with several objectives; use --top instead")
    return _export(study, out_dir, front_records(summary), blueprint, "pareto")


def _export(study: Study, out_dir: str | os.PathLike[str], chosen: list[tuple[TrialRecord, dict[str, Any]]],
            blueprint: Any, prefix: str) -> list[Path]:
    from gtn_search.runner import resolve_blueprint
    from search_spaces.space import CellSearchSpace
    from search_spaces.yaml_format import ArchitectureRecord, save_architecture

    cfg = study_config(study)
    space = CellSearchSpace.from_mapping(cfg["space"], where=f"study {study.path}: space")
    bp = blueprint if blueprint is not None else resolve_blueprint(cfg["blueprint"])
    paths = []
    for number, (t, extra) in enumerate(chosen, 1):
        arch = space.architecture_from_mapping(t.genotype, where=f"study {study.path}: trial {t.number}")
        meta = {
            **extra, "score": t.score, "trial": t.number, "seed": t.seed, "study": str(study.path),
            "study_seed": cfg["seed"], "strategy": cfg["strategy"], "evaluator": cfg["evaluator"],
            "params": int(t.objectives.get("params", t.params or 0)), "flops": t.flops,
            "search_blueprint": cfg["blueprint"],
        }
        if isinstance((t.metrics or {}).get("dataset"), str):
            meta["dataset"] = t.metrics["dataset"]  # what 'gtn-search train' trains on by default
        paths.append(save_architecture(Path(out_dir) / f"{prefix}{number:02d}_{arch.short_hash}.yaml",
                                       ArchitectureRecord(arch, space, bp, meta)))
    if not paths:
        raise ConfigError(f"study {study.path} has no successful trials to export yet")
    return paths
