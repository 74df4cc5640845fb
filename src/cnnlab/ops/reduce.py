"""Reductions over axes: sum, mean, max (keepdims optional)."""

from __future__ import annotations

import builtins

import numpy as np

from cnnlab.ops._util import as_tensor
from cnnlab.tensor import Function, Tensor

__all__ = ["sum", "mean", "max"]


def _axes(axis, ndim: int) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"reduce: axis {a} is out of range for a tensor with {ndim} axes")
    return tuple(a % ndim for a in axes) if ndim else ()


def _expand(g: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    """Put back the reduced axes (size 1) so ``g`` broadcasts against the input."""
    return g if keepdims else np.expand_dims(g, axes)


class Sum(Function):
    """y = sum of x over ``axes``.   gx = gy broadcast back over the summed axes."""

    def __init__(self, axes: tuple, keepdims: bool):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.shape = x.shape
        return np.asarray(x.sum(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy):
        return (np.broadcast_to(_expand(gy, self.axes, self.keepdims), self.shape),)


class Mean(Function):
    """y = (1/n) sum of x over ``axes`` (n elements each).   gx = gy / n broadcast back."""

    def __init__(self, axes: tuple, keepdims: bool):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.shape = x.shape
        self.n = int(np.prod([x.shape[a] for a in self.axes]))
        return np.asarray(x.mean(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy):
        g = _expand(gy, self.axes, self.keepdims) / np.asarray(self.n, dtype=gy.dtype)
        return (np.broadcast_to(g, self.shape),)


class Max(Function):
    """y = max of x over ``axes``.

    gx = gy where x equals the max, 0 elsewhere; ties share gy equally (the subgradient that
    keeps the total equal to gy, as PyTorch's ``amax`` does).
    """

    def __init__(self, axes: tuple, keepdims: bool):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.x = x
        self.y = x.max(axis=self.axes, keepdims=True)
        return self.y if self.keepdims else np.squeeze(self.y, axis=self.axes)

    def backward(self, gy):
        mask = self.x == self.y
        count = mask.sum(axis=self.axes, keepdims=True)
        return (mask * (_expand(gy, self.axes, self.keepdims) / count).astype(gy.dtype),)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors numpy
    """Sum over ``axis`` (None: all axes)."""
    x = as_tensor(x)
    return Sum(_axes(axis, x.ndim), keepdims).apply(x)


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (None: all axes)."""
    x = as_tensor(x)
    return Mean(_axes(axis, x.ndim), keepdims).apply(x)


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors numpy
    """Maximum over ``axis`` (None: all axes)."""
    x = as_tensor(x)
    if x.size == 0:
        raise ValueError(f"max: cannot reduce an empty tensor; received shape {x.shape}")
    return Max(_axes(axis, x.ndim), keepdims).apply(x)
