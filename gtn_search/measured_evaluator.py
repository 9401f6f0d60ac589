"""The evaluator a worker runs when a search measures objectives there (latency), before training.

:class:`MeasuringEvaluator` wraps the search's evaluator. In the worker process it measures the
worker-side objectives (:func:`gtn_search.objectives.measure_latency`) on the trial's device,
checks their bounds, and only then trains: a candidate that breaks a bound comes back
``infeasible`` (with the violations and the measured values in its metrics), untrained. The
measured values are added to the result's metrics under their objective names.
"""

from __future__ import annotations

import time
from typing import Any

from gtn_search.evaluators.base import EvalResult, Evaluator
from gtn_search.objectives import ObjectiveSet, measure_latency
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint


class MeasuringEvaluator:
    """``inner.evaluate`` preceded by the worker-side measurements and their constraint check."""

    def __init__(self, inner: Evaluator, objectives: ObjectiveSet, measure_blueprint: Blueprint) -> None:
        self.inner = inner
        self.objectives = objectives
        self.measure_blueprint = measure_blueprint

    @property
    def device_spec(self) -> str | None:
        return self.inner.device_spec

    def setup(self) -> None:
        self.inner.setup()

    def measure(self, arch: Architecture) -> dict[str, float]:
        """The worker-side objective values of ``arch`` on this worker's device."""
        values: dict[str, float] = {}
        if "latency_ms" in self.objectives.worker_needed():
            values["latency_ms"] = measure_latency(arch, self.measure_blueprint, self.objectives.measure,
                                                   self.inner.device)
        return values

    def evaluate(self, arch: Architecture, blueprint: Blueprint, seed: int) -> EvalResult:
        start = time.perf_counter()
        try:
            values = self.measure(arch)
        except Exception as exc:  # noqa: BLE001 - the candidate, not the search, failed
            return EvalResult("failed", error=f"measuring {', '.join(sorted(self.objectives.worker_needed()))} "
                              f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              wall_seconds=time.perf_counter() - start)
        violations = self.objectives.violations(values, known="worker")
        if violations:
            return EvalResult("infeasible", error="; ".join(violations.values()),
                              wall_seconds=time.perf_counter() - start,
                              metrics={**values, "violations": violations})
        result = self.inner.evaluate(arch, blueprint, seed)
        result.metrics = {**result.metrics, **values}
        return result

    def __getattr__(self, name: str) -> Any:  # anything else an executor may ask the evaluator
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
