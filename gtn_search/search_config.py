"""The search configuration (one YAML file): space, blueprint, strategy, evaluator, budget, workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gtn_search.configio import StrictModel, load_yaml, parse_model, require_mapping
from gtn_search.device import DeviceSpec
from gtn_search.errors import BudgetError
from gtn_search.objectives import ObjectivesConfig
from gtn_search.paths import resolve_path
from gtn_search.storage import database_path


class PluginSpec(StrictModel):
    """A registered plugin by name, with its options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class Budget(StrictModel):
    """When to stop asking for candidates: any limit reached ends the search."""

    trials: int | None = Field(default=None, ge=1, le=10_000_000)
    seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    flops: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.trials is None and self.seconds is None and self.flops is None:
            raise ValueError("set at least one of trials, seconds, flops")
        return self


class SearchConfig(ObjectivesConfig):
    """Everything a search needs; identity fields (space..seed, and the objective fields where
    declared) must match when resuming a study. The objective fields (``objectives``,
    ``constraints``, ``scalarization``, ``reference_point``, ``measure``) are documented in
    :mod:`gtn_search.objectives`."""

    study: str = "runs/study.db"
    space: str | dict[str, Any] = "gtn-nas"
    blueprint: str | dict[str, Any] = "mnist-search"
    strategy: PluginSpec = PluginSpec(name="evolution")
    evaluator: PluginSpec
    budget: Budget = Budget(trials=100)
    seed: int = Field(default=0, ge=0, le=2**62)
    workers: int = Field(default=1, ge=1, le=1024)
    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    threads_per_worker: int | None = Field(default=None, ge=1, le=256)
    trial_timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    data_root: str | None = None
    #: where trials train (auto: CUDA when available; local workers then share the GPUs round-robin);
    #: the evaluator's own 'device' option wins. Not part of the study: it resumes on any device.
    device: DeviceSpec = Field(default="auto", exclude=True)
    #: the folder relative paths in evaluator options are resolved from; :func:`load_search_config`
    #: sets it to the config file's folder (and makes ``study`` and ``data_root`` absolute)
    base_dir: str | None = None

    @field_validator("strategy", "evaluator", mode="before")
    @classmethod
    def _name_only(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _workers_fit_this_machine(self) -> SearchConfig:
        if self.scheduler is None:  # worker processes on this machine (local, or a local Dask cluster)
            limit, machine = max_local_workers()
            if self.workers > limit:
                raise ValueError(f"field 'workers': {self.workers} worker processes on this machine ({machine}) would "
                                 f"run out of memory or only queue for the cores; set workers <= {limit}, or use a "
                                 f"Dask cluster (executor: dask, scheduler: tcp://host:8786)")
        return self

    def identity(self) -> dict[str, Any]:
        """The fields a resumed study must share with its creator."""
        data = self.model_dump(mode="json")
        data["evaluator"]["options"].pop("device", None)  # where, not what: a study resumes on any device
        out = {k: data[k] for k in ("space", "blueprint", "strategy", "evaluator", "seed")}
        for key in IDENTITY_IF_SET:  # absent from studies made before objectives existed
            if data.get(key) is not None:
                out[key] = data[key]
        return out


#: Objective fields that are part of a study's identity when set (``reference_point`` is not: it
#: only affects how the hypervolume is reported).
IDENTITY_IF_SET = ("objectives", "constraints", "scalarization", "measure")


#: The fields of a search config that are paths (resolved by :func:`load_search_config`).
PATH_FIELDS = ("study", "data_root")

#: Memory one local worker process may need (a torch process training one candidate: about 1 GiB).
WORKER_MEMORY_BYTES = 1 << 30
#: Local worker processes allowed per core; more would only wait for the same cores.
WORKERS_PER_CORE = 4


def max_local_workers() -> tuple[int, str]:
    """The most worker processes this machine holds (4 per core, 1 GiB of memory each), and why."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit, machine = WORKERS_PER_CORE * cores, f"{cores} cores"
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not reported on this platform
        memory = 0
    if memory > 0:
        limit, machine = min(limit, memory // WORKER_MEMORY_BYTES), f"{machine}, {memory / 2**30:.1f} GiB of memory"
    return max(1, limit), f"{machine}: at most {WORKERS_PER_CORE} per core and 1 GiB each"


def load_search_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """Read a search YAML file; ``overrides`` replace top-level fields (from command-line flags).

    Relative paths in the file are resolved from its folder, those in ``overrides`` from the
    current folder (see :mod:`gtn_search.paths`); ``study`` and ``data_root`` come back absolute.
    """
    where = str(path)
    data = dict(require_mapping(load_yaml(path), where))
    folder = os.path.dirname(os.path.abspath(path))
    base = data.get("base_dir") or folder
    if isinstance(base, str):
        data["base_dir"] = base = resolve_path(base, folder, "base_dir")
        data.setdefault("study", SearchConfig.model_fields["study"].default)
        for key in PATH_FIELDS:
            if isinstance(data.get(key), str) and data[key]:
                data[key] = resolve_path(_file_path(key, data[key]), base, key)
    for key, value in (overrides or {}).items():
        if key in PATH_FIELDS and isinstance(value, str) and value:
            value = resolve_path(_file_path(key, value), None, key)
        if key == "budget" and isinstance(value, dict):
            merged = dict(data.get("budget") or {})
            merged.update(value)
            value = merged
        data[key] = value
    config = parse_model(SearchConfig, data, where)
    return config


def _file_path(key: str, value: str) -> str:
    """The path in a path field (a study's ``sqlite:///path`` URL becomes its path)."""
    return str(database_path(value)) if key == "study" and "://" in value else value


def check_budget(budget: Budget) -> None:
    """Refuse budgets that cannot fund a single trial."""
    if budget.flops is not None and budget.flops < 1e6:
        raise BudgetError(f"budget.flops={budget.flops:g} cannot pay for one trial (a trial costs >= 1e6 FLOPs)")
