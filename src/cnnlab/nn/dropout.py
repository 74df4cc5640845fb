"""Dropout: inverted dropout while training, the identity in eval mode."""

from __future__ import annotations

import numbers

from cnnlab import functional as F
from cnnlab.nn._util import as_rng
from cnnlab.nn.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout: in training, A = D * X / keep_prob with D ~ Bernoulli(keep_prob) drawn
    per entry, keep_prob = 1 - rate; in eval mode A = X. dX = D * dA / keep_prob.

    The layer keeps its own ``numpy.random.Generator`` (``self.rng``, from ``seed``), so two
    models built with the same seed drop the same units; checkpoints can save
    ``rng.bit_generator.state`` (see :meth:`Module.named_rngs`).

    Args:
        rate: the fraction of units dropped, 0 <= rate < 1.
        seed: int, numpy Generator (shared, advanced by each draw) or None.

    Shape: unchanged.

    >>> import numpy as np, cnnlab as cl
    >>> Dropout(0.5, seed=0)(cl.tensor(np.ones((4, 10), np.float32))).shape
    (4, 10)
    """

    def __init__(self, rate, seed=None):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1); received rate={rate!r}")
        self.rate = float(rate)
        self.rng = as_rng(seed, "Dropout")

    def forward(self, x):
        return F.dropout(x, self.rate, training=self.training, rng=self.rng)

    def extra_repr(self):
        return f"rate={self.rate!r}"
