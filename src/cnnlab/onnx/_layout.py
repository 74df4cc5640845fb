"""Axis orders between ONNX's tensors and cnnlab's arrays (private).

A value's ``perm`` says how the array cnnlab holds relates to the tensor ONNX means:
``array = onnx_tensor.transpose(perm)``. ``None`` means the same order. Images are the common
case: ONNX means (N, C, H, W), cnnlab holds (N, H, W, C), so ``perm = NHWC = (0, 2, 3, 1)``.
Keeping the perm beside each value lets a graph convert its layout once, where a layout-bound
operator (Conv, pooling, batch norm) needs it, and never around elementwise operators.
"""

from __future__ import annotations

__all__ = ["NHWC", "NCHW", "identity", "inverse", "between", "axis_in", "trivial"]

NHWC = (0, 2, 3, 1)  # cnnlab's images from ONNX's: array = nchw.transpose(NHWC)
NCHW = (0, 3, 1, 2)  # the inverse: ONNX's images from cnnlab's


def identity(perm) -> bool:
    return perm is None or tuple(perm) == tuple(range(len(perm)))


def inverse(perm) -> tuple:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def between(old, new, rank: int) -> tuple:
    """Axes ``a`` with ``held_old.transpose(a) == held_new`` (both perms of the same tensor).

    >>> between(NHWC, None, 4)  # cnnlab's image back to ONNX's order
    (0, 3, 1, 2)
    """
    old = tuple(range(rank)) if old is None else tuple(old)
    new = tuple(range(rank)) if new is None else tuple(new)
    inv_old = inverse(old)
    return tuple(inv_old[j] for j in new)


def axis_in(perm, axis: int, rank: int) -> int:
    """Where ONNX's ``axis`` lies in the array held with ``perm``."""
    axis %= rank
    return axis if perm is None else tuple(perm).index(axis)


def trivial(axes, shape) -> bool:
    """True when transposing ``shape`` by ``axes`` only moves axes of size 1 (a reshape).

    >>> trivial((0, 3, 1, 2), (8, 1, 1, 512)), trivial((0, 3, 1, 2), (8, 7, 7, 512))
    (True, False)
    """
    moved = [a for a in axes if shape[a] != 1]
    return moved == sorted(moved)
