"""Satisficing constraints: ``METRIC OP NUMBER``, e.g. ``latency_ms<=100`` or ``dev_accuracy>=0.9``.

The course's satisficing metrics: a candidate is acceptable when every constraint holds; among
the acceptable ones an optimizing metric picks the best. ``cnnlab compare --satisfice`` and
``cnnlab tune --satisfice`` take this one syntax.

    >>> c = parse_constraint("latency_ms <= 100")
    >>> c.holds({"latency_ms": 95.0}), c.holds({"latency_ms": 1500.0})
    (True, False)
    >>> str(c)
    'latency_ms<=100'
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Constraint", "parse_constraint", "OPERATORS"]

# longest first, so that "<=" is not read as "<"
OPERATORS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt,
             ">": operator.gt}

_PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|<|>)\s*(\S+?)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op value``; ``holds(metrics)`` is False when the metric is missing or NaN."""

    metric: str
    op: str
    value: float

    def holds(self, metrics: Mapping) -> bool:
        got = metrics.get(self.metric)
        if got is None:
            return False
        got = float(got)
        return not math.isnan(got) and OPERATORS[self.op](got, self.value)

    def violation(self, metrics: Mapping) -> float:
        """How far the metric is on the wrong side (0 when it holds, inf when missing): the
        value Optuna's constraints function wants (<= 0 means satisfied)."""
        got = metrics.get(self.metric)
        if got is None or math.isnan(float(got)):
            return math.inf
        if self.holds(metrics):
            return 0.0
        return max(abs(float(got) - self.value), 1e-12)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_constraint(text: str, known: Iterable[str] | None = None) -> Constraint:
    """Read ``METRIC OP NUMBER`` (OP one of <=, <, >=, >, ==; the number may end in ``%``, read
    as a fraction). ``known``: the metric names accepted; an unknown one is an error that lists
    them. Raises ValueError with one line that names the text and what was expected."""
    if not isinstance(text, str):
        raise ValueError(f"a constraint must be text such as 'latency_ms<=100'; received {text!r}")
    m = _PATTERN.match(text)
    known = sorted(known) if known is not None else None
    if m is None:
        raise ValueError(
            f"constraint {text!r} is not METRIC OP NUMBER (OP one of <=, <, >=, >, ==), "
            "for example 'latency_ms<=100'"
            + (f"; known metrics: {', '.join(known)}" if known else ""))
    metric, op, number = m.groups()
    scale = 1.0
    if number.endswith("%"):
        number, scale = number[:-1], 0.01
    try:
        value = float(number) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"constraint {text!r}: {number!r} is not a finite number")
    if known is not None and metric not in known:
        raise ValueError(f"constraint {text!r}: unknown metric {metric!r}; known metrics: "
                         f"{', '.join(known)}")
    return Constraint(metric, op, value)
