"""Convolution as the course notes write it: four nested loops, one number at a time.

``conv_forward`` and ``conv_backward`` follow the notes' "Convolution model - step by step"
(examples i, output rows h, output columns w, filters c), extended with dilation and groups.
Channels-last: A_prev (m, n_H_prev, n_W_prev, n_C_prev), W (f, f, n_C_prev // groups, n_C).
Slow by design: use small sizes. It is the oracle for :func:`cnnlab.functional.conv2d`.
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops.geometry import output_size, pair, resolve_padding

__all__ = ["conv_forward", "conv_backward", "zero_pad"]


def zero_pad(X: np.ndarray, pads) -> np.ndarray:
    """Pad the height and width of X (m, n_H, n_W, n_C) with zeros: pads ((top, bottom),
    (left, right))."""
    (pt, pb), (pl, pr) = pads
    return np.pad(X, ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def conv_single_step(a_slice_prev: np.ndarray, W: np.ndarray, b) -> float:
    """One filter on one window: Z = sum(a_slice_prev * W) + b."""
    return float(np.sum(a_slice_prev * W)) + (0.0 if b is None else float(b))


def conv_forward(A_prev, W, b=None, stride=1, pad=0, dilation=1, groups=1):
    """Z[i, h, w, c] = sum(A_slice * W[..., c]) + b[c] for every example, position and filter.

    Returns (Z, cache) with cache = (A_prev, W, b, hparameters) for :func:`conv_backward`.
    """
    A_prev, W = np.asarray(A_prev, dtype=np.float64), np.asarray(W, dtype=np.float64)
    (m, n_H_prev, n_W_prev, _n_C_prev), (f_h, f_w, n_Cg, n_C) = A_prev.shape, W.shape
    (s_h, s_w), (d_h, d_w) = pair(stride, "stride", "ref"), pair(dilation, "dilation", "ref")
    pads = resolve_padding(pad, (n_H_prev, n_W_prev), (f_h, f_w), (s_h, s_w), (d_h, d_w), "ref")
    n_H = output_size(n_H_prev, f_h, s_h, pads[0], d_h)
    n_W = output_size(n_W_prev, f_w, s_w, pads[1], d_w)
    filters_per_group = n_C // groups
    A_prev_pad = zero_pad(A_prev, pads)
    Z = np.zeros((m, n_H, n_W, n_C))
    for i in range(m):  # loop over the batch of training examples
        a_prev_pad = A_prev_pad[i]
        for h in range(n_H):  # loop over vertical axis of the output volume
            vert_start = h * s_h
            vert_end = vert_start + d_h * (f_h - 1) + 1
            for w in range(n_W):  # loop over horizontal axis of the output volume
                horiz_start = w * s_w
                horiz_end = horiz_start + d_w * (f_w - 1) + 1
                for c in range(n_C):  # loop over the filters (channels of the output volume)
                    g = c // filters_per_group
                    a_slice_prev = a_prev_pad[
                        vert_start:vert_end:d_h, horiz_start:horiz_end:d_w,
                        g * n_Cg : (g + 1) * n_Cg,
                    ]
                    Z[i, h, w, c] = conv_single_step(
                        a_slice_prev, W[:, :, :, c], None if b is None else b[c]
                    )
    cache = (A_prev, W, b, dict(stride=(s_h, s_w), pads=pads, dilation=(d_h, d_w), groups=groups))
    return Z, cache


def conv_backward(dZ, cache):
    """Backward of :func:`conv_forward`: (dA_prev, dW, db).

    For every example i, output position (h, w) and filter c, with a_slice the window that
    produced Z[i, h, w, c]:

        da_prev_pad[window]  += W[:, :, :, c] * dZ[i, h, w, c]
        dW[:, :, :, c]       += a_slice * dZ[i, h, w, c]
        db[c]                += dZ[i, h, w, c]
    """
    A_prev, W, b, hp = cache
    (s_h, s_w), pads, (d_h, d_w), groups = hp["stride"], hp["pads"], hp["dilation"], hp["groups"]
    (m, n_H_prev, n_W_prev, _n_C_prev), (f_h, f_w, n_Cg, n_C) = A_prev.shape, W.shape
    _, n_H, n_W, _ = dZ.shape
    filters_per_group = n_C // groups
    A_prev_pad = zero_pad(A_prev, pads)
    dA_prev_pad = np.zeros_like(A_prev_pad)
    dW, db = np.zeros_like(W), np.zeros(n_C)
    for i in range(m):
        for h in range(n_H):
            vert_start = h * s_h
            vert_end = vert_start + d_h * (f_h - 1) + 1
            for w in range(n_W):
                horiz_start = w * s_w
                horiz_end = horiz_start + d_w * (f_w - 1) + 1
                for c in range(n_C):
                    g = c // filters_per_group
                    window = (
                        i, slice(vert_start, vert_end, d_h), slice(horiz_start, horiz_end, d_w),
                        slice(g * n_Cg, (g + 1) * n_Cg),
                    )
                    dA_prev_pad[window] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += A_prev_pad[window] * dZ[i, h, w, c]
                    db[c] += dZ[i, h, w, c]
    (pt, _), (pl, _) = pads
    dA_prev = dA_prev_pad[:, pt : pt + n_H_prev, pl : pl + n_W_prev, :]
    return dA_prev, dW, db
