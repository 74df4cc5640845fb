"""Layers for ONNX operators that cnnlab's nn has no layer for (private).

Legend: N batch, H/W height/width, C channels, KH/KW window, OH/OW output, all channels-last.
Each composes public :mod:`cnnlab.functional` ops, so its gradient follows from theirs, except
:class:`ClipFunction`, a primitive written as forward and backward.
"""

from __future__ import annotations

import numpy as np

import cnnlab
from cnnlab import functional as F
from cnnlab.nn.module import Module
from cnnlab.tensor import Function, Tensor, as_tensor

__all__ = ["ClipFunction", "Clip", "LogSoftmax", "ConstBinary", "LRN", "Pool2D"]


class ClipFunction(Function):
    """y = min(max(x, lo), hi);  gx = gy where lo <= x <= hi, else 0.

    Either bound may be None (no bound). As in ONNX, lo > hi gives hi everywhere.
    """

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        y = x if self.lo is None else np.maximum(x, x.dtype.type(self.lo))
        y = y if self.hi is None else np.minimum(y, x.dtype.type(self.hi))
        self.inside = y == x  # (same shape as x): where the gradient passes
        return y if y is not x else x.copy()

    def backward(self, gy):
        return (gy * self.inside,)


class Clip(Module):
    """ONNX Clip: y = min(max(x, min), max) (ReLU6 is Clip(0, 6))."""

    def __init__(self, lo=None, hi=None):
        super().__init__()
        self.lo = None if lo is None else float(lo)
        self.hi = None if hi is None else float(hi)

    def forward(self, x):
        return ClipFunction(self.lo, self.hi).apply(as_tensor(x))

    def extra_repr(self):
        return f"min={self.lo}, max={self.hi}"


class LogSoftmax(Module):
    """log_softmax along ``axis``: Z_k - log sum_j exp(Z_j)."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x):
        return F.log_softmax(x, axis=self.axis)

    def extra_repr(self):
        return f"axis={self.axis}"


class ConstBinary(Module):
    """x (op) c or c (op) x with a constant c (a buffer, broadcast as NumPy does).

    Add/Sub/Mul with a constant: the gradient reaches x only.
    """

    _ops = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b,
            "Mul": lambda a, b: a * b, "Div": lambda a, b: a / b}

    def __init__(self, op: str, const: np.ndarray, const_first: bool):
        super().__init__()
        self.op = op
        self.const_first = bool(const_first)
        self.register_buffer("const", np.asarray(const))

    def forward(self, x):
        c = Tensor(self.const)
        f = self._ops[self.op]
        return f(c, x) if self.const_first else f(x, c)

    def extra_repr(self):
        side = "c, x" if self.const_first else "x, c"
        return f"{self.op}({side}), c.shape={tuple(self.const.shape)}"


class LRN(Module):
    """Local response normalization across channels (AlexNet):

    y_c = x_c / (bias + alpha / size * sum_{c' in window(c)} x_{c'}^2) ^ beta, the window
    c - floor((size - 1) / 2) .. c + ceil((size - 1) / 2). The windowed sum is one product
    with a band matrix B (C, C), B[c', c] = 1 when c' is in window(c).

    Shape: (N, H, W, C) -> (N, H, W, C).

    >>> import numpy as np, cnnlab as cl
    >>> LRN(5, 1e-4, 0.75, 2.0)(cl.tensor(np.ones((1, 4, 4, 8), np.float32))).shape
    (1, 4, 4, 8)
    """

    def __init__(self, size: int, alpha: float, beta: float, bias: float):
        super().__init__()
        self.size, self.alpha, self.beta, self.bias = int(size), alpha, beta, bias

    def forward(self, x):
        c = x.shape[-1]
        lo, hi = (self.size - 1) // 2, -(-(self.size - 1) // 2)
        idx = np.arange(c)
        band = ((idx[:, None] >= idx[None, :] - lo) & (idx[:, None] <= idx[None, :] + hi))
        sq = x * x  # (N, H, W, C)
        s = F.matmul(F.reshape(sq, (-1, c)), Tensor(band.astype(x.dtype)))  # (N*H*W, C)
        s = F.reshape(s, x.shape) * (self.alpha / self.size) + self.bias
        return x * s ** (-self.beta)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, bias={self.bias}"


def _pads_for(kind, n, k, s, d, explicit, auto_pad, ceil):
    """(before, after, extra, out) along one axis, ONNX's rules (extra: rows for ceil_mode)."""
    span = (k - 1) * d + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-n // s)
        total = max((out - 1) * s + span - n, 0)
        small = total // 2
        before, after = (small, total - small) if auto_pad == "SAME_UPPER" else (
            total - small, small)
    elif auto_pad == "VALID":
        before = after = 0
    else:
        before, after = explicit
    length = n + before + after - span
    if length < 0:
        raise ValueError(
            f"{kind}: the window ({span}) does not fit in the padded input ({n + before + after})"
        )
    out = (-(-length // s) if ceil else length // s) + 1
    if ceil and (out - 1) * s >= n + before:  # the last window may not start in the padding
        out -= 1
    extra = max((out - 1) * s + span - (n + before + after), 0)
    return before, after, extra, out


class Pool2D(Module):
    """ONNX MaxPool / AveragePool / LpPool with any padding: explicit (asymmetric, up to the
    window), SAME_UPPER / SAME_LOWER computed from the input, and ceil_mode.

    The input is padded first (-inf for max, 0 otherwise, plus the rows ceil_mode needs), then
    pooled without padding; an average is then rescaled so that it divides by the cells ONNX
    counts: every cell of the padded input with ``count_include_pad``, else the real ones.
    Lp: y = (sum over the window of |x|^p)^(1/p).

    Shape: (N, H, W, C) -> (N, OH, OW, C), OH = ceil or floor((H + pads - KH) / s) + 1.

    >>> import numpy as np, cnnlab as cl
    >>> pool = Pool2D("MaxPool", (3, 3), (2, 2), ((0, 0), (0, 0)), "NOTSET", ceil_mode=True)
    >>> pool(cl.tensor(np.zeros((1, 112, 112, 4), np.float32))).shape
    (1, 56, 56, 4)
    """

    def __init__(self, kind, size, stride, pads, auto_pad, ceil_mode, count_include_pad=False,
                 p=2):
        super().__init__()
        self.kind, self.size, self.stride = kind, tuple(size), tuple(stride)
        self.pads = tuple(pads)  # ((top, bottom), (left, right))
        self.auto_pad, self.ceil_mode = auto_pad, bool(ceil_mode)
        self.count_include_pad, self.p = bool(count_include_pad), p

    def _window(self, in_shape):
        return self.size, self.stride

    def forward(self, x):
        geo = [_pads_for(self.kind, n, k, s, 1, pad, self.auto_pad, self.ceil_mode)
               for n, k, s, pad in zip(x.shape[1:3], self.size, self.stride, self.pads)]
        widths = ((0, 0), *((b, a + e) for b, a, e, _ in geo), (0, 0))
        padded = any(b or a for b, a in widths)
        if self.kind == "MaxPool":
            xp = cnnlab.pad(x, widths, value=-np.inf) if padded else x
            return F.max_pool2d(xp, self.size, stride=self.stride)
        if self.kind == "LpPool":
            p = self.p
            xa = x if p % 2 == 0 else F.relu(x) + F.relu(-x)  # |x| for odd p
            xp = cnnlab.pad(xa, widths) if padded else xa
            return F.lp_pool2d(xp, p, self.size, stride=self.stride)
        xp = cnnlab.pad(x, widths) if padded else x
        y = F.avg_pool2d(xp, self.size, stride=self.stride)  # divides by KH*KW
        counts = []
        for (b, a, _, out), n, k, s in zip(geo, x.shape[1:3], self.size, self.stride):
            start = np.arange(out) * s  # in padded coordinates
            lo, hi = (0, n + b + a) if self.count_include_pad else (b, b + n)
            counts.append(np.minimum(start + k, hi) - np.maximum(start, lo))
        count = np.multiply.outer(*counts)[:, :, None]  # (OH, OW, 1)
        full = self.size[0] * self.size[1]
        if np.all(count == full):
            return y
        return y * Tensor((full / np.maximum(count, 1)).astype(x.dtype))

    def extra_repr(self):
        return (f"{self.kind}, size={self.size}, stride={self.stride}, pads={self.pads}, "
                f"auto_pad={self.auto_pad!r}, ceil_mode={self.ceil_mode}")
