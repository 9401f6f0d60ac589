"""The blueprint: how a cell is expanded into a whole network (NASNet macro-architecture).

stem conv (stem_multiplier * C channels) -> ``stages`` stages of ``cells_per_stage`` normal cells,
with a reduction cell between stages (channels times ``channel_multiplier``, resolution halved)
-> global average pool -> linear classifier. The GTN-NAS paper scored candidates with N=3, C=32
on CIFAR-10 and trained the final network on a larger blueprint (e.g. N=6, C=36).

The layer-style fields choose how the same cell is instantiated: the norm layer, the activation,
weight normalisation and initialisation. GTN learners use batch statistics (no running averages,
so the inner loop is a pure function of the parameters), weight normalisation, LeakyReLU(0.1) and
Kaiming init, which the paper found key for stable meta-gradients.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from gtn_search.configio import StrictModel, parse_model

Norm = Literal["batch", "batch_stats", "mean_only", "none"]
Activation = Literal["relu", "leaky_relu"]
Init = Literal["default", "kaiming"]


class Blueprint(StrictModel):
    """Macro-architecture and layer style used to expand an architecture into a network."""

    input_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = Field(default=10, ge=2, le=100_000)
    channels: int = Field(default=16, ge=1, le=4096)
    stages: int = Field(default=3, ge=1, le=8)
    cells_per_stage: int = Field(default=2, ge=1, le=64)
    stem_multiplier: int = Field(default=3, ge=1, le=16)
    channel_multiplier: int = Field(default=2, ge=1, le=8)
    norm: Norm = "batch"
    activation: Activation = "relu"
    weight_norm: bool = False
    init: Init = "default"
    drop_path: float = Field(default=0.0, ge=0.0, lt=1.0)
    auxiliary_weight: float = Field(default=0.0, ge=0.0, le=10.0)

    @field_validator("input_shape", mode="before")
    @classmethod
    def _three_ints(cls, value: Any) -> Any:
        if not (isinstance(value, (list, tuple)) and len(value) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise ValueError("input_shape must be [channels, height, width] integers, e.g. [1, 28, 28]")
        return tuple(value)

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        c, h, w = shape
        if not 1 <= c <= 64:
            raise ValueError(f"input channels must be in [1, 64], got {c}")
        if not (4 <= h <= 1024 and 4 <= w <= 1024):
            raise ValueError(f"input height and width must be in [4, 1024], got {h}x{w}")
        return shape

    @classmethod
    def from_mapping(cls, data: Any, where: str = "blueprint") -> Blueprint:
        """Validate plain data (e.g. a YAML mapping); lists become tuples."""
        return parse_model(cls, data, where)

    def to_mapping(self) -> dict[str, Any]:
        """Plain-data form for YAML."""
        data = self.model_dump()
        data["input_shape"] = list(self.input_shape)
        return data

    def num_cells(self) -> int:
        """Total cells: N normal cells per stage plus one reduction cell between stages."""
        return self.stages * self.cells_per_stage + (self.stages - 1)

    def for_learner(self) -> Blueprint:
        """The GTN learner style of this blueprint: batch statistics, weight norm, LeakyReLU, Kaiming."""
        return self.model_copy(
            update={"norm": "batch_stats", "weight_norm": True, "activation": "leaky_relu", "init": "kaiming"}
        )


#: Named blueprints: small ones for scoring candidates, larger ones for final training.
BLUEPRINT_PRESETS: dict[str, dict[str, Any]] = {
    "mnist-tiny": {"input_shape": (1, 28, 28), "channels": 4, "stages": 2, "cells_per_stage": 1,
                   "stem_multiplier": 2},
    "mnist-search": {"input_shape": (1, 28, 28), "channels": 8, "stages": 3, "cells_per_stage": 1},
    "mnist-final": {"input_shape": (1, 28, 28), "channels": 16, "stages": 3, "cells_per_stage": 2},
    "cifar10-search": {"input_shape": (3, 32, 32), "channels": 32, "stages": 3, "cells_per_stage": 3},
    "cifar10-final": {"input_shape": (3, 32, 32), "channels": 36, "stages": 3, "cells_per_stage": 6,
                      "drop_path": 0.2, "auxiliary_weight": 0.4},
}


def blueprint_preset(name: str, where: str = "blueprint") -> Blueprint:
    """A named blueprint from :data:`BLUEPRINT_PRESETS`."""
    from gtn_search.errors import unknown_name

    if name not in BLUEPRINT_PRESETS:
        raise unknown_name("blueprint preset", name, BLUEPRINT_PRESETS, where)
    return Blueprint(**BLUEPRINT_PRESETS[name])
