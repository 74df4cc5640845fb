"""Weight initializers.

Each random initializer is ``name(shape, rng=None, *, fan_in=None, fan_out=None,
dtype=np.float32)`` and returns a new ndarray. ``rng`` is a seed (int), a
``numpy.random.Generator`` (draws advance it) or None (fresh entropy: different every call).
The same seed gives the same array.

Fans are computed from the shape (override them with ``fan_in=``/``fan_out=``):

* dense weight ``(in, out)``: fan_in = in, fan_out = out;
* conv weight HWIO ``(kh, kw, in/groups, out)``: fan_in = kh*kw*(in/groups) (the inputs one
  output unit sees), fan_out = kh*kw*out (as PyTorch);
* a vector ``(n,)``: fan_in = fan_out = n.

| initializer | distribution | scale |
|---|---|---|
| ``he_normal`` | N(0, std^2) | std = sqrt(2 / fan_in) (ReLU nets; He et al. 2015) |
| ``he_uniform`` | U(-a, a) | a = sqrt(6 / fan_in) |
| ``xavier_normal`` (``glorot_normal``) | N(0, std^2) | std = sqrt(2 / (fan_in + fan_out)) |
| ``xavier_uniform`` (``glorot_uniform``) | U(-a, a) | a = sqrt(6 / (fan_in + fan_out)) |
| ``lecun_normal`` | N(0, std^2) | std = sqrt(1 / fan_in) (tanh/SELU; the notes' "Xavier") |
| ``lecun_uniform`` | U(-a, a) | a = sqrt(3 / fan_in) |
| ``zeros``, ``ones``, ``constant(value)`` | | |

The normals are plain (not truncated) Gaussians, as ``np.random.randn(...) * sqrt(2 / n)`` in
the course notes. Layer defaults: Conv2D and Dense weights ``he_normal``, their biases zeros;
batch-norm gamma ones and beta zeros.

>>> he_normal((3, 3, 16, 32), rng=0).shape
(3, 3, 16, 32)
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from cnnlab._validate import as_generator

__all__ = [
    "fans",
    "he_normal",
    "he_uniform",
    "xavier_normal",
    "xavier_uniform",
    "glorot_normal",
    "glorot_uniform",
    "lecun_normal",
    "lecun_uniform",
    "zeros",
    "ones",
    "constant",
    "get",
]


def _shape(shape, name: str) -> tuple:
    if isinstance(shape, numbers.Integral):
        shape = (int(shape),)
    try:
        shape = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{name}: shape must be a tuple of ints; received {shape!r}") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"{name}: shape must not have negative sizes; received {shape}")
    return shape


def _rng(rng, name: str) -> np.random.Generator:
    return as_generator(rng, name, "rng")


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape (dense (in, out) or conv HWIO).

    >>> fans((5, 5, 3, 6))
    (75, 150)
    >>> fans((400, 120))
    (400, 120)
    """
    shape = _shape(shape, "fans")
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])  # kh * kw for conv, 1 for dense
    return receptive * shape[-2], receptive * shape[-1]


def _fan_values(shape, fan_in, fan_out, name: str) -> tuple[int, int]:
    f_in, f_out = fans(shape)
    f_in = f_in if fan_in is None else fan_in
    f_out = f_out if fan_out is None else fan_out
    if f_in <= 0 or f_out <= 0:
        raise ValueError(
            f"{name}: fan_in and fan_out must be positive; received fan_in={f_in}, "
            f"fan_out={f_out} for shape {tuple(shape)}"
        )
    return f_in, f_out


def _normal(name: str, variance):
    def init(shape, rng=None, *, fan_in=None, fan_out=None, dtype=np.float32):
        shape = _shape(shape, name)
        f_in, f_out = _fan_values(shape, fan_in, fan_out, name)
        std = math.sqrt(variance(f_in, f_out))
        return (_rng(rng, name).standard_normal(shape) * std).astype(dtype)

    init.__name__ = init.__qualname__ = name
    return init


def _uniform(name: str, limit_squared):
    def init(shape, rng=None, *, fan_in=None, fan_out=None, dtype=np.float32):
        shape = _shape(shape, name)
        f_in, f_out = _fan_values(shape, fan_in, fan_out, name)
        limit = math.sqrt(limit_squared(f_in, f_out))
        return _rng(rng, name).uniform(-limit, limit, size=shape).astype(dtype)

    init.__name__ = init.__qualname__ = name
    return init


he_normal = _normal("he_normal", lambda fi, fo: 2.0 / fi)
he_normal.__doc__ = "He normal: N(0, 2 / fan_in). The default for Conv2D and Dense weights."
he_uniform = _uniform("he_uniform", lambda fi, fo: 6.0 / fi)
he_uniform.__doc__ = "He uniform: U(-sqrt(6 / fan_in), sqrt(6 / fan_in)); variance 2 / fan_in."
xavier_normal = _normal("xavier_normal", lambda fi, fo: 2.0 / (fi + fo))
xavier_normal.__doc__ = "Xavier/Glorot normal: N(0, 2 / (fan_in + fan_out))."
xavier_uniform = _uniform("xavier_uniform", lambda fi, fo: 6.0 / (fi + fo))
xavier_uniform.__doc__ = (
    "Xavier/Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Keras's default)."
)
lecun_normal = _normal("lecun_normal", lambda fi, fo: 1.0 / fi)
lecun_normal.__doc__ = "LeCun normal: N(0, 1 / fan_in) (the course notes' 'Xavier' for tanh)."
lecun_uniform = _uniform("lecun_uniform", lambda fi, fo: 3.0 / fi)
lecun_uniform.__doc__ = "LeCun uniform: U(-sqrt(3 / fan_in), sqrt(3 / fan_in)); variance 1/fan_in."
glorot_normal = xavier_normal
glorot_uniform = xavier_uniform


def constant(shape, value: float = 0.0, rng=None, *, fan_in=None, fan_out=None,
             dtype=np.float32) -> np.ndarray:
    """Every entry ``value`` (``rng`` and the fans are accepted and ignored)."""
    return np.full(_shape(shape, "constant"), value, dtype=dtype)


def zeros(shape, rng=None, *, fan_in=None, fan_out=None, dtype=np.float32) -> np.ndarray:
    """All zeros (the default for biases and batch-norm beta)."""
    return np.zeros(_shape(shape, "zeros"), dtype=dtype)


def ones(shape, rng=None, *, fan_in=None, fan_out=None, dtype=np.float32) -> np.ndarray:
    """All ones (the default for batch-norm gamma)."""
    return np.ones(_shape(shape, "ones"), dtype=dtype)


_BY_NAME = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "zeros": zeros,
    "ones": ones,
}


def get(init, layer: str = "init"):
    """An initializer from its name, or ``init`` itself when it is callable.

    A callable must accept ``(shape, rng, *, fan_in=..., fan_out=..., dtype=...)`` or
    ``(shape, rng)``; a number ``c`` means ``constant(value=c)``.
    """
    if callable(init):
        return init
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        return functools.partial(constant, value=float(init))
    if isinstance(init, str) and init.lower() in _BY_NAME:
        return _BY_NAME[init.lower()]
    raise ValueError(
        f"{layer}: unknown initializer {init!r}; use one of {sorted(_BY_NAME)}, a number or a "
        f"function (shape, rng) -> ndarray"
    )


def call(init, shape, rng, fan_in, fan_out, dtype, layer: str) -> np.ndarray:
    """Run initializer ``init`` and check it returned the right shape (used by the layers)."""
    fn = get(init, layer)
    try:
        value = fn(shape, rng=rng, fan_in=fan_in, fan_out=fan_out, dtype=dtype)
    except TypeError:  # a plain (shape, rng) function
        value = fn(shape, rng)
    value = np.asarray(value, dtype=dtype)
    if value.shape != tuple(shape):
        raise ValueError(
            f"{layer}: the initializer returned shape {value.shape}; needed {tuple(shape)}"
        )
    return value
