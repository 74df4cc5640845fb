"""A small registry of ops for the generic tests (after PyTorch's OpInfo, without its size).

Each op family declares its ops once, in ``tests/ops/opinfo_<family>.py``, as a module-level list
``OPS`` of :class:`OpInfo`. ``tests/test_opinfo.py`` collects every such list and runs, for every
sample: a float64 gradient check (relative difference below 1e-7), a float32 run whose output and
gradients stay float32, and every declared error case with its pinned message.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    """Inputs of one call: ``args`` are arrays (floats become differentiable tensors) or other
    values; ``kwargs`` are passed as they are."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    name: str = ""
    # indices of args that must NOT be differentiated (labels, running statistics, masks)
    constant: tuple = ()


@dataclass
class ErrorCase:
    """A call that must raise ``error`` with a message matching the regex ``match``."""

    args: tuple
    kwargs: dict
    error: type
    match: str


@dataclass
class OpInfo:
    name: str
    fn: Callable
    # samples(rng) -> list[Sample]; arrays are float64 and small (gradcheck runs on them)
    samples: Callable
    errors: Callable = lambda: []  # () -> list[ErrorCase]; args may be Tensors or arrays
    gradcheck_tol: float = 1e-7
    # False for ops that are not differentiable everywhere on random inputs (none by default)
    check_float32: bool = True


def all_ops() -> list[OpInfo]:
    import tests.ops as family_pkg

    ops = []
    for info in pkgutil.iter_modules(family_pkg.__path__):
        if info.name.startswith("opinfo_"):
            module = importlib.import_module(f"tests.ops.{info.name}")
            ops.extend(module.OPS)
    return ops


def rng_normal(rng: np.random.Generator, *shape) -> np.ndarray:
    return rng.normal(size=shape)
