"""Pooling layers: MaxPool2D, AvgPool2D, LPPool2D, GlobalAvgPool2D (no parameters).

Legend: N batch, H/W input height/width, C channels, KH/KW window, OH/OW output.
Each window covers one channel: pooling never mixes channels, so C is unchanged.
"""

from __future__ import annotations

import math
import numbers

from cnnlab import functional as F
from cnnlab.nn._util import check_input, fmt_pair, positive_pair
from cnnlab.nn.module import Module
from cnnlab.ops.pool import check_pool_padding

__all__ = ["MaxPool2D", "AvgPool2D", "LPPool2D", "GlobalAvgPool2D"]


class _Pool2D(Module):
    _name = "Pool2D"

    def __init__(self, size, stride=None, padding=0):
        super().__init__()
        self.size = positive_pair(size, "size", self._name)
        self.stride = self.size if stride is None else positive_pair(stride, "stride", self._name)
        self.padding = check_pool_padding(padding, self.size, self._name, size)

    def _window(self, in_shape):
        return self.size, self.stride

    def extra_repr(self):
        parts = [f"size={fmt_pair(self.size)}"]
        if self.stride != self.size:
            parts.append(f"stride={fmt_pair(self.stride)}")
        if self.padding != 0:
            parts.append(f"padding={self.padding!r}")
        return ", ".join(parts)


class MaxPool2D(_Pool2D):
    """Max pooling: A[n, i, j, c] = max over the window at (i*s, j*s) of X[n, ., ., c].

    The gradient goes to the position of each window's maximum
    (:func:`cnnlab.functional.max_pool2d`). ``stride`` defaults to ``size``.

    Shape:
        (N, H, W, C) -> (N, OH, OW, C), OH = floor((H + p_top + p_bottom - KH) / s) + 1.

    >>> import numpy as np, cnnlab as cl
    >>> MaxPool2D(2)(cl.tensor(np.zeros((1, 28, 28, 6), np.float32))).shape
    (1, 14, 14, 6)
    """

    _name = "MaxPool2D"

    def forward(self, x):
        check_input(x, self._name, 4, "(N, H, W, C)")
        return F.max_pool2d(x, self.size, stride=self.stride, padding=self.padding)


class AvgPool2D(_Pool2D):
    """Average pooling: A[n, i, j, c] = mean over the window of X[n, ., ., c].

    Padded cells are not counted in the mean. dX spreads each dA equally over its window
    (:func:`cnnlab.functional.avg_pool2d`). ``stride`` defaults to ``size``.

    Shape:
        (N, H, W, C) -> (N, OH, OW, C), OH = floor((H + p_top + p_bottom - KH) / s) + 1.

    >>> import numpy as np, cnnlab as cl
    >>> AvgPool2D(2)(cl.tensor(np.zeros((1, 28, 28, 6), np.float32))).shape
    (1, 14, 14, 6)
    """

    _name = "AvgPool2D"

    def forward(self, x):
        check_input(x, self._name, 4, "(N, H, W, C)")
        return F.avg_pool2d(x, self.size, stride=self.stride, padding=self.padding)


class LPPool2D(_Pool2D):
    """Power-average (Lp) pooling: A = (sum over the window of X^p)^(1/p), p >= 1.

    p = 1 sums the window, p = 2 is the L2 pooling of the notes; large p approaches max
    pooling. As in PyTorch, X is not made absolute: for p other than an even integer feed
    non-negative inputs (after a ReLU). See :func:`cnnlab.functional.lp_pool2d` for the
    gradient. ``stride`` defaults to ``size``; no padding.

    Shape:
        (N, H, W, C) -> (N, OH, OW, C), OH = floor((H - KH) / s) + 1 (no padding).

    >>> import numpy as np, cnnlab as cl
    >>> LPPool2D(2, 3, stride=1)(cl.tensor(np.ones((1, 5, 5, 2), np.float32))).shape
    (1, 3, 3, 2)
    """

    _name = "LPPool2D"

    def __init__(self, p, size, stride=None):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not (
            math.isfinite(p) and p >= 1
        ):
            raise ValueError(f"LPPool2D: p must be a finite number >= 1; received p={p!r}")
        super().__init__(size, stride, 0)
        self.p = p

    def forward(self, x):
        check_input(x, self._name, 4, "(N, H, W, C)")
        return F.lp_pool2d(x, self.p, self.size, stride=self.stride)

    def extra_repr(self):
        return f"p={self.p!r}, " + super().extra_repr()


class GlobalAvgPool2D(Module):
    """Mean over the whole feature map: A[n, c] = mean_{i, j} X[n, i, j, c].

    dX[n, i, j, c] = dA[n, c] / (H W). Replaces Flatten + Dense heads in ResNet/GoogLeNet.

    Shape:
        (N, H, W, C) -> (N, C).

    >>> import numpy as np, cnnlab as cl
    >>> GlobalAvgPool2D()(cl.tensor(np.zeros((2, 7, 7, 512), np.float32))).shape
    (2, 512)
    """

    def forward(self, x):
        check_input(x, "GlobalAvgPool2D", 4, "(N, H, W, C)")
        return F.global_avg_pool2d(x)

    def _window(self, in_shape):
        return (in_shape[1], in_shape[2]), (in_shape[1], in_shape[2])
