"""How far a comparison has got, read from its store without computing or writing anything.

A comparison of 100 architectures with replicated ground truth runs for many hours, across
sessions; ``gtn-search compare CONFIG --status`` answers "what is done, what is left" from
``compare.db`` and the equal-budget studies, safely beside a running comparison (read-only SQLite).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from gtn_search.compare.analysis import NoiseCeiling, noise_ceiling
from gtn_search.compare.report import ci_text, speedup_line
from gtn_search.compare.run import Comparison, combine_replicates
from gtn_search.provenance import devices_of, mixed_devices_warning
from gtn_search.storage import Study


def duration(seconds: float) -> str:
    """``seconds`` for a person: 40 s, 12 min, 3.4 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Count:
    """Results of one kind (a ground-truth replicate, a proxy setting) over the comparison's architectures."""

    label: str
    ok: int
    failed: int
    total: int
    #: median seconds of one result of this kind so far (None: none measured yet)
    pace: float | None = None
    #: worker processes the comparison runs (the time left is divided among them)
    workers: int = 1
    #: the setting whose training also scores this one (a step sweep trained once): its time is there
    swept_with: str | None = None
    #: a finished proxy setting's row of the report's correlation table, once the ground truth is
    #: complete too (None: either is not)
    correlation: dict | None = None

    @property
    def left(self) -> int:
        return self.total - self.ok - self.failed

    @property
    def seconds_left(self) -> float | None:
        """Wall-clock seconds the rest should take at the median pace so far (None: unknown)."""
        if not self.left or self.swept_with is not None:
            return 0.0
        return None if self.pace is None else self.pace * self.left / self.workers

    def line(self) -> str:
        failed = f" ({self.failed} failed)" if self.failed else ""
        text = f"{self.label}: {self.ok + self.failed} of {self.total} done{failed}"
        if self.left and self.swept_with is not None:
            text += f" (scored on the way by {self.swept_with})"
        elif self.left and self.seconds_left is not None:
            text += (f", about {duration(self.seconds_left)} left ({duration(self.pace or 0.0)} each, "
                     f"{self.workers} worker{'s' if self.workers > 1 else ''})")
        if self.correlation is not None:
            text += (f"; Spearman with the ground truth {ci_text(self.correlation['all'], 'spearman')} (all), "
                     f"{ci_text(self.correlation['top50'], 'spearman')} (top 50%)")
        return text


@dataclass
class SearchProgress:
    """One equal-budget search: the compute it has spent against its budget."""

    label: str
    started: bool
    trials: int
    flops: float
    budget: float
    #: FLOPs per second of its evaluator, from the comparison's stored rows of that proxy setting
    #: (None: none stored yet)
    rate: float | None = None

    @property
    def finished(self) -> bool:
        return self.started and self.flops >= self.budget

    @property
    def seconds_left(self) -> float | None:
        """Seconds the rest of its budget should take at ``rate`` (None: unknown)."""
        if self.finished:
            return 0.0
        return None if not self.rate else (self.budget - self.flops) / self.rate

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
    #: final trainings (architecture x ground-truth replicate) of what the finished searches picked
    #: (done, needed)
    search_finals: tuple[int, int] = (0, 0)
    #: the same per architecture: (picked architectures with every replicate trained, picked architectures)
    search_final_archs: tuple[int, int] = (0, 0)
    #: at most this many more architectures for the unfinished searches to pick (each trained
    #: once per ground-truth replicate)
    picks_to_come: int = 0
    #: the noise ceiling over the architectures whose replicates are all trained so far (None: fewer
    #: than 3 such architectures, or one replicate)
    noise_ceiling: NoiseCeiling | None = None
    #: each finished GTN setting's speed-up factor as the report computes it (once every real-data
    #: setting has finished too; empty before)
    speedups: list[dict] = field(default_factory=list)
    #: seconds of one final training (the ground truth's median pace) and the workers sharing them
    training_pace: float | None = None
    workers: int = 1
    replicates: int = 1
    #: one line when the stored proxy scores come from more than one device (:mod:`gtn_search.provenance`)
    devices_warning: str | None = None

    def lines(self) -> list[str]:
        out = [f"comparison {self.out}: {self.architectures} architectures"]
        out += [f"  {c.line()}" for c in self.ground_truth]
        nc = self.noise_ceiling
        if nc is not None and len(self.ground_truth) > 1:
            lo, hi = nc.pairwise_ci
            interval = "" if math.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]"
            out.append(f"  noise ceiling so far ({nc.n} architectures with every replicate trained): seed-to-seed "
                       f"Spearman {nc.pairwise:.3f}{interval}")
        out += [f"  {c.line()}" for c in self.proxies]
        if self.devices_warning:
            out.append(f"  {self.devices_warning}")
        out += [f"  {speedup_line(s)} (all architectures)" for s in self.speedups]
        counts = self.ground_truth + self.proxies
        known = [c.seconds_left for c in counts if c.left and c.seconds_left is not None]
        unknown = sum(1 for c in counts if c.left and c.seconds_left is None)
        if known or unknown:
            text = f"  time left for ground truth and proxies: about {duration(sum(known))}" if known else \
                "  time left for ground truth and proxies: unknown"
            if unknown:
                text += f" (+ {unknown} setting{'s' if unknown > 1 else ''} not started, no pace yet)"
            out.append(text)
        out += [f"  {s.line()}" for s in self.searches]
        if self.searches:
            done, needed = self.search_finals
            finished = sum(s.finished for s in self.searches)
            text = f"  final trainings of what the {finished} finished searches picked: {done} of {needed} done"
            if self.replicates > 1:
                archs_done, archs = self.search_final_archs
                text += f" ({archs_done} of {archs} architectures with all {self.replicates} replicates trained)"
            out.append(text)
            left = self._searches_left()
            if left:
                out.append(left)
        return out

    def _searches_left(self) -> str | None:
        """The time the equal-budget phase should still take: the searches one after the other at
        their evaluators' pace, then the final trainings of what they pick (an upper bound: picks
        of different searches often coincide)."""
        lefts = [s.seconds_left for s in self.searches]
        known = sum(t for t in lefts if t is not None)
        unknown = sum(1 for t in lefts if t is None)
        done, needed = self.search_finals
        trainings = needed - done + self.picks_to_come * self.replicates
        if not trainings and not unknown and not known:
            return None
        if unknown == len(lefts):
            text = "  time left for the equal-budget searches: unknown (their evaluators have no pace yet)"
        else:
            text = f"  time left for the equal-budget searches: about {duration(known)}"
            if unknown:
                text += f" (+ {unknown} whose evaluator has no pace yet)"
        if trainings:
            text += f", then up to {trainings} final trainings of their picks"
            if self.training_pace is not None:
                text += f", about {duration(self.training_pace * trainings / self.workers)}"
        return text


def _count(label: str, rows: list[dict | None], seconds_key: str, workers: int,
           pace: float | None = None) -> Count:
    """Counts of ``rows`` (None: not computed); the pace is the median of their ``seconds_key`` (or
    ``pace`` when none is measured: another replicate of the same trainings)."""
    times = [float(r[seconds_key]) for r in rows
             if r is not None and r.get("status", "ok") == "ok" and isinstance(r.get(seconds_key), (int, float))]
    return Count(label, ok=sum(1 for r in rows if r is not None and r.get("status", "ok") == "ok"),
                 failed=sum(1 for r in rows if r is not None and r.get("status", "ok") != "ok"), total=len(rows),
                 pace=statistics.median(times) if times else pace, workers=max(1, workers))


def _rate(rows: list[dict | None]) -> float | None:
    """FLOPs per second over the successful ``rows`` (None: none)."""
    ok = [r for r in rows if r is not None and r.get("status") == "ok" and r.get("wall_seconds")]
    seconds = sum(float(r["wall_seconds"]) for r in ok)
    flops = sum(float(r.get("train_flops", 0.0)) + float(r.get("eval_flops", 0.0)) for r in ok)
    return flops / seconds if seconds > 0 and flops > 0 else None


def comparison_progress(comparison: Comparison) -> Progress:
    """Count what ``comparison`` (opened read-only) has stored; computes nothing."""
    archs = comparison.architectures()
    store = comparison.store
    seeds = comparison.config.ground_truth.replicate_seeds()
    workers = comparison.config.workers
    gt_rows = [[store.ground_truth(key, a.hash) for a in archs] for key in comparison.gt_keys]
    gt_times = [float(r["seconds"]) for rows in gt_rows for r in rows
                if r is not None and isinstance(r.get("seconds"), (int, float))]
    gt_pace = statistics.median(gt_times) if gt_times else None  # replicates train the same networks
    ground_truth = [
        _count(f"ground truth, replicate {r + 1} of {len(seeds)} (seed {seed})", rows, "seconds", workers, gt_pace)
        for r, (rows, seed) in enumerate(zip(gt_rows, seeds))
    ]
    evaluators = comparison.proxy_evaluators()
    proxy_rows = {setting: [store.proxy(key, a.hash) for a in archs] for setting, (_, _, _, key) in evaluators.items()}
    proxies = [_count(f"proxy {setting}", rows, "wall_seconds", workers) for setting, rows in proxy_rows.items()]
    sweeps: dict[str, list[tuple[int, str]]] = {}
    for setting, (proxy, options) in comparison.config.settings().items():
        if "steps" in options and evaluators[setting][0].can_sweep():
            sweeps.setdefault(proxy.label, []).append((int(options["steps"]), setting))
    last = {setting: max(group)[1] for group in sweeps.values() if len(group) > 1 for _, setting in group}
    for count, setting in zip(proxies, evaluators):
        if last.get(setting, setting) != setting:
            count.swept_with = f"proxy {last[setting]}"
    if all(r is not None for rows in gt_rows for r in rows):
        # the ground truth is complete: each finished proxy setting's correlation, as the report has it
        truths = [combine_replicates(list(rows)) for rows in zip(*gt_rows)]
        for count, (setting, rows) in zip(proxies, proxy_rows.items()):
            if all(r is not None for r in rows):
                count.correlation = comparison.correlation_row(setting, rows, truths)  # type: ignore[arg-type]
    progress = Progress(str(comparison.out), len(archs), ground_truth, proxies)
    progress.devices_warning = mixed_devices_warning(
        devices_of(r.get("metrics") for rows in proxy_rows.values() for r in rows if r is not None), "the proxy scores")
    table = [c.correlation for c in proxies]
    real = [r for r, (p, _) in zip(table, comparison.config.settings().values()) if p.curve_kind() == "real"]
    if real and all(r is not None for r in real):
        progress.speedups = comparison.speedups([r for r in table if r is not None])
    complete = [[r["test_accuracy"] for r in rows] for rows in zip(*gt_rows)
                if all(r is not None and r.get("status") == "ok" for r in rows)]
    if len(seeds) > 1 and len(complete) >= 3:
        progress.noise_ceiling = noise_ceiling(complete, comparison.config.bootstrap, comparison.config.seed)
    eb = comparison.config.equal_budget
    if eb is None:
        return progress
    searched = {setting for setting, _, _ in comparison.equal_budget_searches()}
    rates = {setting: _rate(proxy_rows[setting]) for setting in searched}
    per_search = eb.top_k + sum(1 for f in set(eb.curve_fractions) if f < 1.0)
    progress.training_pace, progress.workers, progress.replicates = gt_pace, max(1, workers), len(seeds)
    needed: dict[str, object] = {}
    for setting, strategy, seed in comparison.equal_budget_searches():
        path = comparison.search_path(setting, strategy, seed)
        label = f"{setting} {strategy} seed {seed}"
        if not path.is_file():
            progress.searches.append(SearchProgress(label, False, 0, 0.0, eb.flops, rates.get(setting)))
            progress.picks_to_come += per_search
            continue
        study = Study(path, create=False)
        try:
            trials = [t for t in study.trials() if t.finished]
            search = SearchProgress(label, True, len(trials), sum(t.flops for t in trials), eb.flops,
                                    rates.get(setting))
            progress.searches.append(search)
            if search.finished:
                picks = comparison.search_picks(study, eb.top_k, eb.flops, eb.curve_fractions)
                needed.update({a.hash: a for a in picks["archs"]})
            else:
                progress.picks_to_come += per_search
        finally:
            study.close()
    trained = [sum(store.ground_truth(key, h) is not None for key in comparison.gt_keys) for h in needed]
    progress.search_finals = (sum(trained), len(needed) * len(comparison.gt_keys))
    progress.search_final_archs = (sum(t == len(comparison.gt_keys) for t in trained), len(needed))
    return progress
