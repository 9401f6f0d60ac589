"""How far a comparison has got, read from its store without computing or writing anything.

A comparison of 100 architectures with replicated ground truth runs for many hours, across
sessions; ``gtn-search compare CONFIG --status`` answers "what is done, what is left" from
``compare.db`` and the equal-budget studies, safely beside a running comparison (read-only SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gtn_search.compare.run import Comparison
from gtn_search.storage import Study


@dataclass
class Count:
    """Results of one kind (a ground-truth replicate, a proxy setting) over the comparison's architectures."""

    label: str
    ok: int
    failed: int
    total: int

    def line(self) -> str:
        failed = f" ({self.failed} failed)" if self.failed else ""
        return f"{self.label}: {self.ok + self.failed} of {self.total} done{failed}"


@dataclass
class SearchProgress:
    """One equal-budget search: the compute it has spent against its budget."""

    label: str
    started: bool
    trials: int
    flops: float
    budget: float

    @property
    def finished(self) -> bool:
        return self.started and self.flops >= self.budget

    def line(self) -> str:
        if not self.started:
            return f"search {self.label}: not started"
        share = min(1.0, self.flops / self.budget)
        state = "finished" if self.finished else "in progress"
        return f"search {self.label}: {state}, {self.trials} evaluations, {share:.0%} of its budget"


@dataclass
class Progress:
    """Everything :func:`comparison_progress` found."""

    out: str
    architectures: int
    ground_truth: list[Count]
    proxies: list[Count]
    searches: list[SearchProgress] = field(default_factory=list)
    #: final trainings of what the finished searches picked (done, needed)
    search_finals: tuple[int, int] = (0, 0)

    def lines(self) -> list[str]:
        out = [f"comparison {self.out}: {self.architectures} architectures"]
        out += [f"  {c.line()}" for c in self.ground_truth + self.proxies]
        out += [f"  {s.line()}" for s in self.searches]
        if self.searches:
            done, needed = self.search_finals
            finished = sum(s.finished for s in self.searches)
            out.append(f"  final trainings of what the {finished} finished searches picked: {done} of {needed} done")
        return out


def _count(label: str, rows: list[dict | None]) -> Count:
    return Count(label, ok=sum(1 for r in rows if r is not None and r.get("status") == "ok"),
                 failed=sum(1 for r in rows if r is not None and r.get("status") != "ok"), total=len(rows))


def comparison_progress(comparison: Comparison) -> Progress:
    """Count what ``comparison`` (opened read-only) has stored; computes nothing."""
    archs = comparison.architectures()
    store = comparison.store
    seeds = comparison.config.ground_truth.replicate_seeds()
    ground_truth = [
        _count(f"ground truth, replicate {r + 1} of {len(seeds)} (seed {seed})",
               [store.ground_truth(key, a.hash) for a in archs])
        for r, (key, seed) in enumerate(zip(comparison.gt_keys, seeds))
    ]
    proxies = [_count(f"proxy {setting}", [store.proxy(key, a.hash) for a in archs])
               for setting, (_, _, _, key) in comparison.proxy_evaluators().items()]
    progress = Progress(str(comparison.out), len(archs), ground_truth, proxies)
    eb = comparison.config.equal_budget
    if eb is None:
        return progress
    needed: dict[str, object] = {}
    for setting, strategy, seed in comparison.equal_budget_searches():
        path = comparison.search_path(setting, strategy, seed)
        label = f"{setting} {strategy} seed {seed}"
        if not path.is_file():
            progress.searches.append(SearchProgress(label, False, 0, 0.0, eb.flops))
            continue
        study = Study(path, create=False)
        try:
            trials = [t for t in study.trials() if t.finished]
            search = SearchProgress(label, True, len(trials), sum(t.flops for t in trials), eb.flops)
            progress.searches.append(search)
            if search.finished:
                picks = comparison.search_picks(study, eb.top_k, eb.flops, eb.curve_fractions)
                needed.update({a.hash: a for a in picks["archs"]})
        finally:
            study.close()
    done = sum(all(store.ground_truth(key, h) is not None for key in comparison.gt_keys) for h in needed)
    progress.search_finals = (done, len(needed))
    return progress
