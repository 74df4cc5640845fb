"""Shape layers: Flatten and ZeroPad2D (no parameters)."""

from __future__ import annotations

import numbers

import cnnlab
from cnnlab import functional as F
from cnnlab.nn._util import check_input
from cnnlab.nn.module import Module

__all__ = ["Flatten", "ZeroPad2D"]


class Flatten(Module):
    """Merge every axis from ``start_axis`` on: (N, H, W, C) -> (N, H*W*C).

    The order is channels-last (row-major over H, W, C), so weights trained here line up with
    Keras's Flatten, not with PyTorch's NCHW flatten. dX is dA reshaped back.

    >>> import numpy as np, cnnlab as cl
    >>> Flatten()(cl.tensor(np.zeros((2, 5, 5, 16), np.float32))).shape
    (2, 400)
    """

    def __init__(self, start_axis=1):
        super().__init__()
        if isinstance(start_axis, bool) or not isinstance(start_axis, numbers.Integral):
            raise TypeError(f"Flatten: start_axis must be an int; received {start_axis!r}")
        self.start_axis = int(start_axis)

    def forward(self, x):
        return F.flatten(x, self.start_axis)

    def extra_repr(self):
        return "" if self.start_axis == 1 else f"start_axis={self.start_axis}"


def _pads(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    def ok(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0

    if ok(padding):
        p = int(padding)
        return (p, p), (p, p)
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(ok(v) for v in padding):
            return (int(padding[0]),) * 2, (int(padding[1]),) * 2
        if all(isinstance(v, (tuple, list)) and len(v) == 2 and all(ok(u) for u in v)
               for v in padding):
            (t, b), (left, r) = padding
            return (int(t), int(b)), (int(left), int(r))
    raise ValueError(
        "ZeroPad2D: padding must be an int, a pair (ph, pw) or ((top, bottom), (left, right)) "
        f"of non-negative ints; received {padding!r}"
    )


class ZeroPad2D(Module):
    """Add rows and columns of zeros around each feature map (H and W only).

    ``padding``: p (all four sides), (ph, pw) (top and bottom ph, left and right pw), or
    ((top, bottom), (left, right)). dX is the interior of dA.

    Shape:
        (N, H, W, C) -> (N, H + top + bottom, W + left + right, C).

    >>> import numpy as np, cnnlab as cl
    >>> ZeroPad2D(((0, 1), (0, 1)))(cl.tensor(np.zeros((1, 5, 5, 3), np.float32))).shape
    (1, 6, 6, 3)
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = _pads(padding)

    def forward(self, x):
        check_input(x, "ZeroPad2D", 4, "(N, H, W, C)")
        return cnnlab.pad(x, ((0, 0), *self.padding, (0, 0)))

    def extra_repr(self):
        (t, b), (left, r) = self.padding
        if t == b == left == r:
            return f"padding={t}"
        if t == b and left == r:
            return f"padding=({t}, {left})"
        return f"padding={self.padding!r}"
