"""Convolution and pooling arithmetic, in one place.

Legend: N batch, H/W input height/width, C channels, KH/KW kernel, OH/OW output,
s stride, d dilation, p padding (before + after).

* output size:   OH = floor((H + p_top + p_bottom - d (KH - 1) - 1) / s) + 1
* padding words: 'valid' (none), 'same' (OH = ceil(H / s); when the total is odd the extra row
  goes to the bottom/right, as in TensorFlow), 'full' (d (K - 1) on each side), an int, or a pair
  (ph, pw) applied on both sides.
* windows:       a read-only strided view (N, OH, OW, KH, KW, C) of a padded (N, H, W, C) array;
  window (i, j) starts at row i*s, column j*s and its taps are d apart. No data is copied.

The nested-loop reference in :mod:`cnnlab.reference` computes the same things one number at a
time; the tests hold the two together.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["pair", "resolve_padding", "output_size", "windows", "pad_nhwc"]


def pair(value, name: str, op: str, minimum: int = 1) -> tuple[int, int]:
    """``value`` (an int or a pair of ints) as (for height, for width), each >= ``minimum``."""
    if type(value) is int:  # the common cases first: isinstance against numbers.Integral is slow
        out = (value, value)
    elif type(value) is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int:
        out = value
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        out = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints; received {value!r}")
    if min(out) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}; received {name}={value!r}")
    return out


def _same_padding(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """(before, after) so that the output has ceil(n / s) positions; extra goes after."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, kernel, stride, dilation, op: str):
    """Padding as ((top, bottom), (left, right)) from a word, an int or a pair.

    >>> resolve_padding("same", (28, 28), (5, 5), (1, 1), (1, 1), "conv2d")
    ((2, 2), (2, 2))
    >>> resolve_padding("same", (5, 5), (2, 2), (2, 2), (1, 1), "conv2d")
    ((0, 1), (0, 1))
    """
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return (0, 0), (0, 0)
        if word == "full":
            return tuple((d * (k - 1), d * (k - 1)) for k, d in zip(kernel, dilation))
        if word == "same":
            return tuple(
                _same_padding(n, k, s, d) for n, k, s, d in zip(in_hw, kernel, stride, dilation)
            )
        raise ValueError(
            f"{op}: padding must be 'valid', 'same', 'full', an int or a pair of ints; "
            f"received {padding!r}"
        )
    ph, pw = pair(padding, "padding", op, minimum=0)
    return (ph, ph), (pw, pw)


def output_size(n: int, k: int, s: int, pad: tuple[int, int], d: int = 1) -> int:
    """floor((n + p_before + p_after - d (k - 1) - 1) / s) + 1 (may be <= 0: caller checks)."""
    return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1


def pad_nhwc(x: np.ndarray, pads, value: float = 0.0) -> np.ndarray:
    """Pad the H and W axes of an (N, H, W, C) array; returns ``x`` itself when no padding."""
    (pt, pb), (pl, pr) = pads
    if pt == pb == pl == pr == 0:
        return x
    out = np.full(
        (x.shape[0], x.shape[1] + pt + pb, x.shape[2] + pl + pr, x.shape[3]), value, x.dtype
    )
    out[:, pt : pt + x.shape[1], pl : pl + x.shape[2], :] = x
    return out


def windows(x: np.ndarray, kernel, stride=(1, 1), dilation=(1, 1)) -> np.ndarray:
    """Read-only view of every kernel window of an (already padded) (N, H, W, C) array.

    Returns shape (N, OH, OW, KH, KW, C) with ``view[n, i, j, u, v, c] =
    x[n, i*sh + u*dh, j*sw + v*dw, c]``.

    >>> windows(np.zeros((2, 6, 6, 3)), (3, 3)).shape
    (2, 4, 4, 3, 3, 3)
    """
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh = (h - dh * (kh - 1) - 1) // sh + 1
    ow = (w - dw * (kw - 1) - 1) // sw + 1
    bn, bh, bw, bc = x.strides
    shape, strides = (n, oh, ow, kh, kw, c), (bn, bh * sh, bw * sw, bh * dh, bw * dw, bc)
    if x.flags.c_contiguous and x.size:
        # the same view as as_strided's, made ~4x faster (a batch-1 layer makes several)
        view = np.ndarray(shape, x.dtype, buffer=x, strides=strides)
        view.flags.writeable = False
        return view
    return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)
