"""2-D convolution (cross-correlation, as every deep-learning framework computes it).

Legend: N batch, H/W input height/width, C_in input channels, C_out output channels,
KH/KW kernel, OH/OW output, G groups, Cg = C_in / G, Og = C_out / G, M = N*OH*OW rows,
K = KH*KW*Cg taps per output value.

Forward, per example n, output position (i, j) and filter o (the notes' Z = W * A_prev + b):

    Z[n, i, j, o] = b[o] + sum_{u, v, c} A_pad[n, i*s + u*d, j*s + v*d, g*Cg + c] * W[u, v, c, o]

where g = o // Og is the group of filter o. As matrices: the windows of the padded input are
the rows of the window matrix ``cols`` (M, K) (im2col), row (n, i, j) holding window (i, j)
of image n with its taps in W's order (u, v, c), and one product gives every output:

    Z = cols @ W.reshape(K, C_out) + b            (per group: cols_g @ W_g)

Backward, with gy = dZ (N, OH, OW, C_out):

    db      = sum_{n, i, j} dZ[n, i, j, :]
    dW      = cols^T @ dZ                         (K, C_out): each weight sees every window
    dA_prev = col2im(dZ @ W^T)                    each window's row of dZ W^T is added back
                                                  onto the pixels that window covered

The nested-loop reference (cnnlab.reference.conv) computes the same sums one number at a time.

Computing them: :func:`cnnlab.kernels.select` chooses, per call and by a rule on the geometry,
one algorithm that computes exactly these formulas: the window matrix itself (walked over the
batch in chunks that stay in cache), banded rows (few channels), Winograd F(4x4, 3x3) (3x3,
stride 1), each apart in cnnlab/kernels with its own derivation; ``cnnlab.kernels.use(...)``
forces one. What the kernel keeps for backward is its ``keeps`` (at most A_prev, which the
graph holds anyway, the weights and their transform).
"""

from __future__ import annotations

import numbers

from cnnlab import kernels
from cnnlab.ops._util import as_tensor, check_float, check_ndim, check_same_dtype
from cnnlab.ops.geometry import output_size, pair, resolve_padding
from cnnlab.tensor import Function, Tensor

__all__ = ["conv2d"]


class Conv2d(Function):
    """Z = conv(A_prev, W) + b, channels-last; the formulas are in the module docstring."""

    def __init__(self, stride, pads, dilation, groups):
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups

    def geometry(self, x_shape: tuple, w_shape: tuple, dtype) -> kernels.Geometry:
        """This convolution's geometry on an input of ``x_shape`` (N, H, W, C_in) with weights
        of ``w_shape`` (KH, KW, Cg, C_out): what the kernels' dispatch chooses by
        (:func:`cnnlab.kernels.select`, and :func:`cnnlab.kernels.prepare` for inference)."""
        return kernels.Geometry(x_shape, w_shape, self.stride, self.pads, self.dilation,
                                self.groups, dtype)

    def forward(self, x, w, b=None):
        """Z = cols @ W + b, (N, OH, OW, C_out), by the kernel the dispatch selects."""
        geom = self.geometry(x.shape, w.shape, x.dtype)
        self.kernel = kernels.select(geom, x)  # keeps what its `keeps` says, for backward
        return self.kernel.forward(x, w, b, need_w=self.needs_grad[1])

    def backward(self, gy):
        """(dA_prev, dW, db) = (col2im(dZ W^T), cols^T dZ, sum dZ), each only if needed."""
        need_b = len(self.needs_grad) > 2 and self.needs_grad[2]
        return self.kernel.backward(gy, self.needs_grad[0], self.needs_grad[1], need_b)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution of channels-last images with HWIO filters.

    Args:
        x: input A_prev, (N, H, W, C_in), float32 or float64.
        w: filters, (KH, KW, C_in // groups, C_out).
        b: bias (C_out,) or None.
        stride: s, an int or (sh, sw), >= 1.
        padding: 'valid', 'same' (output ceil(H / s); extra row/column at the bottom/right when
            the total is odd), 'full' (d(K-1) each side), an int or (ph, pw).
        dilation: d, an int or (dh, dw), >= 1 (1 means none).
        groups: G; C_in and C_out must be divisible by G (G = C_in is depthwise).

    Returns:
        Z, (N, OH, OW, C_out).

    Shape:
        OH = floor((H + p_top + p_bottom - d(KH - 1) - 1) / s) + 1, likewise OW.

    Gradients (gy = dZ):
        db = sum over N, OH, OW of dZ;  dW = cols^T dZ;  dA_prev = col2im(dZ W^T), which for
        stride 1 is also conv(dZ padded by d(K-1) - p, W flipped in space, transposed).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> x = cl.tensor(np.zeros((1, 6, 6, 3)))
    >>> F.conv2d(x, cl.tensor(np.zeros((3, 3, 3, 2)))).shape
    (1, 4, 4, 2)
    """
    x, w = as_tensor(x), as_tensor(w)
    b = None if b is None else as_tensor(b)
    check_float("conv2d", "x", x)
    check_float("conv2d", "w", w)
    check_ndim("conv2d", "x", x, 4, "(N, H, W, C_in)")
    check_ndim("conv2d", "w", w, 4, "(KH, KW, C_in // groups, C_out)")
    check_same_dtype("conv2d", x=x, w=w, b=b)
    stride = pair(stride, "stride", "conv2d")
    dilation = pair(dilation, "dilation", "conv2d")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int; received groups={groups!r}")
    groups = int(groups)
    n, h, wd, c_in = x.shape
    kh, kw, cg, c_out = w.shape
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"conv2d: groups={groups} must divide both C_in={c_in} and C_out={c_out}; "
            f"received x.shape={x.shape}, w.shape={w.shape}"
        )
    if cg * groups != c_in:
        raise ValueError(
            f"conv2d: x has {c_in} channels but w expects {cg * groups} "
            f"(w is (KH, KW, C_in // groups, C_out) = {w.shape}, groups={groups}); "
            f"received x.shape={x.shape}"
        )
    if b is not None and b.shape != (c_out,):
        raise ValueError(
            f"conv2d: b must have shape ({c_out},) to match w.shape={w.shape}; "
            f"received b.shape={b.shape}"
        )
    pads = resolve_padding(padding, (h, wd), (kh, kw), stride, dilation, "conv2d")
    oh = output_size(h, kh, stride[0], pads[0], dilation[0])
    ow = output_size(wd, kw, stride[1], pads[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"conv2d: the kernel ({kh}x{kw}, dilation {dilation}) spans "
            f"{dilation[0] * (kh - 1) + 1}x{dilation[1] * (kw - 1) + 1} pixels, larger than the "
            f"padded input {h + sum(pads[0])}x{wd + sum(pads[1])}; received x.shape={x.shape}, "
            f"w.shape={w.shape}, padding={padding!r}"
        )
    op = Conv2d(stride, pads, dilation, groups)
    return op.apply(x, w) if b is None else op.apply(x, w, b)
