"""Multi-objective results of a study: its non-dominated trials, their hypervolume, plots and export.

The objectives are those the study was created with (its stored search config). A trial takes
part when it was evaluated (status ``ok``; duplicates served from the cache are the same
genotype and are left out) and every objective value is known. The front is computed in fitness
space (:mod:`gtn_search.pareto`: every objective oriented for maximisation) and reported in
natural units (accuracy, parameters, milliseconds...).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gtn_search.errors import ConfigError
from gtn_search.objectives import OBJECTIVES, ObjectivesConfig, ObjectiveSet
from gtn_search.pareto import hypervolume, non_dominated_ranks
from gtn_search.report import save_figure, study_config
from gtn_search.storage import Study, TrialRecord


@dataclass(frozen=True)
class ParetoSummary:
    """The front of a study and its hypervolume against a stated reference point."""

    objectives: ObjectiveSet
    points: list[TrialRecord]  # every evaluated trial with all objective values
    front: list[TrialRecord]  # the non-dominated ones, sorted by the first objective (best first)
    hypervolume: float
    reference: tuple[float, ...]  # in natural units
    reference_how: list[str]

    def values(self, t: TrialRecord) -> list[float]:
        return [float(t.objectives[n]) for n in self.objectives.names]


def study_objectives(study: Study) -> ObjectiveSet:
    """The objectives a study was created with (score alone for studies that declared none)."""
    cfg = study_config(study)
    fields = {k: cfg.get(k) for k in ObjectivesConfig.model_fields}
    order = study.get_meta("objectives")  # the declared order (the stored config has sorted keys)
    if order is not None:
        fields["objectives"] = dict(json.loads(order))
    return ObjectiveSet.from_config(ObjectivesConfig.model_validate(fields))


def pareto_summary(study: Study, reference: dict[str, float] | None = None) -> ParetoSummary:
    """The study's non-dominated trials and hypervolume (``reference`` overrides the study's point)."""
    objectives = study_objectives(study)
    if reference:
        unknown = sorted(set(reference) - set(objectives.names))
        if unknown:
            raise ConfigError(f"--reference {unknown}: not objectives of study {study.path} "
                              f"(its objectives: {', '.join(objectives.names)})")
        objectives.reference = {**objectives.reference, **reference}
    seen: set[str] = set()
    points = []
    for t in study.trials("WHERE status = 'ok'"):
        if t.hash in seen or not all(n in t.objectives for n in objectives.names):
            continue
        seen.add(t.hash)
        points.append(t)
    fits = [objectives.fitness(t.objectives) for t in points]
    keep = [i for i, f in enumerate(fits) if f is not None]
    points = [points[i] for i in keep]
    fitness = [fits[i] for i in keep]
    ranks = non_dominated_ranks(fitness) if fitness else []
    front = [(f, t) for f, t, r in zip(fitness, points, ranks) if r == 0]
    front.sort(key=lambda ft: (-ft[0][0], ft[1].number))  # type: ignore[index]
    ref, how = objectives.reference_fitness(fitness)  # type: ignore[arg-type]
    hv = hypervolume([f for f, _ in front], ref) if front else 0.0
    natural = tuple(r if d == "max" else -r for r, d in zip(ref, objectives.directions))
    return ParetoSummary(objectives, points, [t for _, t in front], hv, natural, how)


def _fmt(name: str, value: float) -> str:
    if name == "score":
        return f"{value:.4f}"
    if name in ("params", "flops"):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def front_table(summary: ParetoSummary, top: int | None = None) -> str:
    """A plain-text table of the front and a line with the hypervolume and its reference point."""
    names = summary.objectives.names
    head = f"{'trial':>6} " + " ".join(f"{n + ' (' + d + ')':>16}" for n, d in
                                        zip(names, summary.objectives.directions)) + "  hash"
    lines = [(f"Pareto front: {len(summary.front)} non-dominated of {len(summary.points)} evaluated trials "
             f"(objectives {', '.join(names)})"), head]
    for t in summary.front[:top]:
        lines.append(f"{t.number:>6} " + " ".join(f"{_fmt(n, t.objectives[n]):>16}" for n in names)
                     + f"  {t.hash[:12]}")
    if top is not None and len(summary.front) > top:
        lines.append(f"  ... {len(summary.front) - top} more (--top)")
    lines.append(f"hypervolume {summary.hypervolume:.6g} against the reference point "
                 f"{', '.join(summary.reference_how)}")
    return "\n".join(lines)


def plot_pareto(summary: ParetoSummary, path: str | os.PathLike[str], title: str = "") -> Path:
    """Every pair of objectives: all evaluated trials, the front highlighted (natural units)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = summary.objectives.names
    if len(names) < 2:
        raise ConfigError("the study optimises one objective; a Pareto front needs two or more "
                          "('objectives: {score: max, params: min}' in the search config)")
    if not summary.points:
        raise ConfigError("the study has no evaluated trials with every objective value yet")
    pairs = list(itertools.combinations(range(len(names)), 2))
    cols = min(3, len(pairs))
    rows = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False)
    for ax, (i, j) in zip(axes.flat, pairs):
        xi, yj = names[i], names[j]
        ax.scatter([t.objectives[xi] for t in summary.points], [t.objectives[yj] for t in summary.points],
                   s=12, color="#bdbdbd", label="evaluated")
        # the front of this pair of objectives (the full front projected can hide points)
        pair = ObjectiveSet(names=(xi, yj), directions=(summary.objectives.directions[i],
                                                         summary.objectives.directions[j]))
        fits = [pair.fitness(t.objectives) for t in summary.points]
        ranks = non_dominated_ranks(fits)
        front = sorted((t for t, r in zip(summary.points, ranks) if r == 0), key=lambda t: t.objectives[xi])
        ax.step([t.objectives[xi] for t in front], [t.objectives[yj] for t in front], where="post",
                color="#d94801", lw=1.2, alpha=0.7)
        ax.scatter([t.objectives[xi] for t in front], [t.objectives[yj] for t in front], s=26,
                   color="#d94801", label="non-dominated (this pair)", zorder=3)
        for name, setter in ((xi, ax.set_xlabel), (yj, ax.set_ylabel)):
            unit = OBJECTIVES[name].unit
            setter(f"{name}{' [' + unit + ']' if unit else ''} ({summary.objectives.directions[names.index(name)]})")
            if name in ("params", "flops"):
                (ax.set_xscale if setter == ax.set_xlabel else ax.set_yscale)("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    fig.suptitle(title or f"{len(summary.front)} non-dominated of {len(summary.points)} trials; "
                 f"hypervolume {summary.hypervolume:.4g}", fontsize=10)
    return save_figure(fig, path)


def front_records(summary: ParetoSummary) -> list[tuple[TrialRecord, dict[str, Any]]]:
    """The front's trials with the metadata an exported YAML records (their objective values)."""
    return [(t, {"pareto_rank": rank, "objectives": {n: t.objectives[n] for n in summary.objectives.names}})
            for rank, t in enumerate(summary.front, 1)]
