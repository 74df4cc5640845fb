"""Elementwise arithmetic with broadcasting: + - * / ** and unary -, exp, log, sqrt.

Each gradient is the local derivative times gy, summed back to the input's shape where
broadcasting stretched the input (``unbroadcast``).
"""

from __future__ import annotations

import numpy as np

from cnnlab.ops._util import as_tensor, unbroadcast
from cnnlab.tensor import Function, Tensor

__all__ = ["add", "sub", "mul", "div", "power", "neg", "exp", "log", "sqrt"]


def _pair(a, b) -> tuple[Tensor, Tensor]:
    """Both operands as tensors; a Python number takes the other operand's float dtype."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    b = as_tensor(b)
    return as_tensor(a, like=b), b


class Add(Function):
    """y = a + b.   ga = gy, gb = gy (each summed to its input's shape)."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        sa, sb = self.shapes
        return unbroadcast(gy, sa), unbroadcast(gy, sb)


class Sub(Function):
    """y = a - b.   ga = gy, gb = -gy."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        sa, sb = self.shapes
        gb = unbroadcast(-gy, sb) if self.needs_grad[1] else None
        return unbroadcast(gy, sa), gb


class Mul(Function):
    """y = a * b.   ga = gy * b, gb = gy * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        ga = unbroadcast(gy * self.b, self.a.shape) if self.needs_grad[0] else None
        gb = unbroadcast(gy * self.a, self.b.shape) if self.needs_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b.   ga = gy / b, gb = -gy * a / b**2 = -gy * y / b."""

    def forward(self, a, b):
        self.a_shape, self.b = a.shape, b
        self.y = a / b
        return self.y

    def backward(self, gy):
        ga = unbroadcast(gy / self.b, self.a_shape) if self.needs_grad[0] else None
        gb = unbroadcast(-gy * self.y / self.b, self.b.shape) if self.needs_grad[1] else None
        return ga, gb


class Pow(Function):
    """y = x ** p for a constant p.   gx = gy * p * x ** (p - 1)."""

    def __init__(self, p: float):
        self.p = float(p)  # a Python float: x**p keeps x's dtype (an np.float64 p would upcast)

    def forward(self, x):
        self.x = x
        return x**self.p

    def backward(self, gy):
        return (gy * (self.p * self.x ** (self.p - 1)),)


class Neg(Function):
    """y = -x.   gx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return (-gy,)


class Exp(Function):
    """y = e**x.   gx = gy * y."""

    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, gy):
        return (gy * self.y,)


class Log(Function):
    """y = ln x.   gx = gy / x."""

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, gy):
        return (gy / self.x,)


class Sqrt(Function):
    """y = sqrt(x).   gx = gy / (2 y)."""

    def forward(self, x):
        self.y = np.sqrt(x)
        return self.y

    def backward(self, gy):
        return (gy / (2 * self.y),)


class Cast(Function):
    """y = x converted to another float dtype.   gx = gy converted back."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.src = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return (gy.astype(self.src),)


def add(a, b) -> Tensor:
    """Elementwise a + b with broadcasting."""
    return Add().apply(*_pair(a, b))


def sub(a, b) -> Tensor:
    """Elementwise a - b with broadcasting."""
    return Sub().apply(*_pair(a, b))


def mul(a, b) -> Tensor:
    """Elementwise a * b with broadcasting."""
    return Mul().apply(*_pair(a, b))


def div(a, b) -> Tensor:
    """Elementwise a / b with broadcasting."""
    return Div().apply(*_pair(a, b))


def power(x, p) -> Tensor:
    """x ** p for a constant exponent p (a number; a tensor exponent is not supported)."""
    if isinstance(p, Tensor):
        raise TypeError("power: the exponent must be a number; received a Tensor")
    if np.ndim(p) != 0 or not np.isreal(p):
        raise TypeError(f"power: the exponent must be a real number; received {p!r}")
    return Pow(p).apply(as_tensor(x))


def neg(x) -> Tensor:
    return Neg().apply(as_tensor(x))


def exp(x) -> Tensor:
    return Exp().apply(as_tensor(x))


def log(x) -> Tensor:
    return Log().apply(as_tensor(x))


def sqrt(x) -> Tensor:
    return Sqrt().apply(as_tensor(x))
