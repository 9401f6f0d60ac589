"""The search runner: owns the loop, the budget, the executor and the study.

strategy.ask() -> architecture -> (duplicate? served from the study's cache) -> executor runs
evaluator.evaluate(architecture, blueprint, seed) -> the result is committed to the study ->
strategy.tell(). Each trial's seed is derived from the study seed and the trial number, so a trial
gives the same score whoever runs it. Running the same command again resumes the study: the
strategy is restored from its last snapshot, later events are replayed from the trial rows, and
trials that were in flight when the previous run died are evaluated again. A study searches the
space it was created with: its definition is stored in the study, and a study created before
spaces had ``allow_repeated_inputs`` resumes with repeated inputs forbidden, as it was searched.

With objectives and constraints (:mod:`gtn_search.objectives`): the cost objectives that need no
training (params, FLOPs, memory) are measured here before a candidate is submitted, latency by the
worker (:class:`~gtn_search.measured_evaluator.MeasuringEvaluator`); a candidate that breaks a
bound is recorded ``infeasible`` and never trained; every measured value is stored with the trial
and the strategy is told the fitness values (:meth:`ObjectiveSet.told_value`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gtn_search.errors import ConfigError, StorageError
from gtn_search.evaluators import make_evaluator
from gtn_search.evaluators.base import EvalResult
from gtn_search.executors import Executor, make_executor, start_worker_server, uses_local_workers
from gtn_search.measured_evaluator import MeasuringEvaluator
from gtn_search.objectives import ObjectiveSet, measurement_blueprint, static_measures
from gtn_search.search_config import SearchConfig, check_budget
from gtn_search.seeding import derive_seed
from gtn_search.storage import Study, TrialRecord, database_path
from gtn_search.studylock import StudyLock
from search_spaces.blueprint import Blueprint
from search_spaces.space import CellSearchSpace
from strategies import Strategy, make_strategy

log = logging.getLogger("gtn_search.search")

#: A strategy proposing only already-evaluated genotypes this many times in a row is stopped.
MAX_CACHE_STREAK = 2_000
#: So is a search whose last this-many proposals all broke its constraints.
MAX_INFEASIBLE_STREAK = 2_000


@dataclass
class SearchSummary:
    """What a finished (or stopped) search reports."""

    study: str
    evaluated: int
    cached: int
    failed: int
    seconds: float
    flops: float
    best: list[TrialRecord]
    resumed: bool
    rerun: int
    infeasible: int = 0


def resolve_blueprint(value: str | dict[str, Any]) -> Blueprint:
    from search_spaces.blueprint import blueprint_preset

    if isinstance(value, str):
        return blueprint_preset(value, where="blueprint")
    return Blueprint.from_mapping(value, where="blueprint")


class SearchRunner:
    """Runs (or resumes) one study to its budget."""

    def __init__(self, config: SearchConfig, progress: bool = True, snapshot_every: int = 25,
                 on_open: Callable[[Path, bool], None] | None = None) -> None:
        check_budget(config.budget)
        self.config = config
        self.progress = progress
        self.snapshot_every = snapshot_every
        #: told ``(study path, resumed)`` once the study is open and known to be a gtn-search study
        self.on_open = on_open
        self.space = CellSearchSpace.from_mapping(config.space, where="space")
        self.blueprint = resolve_blueprint(config.blueprint)
        self.evaluator = make_evaluator(config.evaluator.name, config.evaluator.options, config.data_root,
                                        config.device, config.base_dir)
        self.objectives = ObjectiveSet.from_config(config)
        self.measure_blueprint = measurement_blueprint(self.objectives, self.blueprint)
        #: what workers run: the evaluator, preceded by the worker-side measurements if any
        self.trial_evaluator: Any = (MeasuringEvaluator(self.evaluator, self.objectives, self.measure_blueprint)
                                     if self.objectives.worker_needed() else self.evaluator)
        self._static_cache: dict[str, dict[str, float]] = {}
        self.strategy: Strategy = self._make_strategy()
        if config.workers > 1 and not self.strategy.supports_parallel:
            raise ConfigError(f"strategy '{config.strategy.name}' cannot run in parallel; set workers: 1")

    def _make_strategy(self) -> Strategy:
        config = self.config
        options = dict(config.strategy.options)
        for reserved in ("space", "seed"):
            if reserved in options:
                raise ConfigError(f"strategy '{config.strategy.name}': option '{reserved}' cannot be set in the "
                                  f"strategy's options; the search sets it (the config's top-level '{reserved}')")
        if config.strategy.name.startswith("ng:") or config.strategy.name == "nevergrad":
            options.setdefault("budget", config.budget.trials)
            options.setdefault("num_workers", config.workers)
        strategy = make_strategy(config.strategy.name, self.space, config.seed, **options)
        strategy.set_objectives(self.objectives.told_count)
        return strategy

    # -- objectives ---------------------------------------------------------------------------------
    def _static_values(self, arch: Any) -> dict[str, float]:
        """The objectives known without training (params, FLOPs, memory), measured once per genotype."""
        needed = self.objectives.static_needed()
        if not needed:
            return {}
        if arch.hash not in self._static_cache:
            self._static_cache[arch.hash] = static_measures(arch, self.measure_blueprint, needed,
                                                            self.objectives.measure.memory_batch)
        return dict(self._static_cache[arch.hash])

    def _tell(self, number: int, status: str, values: dict[str, float], violations: dict[str, str] | None) -> None:
        """Tell the strategy a finished trial: infeasible, failed (None) or its fitness values."""
        if status == "infeasible" or violations:
            self.strategy.tell_infeasible(number, violations or {})
        else:
            self.strategy.tell(number, self.objectives.told_value(values) if status == "ok" else None)

    def _tell_record(self, t: TrialRecord) -> None:
        """Replay a stored trial's tell (its objectives column, or only its score for older studies)."""
        ok = t.status in ("ok", "cached") and t.score is not None
        values = dict(t.objectives) if t.objectives else {"score": t.score}
        self._tell(t.number, "ok" if ok else t.status, values, t.violations)

    def _stored_objectives(self, values: dict[str, float]) -> dict[str, float] | None:
        return values if self.objectives.declared else None

    # -- study bookkeeping --------------------------------------------------------------------------
    def _open_study(self) -> tuple[Study, bool]:
        study = Study(self.config.study)
        identity = json.dumps(self.config.identity(), sort_keys=True)
        stored = study.get_meta("identity")
        if stored is None:
            study.set_meta("space", json.dumps(self.space.to_mapping(), sort_keys=True))
            study.set_meta("identity", identity)
            study.set_meta("config", json.dumps(self.config.model_dump(mode="json"), sort_keys=True))
            if self.config.objectives:  # the config is stored with sorted keys; the declared order matters
                study.set_meta("objectives", json.dumps(list(self.config.objectives.items())))
            study.set_meta("elapsed", "0")
            return study, False
        if stored != identity and not self._same_as_before_repeated_inputs(study, stored):
            old, new = json.loads(stored), json.loads(identity)
            field = next(k for k in new if old.get(k) != new.get(k))
            study.close()
            raise StorageError(
                f"study {self.config.study} was created with a different '{field}' ({json.dumps(old.get(field))}); "
                f"resume with the same settings or choose a new 'study' path"
            )
        try:
            self._use_study_space(study)
            self._update_reporting_fields(study)
        except Exception:
            study.close()
            raise
        return study, True

    def _same_as_before_repeated_inputs(self, study: Study, stored: str) -> bool:
        """Whether a study made before ``allow_repeated_inputs`` existed (no stored space), whose
        identity names a space preset, is resumed by a config that spells that space out as it was
        searched: ``{name: <preset>, allow_repeated_inputs: false}`` (a bare preset name resumes it
        too, see :meth:`_use_study_space`)."""
        if study.get_meta("space") is not None:
            return False
        old = json.loads(stored)
        if not isinstance(old.get("space"), str):
            return False
        old["space"] = {"name": old["space"], "allow_repeated_inputs": False}
        return json.dumps(old, sort_keys=True) == json.dumps(self.config.identity(), sort_keys=True)

    def _update_reporting_fields(self, study: Study) -> None:
        """A resumed study takes the config's reporting-only fields (``reference_point``) as they are now."""
        stored = json.loads(study.get_meta("config") or "{}")
        now = self.config.model_dump(mode="json").get("reference_point")
        if stored and stored.get("reference_point") != now:
            stored["reference_point"] = now
            study.set_meta("config", json.dumps(stored, sort_keys=True))

    def _use_study_space(self, study: Study) -> None:
        """Search the space the study was created with (the strategy is rebuilt if it differs)."""
        stored = study.get_meta("space")
        if stored is None:  # created before allow_repeated_inputs existed: repeats were never proposed
            data: Any = {**self.space.to_mapping(), "allow_repeated_inputs": False}
        else:
            data = json.loads(stored)
        space = CellSearchSpace.from_mapping(data, where=f"study {self.config.study}: space")
        if space != self.space:
            self.space = space
            self.strategy = self._make_strategy()

    def _restore(self, study: Study) -> list[TrialRecord]:
        """Bring the strategy to the study's last event; return the trials to run again."""
        snap = study.snapshot()
        after = -1
        if snap is not None:
            after, state = snap
            self.strategy.load_state_dict(state)
        events: list[tuple[int, str, TrialRecord]] = []
        for t in study.trials():
            if t.ask_event > after:
                events.append((t.ask_event, "ask", t))
            if t.tell_event is not None and t.tell_event > after:
                events.append((t.tell_event, "tell", t))
        for _, kind, t in sorted(events, key=lambda e: e[0]):
            if kind == "ask":
                cand = self.strategy.ask()
                if cand.number != t.number or cand.architecture.hash != t.hash:
                    raise StorageError(
                        f"study {self.config.study}: cannot resume: strategy '{self.config.strategy.name}' did not "
                        f"reproduce trial {t.number} (it is not deterministic for a fixed seed and history)"
                    )
            else:
                self._tell_record(t)
        return [t for t in study.trials("WHERE status = 'running'")]

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> SearchSummary:
        """Run the study to its budget, holding its lock throughout (a second search is refused)."""
        path = database_path(self.config.study)
        if path.is_file() and path.stat().st_size > 0:
            Study(path, create=False).close()  # refuse another program's file before a lock file appears beside it
        with StudyLock(path):
            return self._run()

    def _run(self) -> SearchSummary:
        from tqdm import tqdm

        if uses_local_workers(self.config.executor, self.config.workers, self.config.trial_timeout):
            start_worker_server()  # its imports run while this process reads the data
        self.evaluator.setup()
        study, resumed = self._open_study()
        if self.on_open is not None:
            self.on_open(study.path, resumed)
        executor: Executor | None = None
        try:
            rerun = self._restore(study)
            event = study.next_event()
            first_event = event
            elapsed_before = float(study.get_meta("elapsed") or 0)
            start = time.monotonic()
            executor = make_executor(self.config.executor, self.config.workers, self.config.scheduler,
                                     self.config.threads_per_worker, self.config.trial_timeout,
                                     self.evaluator.device_spec)
            budget = self.config.budget
            totals = study.totals()
            done_before = len(study.trials("WHERE status != 'running'"))
            bar = tqdm(total=budget.trials, initial=min(done_before, budget.trials or 0),
                       disable=not self.progress, desc="search", unit="trial", dynamic_ncols=True)
            best = max((t.score for t in study.best(1)), default=float("nan"))
            since_snapshot = 0
            cache_streak = 0
            infeasible_streak = 0
            in_flight_values: dict[int, dict[str, float]] = {}

            def save_snapshot() -> float:
                elapsed = elapsed_before + time.monotonic() - start
                study.save_snapshot(study.next_event() - 1, self.strategy.state_dict())
                study.set_meta("elapsed", str(elapsed))
                return elapsed

            spent = {"trials": len(study.trials()) - len(rerun), "flops": totals["flops"]}

            def exhausted() -> bool:
                # trials counts every proposal (duplicates served from the cache too); compute
                # budgets count only real evaluations
                running = executor.in_flight if executor else 0
                if budget.trials is not None and spent["trials"] + running >= budget.trials:
                    return True
                if budget.seconds is not None and elapsed_before + time.monotonic() - start >= budget.seconds:
                    return True
                return budget.flops is not None and spent["flops"] >= budget.flops

            for t in rerun:  # in flight when the last run stopped: evaluate again, same seed
                arch = self.strategy.pending[t.number]
                in_flight_values[t.number] = self._static_values(arch)
                executor.submit(t.number, self.trial_evaluator, arch, self.blueprint, t.seed)
            while True:
                while executor.in_flight < executor.capacity and not exhausted():
                    cand = self.strategy.ask()
                    arch = cand.architecture
                    seed = derive_seed(self.config.seed, "trial", cand.number)
                    study.record_ask(cand.number, arch.hash, arch.to_mapping(), seed, event)
                    event += 1
                    hit = study.finished_with_hash(arch.hash)
                    if hit is not None:
                        spent["trials"] += 1
                        bar.update(1)
                        cache_streak += 1
                        if cache_streak > MAX_CACHE_STREAK:
                            raise ConfigError(
                                f"strategy '{self.config.strategy.name}' proposed only already-evaluated "
                                f"architectures {MAX_CACHE_STREAK} times in a row (the space has "
                                f"{self.space.size():.3g} architectures); lower budget.trials or widen the space")
                        metrics: dict[str, Any] = {"cached": True}
                        if hit.violations:
                            metrics["violations"] = hit.violations
                        cached = EvalResult(hit.status, score=hit.score, error=hit.error, metrics=metrics)
                        study.record_result(cand.number, cached, event, cached_from=hit.number,
                                            objectives=hit.objectives or None)
                        event += 1
                        self._tell(cand.number, hit.status, hit.objectives or {"score": hit.score}, hit.violations)
                        continue
                    cache_streak = 0
                    values = self._static_values(arch)
                    violations = self.objectives.violations(values, known="static")
                    if violations:  # refused before any training
                        infeasible_streak += 1
                        if infeasible_streak > MAX_INFEASIBLE_STREAK:
                            bounds = ", ".join(str(c) for c in self.objectives.constraints)
                            raise ConfigError(
                                f"the last {MAX_INFEASIBLE_STREAK} candidates all broke the constraints ({bounds}); "
                                f"loosen them or use a smaller blueprint ('measure: {{blueprint: ...}}')")
                        result = EvalResult("infeasible", error="; ".join(violations.values()),
                                            params=int(values.get("params", 0)),
                                            metrics={**values, "violations": violations})
                        study.record_result(cand.number, result, event, objectives=self._stored_objectives(values))
                        event += 1
                        spent["trials"] += 1
                        bar.update(1)
                        self._tell(cand.number, "infeasible", values, violations)
                        continue
                    infeasible_streak = 0
                    in_flight_values[cand.number] = values
                    executor.submit(cand.number, self.trial_evaluator, arch, self.blueprint, seed)
                if executor.in_flight == 0:
                    break
                for number, result, worker in executor.wait():
                    if result.score is not None and not math.isfinite(result.score):
                        result = EvalResult("failed", error=f"non-finite score {result.score}",
                                            wall_seconds=result.wall_seconds)
                    values = in_flight_values.pop(number, {})
                    values.update({k: float(result.metrics[k]) for k in self.objectives.worker_needed()
                                   if isinstance(result.metrics.get(k), (int, float))})
                    if result.ok:
                        values["score"] = float(result.score)  # type: ignore[arg-type]
                    study.record_result(number, result, event, worker=worker,  # committed before the tell
                                        objectives=self._stored_objectives(values))
                    event += 1
                    spent["trials"] += 1
                    spent["flops"] += result.flops
                    self._tell(number, result.status, values, result.metrics.get("violations"))
                    if result.ok and not (result.score <= best):  # also replaces NaN
                        best = result.score
                    if result.status == "failed":
                        log.warning("trial %d failed: %s", number, result.error)
                    bar.update(1)
                    bar.set_postfix(best=f"{best:.4f}", last=f"{result.score:.4f}" if result.ok else result.status)
                    since_snapshot += 1
                if since_snapshot >= self.snapshot_every:
                    save_snapshot()
                    since_snapshot = 0
            # a search resumed with nothing left to do (already at its budget) stays as it was recorded
            elapsed = save_snapshot() if event != first_event or rerun else elapsed_before
            bar.close()
            counts, totals = study.counts(), study.totals()
            return SearchSummary(
                study=os.path.abspath(study.path), evaluated=totals["evaluated"], cached=counts.get("cached", 0),
                failed=counts.get("failed", 0), seconds=elapsed,
                flops=totals["flops"], best=study.best(10), resumed=resumed, rerun=len(rerun),
                infeasible=counts.get("infeasible", 0),
            )
        finally:
            if executor is not None:
                executor.shutdown()
            study.close()


def run_search(config: SearchConfig, progress: bool = True,
               on_open: Callable[[Path, bool], None] | None = None) -> SearchSummary:
    """Run or resume the study described by ``config`` (``on_open(path, resumed)`` once it is open)."""
    return SearchRunner(config, progress=progress, on_open=on_open).run()
