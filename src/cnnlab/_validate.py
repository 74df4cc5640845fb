"""The argument checks every layer of cnnlab shares (private; the bottom layer, imports NumPy only).

One place for each rule, so that the same mistake gets the same message wherever it is made:

* :func:`check_positive_int`: an int >= 1 (``bool`` is refused: ``True`` is not a size);
* :func:`as_generator`: a seed (None, an int >= 0, a ``SeedSequence``) or a
  ``numpy.random.Generator`` (used as is, so a caller can share one stream between layers);
* :func:`name_matches`: the dotted-name prefix rule of ``freeze``, ``load_pretrained`` and
  ``--freeze`` (``features`` covers ``features.0.weight``, not ``features_extra.w``).

Each error names where it happened (``where``: the op, layer or function) and what was received.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_generator", "check_positive_int", "is_int", "name_matches"]


def is_int(value) -> bool:
    """True for Python and NumPy integers, False for bools (``True`` is not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_positive_int(value, name: str, where: str) -> int:
    """``value`` as an int >= 1, else a ValueError naming ``where`` and the argument.

    >>> check_positive_int(3, "size", "MaxPool2D")
    3
    """
    if not is_int(value) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int; received {name}={value!r}")
    return int(value)


def as_generator(seed, where: str, name: str = "seed") -> np.random.Generator:
    """A ``numpy.random.Generator`` from ``seed``.

    None: fresh entropy from the operating system; an int >= 0 or a ``SeedSequence``: a new
    Generator seeded with it (the same seed, the same numbers); a Generator: itself.

    >>> bool(as_generator(0, "demo").integers(10) == as_generator(0, "demo").integers(10))
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if is_int(seed):
        if seed < 0:
            raise ValueError(f"{where}: an int seed must be >= 0; received {name}={seed}")
        return np.random.default_rng(int(seed))
    shown = repr(seed) if isinstance(seed, (str, numbers.Number)) else type(seed).__name__
    raise TypeError(
        f"{where}: {name} must be an int, None or a numpy.random.Generator; received {shown}"
    )


def name_matches(name: str, prefix: str) -> bool:
    """True when the dotted ``name`` is ``prefix`` or lies under it.

    '' matches everything; a prefix ending in '.' is a plain string prefix.

    >>> name_matches("features.0.weight", "features"), name_matches("features_x.w", "features")
    (True, False)
    """
    if prefix == "" or prefix.endswith("."):
        return name.startswith(prefix)
    return name == prefix or name.startswith(prefix + ".")
