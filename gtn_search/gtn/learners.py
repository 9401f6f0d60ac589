"""Learners: the freshly initialised networks a GTN teaches.

Two families, both weight-normalised with batch-statistics normalisation (so a learner is a pure
function of its parameters and the inner loop needs no running buffers), LeakyReLU(0.1) and
Kaiming init, as in the reference code:

* ``conv`` - the reference CNN: conv(c1) - maxpool - norm - act - conv(c2) - maxpool - norm - act
  - FC(hidden) - norm - act - FC(K); reference widths (64, 128, 256), CPU preset (16, 32, 64);
  ``random_widths`` draws each width uniformly in [w/2, 2w) per learner;
* ``nas`` - a random architecture from a cell search space expanded by a blueprint (GTN-NAS mode):
  the GTN learns to teach the kind of networks the search will ask about.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gtn_search.configio import StrictModel
from gtn_search.seeding import numpy_rng, torch_seed

LearnerNorm = Literal["mean_only", "batch_stats"]


class ConvLearnerSpec(StrictModel):
    """The reference CNN family (widths configurable, optionally random per learner)."""

    kind: Literal["conv"] = "conv"
    channels: Annotated[tuple[int, int], Field(strict=False)] = (64, 128)
    hidden: int = Field(default=256, ge=1, le=65536)
    random_widths: bool = False
    norm: LearnerNorm = "mean_only"
    weight_norm: bool = True


class NASLearnerSpec(StrictModel):
    """Random architectures from a search space, expanded by a blueprint in learner style."""

    kind: Literal["nas"] = "nas"
    space: str | dict[str, Any] = "gtn-nas"
    blueprint: str | dict[str, Any] = "mnist-search"
    norm: LearnerNorm = "batch_stats"
    weight_norm: bool = True


LearnerSpec = Annotated[ConvLearnerSpec | NASLearnerSpec, Field(discriminator="kind")]


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    from search_spaces.network import MeanOnlyBatchNorm

    if kind == "mean_only":
        return MeanOnlyBatchNorm(channels)
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(channels, track_running_stats=False)


def _init_layer(layer: nn.Module, use_weight_norm: bool) -> nn.Module:
    nn.init.kaiming_normal_(layer.weight, a=0.1, nonlinearity="leaky_relu")
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return weight_norm(layer) if use_weight_norm else layer


def conv_learner(
    spec: ConvLearnerSpec, image_shape: tuple[int, int, int], num_classes: int, widths: tuple[int, int, int]
) -> nn.Sequential:
    """The reference CNN with the given (c1, c2, hidden) widths."""
    c, h, w = image_shape
    c1, c2, hidden = widths
    wn = spec.weight_norm
    flat = c2 * (h // 4) * (w // 4)
    return nn.Sequential(
        _init_layer(nn.Conv2d(c, c1, 3, padding=1, bias=False), wn), nn.MaxPool2d(2),
        _norm(spec.norm, c1, 2), nn.LeakyReLU(0.1),
        _init_layer(nn.Conv2d(c1, c2, 3, padding=1, bias=False), wn), nn.MaxPool2d(2),
        _norm(spec.norm, c2, 2), nn.LeakyReLU(0.1),
        nn.Flatten(),
        _init_layer(nn.Linear(flat, hidden, bias=False), wn), _norm(spec.norm, hidden, 1), nn.LeakyReLU(0.1),
        _init_layer(nn.Linear(hidden, num_classes), wn),
    )


def make_learner(
    spec: ConvLearnerSpec | NASLearnerSpec, image_shape: tuple[int, int, int], num_classes: int, seed: int
) -> tuple[nn.Module, str]:
    """A fresh learner drawn with ``seed`` (widths/architecture and weights); and a description."""
    rng = numpy_rng(seed, "learner")
    if isinstance(spec, ConvLearnerSpec):
        c1, c2 = spec.channels
        widths = (c1, c2, spec.hidden)
        if spec.random_widths:
            widths = tuple(int(rng.integers(max(1, x // 2), 2 * x)) for x in widths)  # type: ignore[assignment]
        with torch_seed(seed):
            module = conv_learner(spec, image_shape, num_classes, widths)  # type: ignore[arg-type]
        return module, f"conv{widths[0]}-{widths[1]}-fc{widths[2]}"
    arch = learner_space(spec).sample(rng)
    return build_nas_learner(spec, arch, image_shape, num_classes, seed), f"nas:{arch.short_hash}"


def learner_space(spec: NASLearnerSpec):  # type: ignore[no-untyped-def]
    """The search space NAS learners are drawn from."""
    from search_spaces.space import CellSearchSpace

    return CellSearchSpace.from_mapping(spec.space, where="learner.space")


def _given_blueprint(spec: NASLearnerSpec):  # type: ignore[no-untyped-def]
    from search_spaces.blueprint import Blueprint, blueprint_preset

    return (blueprint_preset(spec.blueprint, where="learner.blueprint") if isinstance(spec.blueprint, str)
            else Blueprint.from_mapping(spec.blueprint, where="learner.blueprint"))


def check_learner(spec: ConvLearnerSpec | NASLearnerSpec) -> None:
    """Resolve a NAS learner's space and blueprint now (they are built per meta-iteration): mistakes show first."""
    if isinstance(spec, NASLearnerSpec):
        learner_space(spec)
        _given_blueprint(spec)


def learner_blueprint(spec: NASLearnerSpec, image_shape: tuple[int, int, int], num_classes: int):  # type: ignore[no-untyped-def]
    """The blueprint of NAS learners, in learner style, with the dataset's shape and classes."""
    return _given_blueprint(spec).model_copy(update={
        "input_shape": tuple(image_shape), "num_classes": num_classes, "norm": spec.norm,
        "weight_norm": spec.weight_norm, "activation": "leaky_relu", "init": "kaiming",
    })


def build_nas_learner(spec: NASLearnerSpec, arch, image_shape: tuple[int, int, int], num_classes: int, seed: int) -> nn.Module:  # type: ignore[no-untyped-def]
    """A given architecture built as a learner (used to evaluate search candidates)."""
    from search_spaces.network import build

    return build(arch, learner_blueprint(spec, image_shape, num_classes), seed=seed)


__all__ = [
    "ConvLearnerSpec",
    "LearnerSpec",
    "NASLearnerSpec",
    "build_nas_learner",
    "check_learner",
    "conv_learner",
    "make_learner",
]
