"""Seeds and Generators: every random thing in cnnlab.data takes either."""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_generator as _as_generator


def as_generator(seed, where: str = "data") -> np.random.Generator:
    """A Generator from None (fresh entropy), an int seed, a SeedSequence or a Generator (kept)."""
    return _as_generator(seed, where)


def as_seed(seed) -> int:
    """An int seed: the int itself, one drawn from a Generator, or fresh entropy for None."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int; received {seed}")
        return int(seed)
    return int(as_generator(seed).integers(2**63))
