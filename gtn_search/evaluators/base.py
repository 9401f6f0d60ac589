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
"""

from __future__ import annotations

import math
import statistics
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel

from gtn_search.configio import parse_model
from gtn_search.device import check_device, device_settings, oom_message, resolve_device
from gtn_search.errors import GTNSearchError
from gtn_search.paths import resolve_path_options
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
        except NonFiniteScore as exc:
            return EvalResult("failed", error=f"NaN/inf during training: {exc}", wall_seconds=time.perf_counter() - start)
        except MemoryError:
            return EvalResult("failed", error="out of memory", wall_seconds=time.perf_counter() - start)
        except MemoryLimitError as exc:  # refused up front: this candidate, not the search, is at fault
            return EvalResult("failed", error=f"out of memory (refused before training): {exc}",
                              wall_seconds=time.perf_counter() - start)
        except GTNSearchError:
            raise  # bad configuration: stop the search with the clear message
        except Exception as exc:  # the candidate failed, the search goes on  # noqa: BLE001
            oom = oom_message(exc)
            if oom is not None:
                return EvalResult("failed", error=f"{oom}; lower the batch size or the network's size, or run fewer "
                                  f"workers per GPU", wall_seconds=time.perf_counter() - start)
            message = str(exc).splitlines()[0] if str(exc) else ""
            kind = "out of memory" if "out of memory" in message.lower() else type(exc).__name__
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return EvalResult("failed", error=f"{kind}: {message[:300]} (at {where.filename}:{where.lineno})",
                              wall_seconds=time.perf_counter() - start)
        return EvalResult(
            "ok", score=float(m.score), wall_seconds=time.perf_counter() - start, sgd_steps=m.sgd_steps,
            images_seen=m.images_seen, train_flops=m.train_flops, eval_flops=m.eval_flops, params=m.params,
            metrics=m.metrics,
        )

    def _replicated(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        """``_evaluate`` for every replicate seed (or ``_evaluate_batched`` for all of them at once),
        combined: mean score, summed cost."""
        seeds = self.replicate_seeds(seed)
        batched = None
        if len(seeds) > 1 and getattr(self.config, "batch_seeds", False):
            batched = self._evaluate_batched(arch, blueprint, seeds)
        runs: list[Measurement] = []
        for i, s in enumerate(seeds):
            m = batched[i] if batched is not None else self._evaluate(arch, blueprint, s)
            if not math.isfinite(m.score):
                raise NonFiniteScore(f"non-finite score {m.score}" + (f" (seed {s})" if i else ""))
            runs.append(m)
        if len(runs) == 1:
            return runs[0]
        scores = [m.score for m in runs]
        first = runs[0]
        metrics = {**first.metrics, "seed_scores": scores, "score_std": statistics.stdev(scores)}
        if batched is not None:
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


class SeedBatchingEvaluator(Evaluator):
    """An evaluator that trains one seed, or several side by side as one stacked network, in one
    :meth:`_scored` call (``search_spaces.replicas``); networks that cannot be stacked fall back to
    one seed at a time."""

    def _evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> Measurement:
        return self._scored(arch, blueprint, [seed])[0]

    def _evaluate_batched(self, arch: Architecture, blueprint: Blueprint, seeds: list[int]) -> list[Measurement] | None:
        try:
            return self._scored(arch, blueprint, seeds)
        except NotStackable:
            return None

    @abstractmethod
    def _scored(self, arch: Architecture, blueprint: Blueprint, seeds: list[int]) -> list[Measurement]:
        """One measurement per seed; several seeds train side by side (raise ``NotStackable`` if
        the candidate's network cannot be stacked)."""
