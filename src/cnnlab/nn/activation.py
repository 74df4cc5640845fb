"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax (no parameters).

Each applies the function of the same name in :mod:`cnnlab.functional` to every entry (softmax:
along one axis); the shape does not change.
"""

from __future__ import annotations

import math
import numbers

from cnnlab import functional as F
from cnnlab.nn.module import Module

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"]


class ReLU(Module):
    """A = max(0, Z);  dZ = dA * [Z > 0].

    >>> import cnnlab as cl
    >>> ReLU()(cl.tensor([[-1.0, 2.0]])).shape
    (1, 2)
    """

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(Module):
    """A = Z if Z > 0 else slope * Z;  dZ = dA * (1 if Z > 0 else slope).

    >>> import cnnlab as cl
    >>> LeakyReLU(0.1)(cl.tensor([[-1.0, 2.0]])).shape
    (1, 2)
    """

    def __init__(self, slope=0.01):
        super().__init__()
        if isinstance(slope, bool) or not isinstance(slope, numbers.Real) or not math.isfinite(
            slope
        ):
            raise ValueError(f"LeakyReLU: slope must be a finite number; received {slope!r}")
        self.slope = float(slope)

    def forward(self, x):
        return F.leaky_relu(x, self.slope)

    def extra_repr(self):
        return "" if self.slope == 0.01 else f"slope={self.slope!r}"


class Sigmoid(Module):
    """A = 1 / (1 + exp(-Z));  dZ = dA * A (1 - A).

    >>> import cnnlab as cl
    >>> Sigmoid()(cl.tensor([[0.0, 1.0]])).shape
    (1, 2)
    """

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """A = tanh(Z);  dZ = dA * (1 - A^2).

    >>> import cnnlab as cl
    >>> Tanh()(cl.tensor([[0.0, 1.0]])).shape
    (1, 2)
    """

    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    """A_k = exp(Z_k) / sum_j exp(Z_j) along ``axis``;  dZ = A * (dA - sum_k dA_k A_k).

    For training use the logits with ``F.cross_entropy`` instead (it fuses log-softmax).

    >>> import cnnlab as cl
    >>> Softmax()(cl.tensor([[0.0, 1.0, 2.0]])).shape
    (1, 3)
    """

    def __init__(self, axis=-1):
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Softmax: axis must be an int; received {axis!r}")
        self.axis = int(axis)

    def forward(self, x):
        return F.softmax(x, axis=self.axis)

    def extra_repr(self):
        return "" if self.axis == -1 else f"axis={self.axis}"
