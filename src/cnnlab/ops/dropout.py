"""Inverted dropout: zero a random fraction ``rate`` of the units while training.

The course notes' recipe, with keep_prob = 1 - rate:

    D = (U < keep_prob)          U uniform on [0, 1), one draw per unit
    A = A * D / keep_prob        dividing by keep_prob keeps the expected value of A unchanged

and at test time nothing at all (no scaling is needed, which is the point of "inverted").
Backward uses the same mask: dA = dA * D / keep_prob.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnlab._validate import as_generator
from cnnlab.ops._util import as_tensor, check_float
from cnnlab.tensor import Function, Tensor

__all__ = ["dropout"]


def _check_rng(rng) -> None:
    """TypeError/ValueError unless ``rng`` is None, an int seed >= 0 or a Generator."""
    if not isinstance(rng, np.random.Generator):
        as_generator(rng, "dropout", "rng")  # checks only: the Generator is made when needed


def _generator(rng) -> np.random.Generator:
    """None: fresh OS entropy; an int: a new Generator seeded with it; a Generator: itself."""
    return as_generator(rng, "dropout", "rng")


class Dropout(Function):
    """y = x * D / keep_prob.   gx = gy * D / keep_prob   (D: the 0/1 mask of kept units).

    ``forward`` draws the mask and keeps it scaled, m = D / keep_prob, in x's dtype; forward
    and backward are then both a product with m.
    """

    def __init__(self, keep_prob: float, rng: np.random.Generator):
        self.keep_prob = keep_prob
        self.rng = rng

    def forward(self, x):
        # U in float64 whatever x's dtype, so the same seed gives the same mask for float32 and
        # float64 inputs; only the boolean D survives, then it is cast to x's dtype
        keep = self.rng.random(x.shape) < self.keep_prob  # D: (*), bool
        m = keep.astype(x.dtype)
        m /= x.dtype.type(self.keep_prob)  # D / keep_prob in x's dtype: no float64 upcast
        self.m = m  # cache
        return x * m

    def backward(self, gy):
        return (gy * self.m,)


def dropout(x, rate: float, training: bool = True, rng=None) -> Tensor:
    """Inverted dropout: while training, drop each unit with probability ``rate``.

    Forward (training):  D = (U < keep_prob), y = x * D / keep_prob, with keep_prob = 1 - rate
    and U uniform on [0, 1) drawn independently for every element, so E[y] = x.
    Forward (evaluation, or rate == 0):  y = x; the input tensor itself is returned.
    Gradient:  gx = gy * D / keep_prob   (dA = dA * D / keep_prob, the same mask D).

    Args:
        x: a floating-point tensor.
        rate: the probability of dropping a unit, 0 <= rate < 1 (rate = 1 - keep_prob).
        training: apply dropout (True) or return x unchanged (False).
        rng: None (a fresh random mask each call), an int seed (the same seed gives the same
            mask, for any dtype of x) or a ``numpy.random.Generator`` (draws from it, advancing
            its state, so successive calls get different masks).

    Shape:
        x: any shape (*).  y, gx: the same shape as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.dropout(cl.tensor(np.ones((8, 16))), rate=0.5, rng=0).shape
    (8, 16)
    """
    x = as_tensor(x)
    check_float("dropout", "x", x)
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise TypeError(
            f"dropout: rate must be a real number in [0, 1); received {type(rate).__name__} "
            f"{rate!r}"
        )
    rate = float(rate)  # a Python float: a NumPy float64 scalar would upcast float32 below
    if not 0.0 <= rate < 1.0:  # NaN fails this too
        raise ValueError(
            "dropout: rate must satisfy 0 <= rate < 1 (the probability of dropping a unit); "
            f"received rate={rate!r}"
        )
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(
            f"dropout: training must be True or False; received {type(training).__name__} "
            f"{training!r}"
        )
    _check_rng(rng)  # checked even when unused, so a bad rng fails in evaluation mode too
    if not training or rate == 0.0:
        return x
    return Dropout(1.0 - rate, _generator(rng)).apply(x)
