"""2-D convolution (cross-correlation, as every deep-learning framework computes it).

Legend: N batch, H/W input height/width, C_in input channels, C_out output channels,
KH/KW kernel, OH/OW output, G groups, Cg = C_in / G, Og = C_out / G, M = N*OH*OW rows,
K = KH*KW*Cg taps per output value.

Forward, per example n, output position (i, j) and filter o (the notes' Z = W * A_prev + b):

    Z[n, i, j, o] = b[o] + sum_{u, v, c} A_pad[n, i*s + u*d, j*s + v*d, g*Cg + c] * W[u, v, c, o]

where g = o // Og is the group of filter o. Vectorised: the windows of the padded input are a
strided view, copied once into a matrix ``cols`` (M, K), and one BLAS product gives Z.

Backward, with gy = dZ:

    db = sum_{n, i, j} dZ[n, i, j, :]
    dW = cols^T @ dZ                      (K, C_out): each weight sees every window it met
    dA_prev = W @ dZ for every window, summed back onto the pixels each window covered.
              Stride 1: one product G = W dZ^T, then KH*KW shifted slab adds on a flat
              layout (col2im without a pixel loop). Stride > 1 or groups: a stride-1
              convolution of dZ (s-1 zeros inserted between rows and columns, padded by
              d(K-1)) with the kernel flipped in space and transposed in channels — windows
              plus one product. Neither loops over pixels or examples.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnlab.ops._util import as_tensor, check_float, check_ndim, check_same_dtype
from cnnlab.ops.geometry import output_size, pad_nhwc, pair, resolve_padding, windows
from cnnlab.tensor import Function, Tensor

__all__ = ["conv2d"]


class Conv2d(Function):
    """Z = conv(A_prev, W) + b, channels-last; see the module docstring for the formulas."""

    def __init__(self, stride, pads, dilation, groups):
        self.stride, self.pads, self.dilation, self.groups = stride, pads, dilation, groups

    # ------------------------------------------------------------------ forward
    def forward(self, x, w, b=None):
        n, h, wd, c_in = x.shape
        kh, kw, cg, c_out = w.shape
        g = self.groups
        self.x_shape, self.w = x.shape, w
        x_pad = pad_nhwc(x, self.pads)  # (N, Hp, Wp, C_in)
        win = windows(x_pad, (kh, kw), self.stride, self.dilation)  # (N, OH, OW, KH, KW, C_in)
        oh, ow = win.shape[1], win.shape[2]
        self.out_hw = (oh, ow)
        m = n * oh * ow
        if g == 1 and c_in == 1:
            # one channel (a grayscale first layer): copying tap by tap is ~4x faster than
            # copying the 6-D view, whose innermost run is a single number
            taps = np.empty((kh, kw, n, oh, ow), dtype=x.dtype)  # (KH, KW, N, OH, OW)
            for u in range(kh):
                for v in range(kw):
                    taps[u, v] = win[:, :, :, u, v, 0]
            cols = taps.reshape(kh * kw, m).T  # (M, K) as a transposed view, no copy
            z = cols @ w.reshape(kh * kw, c_out)  # (M, K) @ (K, C_out) -> (M, C_out)
        elif g == 1:
            cols = win.reshape(m, kh * kw * c_in)  # (M, K) — the one copy of the input
            z = cols @ w.reshape(kh * kw * cg, c_out)  # (M, K) @ (K, C_out) -> (M, C_out)
        else:
            og = c_out // g
            cols = win.reshape(m, kh * kw, g, cg).transpose(2, 0, 1, 3)  # (G, M, KH*KW, Cg)
            cols = cols.reshape(g, m, kh * kw * cg)  # (G, M, K) copied per group
            wg = w.reshape(kh * kw * cg, g, og).transpose(1, 0, 2)  # (G, K, Og)
            z = np.matmul(cols, wg)  # (G, M, Og)
            z = z.transpose(1, 0, 2).reshape(m, c_out)  # (M, C_out), filters of group g together
        self.cols = cols if self.needs_grad[1] else None  # the cache for dW
        if b is not None:
            z += b
        return z.reshape(n, oh, ow, c_out)

    # ------------------------------------------------------------------ backward
    def backward(self, gy):
        n, h, wd, c_in = self.x_shape
        kh, kw, cg, c_out = self.w.shape
        g, (oh, ow) = self.groups, self.out_hw
        m = n * oh * ow
        gy2 = gy.reshape(m, c_out)  # (M, C_out)
        gx = gw = gb = None
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = gy2.sum(axis=0)  # (C_out,)
        if self.needs_grad[1]:
            if g == 1:
                gw = (self.cols.T @ gy2).reshape(self.w.shape)  # (K, M) @ (M, C_out)
            else:
                og = c_out // g
                gyg = gy2.reshape(m, g, og).transpose(1, 0, 2)  # (G, M, Og)
                gwg = np.matmul(self.cols.transpose(0, 2, 1), gyg)  # (G, K, Og)
                gw = gwg.transpose(1, 0, 2).reshape(self.w.shape)  # (KH, KW, Cg, C_out)
            self.cols = None
        if self.needs_grad[0]:
            # the fold writes KH*KW*C_in values per position, the flipped-kernel product copies
            # KH*KW*C_out: pick the smaller (measured in benchmarks/ops.py)
            if self.stride == (1, 1) and g == 1 and 2 * c_in <= c_out:
                gx = self._input_grad_fold(gy)
            else:
                gx = self._input_grad(gy)
        return gx, gw, gb

    def _input_grad_fold(self, gy: np.ndarray) -> np.ndarray:
        """dA_prev for stride 1: one product for every tap, then KH*KW shifted adds (col2im).

        Every output position (i, j) sends W[u, v] @ dZ[n, i, j] to input pixel
        (i + u*dh, j + v*dw). Lay dZ out on the padded input's row width Wp (zero columns
        after OW): then pixel (i + u*dh, j + v*dw) sits at flat index (i*Wp + j) + off(u, v)
        with off(u, v) = u*dh*Wp + v*dw, the same shift for every position. So one product
        G = W @ dZ^T gives every tap's contribution, and each tap is added to the flat,
        channel-major gradient as one contiguous slab — no loop over pixels.
        """
        n, h, wd, c_in = self.x_shape
        kh, kw, cg, c_out = self.w.shape
        (dh, dw), ((pt, pb), (pl, pr)) = self.dilation, self.pads
        oh, ow = self.out_hw
        hp, wp = h + pt + pb, wd + pl + pr
        gyp = np.zeros((n, oh, wp, c_out), dtype=gy.dtype)  # dZ on rows of width Wp
        gyp[:, :, :ow, :] = gy
        length = oh * wp  # flat positions per example
        # G[u, v, c, (n, i, j)] = sum_o W[u, v, c, o] dZ[n, i, j, o]
        prod = self.w.reshape(kh * kw * c_in, c_out) @ gyp.reshape(n * length, c_out).T
        prod = prod.reshape(kh, kw, c_in, n, length)  # (KH, KW, C_in, N, OH*Wp)
        flat = np.zeros((c_in, n, hp * wp + dw * (kw - 1)), dtype=gy.dtype)  # (C_in, N, Hp*Wp+)
        for u in range(kh):
            for v in range(kw):
                off = u * dh * wp + v * dw
                flat[:, :, off : off + length] += prod[u, v]  # (C_in, N, OH*Wp) slab
        gx_pad = flat[:, :, : hp * wp].reshape(c_in, n, hp, wp)  # (C_in, N, Hp, Wp)
        gx = gx_pad[:, :, pt : pt + h, pl : pl + wd].transpose(1, 2, 3, 0)  # (N, H, W, C_in)
        return np.ascontiguousarray(gx)

    def _input_grad(self, gy: np.ndarray) -> np.ndarray:
        """dA_prev as a stride-1 convolution of the spread-out dZ with the flipped kernel."""
        n, h, wd, c_in = self.x_shape
        kh, kw, cg, c_out = self.w.shape
        (sh, sw), (dh, dw), g = self.stride, self.dilation, self.groups
        (pt, pb), (pl, pr) = self.pads
        oh, ow = self.out_hw
        hp, wp = h + pt + pb, wd + pl + pr
        # dZ spread out to the padded input's grid: gz[n, dh*(KH-1) + i*sh, ...] = dZ[n, i, ...],
        # zeros elsewhere; height Hp + dh*(KH-1) so that every input row sees all KH taps.
        eh, ew = dh * (kh - 1), dw * (kw - 1)
        if sh == sw == 1 and eh == ew == 0:
            gz = gy  # 1x1 kernel, stride 1: nothing to spread
        else:
            gz = np.zeros((n, hp + eh, wp + ew, c_out), dtype=gy.dtype)
            gz[:, eh : eh + (oh - 1) * sh + 1 : sh, ew : ew + (ow - 1) * sw + 1 : sw, :] = gy
        # only the rows/columns of the unpadded input are needed: start the windows at (pt, pl)
        gz = gz[:, pt : pt + h + eh, pl : pl + wd + ew, :]  # (N, H + eh, W + ew, C_out)
        win = windows(gz, (kh, kw), (1, 1), (dh, dw))  # (N, H, W, KH, KW, C_out)
        rows = n * h * wd
        # flipped kernel: Wf[u, v, o, c] = W[KH-1-u, KW-1-v, c, o]
        w_flip = self.w[::-1, ::-1]  # (KH, KW, Cg, C_out)
        if g == 1:
            cols = win.reshape(rows, kh * kw * c_out)  # (N*H*W, KH*KW*C_out)
            wf = w_flip.transpose(0, 1, 3, 2).reshape(kh * kw * c_out, c_in)  # (KH*KW*C_out, C_in)
            gx = cols @ wf  # (N*H*W, C_in)
        else:
            og = c_out // g
            cols = win.reshape(rows, kh * kw, g, og).transpose(2, 0, 1, 3)  # (G, NHW, KH*KW, Og)
            cols = cols.reshape(g, rows, kh * kw * og)  # (G, NHW, KH*KW*Og)
            wf = w_flip.reshape(kh, kw, cg, g, og).transpose(3, 0, 1, 4, 2)  # (G, KH, KW, Og, Cg)
            wf = wf.reshape(g, kh * kw * og, cg)  # (G, KH*KW*Og, Cg)
            gx = np.matmul(cols, wf)  # (G, NHW, Cg)
            gx = gx.transpose(1, 0, 2).reshape(rows, c_in)  # (N*H*W, C_in)
        return gx.reshape(n, h, wd, c_in)


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
        db = sum over N, OH, OW of dZ;  dW = cols^T dZ;  dA_prev = conv(spread(dZ), flip(W)^T).

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
