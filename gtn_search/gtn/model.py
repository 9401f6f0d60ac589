"""The GTN as one module: generator, curriculum and learned inner optimiser together.

``GTN.teaching_batches(rng)`` produces the whole inner-loop curriculum in one generator pass:
images [T, B, C, H, W] and learner targets; ``schedule()`` gives the per-step lr and momentum.
"""

from __future__ import annotations

import torch
from torch import nn

from gtn_search.gtn.config import GTNConfig
from gtn_search.gtn.curriculum import Curriculum
from gtn_search.gtn.generator import Generator
from gtn_search.gtn.inner_optimizer import LearnedSGD


class GTN(nn.Module):
    """Everything meta-learned: generator, curriculum (noise, soft labels), lr/momentum schedule."""

    def __init__(self, config: GTNConfig, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.steps, self.batch = config.inner_steps, config.inner_batch
        self.generator = Generator(self.image_shape, num_classes, config.generator)  # type: ignore[arg-type]
        self.curriculum = Curriculum(
            config.curriculum, config.inner_steps, config.inner_batch, config.generator.noise_dim, num_classes,
            soft_labels=config.soft_labels, init_seed=config.seed,
        )
        self.optimizer = LearnedSGD(
            config.inner_steps, config.inner_lr, config.inner_momentum, learnable=config.learn_inner_optimizer
        )

    def teaching_batches(self, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images [T, B, C, H, W], targets [T, B] or [T, B, K])`` for one learner."""
        noise, labels, targets = self.curriculum.sample(rng)
        t, b = self.steps, self.batch
        images = self.generator(noise.reshape(t * b, -1), labels.reshape(-1))
        return images.view(t, b, *self.image_shape), targets

    def schedule(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr [T], momentum [T])``."""
        return self.optimizer.schedule()
