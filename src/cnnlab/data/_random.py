"""Seeds and Generators: every random thing in cnnlab.data takes either."""

from __future__ import annotations

import numpy as np


def as_generator(seed) -> np.random.Generator:
    """A Generator from None (fresh entropy), an int seed, a SeedSequence or a Generator (kept)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be None, an int or a numpy.random.Generator; received {type(seed).__name__}"
    )


def as_seed(seed) -> int:
    """An int seed: the int itself, one drawn from a Generator, or fresh entropy for None."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int; received {seed}")
        return int(seed)
    return int(as_generator(seed).integers(2**63))
