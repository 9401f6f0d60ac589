"""GTN meta-training configuration and its YAML presets (``mnist-cpu``, ``mnist-paper``, ...)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from gtn_search.configio import StrictModel, load_yaml, parse_model, require_mapping
from gtn_search.device import DeviceSpec
from gtn_search.errors import ConfigError, unknown_name
from gtn_search.gtn.curriculum import CurriculumKind
from gtn_search.gtn.generator import GeneratorConfig
from gtn_search.gtn.learners import ConvLearnerSpec, LearnerSpec

PRESET_PACKAGE = "gtn_search.presets"


class GTNConfig(StrictModel):
    """Everything that defines a GTN meta-training run (the defaults are the paper's MNIST ones)."""

    dataset: str = "mnist"
    generator: GeneratorConfig = GeneratorConfig()
    curriculum: CurriculumKind = "full"
    soft_labels: bool = False
    inner_steps: int = Field(default=32, ge=1, le=4096)
    inner_batch: int = Field(default=128, ge=1, le=8192)
    inner_lr: float = Field(default=0.02, gt=0.0, le=10.0)
    inner_momentum: float = Field(default=0.5, gt=0.0, lt=1.0)
    learn_inner_optimizer: bool = True
    learner: LearnerSpec = ConvLearnerSpec()
    meta_iterations: int = Field(default=2000, ge=1, le=10_000_000)
    meta_batch: int = Field(default=128, ge=1, le=65536)
    #: learners trained on the teaching set per meta-iteration; the meta-gradient is their average
    #: (K learners cost K times the time of one, with the memory of one: each is back-propagated
    #: before the next is unrolled). With random NAS cells one learner's meta-gradient norm varies
    #: by orders of magnitude between cells; averaging over K tames that.
    learners_per_iteration: int = Field(default=1, ge=1, le=256)
    lr: float = Field(default=0.02, gt=0.0, le=10.0)
    #: exponential moving average of the GTN's parameters (generator, curriculum, lr/momentum
    #: schedule) with this decay, updated after every meta-update; the exported teaching set and
    #: the validation monitor use the average (``MetaTrainer.teaching_set(averaged=False)`` gives the
    #: raw one). It does not change meta-training itself. None: no average.
    ema_decay: float | None = Field(default=None, gt=0.0, lt=1.0)
    betas: Annotated[tuple[float, float], Field(strict=False)] = (0.9, 0.999)
    final_lr_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    grad_clip: float | None = Field(default=None, gt=0.0)
    intermediate_every: int = Field(default=1, ge=0, le=4096)
    intermediate_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    gradient_checkpointing: bool = False
    augment: Literal["none", "crop_flip"] = "none"
    monitor_every: int = Field(default=50, ge=0)
    monitor_size: int = Field(default=2000, ge=1)
    checkpoint_every: int = Field(default=100, ge=1)
    max_nonfinite: int = Field(default=10, ge=1)
    seed: int = Field(default=0, ge=0, le=2**62)
    #: where to meta-train (auto: CUDA when available); not stored with the run (see to_mapping)
    device: DeviceSpec = Field(default="auto", exclude=True)
    #: on CUDA: deterministic algorithms and cuDNN kernels (bit-identical reruns/resumes, slower)
    deterministic: bool = Field(default=False, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> GTNConfig:
        if self.meta_batch < 2:
            raise ValueError("meta_batch must be >= 2 (learners normalise with batch statistics)")
        for b in self.betas:
            if not 0.0 <= b < 1.0:
                raise ValueError(f"betas must be in [0, 1), got {self.betas}")
        return self

    def to_mapping(self) -> dict[str, Any]:
        """Plain data for YAML and checkpoints, without ``device``/``deterministic`` (a run resumes anywhere)."""
        data = self.model_dump(mode="json")
        for key, default in LATER_FIELDS.items():  # added later: left out at their default, so that
            if data.get(key) == default:           # earlier runs' stored configs stay the same
                del data[key]
        return data


#: GTNConfig fields added after the first release, left out of :meth:`GTNConfig.to_mapping` at their default.
LATER_FIELDS: dict[str, Any] = {"learners_per_iteration": 1, "ema_decay": None}


def preset_names() -> list[str]:
    """Names of the YAML presets shipped with gtn-search."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files(PRESET_PACKAGE).iterdir()
                  if p.name.endswith(".yaml"))


def load_config(source: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> GTNConfig:
    """A config from a preset name or a YAML file, with optional top-level overrides."""
    if source is None:
        data: dict[str, Any] = {}
        where = "config"
    elif Path(source).suffix in (".yaml", ".yml") or Path(source).exists():
        where = str(source)
        raw = require_mapping(load_yaml(source), where)
        data = dict(raw.get("gtn", raw)) if isinstance(raw.get("gtn", raw), dict) else dict(raw)
    else:
        name = str(source)
        if name not in preset_names():
            raise unknown_name("GTN preset", name, preset_names(), "--preset")
        where = f"preset {name}"
        text = resources.files(PRESET_PACKAGE).joinpath(f"{name}.yaml").read_text()
        from gtn_search.configio import parse_yaml_text

        data = dict(require_mapping(parse_yaml_text(text, where), where))
    for key, value in (overrides or {}).items():
        data[key] = value
    return parse_model(GTNConfig, data, where)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is parsed as YAML (``lr=0.01``, ``betas=[0.9,0.9]``)."""
    from gtn_search.configio import parse_yaml_text

    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set meta_iterations=200")
    key, value = text.split("=", 1)
    return key.strip(), parse_yaml_text(value, f"--set {key}")
