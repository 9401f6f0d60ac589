"""The Evaluator interface: score one architecture, report what it cost, never crash the search.

An evaluator is a small picklable object (its validated config and a data root); heavy state
(datasets, teaching sets) is loaded lazily in whichever process runs it and cached there. Scores
are validation accuracies (higher is better); the test split is never touched.

:meth:`Evaluator.evaluate` is fixed: it times the subclass's :meth:`Evaluator._evaluate`, turns
exceptions, NaN/inf and out-of-memory into a *failed* :class:`EvalResult` with the reason, and
fills in the compute cost (SGD steps, images, FLOPs) so that budgets can be equal in compute.

An evaluator whose options have ``seeds: K`` (the GTN, real-data and zero-cost evaluators) scores
K independent initialisations of the candidate: the score is their mean, the cost their sum, and
the metrics hold every seed's score and their standard deviation. Initialisation 0 uses the trial's
seed itself, so ``seeds: 1`` is exactly the single-seed evaluation. Where an evaluator can
(:meth:`Evaluator._evaluate_batched`: the GTN and real-data evaluators, for networks built from the
known ops), the K initialisations train side by side as one stacked network
(``search_spaces.replicas``), for much less than K times the time of one; ``batch_seeds: false``
trains them one after the other as earlier versions did (same numbers up to float rounding).

A step sweep (:meth:`Evaluator.evaluate_sweep`: the scores after 16, 32, ..., 512 steps) is what
:meth:`Evaluator.evaluate` gives with each step count; evaluators that can (:meth:`Evaluator.can_sweep`:
the GTN evaluator, the real-data evaluator with a constant learning rate) train once to the largest
step count and score on the way, bit for bit the separate results, each with its own cost.
"""

from __future__ import annotations

import math
import statistics
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import torch
from pydantic import BaseModel

from gtn_search.configio import parse_model
from gtn_search.device import check_device, device_settings, oom_message, resolve_device
from gtn_search.errors import GTNSearchError
from gtn_search.paths import resolve_path_options
from gtn_search.provenance import DEVICE_KEY, device_label
from gtn_search.seeding import derive_seed
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.memory import MemoryLimitError
from search_spaces.replicas import NotStackable


@dataclass
class EvalResult:
    """The outcome of one evaluation: score (or failure), cost and extra metrics."""

    status: str  # "ok", "failed", or "infeasible" (broke a constraint; not trained)
    score: float | None = None
    error: str | None = None
    wall_seconds: float = 0.0
    sgd_steps: int = 0
    images_seen: int = 0
    train_flops: float = 0.0
    eval_flops: float = 0.0
    params: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def flops(self) -> float:
        """Total compute of the evaluation: training plus scoring forward passes."""
        return self.train_flops + self.eval_flops

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NonFiniteScore(GTNSearchError):
    """Training produced NaN/inf (loss, parameters or score)."""


@dataclass
class Measurement:
    """What a subclass's ``_evaluate`` returns; the base class adds timing and failure handling."""

    score: float
    sgd_steps: int
    images_seen: int
    train_flops: float
    eval_flops: float
    params: int
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepPoint:
    """One step count of a step sweep: every seed's measurement (or why they failed), and the
    seconds a separate run to this step count would have taken (training up to here plus this
    scoring, without the scorings of earlier step counts)."""

    steps: int
    outcome: list[Measurement] | BaseException
    seconds: float
    #: the seeds trained side by side as one stacked network
    batched: bool = False


class SweepClock:
    """Times the points of a sweep: :meth:`score` runs one scoring and returns its :class:`SweepPoint`."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._scoring = 0.0

    def score(self, steps: int, scoring: Callable[[], list[Measurement]]) -> SweepPoint:
        """``scoring()``'s measurements (or the exception it raised) at ``steps``, timed."""
        begin = time.perf_counter()
        try:
            outcome: list[Measurement] | BaseException = scoring()
        except Exception as exc:  # noqa: BLE001  (this step count failed; training goes on)
            outcome = exc
        end = time.perf_counter()
        point = SweepPoint(steps, outcome, begin - self.start - self._scoring + (end - begin))
        self._scoring += end - begin
        return point

    def failed(self, steps: Sequence[int], exc: BaseException) -> list[SweepPoint]:
        """Every one of ``steps`` failed with ``exc`` (training stopped before it)."""
        elapsed = time.perf_counter() - self.start - self._scoring
        return [SweepPoint(s, exc, elapsed) for s in steps]


class Evaluator(ABC):
    """Base class of every evaluator; subclasses define ``Config`` and ``_evaluate``."""

    #: The pydantic model of this evaluator's options.
    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel | dict[str, Any] | None = None, data_root: str | None = None,
                 device: str | None = None, base_dir: str | None = None) -> None:
        """``config`` as written; its :data:`~gtn_search.paths.ConfigPath` options are resolved from
        ``base_dir`` (the config file's folder; ``None``: the current folder) into ``self.config``."""
        where = f"evaluator '{self.registered_name()}' options"
        #: the options as written in the config (what :meth:`describe` reports and studies store)
        self.written = config if isinstance(config, BaseModel) else parse_model(self.Config, config or {}, where)
        self.config = resolve_path_options(self.written, base_dir, f"evaluator '{self.registered_name()}' option")
        self.data_root = data_root
        #: the search's (or command's) device; the option ``device`` of ``Config``, where set, wins
        self.device_spec = getattr(self.config, "device", None) or device
        check_device(self.device_spec, f"evaluator '{self.registered_name()}'")

    @property
    def device(self) -> torch.device:
        """Where this evaluator trains and scores, resolved in the process that runs it."""
        return resolve_device(self.device_spec)

    @classmethod
    def registered_name(cls) -> str:
        from gtn_search.registry import EVALUATORS

        return next((e.name for e in EVALUATORS.entries() if e.obj is cls), cls.__name__)

    #: options added after the first release, left out of :meth:`describe` at their default so
    #: that comparison stores keyed by an evaluator's description keep their keys
    LATER_OPTIONS: ClassVar[dict[str, Any]] = {"seeds": 1, "batch_seeds": True, "channels": None}

    def describe(self) -> dict[str, Any]:
        """Name and options, as stored with a study and exported architectures."""
        options = self.written.model_dump(mode="json")
        for key, default in self.LATER_OPTIONS.items():
            if key in options and options[key] == default:
                del options[key]
        return {"name": self.registered_name(), "options": options}

    def replicate_seeds(self, seed: int) -> list[int]:
        """The initialisation seeds a candidate is scored with: ``seed`` itself, then derived ones."""
        k = int(getattr(self.config, "seeds", 1))
        return [seed] + [derive_seed(seed, "replicate", i) for i in range(1, k)]

    def setup(self) -> None:
        """Load what evaluations need (datasets, teaching sets) now, to fail early on bad input."""

    def evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> EvalResult:
        """Score ``arch`` expanded by ``blueprint``; failures come back as ``status='failed'``."""
        start = time.perf_counter()
        try:
            with device_settings(self.device):
                m = self._replicated(arch, blueprint, seed)
        except Exception as exc:  # noqa: BLE001  (bad configuration re-raised by _failure)
            return self._recorded(_failure(exc, time.perf_counter() - start))
        return self._recorded(_success(m, time.perf_counter() - start))

    def _recorded(self, result: EvalResult) -> EvalResult:
        """``result`` with the device it was computed on in its metrics (:mod:`gtn_search.provenance`)."""
        result.metrics = {**result.metrics, DEVICE_KEY: device_label(self.device)}
        return result

    def can_sweep(self) -> bool:
        """Whether :meth:`evaluate_sweep` trains once for all its step counts (else once per step count)."""
        return False

    def with_steps(self, steps: int) -> Evaluator:
        """This evaluator with its option ``steps`` set to ``steps`` (for evaluators that have one)."""
        fields = type(self.written).model_fields
        if "steps" not in fields:
            raise ValueError(f"evaluator '{self.registered_name()}' has no option 'steps'")
        update: dict[str, Any] = {"steps": steps, **({"epochs": None} if "epochs" in fields else {})}
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.written, twin.config = self.written.model_copy(update=update), self.config.model_copy(update=update)
        return twin

    def evaluate_sweep(self, arch: Architecture, blueprint: Blueprint, seed: int,
                       steps: Sequence[int]) -> dict[int, EvalResult]:
        """What :meth:`evaluate` gives with option ``steps`` set to each of ``steps`` (all at most this
        evaluator's own ``steps``), by step count: from one training scored on the way where
        :meth:`can_sweep`, else from one evaluation per step count. Each result carries the cost and
        seconds of a separate run to its step count."""
        wanted = sorted(set(steps))
        if not self.can_sweep():
            return {s: self.with_steps(s).evaluate(arch, blueprint, seed) for s in wanted}
        most = self._step_limit()
        if not wanted or wanted[0] < 1 or wanted[-1] > most:
            raise ValueError(f"sweep steps must be in [1, {most}], got {wanted}")
        start = time.perf_counter()
        try:
            with device_settings(self.device):
                points = self._sweep(arch, blueprint, self.replicate_seeds(seed), wanted)
        except Exception as exc:  # noqa: BLE001  (failed before the first step count: all of them failed)
            failure = self._recorded(_failure(exc, time.perf_counter() - start))
            return {s: failure for s in wanted}
        out = {}
        for point in points:
            if isinstance(point.outcome, BaseException):
                out[point.steps] = self._recorded(_failure(point.outcome, point.seconds))
                continue
            try:
                m = self._combine(point.outcome, self.replicate_seeds(seed), point.batched)
            except Exception as exc:  # noqa: BLE001
                out[point.steps] = self._recorded(_failure(exc, point.seconds))
                continue
            out[point.steps] = self._recorded(_success(m, point.seconds))
        return out

    def _step_limit(self) -> int:
        """The step count of :meth:`evaluate` (the most a sweep may ask for)."""
        return int(getattr(self.config, "steps", 0) or 0)

    def _sweep(self, arch: Architecture, blueprint: Blueprint, seeds: list[int], steps: list[int]) -> list[SweepPoint]:
        """One training of every seed to ``steps[-1]``, scored at each of ``steps`` (evaluators whose
        :meth:`can_sweep` is true implement it; a failure that stops the training fails the rest)."""
        raise NotImplementedError

    def _replicated(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        """``_evaluate`` for every replicate seed (or ``_evaluate_batched`` for all of them at once),
        combined: mean score, summed cost."""
        seeds = self.replicate_seeds(seed)
        batched = None
        if len(seeds) > 1 and getattr(self.config, "batch_seeds", False):
            batched = self._evaluate_batched(arch, blueprint, seeds)
        if batched is not None:
            return self._combine(batched, seeds, batched=True)
        runs: list[Measurement] = []
        for s in seeds:
            runs.append(self._evaluate(arch, blueprint, s))
            _check_finite(runs[-1], seeds, len(runs) - 1)
        return self._combine(runs, seeds)

    @staticmethod
    def _combine(runs: list[Measurement], seeds: list[int], batched: bool = False) -> Measurement:
        """Every seed's measurement combined: mean score, summed cost, the seed scores and their spread
        in the metrics (one seed: its measurement). Raises :class:`NonFiniteScore` for a NaN/inf score."""
        for i, m in enumerate(runs):
            _check_finite(m, seeds, i)
        if len(runs) == 1:
            return runs[0]
        scores = [m.score for m in runs]
        first = runs[0]
        metrics = {**first.metrics, "seed_scores": scores, "score_std": statistics.stdev(scores)}
        if batched:
            metrics["seeds_batched"] = True
        return Measurement(score=statistics.fmean(scores), sgd_steps=sum(m.sgd_steps for m in runs),
                           images_seen=sum(m.images_seen for m in runs),
                           train_flops=sum(m.train_flops for m in runs), eval_flops=sum(m.eval_flops for m in runs),
                           params=first.params, metrics=metrics)

    @abstractmethod
    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        """Train and score one candidate; raise on failure."""

    def _evaluate_batched(self, arch: Architecture, blueprint: Blueprint, seeds: list[int]) -> list[Measurement] | None:
        """What ``_evaluate`` gives for each of ``seeds``, computed in one batched run; ``None``
        where this evaluator (or this candidate's network) cannot batch them."""
        return None


def _check_finite(m: Measurement, seeds: list[int], i: int) -> None:
    if not math.isfinite(m.score):
        raise NonFiniteScore(f"non-finite score {m.score}" + (f" (seed {seeds[i]})" if i else ""))


def _success(m: Measurement, seconds: float) -> EvalResult:
    return EvalResult("ok", score=float(m.score), wall_seconds=seconds, sgd_steps=m.sgd_steps,
                      images_seen=m.images_seen, train_flops=m.train_flops, eval_flops=m.eval_flops, params=m.params,
                      metrics=m.metrics)


def _failure(exc: BaseException, seconds: float) -> EvalResult:
    """The failed result for what an evaluation raised; bad configuration (a :class:`GTNSearchError`
    other than NaN/inf) and interrupts are re-raised: they stop the search with their clear message."""
    if isinstance(exc, NonFiniteScore):
        return EvalResult("failed", error=f"NaN/inf during training: {exc}", wall_seconds=seconds)
    if isinstance(exc, MemoryError):
        return EvalResult("failed", error="out of memory", wall_seconds=seconds)
    if isinstance(exc, MemoryLimitError):  # refused up front: this candidate, not the search, is at fault
        return EvalResult("failed", error=f"out of memory (refused before training): {exc}", wall_seconds=seconds)
    if isinstance(exc, GTNSearchError) or not isinstance(exc, Exception):
        raise exc
    oom = oom_message(exc)
    if oom is not None:
        return EvalResult("failed", error=f"{oom}; lower the batch size or the network's size, or run fewer "
                          f"workers per GPU", wall_seconds=seconds)
    message = str(exc).splitlines()[0] if str(exc) else ""
    kind = "out of memory" if "out of memory" in message.lower() else type(exc).__name__
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return EvalResult("failed", error=f"{kind}: {message[:300]} (at {where.filename}:{where.lineno})",
                      wall_seconds=seconds)


class SeedBatchingEvaluator(Evaluator):
    """An evaluator that trains one seed, or several side by side as one stacked network, in one
    :meth:`_trained` call (``search_spaces.replicas``), scored after one or several step counts;
    networks that cannot be stacked fall back to one seed at a time."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        return self._scored(arch, blueprint, [seed])[0]

    def _evaluate_batched(self, arch: Architecture, blueprint: Blueprint, seeds: list[int]) -> list[Measurement] | None:
        try:
            return self._scored(arch, blueprint, seeds)
        except NotStackable:
            return None

    def _scored(self, arch: Architecture, blueprint: Blueprint, seeds: list[int]) -> list[Measurement]:
        """One measurement per seed after this evaluator's own step count."""
        point = self._trained(arch, blueprint, seeds, [self._step_limit()], SweepClock())[-1]
        if isinstance(point.outcome, BaseException):
            raise point.outcome
        return point.outcome

    def _sweep(self, arch: Architecture, blueprint: Blueprint, seeds: list[int], steps: list[int]) -> list[SweepPoint]:
        if len(seeds) > 1 and getattr(self.config, "batch_seeds", False):
            try:
                return [replace(p, batched=True) for p in self._trained(arch, blueprint, seeds, steps, SweepClock())]
            except NotStackable:
                pass
        per_seed = [self._trained(arch, blueprint, [s], steps, SweepClock()) for s in seeds]
        merged = []
        for points in zip(*per_seed):
            failed = next((p.outcome for p in points if isinstance(p.outcome, BaseException)), None)
            outcome = failed if failed is not None else [m for p in points for m in p.outcome]  # type: ignore[union-attr]
            merged.append(SweepPoint(points[0].steps, outcome, sum(p.seconds for p in points)))
        return merged

    @abstractmethod
    def _trained(self, arch: Architecture, blueprint: Blueprint, seeds: list[int], steps: list[int],
                 clock: SweepClock) -> list[SweepPoint]:
        """Train one network per seed (several: side by side; raise ``NotStackable`` if the
        candidate's network cannot be stacked) to ``steps[-1]`` steps and score every seed after each
        of ``steps`` (``clock.score``); a failure that stops the training fails the step counts not
        reached (``clock.failed``), a failure before it starts is raised."""
