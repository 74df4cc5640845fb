"""Pooling over (N, H, W, C) inputs: max, average, L_p and global average.

Legend: N batch, H/W input height/width, Hp/Wp padded height/width, C channels,
KH/KW window (``size``), SH/SW stride, OH/OW output height/width, (u, v) a tap (a cell
position inside the window, 0 <= u < KH, 0 <= v < KW).

Window (i, j) covers rows i*SH .. i*SH+KH-1 and columns j*SW .. j*SW+KW-1 of the padded input,
so ``geometry.output_size`` (dilation 1) gives OH = floor((H + p_top + p_bottom - KH) / SH) + 1.

Speed, without a Python loop over pixels or batch items (max pooling's backward walks the batch
in a few chunks of images, dealt to cnnlab's threads): a window max or sum is separable
(reduce the KH rows, then the KW columns: KH + KW - 2 whole-array ufunc calls on strided views).
Backward sends each window's gradient back to its cells: one broadcast and reshape when the
windows tile the input (stride == size), otherwise the adjoint of the two separable stages
(KH + KW strided adds) for average and L_p. Max needs each tap's mask: one strided write per
tap (KH * KW) when the windows tile the input, one strided add per tap otherwise.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from cnnlab.ops._util import as_tensor, check_float, check_ndim
from cnnlab.ops.geometry import output_size, pad_nhwc, pair, resolve_padding, windows
from cnnlab.ops.parallel import batch_chunks, map_chunks
from cnnlab.tensor import Function, Tensor

__all__ = ["avg_pool2d", "global_avg_pool2d", "lp_pool2d", "max_pool2d"]


# Max pooling's backward walks the batch in chunks of about this many bytes of padded input,
# dealt to the cores (ops/parallel.py): its strided per-tap compares and writes run on one core
# each, a few rows of C values per NumPy inner loop.
_CHUNK_BYTES = 1 << 21


# ------------------------------------------------------------------------------ window helpers
def _rows(a: np.ndarray, u: int, oh: int, sh: int) -> np.ndarray:
    """Rows u, u+SH, ..., u+SH*(OH-1) of an (N, H', W', C) array: (N, OH, W', C), a view."""
    return a[:, u : u + sh * (oh - 1) + 1 : sh]


def _cols(a: np.ndarray, v: int, ow: int, sw: int) -> np.ndarray:
    """Columns v, v+SW, ..., v+SW*(OW-1) of an (N, H', W', C) array: (N, H', OW, C), a view."""
    return a[:, :, v : v + sw * (ow - 1) + 1 : sw]


def _reduce(views: list, ufunc, copy: bool) -> np.ndarray:
    """ufunc (np.add or np.maximum) folded over same-shape views, into a new array."""
    if len(views) == 1:
        return views[0].copy() if copy else views[0]
    out = ufunc(views[0], views[1])
    for view in views[2:]:
        ufunc(out, view, out=out)
    return out


def _window_reduce(a: np.ndarray, size, stride, out_hw, ufunc) -> np.ndarray:
    """ufunc over every window of a padded (N, Hp, Wp, C) array: returns (N, OH, OW, C)."""
    (kh, kw), (sh, sw), (oh, ow) = size, stride, out_hw
    rows = _reduce([_rows(a, u, oh, sh) for u in range(kh)], ufunc, copy=False)  # (N, OH, Wp, C)
    return _reduce([_cols(rows, v, ow, sw) for v in range(kw)], ufunc, copy=True)  # (N, OH, OW, C)


def _tiles(a: np.ndarray, size, out_hw) -> np.ndarray:
    """When stride == size: the windows of (N, Hp, Wp, C) as a view (N, OH, KH, OW, KW, C)."""
    (kh, kw), (oh, ow) = size, out_hw
    n, c = a.shape[0], a.shape[3]
    return a[:, : oh * kh, : ow * kw].reshape(n, oh, kh, ow, kw, c)  # splits axes: stays a view


def _untile(t: np.ndarray, padded_hw) -> np.ndarray:
    """(N, OH, KH, OW, KW, C) tiles back to a new (N, Hp, Wp, C) array (zeros past the tiles)."""
    n, oh, kh, ow, kw, c = t.shape
    flat = t.reshape(n, oh * kh, ow * kw, c)  # (N, OH*KH, OW*KW, C)
    if (oh * kh, ow * kw) == tuple(padded_hw):
        return np.require(flat, requirements=["C", "W"])  # copies only a read-only view
    out = np.zeros((n, *padded_hw, c), t.dtype)  # (N, Hp, Wp, C)
    out[:, : oh * kh, : ow * kw] = flat
    return out


def _spread(g: np.ndarray, padded_hw, size, stride) -> np.ndarray:
    """Adjoint of the window sum: every cell gets the sum of g over the windows holding it.

    g is (N, OH, OW, C); returns (N, Hp, Wp, C).
    """
    (kh, kw), (sh, sw) = size, stride
    n, oh, ow, c = g.shape
    if (kh, kw) == (sh, sw):  # the windows tile the input: a broadcast, no adds
        tiles = np.broadcast_to(g[:, :, None, :, None, :], (n, oh, kh, ow, kw, c))
        return _untile(tiles, padded_hw)
    rows = np.zeros((n, oh, padded_hw[1], c), g.dtype)  # (N, OH, Wp, C): adjoint of stage 2
    for v in range(kw):
        view = _cols(rows, v, ow, sw)  # (N, OH, OW, C)
        view += g
    out = np.zeros((n, *padded_hw, c), g.dtype)  # (N, Hp, Wp, C): adjoint of stage 1
    for u in range(kh):
        view = _rows(out, u, oh, sh)  # (N, OH, Wp, C)
        view += rows
    return out


def _crop(a: np.ndarray, pads, hw) -> np.ndarray:
    """The (N, H, W, C) interior of a padded (N, Hp, Wp, C) array."""
    (pt, _), (pl, _) = pads
    return a[:, pt : pt + hw[0], pl : pl + hw[1]]


# ------------------------------------------------------------------------------ the functions
class MaxPooling2D(Function):
    """y[n, i, j, c] = max over the window (i, j) of the (-inf padded) input.

    Backward (the mask of the notes): gx[cell] = sum over windows of gy where the cell is the
    window's max, 0 elsewhere; on ties only the first max in row-major window order gets gy.
    """

    def __init__(self, size, stride, pads, out_hw):
        self.size, self.stride, self.pads, self.out_hw = size, stride, pads, out_hw

    def forward(self, x):
        x_pad = pad_nhwc(x, self.pads, -np.inf)  # (N, Hp, Wp, C); padding never wins
        self.x_shape, self.x_pad = x.shape, x_pad
        self.y = _window_reduce(x_pad, self.size, self.stride, self.out_hw, np.maximum)
        return self.y  # (N, OH, OW, C)

    def backward(self, gy):
        x_pad, y = self.x_pad, self.y
        (oh, ow), (kh, kw), (hp, wp) = self.out_hw, self.size, x_pad.shape[1:3]
        # when the windows tile the input, every cell of the tiles is written: only cells past
        # them need zeros; otherwise taps add into a zeroed gradient
        tiled = self.size == self.stride and (oh * kh, ow * kw) == (hp, wp)
        gx_pad = (np.empty if tiled else np.zeros)(x_pad.shape, gy.dtype)  # (N, Hp, Wp, C)

        def share(chunks):  # each chunk of images writes its own images of gx_pad
            for c in chunks:
                self._mask_gradient(x_pad[c], y[c], gy[c], gx_pad[c])

        per_image = int(np.prod(x_pad.shape[1:])) * x_pad.itemsize
        map_chunks(share, batch_chunks(gy.shape[0], per_image, _CHUNK_BYTES))
        return (_crop(gx_pad, self.pads, self.x_shape[1:3]),)

    def _mask_gradient(self, x_pad, y, gy, gx_pad):
        """gx_pad += each window's gy at its first max, for a chunk of images (in place)."""
        kh, kw = self.size
        free = np.ones(y.shape, bool)  # (k, OH, OW, C): the window's max is still unclaimed
        if self.size == self.stride:  # non-overlapping tiles: each tap writes its own cells
            x_tiles = _tiles(x_pad, self.size, self.out_hw)  # (k, OH, KH, OW, KW, C), a view
            g_tiles = _tiles(gx_pad, self.size, self.out_hw)  # the same cells of gx_pad
            for u in range(kh):  # keep the first max of each window only
                for v in range(kw):
                    first = x_tiles[:, :, u, :, v, :] == y  # (k, OH, OW, C), contiguous
                    first &= free
                    free ^= first
                    np.multiply(gy, first, out=g_tiles[:, :, u, :, v, :])  # tap (u, v) cells
        else:  # overlapping windows or gaps: one strided add per tap
            taps = windows(x_pad, self.size, self.stride)  # (k, OH, OW, KH, KW, C)
            (oh, ow), (sh, sw) = self.out_hw, self.stride
            for u in range(kh):
                for v in range(kw):
                    first = taps[:, :, :, u, v, :] == y  # (k, OH, OW, C)
                    first &= free
                    free ^= first
                    view = _cols(_rows(gx_pad, u, oh, sh), v, ow, sw)  # (k, OH, OW, C)
                    view += gy * first


class AveragePooling2D(Function):
    """y[n, i, j, c] = (1 / count_ij) * sum of the real (unpadded) cells of window (i, j).

    Backward: every real cell of window (i, j) gets gy[n, i, j, c] / count_ij (summed over the
    windows that hold it); padded cells are not counted and get nothing.
    """

    def __init__(self, size, stride, pads, out_hw):
        self.size, self.stride, self.pads, self.out_hw = size, stride, pads, out_hw

    def forward(self, x):
        x_pad = pad_nhwc(x, self.pads, 0.0)  # (N, Hp, Wp, C)
        self.x_shape, self.padded_hw = x.shape, x_pad.shape[1:3]
        self.count = self._count(x.shape[1:3], x.dtype)  # (OH, OW, 1) or a number
        y = _window_reduce(x_pad, self.size, self.stride, self.out_hw, np.add)
        y /= self.count
        return y  # (N, OH, OW, C)

    def _count(self, hw, dtype):
        """Real cells per window: (rows inside H) * (columns inside W), as (OH, OW, 1)."""
        if self.pads == ((0, 0), (0, 0)):
            return dtype.type(self.size[0] * self.size[1])
        per_axis = []
        for n, k, s, (before, _), o in zip(hw, self.size, self.stride, self.pads, self.out_hw):
            start = np.arange(o) * s - before  # first row (column) of each window, unpadded
            per_axis.append(np.minimum(start + k, n) - np.maximum(start, 0))
        return np.multiply.outer(*per_axis)[:, :, None].astype(dtype)  # (OH, OW, 1)

    def backward(self, gy):
        gx_pad = _spread(gy / self.count, self.padded_hw, self.size, self.stride)
        return (_crop(gx_pad, self.pads, self.x_shape[1:3]),)


class LpPooling2D(Function):
    """y[n, i, j, c] = (sum over window (i, j) of x ** p) ** (1 / p).

    Backward: gx = x ** (p - 1) * sum over the windows holding the cell of gy * y ** (1 - p),
    with gy * y ** (1 - p) taken as 0 where y == 0 (p > 1).
    """

    def __init__(self, p, size, stride, out_hw):
        self.p, self.size, self.stride, self.out_hw = p, size, stride, out_hw

    def forward(self, x):
        p = self.p
        self.x = x
        xp = np.square(x) if p == 2 else x if p == 1 else np.power(x, p)  # (N, H, W, C)
        s = _window_reduce(xp, self.size, self.stride, self.out_hw, np.add)  # (N, OH, OW, C)
        self.y = np.sqrt(s) if p == 2 else s if p == 1 else np.power(s, 1.0 / p)
        return self.y

    def backward(self, gy):
        p, x, y = self.p, self.x, self.y
        if p == 1:  # a plain window sum
            return (_spread(gy, x.shape[1:3], self.size, self.stride),)
        denom = y if p == 2 else np.power(y, p - 1)  # (N, OH, OW, C)
        r = np.divide(gy, denom, out=np.zeros_like(gy), where=denom != 0)
        g = _spread(r, x.shape[1:3], self.size, self.stride)  # (N, H, W, C)
        g *= x if p == 2 else np.power(x, p - 1)
        return (g,)


class GlobalAveragePooling2D(Function):
    """y[n, c] = (1 / (H W)) sum over h, w of x[n, h, w, c].   gx[n, h, w, c] = gy[n, c] / (H W)."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=(1, 2))  # (N, C)

    def backward(self, gy):
        n, h, w, c = self.x_shape
        g = gy[:, None, :] / gy.dtype.type(h * w)  # (N, 1, C)
        return (np.repeat(g, h * w, axis=1).reshape(n, h, w, c),)  # (N, H*W, C) -> (N, H, W, C)


# ------------------------------------------------------------------------------ public face
def _check_x(op: str, x) -> Tensor:
    x = as_tensor(x)
    check_float(op, "x", x)
    check_ndim(op, "x", x, 4, "(N, H, W, C)")
    return x


def check_pool_padding(padding, kernel, op: str, size=None):
    """The pooling padding rule, in one place (the ops and the nn layers call it): 'valid' or
    'same' (any case), or an int or a pair (ph, pw) with 0 <= p <= k // 2 on each axis
    (PyTorch's rule: more would make windows of padding only). Returns 'valid'/'same', an int,
    or a pair when the two differ."""
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(
                f"{op}: padding must be 'valid', 'same', an int or a pair of ints; "
                f"received {padding!r}"
            )
        return padding.lower()
    ph, pw = pair(padding, "padding", op, minimum=0)
    if ph > kernel[0] // 2 or pw > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding must be at most half the window on each side "
            f"(padding <= size // 2, as in PyTorch); received padding={padding!r} "
            f"with size={kernel if size is None else size!r}"
        )
    return ph if ph == pw else (ph, pw)


def _geometry(op: str, shape, size, stride, padding):
    """(size, stride, pads, out_hw), checked, for a pooling of an (N, H, W, C) input."""
    kernel = pair(size, "size", op)
    strides = kernel if stride is None else pair(stride, "stride", op)
    hw = shape[1:3]
    pads = resolve_padding(check_pool_padding(padding, kernel, op, size), hw, kernel, strides,
                           (1, 1), op)
    padded = (hw[0] + sum(pads[0]), hw[1] + sum(pads[1]))
    if padded[0] < kernel[0] or padded[1] < kernel[1]:
        raise ValueError(
            f"{op}: the {kernel[0]}x{kernel[1]} window does not fit in the padded input "
            f"({padded[0]}x{padded[1]}); H and W plus padding must each be at least the window; "
            f"received x.shape={tuple(shape)}, size={size!r}, padding={padding!r}"
        )
    out_hw = tuple(output_size(n, k, s, p) for n, k, s, p in zip(hw, kernel, strides, pads))
    return kernel, strides, pads, out_hw


def max_pool2d(x, size, stride=None, padding=0) -> Tensor:
    """Max pooling: the largest value of each window, per channel.

    ``y[n, i, j, c] = max over 0 <= u < KH, 0 <= v < KW of x_pad[n, i*SH + u, j*SW + v, c]``,
    where x_pad is x padded with -inf, so padded cells never win.

    Gradient: ``gx[n, h, w, c] = sum over windows (i, j) whose max is x[n, h, w, c] of
    gy[n, i, j, c]`` (the notes' mask ``a_prev_slice == max``); on ties only the first max in
    row-major window order gets it, as in PyTorch.

    Args:
        x: (N, H, W, C), float32 or float64.
        size: window (KH, KW); an int means (size, size).
        stride: (SH, SW) or an int; defaults to ``size`` (non-overlapping windows).
        padding: 'valid', 'same' (output ceil(H / SH); extra at the bottom/right), an int or a
            pair (ph, pw) on both sides, at most half the window (size // 2), as in PyTorch.

    Shape:
        (N, H, W, C) -> (N, OH, OW, C), OH = floor((H + p_top + p_bottom - KH) / SH) + 1, and
        the same for OW.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.max_pool2d(cl.tensor(np.zeros((2, 28, 28, 6))), 2).shape
    (2, 14, 14, 6)
    """
    x = _check_x("max_pool2d", x)
    geometry = _geometry("max_pool2d", x.shape, size, stride, padding)
    return MaxPooling2D(*geometry).apply(x)


def avg_pool2d(x, size, stride=None, padding=0) -> Tensor:
    """Average pooling: the mean of each window's real cells, per channel.

    ``y[n, i, j, c] = (1 / count_ij) sum over the real cells (h, w) of window (i, j) of
    x[n, h, w, c]``; padded cells are not counted (PyTorch's ``count_include_pad=False``), so
    count_ij = KH * KW away from the border.

    Gradient: ``gx[n, h, w, c] = sum over windows (i, j) holding (h, w) of
    gy[n, i, j, c] / count_ij`` (the notes' ``distribute_value``).

    Args:
        x: (N, H, W, C), float32 or float64.
        size: window (KH, KW); an int means (size, size).
        stride: (SH, SW) or an int; defaults to ``size``.
        padding: 'valid', 'same', an int or a pair (ph, pw), at most half the window.

    Shape:
        (N, H, W, C) -> (N, OH, OW, C), OH = floor((H + p_top + p_bottom - KH) / SH) + 1, and
        the same for OW.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.avg_pool2d(cl.tensor(np.zeros((2, 7, 7, 3))), 3, stride=2, padding="same").shape
    (2, 4, 4, 3)
    """
    x = _check_x("avg_pool2d", x)
    geometry = _geometry("avg_pool2d", x.shape, size, stride, padding)
    return AveragePooling2D(*geometry).apply(x)


def lp_pool2d(x, p, size, stride=None) -> Tensor:
    """L_p pooling: the p-norm of each window, per channel (p=2 is the L2 pooling of the notes).

    ``y[n, i, j, c] = (sum over 0 <= u < KH, 0 <= v < KW of x[n, i*SH + u, j*SW + v, c] ** p)
    ** (1 / p)``. No padding (as PyTorch's ``LPPool2d``). For p other than an even integer, feed
    non-negative inputs (after a ReLU, say): a negative power sum gives NaN, as in NumPy.

    Gradient: ``gx[n, h, w, c] = x[n, h, w, c] ** (p - 1) * sum over windows (i, j) holding
    (h, w) of gy[n, i, j, c] * y[n, i, j, c] ** (1 - p)``, taken as 0 where y == 0 (p > 1).

    Args:
        x: (N, H, W, C), float32 or float64.
        p: a finite number >= 1 (1 sums the window, 2 is the L2 norm).
        size: window (KH, KW); an int means (size, size).
        stride: (SH, SW) or an int; defaults to ``size``.

    Shape:
        (N, H, W, C) -> (N, OH, OW, C), OH = floor((H - KH) / SH) + 1, and the same for OW.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.lp_pool2d(cl.tensor(np.ones((1, 6, 6, 4))), 2, 3).shape
    (1, 2, 2, 4)
    """
    x = _check_x("lp_pool2d", x)
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not math.isfinite(p) or p < 1:
        raise ValueError(
            f"lp_pool2d: p must be a finite number >= 1 (1 sums the window, 2 is L2 pooling); "
            f"received p={p!r}"
        )
    kernel, strides, _, out_hw = _geometry("lp_pool2d", x.shape, size, stride, 0)
    return LpPooling2D(float(p), kernel, strides, out_hw).apply(x)


def global_avg_pool2d(x) -> Tensor:
    """Global average pooling: the mean of each channel over all positions.

    ``y[n, c] = (1 / (H W)) sum over h, w of x[n, h, w, c]``.

    Gradient: ``gx[n, h, w, c] = gy[n, c] / (H W)``.

    Shape:
        (N, H, W, C) -> (N, C).

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.global_avg_pool2d(cl.tensor(np.zeros((2, 7, 7, 512)))).shape
    (2, 512)
    """
    x = _check_x("global_avg_pool2d", x)
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(
            f"global_avg_pool2d: x needs at least one position (H, W >= 1); "
            f"received x.shape={x.shape}"
        )
    return GlobalAveragePooling2D().apply(x)
