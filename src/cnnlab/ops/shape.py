"""Shape operations: reshape, transpose, flatten, indexing, concat, stack, pad.

None of them changes a value, so each backward only routes gy back to where the value came from.
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops._util import as_tensor
from cnnlab.tensor import Function, Tensor

__all__ = ["reshape", "transpose", "flatten", "getitem", "concat", "stack", "pad"]


class Reshape(Function):
    """y = x viewed with a new shape.   gx = gy reshaped to x's shape."""

    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                f"into {self.shape}"
            ) from None

    def backward(self, gy):
        return (gy.reshape(self.in_shape),)


class Transpose(Function):
    """y = x with axes permuted.   gx = gy with the inverse permutation."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(self.axes)
        if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(
                f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                f"of a tensor of shape {x.shape}"
            )
        self.perm = tuple(a % x.ndim for a in axes)  # cache; -1 -> ndim-1: argsort inverts it
        return x.transpose(self.perm)

    def backward(self, gy):
        return (gy.transpose(np.argsort(self.perm)),)


class GetItem(Function):
    """y = x[index].   gx = zeros like x with gy added at x[index] (repeated indices add)."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        gx = np.zeros(self.shape, dtype=self.dtype)
        if _is_basic(self.index):  # a view: every element of x appears at most once in it
            gx[self.index] = gy
        else:  # integer arrays may repeat an element: add, don't overwrite
            np.add.at(gx, self.index, gy)
        return (gx,)


def _is_basic(index) -> bool:
    """True for NumPy basic indexing (ints, slices, None, ...), which never repeats an element.

    np.add.at handles repeats but is ~10x slower: ResNet-20's x[:, ::2, ::2] shortcut took 5 ms
    a backward with it, against ~0.5 ms for the plain assignment.
    """
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None
        or i is Ellipsis
        or (isinstance(i, (slice, int, np.integer)) and not isinstance(i, (bool, np.bool_)))
        for i in items
    )


class Concat(Function):
    """y = the inputs joined along ``axis``.   Each gx is its slice of gy."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        self.bounds = np.cumsum([x.shape[self.axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(np.split(gy, self.bounds, axis=self.axis))


class Stack(Function):
    """y = the inputs stacked on a new ``axis``.   Each gx is gy indexed on that axis."""

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        return np.stack(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(np.moveaxis(gy, self.axis, 0))


class Pad(Function):
    """y = x with constant borders; ``widths`` is one (before, after) pair per axis.

    gx = the interior of gy (the padded cells received values that depend on no input).
    """

    def __init__(self, widths: tuple, value: float):
        self.widths, self.value = widths, value

    def forward(self, x):
        self.inner = tuple(slice(b, b + n) for (b, _), n in zip(self.widths, x.shape))
        # a filled array and one copy of x into it: np.pad does the same ~20x slower on the
        # small maps of a batch-1 network (its Python per axis)
        y = np.empty(tuple(n + b + a for (b, a), n in zip(self.widths, x.shape)), x.dtype)
        y[...] = self.value  # an assignment: a value the dtype cannot hold (NaN in ints) raises
        y[self.inner] = x
        return y

    def backward(self, gy):
        return (gy[self.inner],)


def reshape(x, shape) -> Tensor:
    """``x`` with a new shape (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return Reshape(shape).apply(as_tensor(x))


def transpose(x, axes=None) -> Tensor:
    """Permute the axes (None reverses them)."""
    return Transpose(axes).apply(as_tensor(x))


def flatten(x, start_axis: int = 1) -> Tensor:
    """Merge the axes from ``start_axis`` on: (N, H, W, C) -> (N, H*W*C) by default."""
    x = as_tensor(x)
    return reshape(x, x.shape[:start_axis] + (-1,))


def getitem(x, index) -> Tensor:
    """``x[index]``: slices, integers, integer arrays and boolean masks."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem(index).apply(as_tensor(x))


def concat(tensors, axis: int = -1) -> Tensor:
    """Join tensors along an existing axis (the channel axis by default)."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concat: needs at least one tensor; received none")
    ndim = tensors[0].ndim
    axis = axis % ndim
    for t in tensors[1:]:
        if t.ndim != ndim or t.shape[:axis] + t.shape[axis + 1 :] != (
            tensors[0].shape[:axis] + tensors[0].shape[axis + 1 :]
        ):
            raise ValueError(
                f"concat: all shapes must match except on axis {axis}; "
                f"received {[u.shape for u in tensors]}"
            )
    return Concat(axis).apply(*tensors)


def stack(tensors, axis: int = 0) -> Tensor:
    """Stack tensors of the same shape along a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor; received none")
    if len({t.shape for t in tensors}) != 1:
        raise ValueError(
            f"stack: all tensors must have the same shape; received {[t.shape for t in tensors]}"
        )
    return Stack(axis).apply(*tensors)


def pad(x, widths, value: float = 0.0) -> Tensor:
    """Pad with a constant: ``widths`` is ((before, after), ...) for every axis, or one int."""
    x = as_tensor(x)
    if isinstance(widths, int):
        widths = ((widths, widths),) * x.ndim
    widths = tuple((int(b), int(a)) for b, a in widths)
    if len(widths) != x.ndim or any(b < 0 or a < 0 for b, a in widths):
        raise ValueError(
            f"pad: widths must give one non-negative (before, after) pair per axis "
            f"({x.ndim} axes); received {widths}"
        )
    return Pad(widths, value).apply(x)
