"""The ``gtn-search compare`` configuration: architectures, ground truth, proxies, equal-budget searches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from gtn_search.configio import StrictModel, load_yaml, parse_model, require_mapping
from gtn_search.device import DeviceSpec
from gtn_search.final_train import TrainConfig
from gtn_search.paths import resolve_path
from gtn_search.search_config import PluginSpec


class GroundTruthConfig(StrictModel):
    """How each sampled architecture is trained for its ground-truth test accuracy."""

    #: the final-training blueprint (default: the proxies' blueprint)
    blueprint: str | dict[str, Any] | None = None
    recipe: TrainConfig = TrainConfig()
    seed: int = Field(default=0, ge=0)
    #: independent trainings per architecture (replicate 0 uses ``seed``); the ground truth is their
    #: mean test accuracy and, with two or more, the report gives the seed-to-seed rank correlation
    #: (the noise ceiling no proxy can be expected to beat)
    replicates: int = Field(default=1, ge=1, le=20)

    def replicate_seeds(self) -> list[int]:
        """The training seed of every replicate: ``seed``, then derived ones."""
        from gtn_search.seeding import derive_seed

        return [self.seed] + [derive_seed(self.seed, "ground-truth-replicate", r) for r in range(1, self.replicates)]


class ProxyConfig(StrictModel):
    """One proxy evaluator; with ``steps`` it is run once per step count (a cost sweep)."""

    label: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")
    evaluator: PluginSpec
    steps: list[int] | None = None
    #: 'gtn' or 'real' curves take part in the speed-up computation
    kind: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ProxyConfig:
        if self.steps is not None and (not self.steps or any(s < 1 for s in self.steps)):
            raise ValueError("steps must be a non-empty list of positive integers")
        if self.steps is not None and "steps" in self.evaluator.options:
            raise ValueError("give the step counts in 'steps', not in the evaluator options")
        return self

    def settings(self) -> list[tuple[str, dict[str, Any]]]:
        """``(setting name, evaluator options)`` for every point of the sweep."""
        if self.steps is None:
            return [(self.label, dict(self.evaluator.options))]
        return [(f"{self.label}@{s}", {**self.evaluator.options, "steps": s}) for s in sorted(set(self.steps))]

    def curve_kind(self) -> str:
        return self.kind or self.evaluator.name


class EqualBudgetConfig(StrictModel):
    """Searches with each evaluator under the same compute budget, then final training of their top-k."""

    strategies: list[str] = Field(default_factory=lambda: ["random", "evolution"], min_length=1)
    #: proxy labels (from ``proxies``, with their first step count unless 'label@steps' is given)
    evaluators: list[str] = Field(min_length=1)
    flops: float = Field(gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    top_k: int = Field(default=3, ge=1, le=100)
    #: fractions of the budget at which each search's best-so-far is final-trained (the
    #: best-found-versus-compute curve); 1.0 is always included
    curve_fractions: list[Annotated[float, Field(gt=0.0, le=1.0)]] = Field(default_factory=lambda: [0.25, 0.5, 1.0])
    strategy_options: dict[str, dict[str, Any]] = Field(default_factory=dict)


class TargetsConfig(StrictModel):
    """Success criteria for one GTN setting, fixed before the proxies are scored, judged in the report.

    ``primary`` is the setting judged (e.g. ``gtn@32``); every other GTN setting is reported beside
    it for information only, so picking the best-looking one afterwards is visibly not the test.
    """

    primary: str = Field(min_length=1)
    #: its Spearman over all architectures must exceed every training-free peer's and every
    #: real-data setting's of equal or lower cost by this much
    margin_over_peers: float = Field(default=0.1, ge=-1, le=2)
    #: Spearman over the top 50% (by the proxy's own score), and the most its 95% interval may stray
    top50_spearman: float = Field(default=0.56, ge=-1, le=1)
    top50_halfwidth: float = Field(default=0.15, gt=0, le=2)
    #: real-data FLOPs needed to match its Spearman over all architectures / its FLOPs
    speedup: float = Field(default=9.0, gt=0)


class CompareConfig(StrictModel):
    """Everything ``gtn-search compare`` does, in one YAML file."""

    out: str = "runs/compare"
    dataset: str = "fashion_mnist"
    space: str | dict[str, Any] = "gtn-nas"
    #: the blueprint proxies score candidates with (the search blueprint)
    blueprint: str | dict[str, Any] = "mnist-tiny"
    num_architectures: int = Field(default=40, ge=4, le=100_000)
    seed: int = Field(default=0, ge=0)
    ground_truth: GroundTruthConfig = GroundTruthConfig()
    proxies: list[ProxyConfig] = Field(min_length=1)
    bootstrap: int = Field(default=1000, ge=0, le=100_000)
    equal_budget: EqualBudgetConfig | None = None
    targets: TargetsConfig | None = None
    data_root: str | None = None
    #: ground truth on the first ``limit`` images of each split only (smoke tests, not results)
    limit: int | None = Field(default=None, ge=10)
    #: local worker processes for ground-truth trainings and proxy scores (each result is stored
    #: as soon as it arrives; the cores are shared among the workers)
    workers: int = Field(default=1, ge=1, le=256)
    #: where proxies score and the ground truth trains (auto: CUDA when available; workers share
    #: the GPUs round-robin); a recipe's or an evaluator's own 'device' wins; not part of any cache key
    device: DeviceSpec = Field(default="auto", exclude=True)
    #: the folder relative paths in evaluator options are resolved from; :func:`load_compare_config`
    #: sets it to the config file's folder (and makes ``out`` and ``data_root`` absolute)
    base_dir: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> CompareConfig:
        labels = [p.label for p in self.proxies]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"proxy labels must be unique; repeated: {', '.join(dupes)}")
        if self.equal_budget is not None:
            known = {name for p in self.proxies for name, _ in p.settings()} | set(labels)
            missing = [e for e in self.equal_budget.evaluators if e not in known]
            if missing:
                raise ValueError(f"equal_budget.evaluators {missing} are not proxy labels or settings "
                                 f"({', '.join(sorted(known))})")
        if self.targets is not None:
            gtn = sorted(name for p in self.proxies if p.curve_kind() == "gtn" for name, _ in p.settings())
            if self.targets.primary not in gtn:
                raise ValueError(f"targets.primary {self.targets.primary!r} is not a GTN proxy setting "
                                 f"({', '.join(gtn) or 'none: give a proxy kind: gtn'})")
        return self

    def settings(self) -> dict[str, tuple[ProxyConfig, dict[str, Any]]]:
        """Every proxy setting by name: its proxy and evaluator options."""
        return {name: (p, options) for p in self.proxies for name, options in p.settings()}


#: The fields of a compare config that are paths (resolved by :func:`load_compare_config`).
PATH_FIELDS = ("out", "data_root")


def load_compare_config(path: str | Path, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Read and validate a compare YAML file (errors name the file and the field).

    Relative paths in the file are resolved from its folder, those in ``overrides`` (command-line
    flags) from the current folder (see :mod:`gtn_search.paths`).
    """
    data = dict(require_mapping(load_yaml(path), str(path)))
    folder = os.path.dirname(os.path.abspath(path))
    base = data.get("base_dir") or folder
    if isinstance(base, str):
        data["base_dir"] = base = resolve_path(base, folder, "base_dir")
        data.setdefault("out", CompareConfig.model_fields["out"].default)
        data.update({key: resolve_path(data[key], base, key) for key in PATH_FIELDS
                     if isinstance(data.get(key), str) and data[key]})
    data.update({key: resolve_path(value, None, key) if key in PATH_FIELDS and isinstance(value, str) and value
                 else value for key, value in (overrides or {}).items()})
    return parse_model(CompareConfig, data, str(path))
