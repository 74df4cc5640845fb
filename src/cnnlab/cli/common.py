"""What every ``cnnlab`` command shares, below them all: the user-error type, turning the
library's errors into it, argparse value types, and writing JSON atomically.

The command modules import from here and never from each other's entry points, so the CLI's
imports run one way: ``main`` -> command modules -> ``loaders`` -> ``common``.
"""

from __future__ import annotations

import argparse
import contextlib
import json

__all__ = ["CLIError", "user_errors", "write_json", "int_at_least", "positive_int",
           "nonnegative_int", "nonnegative_float", "fraction"]


class CLIError(Exception):
    """A user mistake: printed as one line ``cnnlab: error: ...``, exit status 2."""


@contextlib.contextmanager
def user_errors():
    """Turn the library's errors about files and settings into CLIErrors (one line, exit 2)."""
    from cnnlab.data.errors import DataError
    from cnnlab.train.checkpoint import CheckpointError, WriteError
    from cnnlab.train.lock import LockedError

    try:
        yield
    except (DataError, CheckpointError, WriteError, LockedError, FileNotFoundError,
            ImportError) as e:
        raise CLIError(str(e)) from None


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically (a temporary file renamed into place)."""
    from cnnlab.train.checkpoint import atomic_write

    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


# ---------------------------------------------------------------- argparse value types
def int_at_least(low: int):
    """An argparse type: an integer >= ``low``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer; received {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}; received {value}")
        return value

    return parse


def positive_int(name=None):
    return int_at_least(1)


def nonnegative_int(name=None):
    return int_at_least(0)


def nonnegative_float(name=None):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number; received {text!r}") from None
        if not value >= 0:  # also rejects nan
            raise argparse.ArgumentTypeError(f"must be a number >= 0; received {text}")
        return value

    return parse


def fraction(name=None):
    def parse(text):
        value = nonnegative_float(name)(text)
        if value >= 1:
            raise argparse.ArgumentTypeError(f"must be in [0, 1); received {text}")
        return value

    return parse
