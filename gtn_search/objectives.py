"""What a search optimises and what it must respect: objectives, constraints and how both are measured.

A search config may declare several objectives and bounds::

    objectives: {score: max, params: min}          # optimised together (order = the strategy's order)
    constraints: {params: "<= 1e5", latency_ms: "< 5"}   # checked before any training
    scalarization: {weights: {score: 1.0, params: 1.0e-6}}   # only to run a single-objective strategy
    reference_point: {score: 0.0, params: 2.0e5}   # for the hypervolume (not part of the study)
    measure: {blueprint: mnist-search, latency_batch: 1, latency_repeats: 30, memory_batch: 64}

The objectives (:data:`OBJECTIVES`):

``score`` (max)
    the evaluator's score (validation accuracy of the candidate after the evaluator's training).
``params`` (min)
    parameters of the network the measurement blueprint builds (``measure.blueprint``, default the
    search blueprint), without the auxiliary head (dropped when deployed).
``flops`` (min)
    forward FLOPs per image of that network in eval mode (torch's FlopCounterMode, 2 per
    multiply-add).
``memory_mb`` (min)
    its estimated peak training memory in MiB at batch ``measure.memory_batch``: weights, gradients
    and two optimizer buffers plus every activation autograd saves, and its gradient (the estimate of
    :mod:`search_spaces.memory`, counted on PyTorch's meta device: exact for the tensors it counts,
    the same on every machine, and free; allocator overhead and workspaces are not included).
``latency_ms`` (min)
    median wall-clock milliseconds of one forward pass (eval mode, no autograd) at batch
    ``measure.latency_batch`` with the trial's device and threads, over ``latency_repeats`` passes
    after ``latency_warmup`` unmeasured ones (CUDA is synchronised around each pass). It is measured
    by the worker that runs the trial, before training, so it describes that machine, and like any
    timing it varies with the load on it (workers that share cores slow each other down).

``params``, ``flops`` and ``memory_mb`` are computed on the meta device (no weights, about 0.1 s),
so constraints on them are checked in the search process before a candidate is submitted; a
latency bound is checked by the worker before training. Either way a candidate that breaks a bound
is recorded as ``infeasible`` with the violated bounds and never trained, and the strategy is told
(:meth:`strategies.base.Strategy.tell_infeasible`). ``score`` cannot be constrained: it is only
known after training.

Strategies maximise: the values they are told are *fitness* values, each objective oriented so that
larger is better (a minimised objective is negated). With one objective a strategy gets a float;
with several, a multi-objective strategy gets a tuple, and a single-objective strategy gets the
weighted sum of the fitness values when ``scalarization`` is declared (and refuses otherwise).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gtn_search.configio import StrictModel
from gtn_search.errors import did_you_mean
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class ObjectiveInfo:
    """A built-in objective: its natural direction, unit and when it can be known."""

    direction: Direction
    unit: str
    description: str
    #: "static": from the architecture alone (search process, before submitting); "worker":
    #: measured by the worker before training; "result": known after the evaluation
    known: Literal["static", "worker", "result"]


OBJECTIVES: dict[str, ObjectiveInfo] = {
    "score": ObjectiveInfo("max", "", "the evaluator's score (validation accuracy)", "result"),
    "params": ObjectiveInfo("min", "", "parameters of the measured network (no auxiliary head)", "static"),
    "flops": ObjectiveInfo("min", "FLOPs", "forward FLOPs per image", "static"),
    "memory_mb": ObjectiveInfo("min", "MiB", "estimated peak training memory at measure.memory_batch", "static"),
    "latency_ms": ObjectiveInfo("min", "ms", "median forward-pass time at measure.latency_batch", "worker"),
}

_BOUND = re.compile(r"^\s*(<=|<|>=|>)?\s*([-+0-9.eE_]+)\s*$")


def _known_name(name: str) -> str:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective '{name}'{did_you_mean(name, OBJECTIVES)}; choose from "
                         f"{', '.join(OBJECTIVES)}")
    return name


class MeasureOptions(StrictModel):
    """How the cost objectives are measured."""

    #: the blueprint whose network is measured (default: the search blueprint)
    blueprint: str | dict[str, Any] | None = None
    latency_batch: int = Field(default=1, ge=1, le=4096)
    latency_repeats: int = Field(default=30, ge=3, le=100_000)
    latency_warmup: int = Field(default=5, ge=0, le=10_000)
    memory_batch: int = Field(default=64, ge=1, le=1_000_000)


class Scalarization(StrictModel):
    """A weighted sum of fitness values (minimised objectives negated) for single-objective strategies."""

    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("give at least one weight, e.g. {score: 1.0, params: 1.0e-6}")
        for name, w in value.items():
            _known_name(name)
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight of '{name}' must be a finite number >= 0, got {w}")
        return value


class ObjectivesConfig(StrictModel):
    """The objective-related fields of a search config (see the module docstring)."""

    objectives: dict[str, Direction] | None = None
    constraints: dict[str, str | float] | None = None
    scalarization: Scalarization | None = None
    reference_point: dict[str, float] | None = None
    measure: MeasureOptions | None = None

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: dict[str, Direction] | None) -> dict[str, Direction] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("declare at least one objective, e.g. {score: max, params: min}")
        for name in value:
            _known_name(name)
        return value

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, value: dict[str, str | float] | None) -> dict[str, str | float] | None:
        for name, bound in (value or {}).items():
            Constraint.parse(name, bound)
        return value

    @field_validator("reference_point")
    @classmethod
    def _reference(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for name, v in (value or {}).items():
            _known_name(name)
            if not math.isfinite(v):
                raise ValueError(f"reference_point '{name}' must be a finite number, got {v}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ObjectivesConfig:
        declared = list(self.objectives or {"score": "max"})
        if self.scalarization is not None:
            extra = sorted(set(self.scalarization.weights) - set(declared))
            if extra:
                raise ValueError(f"scalarization weights {extra} are not objectives; the objectives are {declared}")
        if self.reference_point is not None:
            extra = sorted(set(self.reference_point) - set(declared))
            if extra:
                raise ValueError(f"reference_point {extra} are not objectives; the objectives are {declared}")
        return self


@dataclass(frozen=True)
class Constraint:
    """An upper or lower bound on one cost objective, e.g. ``params <= 1e5``."""

    name: str
    op: str
    bound: float

    @classmethod
    def parse(cls, name: str, text: str | float) -> Constraint:
        """``"<= 1e5"``, ``"< 5"``, ``">= 1000"`` or a bare number (an upper bound, ``<=``)."""
        _known_name(name)
        if OBJECTIVES[name].known == "result":
            raise ValueError(f"'{name}' is known only after training, and constraints are checked "
                             f"before any training; optimise it as an objective instead")
        if isinstance(text, bool):
            raise ValueError(f"'{name}' must be a bound like \"<= 1e5\", got {text!r}")  # noqa: TRY004 (pydantic)
        if isinstance(text, (int, float)):
            op, bound = "<=", float(text)
        else:
            m = _BOUND.match(str(text))
            try:
                if m is None:
                    raise ValueError
                op, bound = m.group(1) or "<=", float(m.group(2))
            except ValueError:
                raise ValueError(f"'{name}' must be a bound like \"<= 1e5\" or \"> 10\" (operator "
                                 f"<=, <, >= or >, then a number), got {text!r}") from None
        if not math.isfinite(bound):
            raise ValueError(f"'{name}' bound must be a finite number, got {text!r}")
        return cls(name, op, bound)

    def violation(self, value: float) -> str | None:
        """None if ``value`` respects the bound, else e.g. ``"params 1.3e+05 > 1e+05"``."""
        ok = {"<=": value <= self.bound, "<": value < self.bound, ">=": value >= self.bound,
              ">": value > self.bound}[self.op]
        if ok:
            return None
        return f"{self.name} {value:.4g} violates {self.op} {self.bound:.4g}"

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.bound:g}"


@dataclass
class ObjectiveSet:
    """The parsed objectives of a search: names, directions, constraints, scalarization, measuring."""

    names: tuple[str, ...] = ("score",)
    directions: tuple[Direction, ...] = ("max",)
    constraints: tuple[Constraint, ...] = ()
    weights: dict[str, float] | None = None
    reference: dict[str, float] = field(default_factory=dict)
    measure: MeasureOptions = field(default_factory=MeasureOptions)
    #: False for a search that declares nothing (score only, as before objectives existed)
    declared: bool = False

    @classmethod
    def from_config(cls, cfg: ObjectivesConfig) -> ObjectiveSet:
        objectives = cfg.objectives or {"score": "max"}
        constraints = tuple(Constraint.parse(n, t) for n, t in (cfg.constraints or {}).items())
        return cls(
            names=tuple(objectives), directions=tuple(objectives.values()), constraints=constraints,
            weights=None if cfg.scalarization is None else dict(cfg.scalarization.weights),
            reference=dict(cfg.reference_point or {}), measure=cfg.measure or MeasureOptions(),
            declared=any(v is not None for v in (cfg.objectives, cfg.constraints, cfg.scalarization, cfg.measure)),
        )

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def told_count(self) -> int:
        """How many values each tell carries: 1 when scalarised, else one per objective."""
        return 1 if self.weights is not None else self.count

    def needed(self) -> set[str]:
        """Every measured quantity (objectives and constrained ones) except the score."""
        return ({*self.names} | {c.name for c in self.constraints}) - {"score"}

    def static_needed(self) -> set[str]:
        return {n for n in self.needed() if OBJECTIVES[n].known == "static"}

    def worker_needed(self) -> set[str]:
        return {n for n in self.needed() if OBJECTIVES[n].known == "worker"}

    def violations(self, values: dict[str, float], known: str | None = None) -> dict[str, str]:
        """``{name: "name value violates <= bound"}`` for every violated bound whose value is given
        (only bounds on objectives known ``known``, e.g. "static", when set)."""
        out = {}
        for c in self.constraints:
            if c.name in values and (known is None or OBJECTIVES[c.name].known == known):
                text = c.violation(values[c.name])
                if text is not None:
                    out[c.name] = text
        return out

    def fitness(self, values: dict[str, float]) -> tuple[float, ...] | None:
        """The objective values oriented for maximisation (None if one is missing or not finite)."""
        out = []
        for name, direction in zip(self.names, self.directions):
            v = values.get(name)
            if v is None or not math.isfinite(float(v)):
                return None
            out.append(float(v) if direction == "max" else -float(v))
        return tuple(out)

    def told_value(self, values: dict[str, float]) -> float | tuple[float, ...] | None:
        """What the strategy is told for a finished candidate with these values."""
        fit = self.fitness(values)
        if fit is None:
            return None
        if self.weights is not None:
            return sum(self.weights.get(n, 0.0) * f for n, f in zip(self.names, fit))
        return fit[0] if len(fit) == 1 else fit

    def reference_fitness(self, points: list[tuple[float, ...]]) -> tuple[tuple[float, ...], list[str]]:
        """The hypervolume reference point in fitness space, and how each coordinate was chosen.

        Declared values win; otherwise 0 for ``score``, the bound for a constrained ``<=`` objective,
        and else the worst value among ``points`` (the nadir) minus 10% of the range (so that the
        worst points still count).
        """
        ref, how = [], []
        for i, (name, direction) in enumerate(zip(self.names, self.directions)):
            sign = 1.0 if direction == "max" else -1.0
            if name in self.reference:
                ref.append(sign * self.reference[name])
                how.append(f"{name}={self.reference[name]:g} (declared)")
                continue
            bound = next((c.bound for c in self.constraints if c.name == name and c.op in ("<=", "<")), None)
            if name == "score" and direction == "max":
                ref.append(0.0)
                how.append("score=0 (default)")
            elif bound is not None and direction == "min":
                ref.append(-bound)
                how.append(f"{name}={bound:g} (its constraint)")
            else:
                column = [p[i] for p in points] or [0.0]
                lo, hi = min(column), max(column)
                r = lo - 0.1 * ((hi - lo) or abs(lo) or 1.0)
                ref.append(r)
                how.append(f"{name}={sign * r:g} (worst seen less 10% of the range)")
        return tuple(ref), how


# -- measuring -------------------------------------------------------------------------------------
def measurement_blueprint(objectives: ObjectiveSet, search_blueprint: Blueprint) -> Blueprint:
    """The blueprint whose network the cost objectives describe."""
    from search_spaces.blueprint import blueprint_preset

    value = objectives.measure.blueprint
    if value is None:
        return search_blueprint
    if isinstance(value, str):
        return blueprint_preset(value, where="measure.blueprint")
    return Blueprint.from_mapping(value, where="measure.blueprint")


def static_measures(arch: Architecture, bp: Blueprint, names: set[str], memory_batch: int = 64) -> dict[str, float]:
    """``params``, ``flops`` and ``memory_mb`` (those in ``names``), counted on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from search_spaces.memory import estimate_training_memory
    from search_spaces.network import Network

    out: dict[str, float] = {}
    if names & {"params", "flops"}:
        with torch.device("meta"):
            module = Network(arch, bp)
        if "params" in names:
            aux = set() if module.aux_head is None else {id(p) for p in module.aux_head.parameters()}
            out["params"] = float(sum(p.numel() for p in module.parameters() if id(p) not in aux))
        if "flops" in names:
            module.eval()
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                module(torch.empty((2, *bp.input_shape), device="meta"))
            out["flops"] = float(math.ceil(counter.get_total_flops() / 2))
    if "memory_mb" in names:
        out["memory_mb"] = estimate_training_memory(arch, bp, memory_batch).bytes / 2**20
    return out


def measure_latency(arch: Architecture, bp: Blueprint, options: MeasureOptions, device: Any = None) -> float:
    """Median milliseconds of a forward pass at ``options.latency_batch`` (see the module docstring)."""
    import torch

    from search_spaces.network import build

    device = torch.device("cpu") if device is None else torch.device(device)
    module = build(arch, bp, seed=0).to(device).eval()
    x = torch.randn((options.latency_batch, *bp.input_shape), generator=torch.Generator().manual_seed(0)).to(device)
    cuda = device.type == "cuda"
    times = []
    with torch.inference_mode():
        for i in range(options.latency_warmup + options.latency_repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            module(x)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= options.latency_warmup:
                times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)

