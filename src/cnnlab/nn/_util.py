"""Checks shared by the layers' constructors and forward passes (private)."""

from __future__ import annotations

import numpy as np

from cnnlab._validate import as_generator, check_positive_int
from cnnlab.ops.geometry import pair

__all__ = [
    "positive_int",
    "positive_pair",
    "check_padding",
    "float_dtype",
    "as_rng",
    "check_input",
    "fmt_pair",
]


def positive_int(value, name: str, layer: str) -> int:
    """``value`` as an int >= 1, else a ValueError naming the layer and the argument."""
    return check_positive_int(value, name, layer)


def positive_pair(value, name: str, layer: str) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1, as (for height, for width)."""
    return pair(value, name, layer, minimum=1)


def check_padding(padding, layer: str):
    """'valid', 'same', 'full', an int >= 0 or a pair of them; returned normalised."""
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same", "full"):
            raise ValueError(
                f"{layer}: padding must be 'valid', 'same', 'full', an int or a pair of ints; "
                f"received {padding!r}"
            )
        return padding.lower()
    ph, pw = pair(padding, "padding", layer, minimum=0)
    return ph if ph == pw else (ph, pw)


def float_dtype(dtype, layer: str) -> np.dtype:
    """float32 or float64, else a TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{layer}: dtype must be float32 or float64; received {dtype!r}")
    return dt


def as_rng(seed, layer: str) -> np.random.Generator:
    """A numpy Generator from a seed (int or None) or a Generator (used as is)."""
    return as_generator(seed, layer)


def check_input(x, layer: str, ndim: int, layout: str, channels: int | None = None) -> None:
    """ValueError naming the layer unless ``x`` has ``ndim`` axes and ``channels`` last."""
    shape = tuple(x.shape)
    if len(shape) != ndim:
        raise ValueError(f"{layer}: expected a {ndim}-D input {layout}; received shape {shape}")
    if channels is not None and shape[-1] != channels:
        raise ValueError(
            f"{layer}: expected {channels} channels on the last axis of {layout}; "
            f"received shape {shape}"
        )


def fmt_pair(value) -> str:
    """(3, 3) -> '3'; (3, 1) -> '(3, 1)'; anything else repr'd."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return repr(value[0])
    return repr(value)
