"""Dense: the fully connected layer, y = x W + b with W stored (in_features, out_features)."""

from __future__ import annotations

import numpy as np

from cnnlab import functional as F
from cnnlab.nn import init as _init
from cnnlab.nn._util import as_rng, check_input, float_dtype, positive_int
from cnnlab.nn.module import Module
from cnnlab.nn.parameter import Parameter

__all__ = ["Dense"]


class Dense(Module):
    """Fully connected layer: Z = X W + b.

    Gradients (in :func:`cnnlab.functional.linear`): dX = dZ W^T, dW = X^T dZ,
    db = sum over the batch of dZ.

    Args:
        in_features, out_features: sizes of X's and Z's last axis.
        bias: add a learned bias (not L2-regularized).
        init: weight initializer (default ``'he_normal'``: N(0, 2 / in_features)); a name
            from :mod:`cnnlab.nn.init`, a number or a function ``(shape, rng) -> ndarray``.
            The bias starts at zero.
        seed: int, numpy Generator or None, for the initial weights.
        dtype: float32 (default) or float64.

    Attributes:
        weight: Parameter (in_features, out_features).  bias: Parameter (out_features,) or None.

    Shape:
        (N, in_features) -> (N, out_features).

    >>> import numpy as np, cnnlab as cl
    >>> Dense(400, 120, seed=0)(cl.tensor(np.zeros((8, 400), np.float32))).shape
    (8, 120)
    """

    def __init__(self, in_features, out_features, bias=True, init="he_normal", seed=None,
                 dtype=np.float32):
        super().__init__()
        name = "Dense"
        self.in_features = positive_int(in_features, "in_features", name)
        self.out_features = positive_int(out_features, "out_features", name)
        dtype = float_dtype(dtype, name)
        shape = (self.in_features, self.out_features)
        w = _init.call(init, shape, as_rng(seed, name), shape[0], shape[1], dtype, name)
        self.weight = Parameter(w, regularize=True)
        self.bias = (
            Parameter(np.zeros(self.out_features, dtype), regularize=False) if bias else None
        )

    def forward(self, x):
        if len(x.shape) != 2:
            raise ValueError(
                f"Dense: expected a 2-D input (N, {self.in_features}); received shape "
                f"{tuple(x.shape)} (put a Flatten() or GlobalAvgPool2D() before it)"
            )
        check_input(x, "Dense", 2, "(N, features)", self.in_features)
        return F.linear(x, self.weight, self.bias)

    def _macs(self, in_shape, out_shape):
        return self.in_features * self.out_features

    def extra_repr(self):
        parts = [f"{self.in_features}, {self.out_features}"]
        if self.bias is None:
            parts.append("bias=False")
        if self.weight.dtype != np.float32:
            parts.append(f"dtype={self.weight.dtype}")
        return ", ".join(parts)
