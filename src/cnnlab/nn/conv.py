"""Conv2D: the convolution layer (weights HWIO, channels-last input).

Legend: N batch, H/W input height/width, C_in/C_out channels, KH/KW kernel, OH/OW output,
g groups.
"""

from __future__ import annotations

import numpy as np

from cnnlab import functional as F
from cnnlab.nn import init as _init
from cnnlab.nn._util import (
    as_rng,
    check_input,
    check_padding,
    float_dtype,
    fmt_pair,
    positive_int,
    positive_pair,
)
from cnnlab.nn.module import Module
from cnnlab.nn.parameter import Parameter

__all__ = ["Conv2D"]


class Conv2D(Module):
    """2-D convolution (cross-correlation, as in every framework) over (N, H, W, C_in) images.

    Z[n, i, j, o] = b[o] + sum_{u, v, c} X_pad[n, i*s + u*d, j*s + v*d, c] W[u, v, c, o]
    (within a group: input channels c of the group of o). The math and its gradients
    (dX, dW, db) are in :func:`cnnlab.functional.conv2d`.

    Args:
        in_channels, out_channels: C_in and C_out; both divisible by ``groups``.
        kernel_size: KH = KW, or a pair (KH, KW).
        stride, dilation: an int or a pair, >= 1.
        padding: 'valid', 'same', 'full', an int or a pair (see DESIGN.md).
        groups: split the channels into this many independent convolutions (C_in = groups
            gives a depthwise convolution).
        bias: add a learned bias per output channel (not L2-regularized).
        init: weight initializer: a name from :mod:`cnnlab.nn.init` (default ``'he_normal'``,
            N(0, 2 / (KH*KW*C_in/g)), suited to ReLU nets), a number, or a function
            ``(shape, rng) -> ndarray``. The bias starts at zero.
        seed: int, numpy Generator or None, for the initial weights.
        dtype: float32 (default) or float64.

    Attributes:
        weight: Parameter (KH, KW, C_in // groups, C_out).
        bias: Parameter (C_out,) or None.

    Shape:
        (N, H, W, C_in) -> (N, OH, OW, C_out), OH = floor((H + p_top + p_bottom - d(KH-1) - 1)
        / s) + 1, and likewise OW.

    >>> import numpy as np, cnnlab as cl
    >>> conv = Conv2D(3, 8, 3, padding="same", seed=0)
    >>> conv(cl.tensor(np.zeros((2, 32, 32, 3), np.float32))).shape
    (2, 32, 32, 8)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, init="he_normal", seed=None, dtype=np.float32):
        super().__init__()
        name = "Conv2D"
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = positive_pair(kernel_size, "kernel_size", name)
        self.stride = positive_pair(stride, "stride", name)
        self.padding = check_padding(padding, name)
        self.dilation = positive_pair(dilation, "dilation", name)
        self.groups = positive_int(groups, "groups", name)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{name}: groups must divide both in_channels and out_channels; received "
                f"in_channels={in_channels}, out_channels={out_channels}, groups={groups}"
            )
        dtype = float_dtype(dtype, name)
        rng = as_rng(seed, name)
        shape = (*self.kernel_size, self.in_channels // self.groups, self.out_channels)
        fan_in, fan_out = _init.fans(shape)
        w = _init.call(init, shape, rng, fan_in, fan_out, dtype, name)
        self.weight = Parameter(w, regularize=True)
        self.bias = (
            Parameter(np.zeros(self.out_channels, dtype), regularize=False) if bias else None
        )

    def forward(self, x):
        check_input(x, "Conv2D", 4, "(N, H, W, C)", self.in_channels)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)

    def _macs(self, in_shape, out_shape):
        # one multiplication per (output position, output channel, kernel tap, input channel
        # of the group): OH * OW * C_out * KH * KW * C_in / g
        kh, kw = self.kernel_size
        per_output = kh * kw * (self.in_channels // self.groups)
        return int(np.prod(out_shape[1:])) * per_output

    def _window(self, in_shape):
        span = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        return span, self.stride

    def extra_repr(self):
        parts = [f"{self.in_channels}, {self.out_channels}",
                 f"kernel_size={fmt_pair(self.kernel_size)}"]
        if self.stride != (1, 1):
            parts.append(f"stride={fmt_pair(self.stride)}")
        if self.padding != 0:
            parts.append(f"padding={self.padding!r}")
        if self.dilation != (1, 1):
            parts.append(f"dilation={fmt_pair(self.dilation)}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.weight.dtype != np.float32:
            parts.append(f"dtype={self.weight.dtype}")
        return ", ".join(parts)
