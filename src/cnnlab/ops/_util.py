"""Small helpers shared by the ops: input checks and broadcasting's inverse."""

from __future__ import annotations

import numpy as np

from cnnlab.tensor import Tensor, as_tensor

__all__ = [
    "check_float", "check_ndim", "check_same_dtype", "repeat_row", "unbroadcast", "as_tensor",
    "Tensor",
]


def check_float(op: str, name: str, x: Tensor) -> None:
    """TypeError unless ``x`` holds float32 or float64 values."""
    if x.data.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{op}: {name} must be a floating-point tensor (float32 or float64); "
            f"received dtype {x.data.dtype}"
        )


def check_ndim(op: str, name: str, x: Tensor, ndim: int, layout: str) -> None:
    """ValueError unless ``x`` has ``ndim`` axes (``layout`` names them, e.g. '(N, H, W, C)')."""
    if x.data.ndim != ndim:
        raise ValueError(
            f"{op}: {name} must be {ndim}-D {layout}; received {name}.shape={x.shape}"
        )


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g


def check_same_dtype(op: str, **tensors) -> None:
    """TypeError unless every given tensor (None skipped) has the same dtype."""
    named = [(k, t) for k, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.data.dtype != first.data.dtype:
            raise TypeError(
                f"{op}: {first_name} is {first.data.dtype} but {name} is {t.data.dtype}; "
                f"convert one with .astype() so both have the same dtype"
            )


def repeat_row(v: np.ndarray, times: int) -> np.ndarray:
    """A vector (C,) repeated ``times`` times end to end, (times*C,): a per-channel vector laid
    along an image row of W*C values. The same as ``np.tile(v, times)``, ~5x faster on the
    small vectors of a layer (a broadcast copy instead of tile's reshapes)."""
    if times == 1:
        return v
    row = np.empty((times, v.shape[0]), dtype=v.dtype)
    row[...] = v
    return row.reshape(-1)
