"""Derived seeds: every random choice in gtn-search comes from a root seed and a path of keys.

``derive_seed(7, "trial", 12)`` is the same integer in every process, run and machine, so a trial,
a meta-iteration or a learner can be re-created from its coordinates alone; nothing depends on how
many draws happened before it (which is what makes resume and parallel runs reproducible).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def derive_seed(root: int, *keys: object) -> int:
    """A 63-bit seed from a root seed and any keys (ints, strings)."""
    text = "/".join([str(int(root))] + [str(k) for k in keys])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") & ((1 << 63) - 1)


def numpy_rng(root: int, *keys: object) -> np.random.Generator:
    """A numpy Generator seeded by :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(root, *keys))


def torch_rng(root: int, *keys: object):  # type: ignore[no-untyped-def]
    """A CPU ``torch.Generator`` seeded by :func:`derive_seed`."""
    import torch

    return torch.Generator().manual_seed(derive_seed(root, *keys))


@contextmanager
def torch_seed(seed: int) -> Iterator[None]:
    """Run a block (e.g. module construction) under a fixed global torch seed, then restore it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
