"""Pooling as the course notes write it: four nested loops, one number at a time (float64).

This is the oracle for :mod:`cnnlab.ops.pool` and its explanation; it is slow, use small sizes.

Notation of the notes: ``A_prev`` is the input (m, n_H_prev, n_W_prev, n_C), ``A`` the output
(m, n_H, n_W, n_C), ``f`` the (square) window side, ``stride`` the step, and
``n_H = int(1 + (n_H_prev + pad_top + pad_bottom - f) / stride)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["create_mask_from_window", "distribute_value", "pool_backward", "pool_forward"]


def _paddings(padding, n_H_prev, n_W_prev, f, stride):
    """((pad_top, pad_bottom), (pad_left, pad_right)) from an int, 'valid' or 'same'.

    'same' gives n_H = ceil(n_H_prev / stride); when the total padding is odd the extra row
    (column) goes to the bottom (right), as in TensorFlow.
    """
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        pads = []
        for n_prev in (n_H_prev, n_W_prev):
            n_out = math.ceil(n_prev / stride)
            total = max((n_out - 1) * stride + f - n_prev, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return (padding, padding), (padding, padding)
    raise ValueError(
        f"pool_forward: padding must be 'valid', 'same' or an int >= 0; received {padding!r}"
    )


def create_mask_from_window(x):
    """A boolean matrix of the window's shape, True where x holds its maximum.

    >>> create_mask_from_window(np.array([[1.0, 3.0], [2.0, 0.0]]))
    array([[False,  True],
           [False, False]])
    """
    return x == np.max(x)


def distribute_value(dz, real):
    """Share dz equally among the real cells of a window (``real``: 1 real, 0 padding).

    Without padding ``real`` is all ones and every cell gets dz / (n_H * n_W), as in the notes.

    >>> distribute_value(2.0, np.ones((2, 2)))
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    average = dz / np.sum(real)
    return real * average


def pool_forward(A_prev, f, stride, mode="max", padding=0):
    """Forward pass of the pooling layer (the notes' ``pool_forward``).

    Args:
        A_prev: input data, (m, n_H_prev, n_W_prev, n_C).
        f: window side (int).
        stride: step between windows (int).
        mode: "max" or "average".
        padding: an int (both sides), 'valid' or 'same'. Padded cells never win a max and are
            not counted in an average.

    Returns:
        A: output of the pool layer, (m, n_H, n_W, n_C).
        cache: (A_prev, hparameters), used by :func:`pool_backward`.

    >>> A, cache = pool_forward(np.zeros((2, 5, 5, 3)), f=3, stride=2)
    >>> A.shape
    (2, 2, 2, 3)
    """
    if mode not in ("max", "average"):
        raise ValueError(f"pool_forward: mode must be 'max' or 'average'; received {mode!r}")
    A_prev = np.asarray(A_prev, dtype=np.float64)
    (m, n_H_prev, n_W_prev, n_C) = A_prev.shape
    (pad_top, pad_bottom), (pad_left, pad_right) = _paddings(padding, n_H_prev, n_W_prev, f, stride)
    fill = -np.inf if mode == "max" else 0.0
    A_prev_pad = np.pad(
        A_prev,
        ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)),
        mode="constant",
        constant_values=fill,
    )
    # 1 on the cells of the input, 0 on the padding around it
    real = np.pad(np.ones((n_H_prev, n_W_prev)), ((pad_top, pad_bottom), (pad_left, pad_right)))

    n_H = int(1 + (n_H_prev + pad_top + pad_bottom - f) / stride)
    n_W = int(1 + (n_W_prev + pad_left + pad_right - f) / stride)
    if n_H_prev + pad_top + pad_bottom < f or n_W_prev + pad_left + pad_right < f:
        raise ValueError(
            f"pool_forward: the window f={f} is larger than the padded input; "
            f"received A_prev.shape={A_prev.shape}, padding={padding!r}"
        )
    A = np.zeros((m, n_H, n_W, n_C))

    for i in range(m):  # loop over the training examples
        for h in range(n_H):  # loop on the vertical axis of the output volume
            vert_start = h * stride
            vert_end = vert_start + f
            for w in range(n_W):  # loop on the horizontal axis of the output volume
                horiz_start = w * stride
                horiz_end = horiz_start + f
                for c in range(n_C):  # loop over the channels of the output volume
                    a_prev_slice = A_prev_pad[i, vert_start:vert_end, horiz_start:horiz_end, c]
                    if mode == "max":
                        A[i, h, w, c] = np.max(a_prev_slice)
                    else:
                        real_slice = real[vert_start:vert_end, horiz_start:horiz_end]
                        A[i, h, w, c] = np.sum(a_prev_slice) / np.sum(real_slice)

    hparameters = {"f": f, "stride": stride, "mode": mode, "padding": padding}
    cache = (A_prev, hparameters)
    return A, cache


def pool_backward(dA, cache):
    """Backward pass of the pooling layer (the notes' ``pool_backward``).

    Max: each window's dA goes to the cells where ``a_prev_slice == max`` (on ties, every tied
    cell gets it: the notes' mask; the fast op gives it to the first one only). Average: each
    window's dA is shared equally by its real cells.

    Args:
        dA: gradient of the cost with respect to the output of the pooling layer, like A.
        cache: the cache returned by :func:`pool_forward`.

    Returns:
        dA_prev: gradient of the cost with respect to the input, like A_prev.

    >>> A, cache = pool_forward(np.arange(16.0).reshape(1, 4, 4, 1), f=2, stride=2)
    >>> pool_backward(np.ones(A.shape), cache)[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.],
           [0., 0., 0., 0.],
           [0., 1., 0., 1.]])
    """
    (A_prev, hparameters) = cache
    f, stride, mode = hparameters["f"], hparameters["stride"], hparameters["mode"]
    dA = np.asarray(dA, dtype=np.float64)
    (m, n_H_prev, n_W_prev, n_C) = A_prev.shape
    (m, n_H, n_W, n_C) = dA.shape
    (pad_top, pad_bottom), (pad_left, pad_right) = _paddings(
        hparameters["padding"], n_H_prev, n_W_prev, f, stride
    )
    fill = -np.inf if mode == "max" else 0.0
    A_prev_pad = np.pad(
        A_prev,
        ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)),
        mode="constant",
        constant_values=fill,
    )
    real = np.pad(np.ones((n_H_prev, n_W_prev)), ((pad_top, pad_bottom), (pad_left, pad_right)))
    dA_prev_pad = np.zeros(A_prev_pad.shape)

    for i in range(m):  # loop over the training examples
        for h in range(n_H):  # loop on the vertical axis
            vert_start = h * stride
            vert_end = vert_start + f
            for w in range(n_W):  # loop on the horizontal axis
                horiz_start = w * stride
                horiz_end = horiz_start + f
                for c in range(n_C):  # loop over the channels
                    if mode == "max":
                        a_prev_slice = A_prev_pad[i, vert_start:vert_end, horiz_start:horiz_end, c]
                        mask = create_mask_from_window(a_prev_slice)
                        dA_prev_pad[i, vert_start:vert_end, horiz_start:horiz_end, c] += (
                            mask * dA[i, h, w, c]
                        )
                    else:
                        da = dA[i, h, w, c]
                        real_slice = real[vert_start:vert_end, horiz_start:horiz_end]
                        dA_prev_pad[i, vert_start:vert_end, horiz_start:horiz_end, c] += (
                            distribute_value(da, real_slice)
                        )

    dA_prev = dA_prev_pad[:, pad_top : pad_top + n_H_prev, pad_left : pad_left + n_W_prev, :]
    return dA_prev
