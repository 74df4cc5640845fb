"""A small schema language for the JSON that cnnlab reads back (config.json, checkpoint
metadata): each field's type and range, checked before anything uses the value.

A value that is present but wrong is an error, never a silent default. ``check(value, spec)``
returns the value (ints as int, numbers as float) or raises :class:`SchemaError`, whose message
names the field by its path (``optimizer.groups[0].lr``), what it must be, and what was received;
the caller puts the file's name in front.

>>> check({"lr": 0.1}, Dict({"lr": Num(low=0)}))
{'lr': 0.1}
"""

from __future__ import annotations

import json
import math

__all__ = ["SchemaError", "check", "loads", "Int", "Num", "Str", "Bool", "List", "Dict", "Map",
           "Json", "MAX_DEPTH"]

MAX_DEPTH = 32  # nesting of any JSON document cnnlab writes is below 10


class SchemaError(ValueError):
    """A JSON value does not fit its schema; the message is one line naming the field."""


def _show(value) -> str:
    text = json.dumps(value) if _plain(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _fail(where: str, expect: str, value):
    raise SchemaError(f"field {where or '<top>'!r} must be {expect}; received {_show(value)}")


class Int:
    """An integer (not a bool, not 3.0) in [low, high]; ``null`` only when nullable."""

    def __init__(self, low=None, high=None, nullable=False):
        self.low, self.high, self.nullable = low, high, nullable

    def describe(self) -> str:
        rng = (f" >= {self.low}" if self.high is None else f" in [{self.low}, {self.high}]"
               ) if self.low is not None else ""
        return f"an integer{rng}" + (" or null" if self.nullable else "")

    def check(self, value, where):
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(where, self.describe(), value)
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            _fail(where, self.describe(), value)
        return value


class Num:
    """A finite number (ints accepted) with ``low <= x`` (``low < x`` when ``open_low``) and
    ``x < high`` (``x <= high`` when ``closed_high``)."""

    def __init__(self, low=None, high=None, nullable=False, open_low=False, closed_high=False,
                 finite=True):
        self.low, self.high, self.nullable = low, high, nullable
        self.open_low, self.closed_high, self.finite = open_low, closed_high, finite

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<=' if self.closed_high else '<'} {self.high}")
        text = ("a finite number" if self.finite else "a number") + (
            " " + " and ".join(parts) if parts else "")
        return text + (" or null" if self.nullable else "")

    def check(self, value, where):
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, self.describe(), value)
        x = float(value)
        bad = self.finite and not math.isfinite(x)
        if self.low is not None and not bad:
            bad = x <= self.low if self.open_low else x < self.low
        if self.high is not None and not bad:
            bad = x > self.high if self.closed_high else x >= self.high
        if bad:
            _fail(where, self.describe(), value)
        return x


class Str:
    """A string (one of ``choices`` when given), at most ``max_len`` characters."""

    def __init__(self, choices=None, nullable=False, max_len=4096):
        self.choices, self.nullable, self.max_len = choices, nullable, max_len

    def describe(self) -> str:
        text = (f"one of {', '.join(map(repr, self.choices))}" if self.choices is not None
                else "a string")
        return text + (" or null" if self.nullable else "")

    def check(self, value, where):
        if value is None and self.nullable:
            return None
        if not isinstance(value, str) or len(value) > self.max_len or (
                self.choices is not None and value not in self.choices):
            _fail(where, self.describe(), value)
        return value


class Bool:
    def __init__(self, nullable=False):
        self.nullable = nullable

    def describe(self) -> str:
        return "true or false" + (" or null" if self.nullable else "")

    def check(self, value, where):
        if value is None and self.nullable:
            return value
        if not isinstance(value, bool):
            _fail(where, self.describe(), value)
        return value


class List:
    """A list of ``item``s, with ``min_len <= len <= max_len``."""

    def __init__(self, item, min_len=0, max_len=None, nullable=False):
        self.item, self.min_len, self.max_len, self.nullable = item, min_len, max_len, nullable

    def describe(self) -> str:
        size = (f"{self.min_len} " if self.min_len == self.max_len else "")
        return f"a list of {size}{self.item.describe()}" + (" or null" if self.nullable else "")

    def check(self, value, where):
        if value is None and self.nullable:
            return None
        if not isinstance(value, list) or len(value) < self.min_len or (
                self.max_len is not None and len(value) > self.max_len):
            _fail(where, self.describe(), value)
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


class Dict:
    """An object with the named ``fields`` (all required except those in ``optional``).

    Keys not named are an error, unless ``rest`` is a spec they are checked against.
    """

    def __init__(self, fields, optional=(), rest=None, nullable=False):
        self.fields, self.optional, self.rest = fields, set(optional), rest
        self.nullable = nullable

    def describe(self) -> str:
        return "an object" + (" or null" if self.nullable else "")

    def check(self, value, where):
        if value is None and self.nullable:
            return None
        if not isinstance(value, dict):
            _fail(where, self.describe(), value)
        prefix = f"{where}." if where else ""
        out = {}
        for key, spec in self.fields.items():
            if key not in value:
                if key in self.optional:
                    continue
                raise SchemaError(f"field {prefix + key!r} is missing; it must be "
                                  f"{spec.describe()}")
            out[key] = spec.check(value[key], prefix + key)
        for key in value:
            if key in self.fields:
                continue
            if self.rest is None:
                raise SchemaError(f"unknown field {prefix + key!r} (known fields: "
                                  f"{', '.join(self.fields)})")
            out[key] = self.rest.check(value[key], prefix + key)
        return out


class Map:
    """An object whose keys are any strings and whose values all fit ``value``."""

    def __init__(self, value, max_len=100_000):
        self.value, self.max_len = value, max_len

    def describe(self) -> str:
        return f"an object of {self.value.describe()}"

    def check(self, value, where):
        if not isinstance(value, dict) or len(value) > self.max_len:
            _fail(where, self.describe(), value)
        prefix = f"{where}." if where else ""
        return {k: self.value.check(v, prefix + k) for k, v in value.items()}


class Json:
    """Any JSON value nested at most ``depth`` levels (state that another component checks)."""

    def __init__(self, depth=8):
        self.depth = depth

    def describe(self) -> str:
        return f"JSON nested at most {self.depth} levels"

    def check(self, value, where):
        if _depth(value, self.depth + 1) > self.depth:
            _fail(where, self.describe(), value)
        return value


def _depth(value, limit: int) -> int:
    """Nesting depth of a JSON value (a scalar is 0), counted no further than ``limit``."""
    if limit <= 0 or not isinstance(value, (dict, list)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


def check(value, spec, where: str = ""):
    """``value`` checked against ``spec`` (returns the checked value; raises SchemaError)."""
    return spec.check(value, where)


def loads(data: bytes, max_depth: int = MAX_DEPTH, allow_nan: bool = False):
    """Parse UTF-8 JSON bytes, refusing nesting past ``max_depth`` and (unless ``allow_nan``)
    the NaN/Infinity literals that Python's json writes for non-finite floats.

    Raises SchemaError with a one-line reason.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SchemaError(f"not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})"
                          ) from None

    def refuse(name):
        raise SchemaError(f"not valid JSON: {name} is not a JSON number")

    try:
        value = json.loads(text, parse_constant=None if allow_nan else refuse)
    except json.JSONDecodeError as e:
        raise SchemaError(f"not valid JSON ({e})") from None
    except RecursionError:
        raise SchemaError(f"JSON nested deeper than {max_depth} levels") from None
    if _depth(value, max_depth + 1) > max_depth:
        raise SchemaError(f"JSON nested deeper than {max_depth} levels")
    return value
