"""Activations: relu, leaky_relu, sigmoid, tanh, softmax, log_softmax.

In the notation of the course notes an activation maps Z to A = g(Z), and its backward step is
dZ = dA * g'(Z) (elementwise activations) or dZ = J^T dA (softmax, whose Jacobian couples the
entries along ``axis``). Here x is Z, y is A, gy is dA and gx is dZ.

Every op keeps the dtype of its input (float32 stays float32: masks are cast to x.dtype before
they multiply), and sigmoid, softmax and log_softmax are written so that no exp can overflow,
whatever the input.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from cnnlab.ops._util import as_tensor, check_float
from cnnlab.tensor import Function, Tensor

__all__ = ["leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]


def _exp_nonpositive(z: np.ndarray) -> np.ndarray:
    """exp(z) for z <= 0: the result lies in [0, 1], so it cannot overflow.

    A very negative z underflows to 0 (or a subnormal), which is the right answer; the underflow
    flag is silenced so that a caller running under ``np.errstate(all="raise")`` sees nothing.
    """
    with np.errstate(under="ignore"):
        return np.exp(z)


def _check_axis(op: str, x: Tensor, axis) -> int:
    """``axis`` as a non-negative int, or an error naming the op, the axis and x.shape."""
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"{op}: axis must be an int; received {axis!r}")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(
            f"{op}: axis must be an int; received {type(axis).__name__} {axis!r}"
        ) from None
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"{op}: axis {axis} is out of range for a tensor with {x.ndim} axes "
            f"(valid: {-x.ndim} to {x.ndim - 1}); received x.shape={x.shape}"
        )
    return axis % x.ndim


# --------------------------------------------------------------------------------- ReLU family
def relu_array(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0) on arrays; ``out=x`` (C-contiguous) computes it in place.

    Taken row by row, (N, everything else), against a row of zeros rather than the scalar 0:
    NumPy 2.4's maximum with a scalar runs a loop ~2.5x slower than its two-array one (LeNet-5's
    first ReLU, 602k floats: 221 us against 86 us; rows of (N*H, W*C) 132 us).
    """
    if x.ndim < 2 or x.size == 0:
        return np.maximum(x, x.dtype.type(0), out=out)
    rows = x.reshape(x.shape[0], -1)
    zeros = np.zeros(rows.shape[1], x.dtype)
    if out is None:
        return np.maximum(rows, zeros).reshape(x.shape)
    np.maximum(rows, zeros, out=out.reshape(rows.shape))  # a view: out is C-contiguous
    return out


class ReLU(Function):
    """y = max(0, x).   gx = gy * 1{x > 0}   (dZ = dA * (Z > 0); 0 at the kink x = 0)."""

    def forward(self, x):
        self.mask = x > 0  # cache: where the unit is active (bool, 1 byte a value)
        return relu_array(x)

    def backward(self, gy):
        return (gy * self.mask.astype(gy.dtype),)


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x.   gx = gy * (1 if x > 0 else slope).

    Both are a product with the local derivative d = g'(x) (1 where x > 0, slope elsewhere), so
    forward computes d once, keeps it and returns x * d.
    """

    def __init__(self, slope: float):
        self.slope = slope

    def forward(self, x):
        slope = x.dtype.type(self.slope)  # a scalar of x's dtype: no float64 upcast
        pos = x > 0
        # d = 1*pos + slope*(not pos), exact either way (1 + slope*0, 0 + slope*1); arithmetic
        # on masks is several times faster than np.where on random signs (no branches)
        d = pos.astype(x.dtype)
        d += slope * (~pos).astype(x.dtype)
        self.d = d  # cache: g'(Z), 1 or slope (x = 0 gets slope, as in PyTorch)
        return x * d

    def backward(self, gy):
        return (gy * self.d,)


# --------------------------------------------------------------------------------- S-shaped
class Sigmoid(Function):
    """y = 1 / (1 + e^-x).   gx = gy * y * (1 - y)   (dZ = dA * A(1 - A)).

    Stable form: with e = exp(-|x|) in [0, 1], y = 1 / (1 + e) for x >= 0 and e / (1 + e) for
    x < 0 (the same value, e^x / (1 + e^x)); the exponent is never positive, so nothing
    overflows for any x.
    """

    def forward(self, x):
        e = _exp_nonpositive(-np.abs(x))  # exp(-|x|), in [0, 1]
        # numerator: 1 where x >= 0, e where x < 0; max(e, 1{x >= 0}) picks it without branches
        num = np.maximum(e, (x >= 0).astype(x.dtype))
        y = num / (1 + e)
        self.y = y  # cache: A
        return y

    def backward(self, gy):
        y = self.y
        return (gy * (y * (1 - y)),)


class Tanh(Function):
    """y = tanh(x).   gx = gy * (1 - y^2)   (dZ = dA * (1 - A^2))."""

    def forward(self, x):
        self.y = np.tanh(x)  # cache: A
        return self.y

    def backward(self, gy):
        y = self.y
        return (gy * (1 - y * y),)


# --------------------------------------------------------------------------------- softmax
class Softmax(Function):
    """y_i = e^(x_i - m) / sum_j e^(x_j - m) along ``axis``, m = max_j x_j (for stability).

    gx = y * (gy - sum(gy * y, axis, keepdims))   (the Jacobian diag(y) - y y^T applied to gy).
    """

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        # initial=-inf makes the max of an empty axis -inf instead of an error
        m = x.max(axis=self.axis, keepdims=True, initial=-np.inf)  # (..., 1, ...)
        e = _exp_nonpositive(x - m)  # in [0, 1]; the largest entry of each slice is 1
        y = e / e.sum(axis=self.axis, keepdims=True)
        self.y = y  # cache
        return y

    def backward(self, gy):
        y = self.y
        dot = (gy * y).sum(axis=self.axis, keepdims=True)  # <gy, y> per slice: (..., 1, ...)
        return (y * (gy - dot),)


class LogSoftmax(Function):
    """y = x - m - log(sum_j e^(x_j - m)) along ``axis``, m = max_j x_j.

    gx = gy - softmax(x) * sum(gy, axis, keepdims).
    """

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        m = x.max(axis=self.axis, keepdims=True, initial=-np.inf)  # (..., 1, ...)
        if x.shape[self.axis] == 0:  # an empty axis: nothing to normalise, and no log(0)
            self.e, self.s = x, np.ones_like(m)
            return x.copy()
        z = x - m  # <= 0
        e = _exp_nonpositive(z)
        s = e.sum(axis=self.axis, keepdims=True)  # >= 1 on a non-empty slice: log is safe
        self.e, self.s = e, s  # cache: softmax(x) = e / s
        return z - np.log(s)

    def backward(self, gy):
        softmax = self.e / self.s
        return (gy - softmax * gy.sum(axis=self.axis, keepdims=True),)


# --------------------------------------------------------------------------------- public face
def relu(x) -> Tensor:
    """Rectified linear unit, elementwise.

    Forward:  y = max(0, x)   (A = max(0, Z)).
    Gradient: gx = gy * (x > 0)   (dZ = dA * 1{Z > 0}); the gradient at x = 0 is taken as 0.

    Shape:
        x: any shape (*).  y, gx: the same shape as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.relu(cl.tensor(np.zeros((2, 3)))).shape
    (2, 3)
    """
    x = as_tensor(x)
    check_float("relu", "x", x)
    return ReLU().apply(x)


def leaky_relu(x, slope: float = 0.01) -> Tensor:
    """Leaky rectified linear unit, elementwise.

    Forward:  y = x if x > 0 else slope * x.
    Gradient: gx = gy * (1 if x > 0 else slope)   (dZ = dA * g'(Z)); at x = 0 the slope is used.

    Args:
        x: a floating-point tensor.
        slope: the slope for x <= 0 (``negative_slope`` in PyTorch); a finite real number.

    Shape:
        x: any shape (*).  y, gx: the same shape as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.leaky_relu(cl.tensor(np.zeros((4, 5))), slope=0.2).shape
    (4, 5)
    """
    x = as_tensor(x)
    check_float("leaky_relu", "x", x)
    if isinstance(slope, (bool, np.bool_)) or not isinstance(slope, numbers.Real):
        raise TypeError(
            f"leaky_relu: slope must be a real number; received {type(slope).__name__} {slope!r}"
        )
    if not math.isfinite(slope):
        raise ValueError(f"leaky_relu: slope must be finite; received slope={slope!r}")
    return LeakyReLU(float(slope)).apply(x)


def sigmoid(x) -> Tensor:
    """Logistic sigmoid, elementwise, computed without overflow for any x.

    Forward:  y = 1 / (1 + e^-x)   (A = sigma(Z)).
    Gradient: gx = gy * y * (1 - y)   (dZ = dA * A (1 - A)).

    Shape:
        x: any shape (*).  y, gx: the same shape as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.sigmoid(cl.tensor(np.zeros((2, 3)))).shape
    (2, 3)
    """
    x = as_tensor(x)
    check_float("sigmoid", "x", x)
    return Sigmoid().apply(x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent, elementwise.

    Forward:  y = tanh(x) = (e^x - e^-x) / (e^x + e^-x)   (A = tanh(Z)).
    Gradient: gx = gy * (1 - y^2)   (dZ = dA * (1 - A^2)).

    Shape:
        x: any shape (*).  y, gx: the same shape as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.tanh(cl.tensor(np.zeros((2, 3)))).shape
    (2, 3)
    """
    x = as_tensor(x)
    check_float("tanh", "x", x)
    return Tanh().apply(x)


def softmax(x, axis: int = -1) -> Tensor:
    """Softmax along one axis: entries become positive and sum to 1 over that axis.

    Forward:  y_i = e^(x_i - m) / sum_j e^(x_j - m), m = max_j x_j (subtracting the max changes
    nothing mathematically and keeps every exponent <= 0, so nothing overflows).
    Gradient: gx = y * (gy - sum(gy * y, axis, keepdims))   (dZ = A * (dA - sum(dA * A))).

    Args:
        x: a floating-point tensor with at least one axis.
        axis: the axis whose entries are normalised (default the last, the classes).

    Shape:
        x: any shape (*) with ndim >= 1.  y, gx: the same shape as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.softmax(cl.tensor(np.zeros((2, 10)))).shape
    (2, 10)
    """
    x = as_tensor(x)
    check_float("softmax", "x", x)
    return Softmax(_check_axis("softmax", x, axis)).apply(x)


def log_softmax(x, axis: int = -1) -> Tensor:
    """Logarithm of the softmax along one axis, computed without forming the softmax.

    Forward:  y = x - m - log(sum_j e^(x_j - m)), m = max_j x_j (log-sum-exp; stable for any x,
    and exact where one entry dominates: log_softmax([1000, 0, -1000]) = [0, -1000, -2000]).
    Gradient: gx = gy - softmax(x) * sum(gy, axis, keepdims).

    Args:
        x: a floating-point tensor with at least one axis.
        axis: the axis whose entries are normalised (default the last, the classes).

    Shape:
        x: any shape (*) with ndim >= 1.  y, gx: the same shape as x.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab import functional as F
    >>> F.log_softmax(cl.tensor(np.zeros((2, 10))), axis=1).shape
    (2, 10)
    """
    x = as_tensor(x)
    check_float("log_softmax", "x", x)
    return LogSoftmax(_check_axis("log_softmax", x, axis)).apply(x)
