"""Satisficing and optimizing: the best candidate by one metric among those that meet the rest.

The course's example: classifiers A (90% accuracy, 80 ms), B (92%, 95 ms), C (95%, 1,500 ms);
running time must be at most 100 ms (satisficing), and accuracy is then as high as possible
(optimizing): B.

>>> cands = {"A": {"accuracy": 0.90, "latency_ms": 80},
...          "B": {"accuracy": 0.92, "latency_ms": 95},
...          "C": {"accuracy": 0.95, "latency_ms": 1500}}
>>> select(cands, optimize="accuracy", satisfice=["latency_ms<=100"]).best
'B'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cnnlab.analysis.constraints import Constraint, parse_constraint

__all__ = ["Candidate", "Selection", "select", "direction"]

# metric names whose larger values are better; everything else (loss, error, latency, params,
# macs, seconds) is better smaller
_LARGER_IS_BETTER = ("accuracy", "f1", "precision", "recall", "auc", "score")


def direction(metric: str) -> str:
    """'max' for accuracy/F1/precision/recall-like names, 'min' for the rest (loss, error,
    latency, size, time)."""
    name = metric.lower()
    return "max" if any(word in name for word in _LARGER_IS_BETTER) else "min"


@dataclass
class Candidate:
    name: str
    metrics: dict
    broken: list[Constraint] = field(default_factory=list)  # the constraints it fails

    @property
    def accepted(self) -> bool:
        return not self.broken


@dataclass
class Selection:
    """``best``: the chosen candidate's name (None when no candidate meets every constraint);
    ``candidates``: every candidate with the constraints it broke, in the given order."""

    best: str | None
    optimize: str
    mode: str
    constraints: list[Constraint]
    candidates: list[Candidate]

    def reason(self, name: str) -> str:
        """One line: why candidate ``name`` was chosen or not."""
        c = next(c for c in self.candidates if c.name == name)
        if c.broken:
            return "rejected: " + ", ".join(
                f"{k} (has {_fmt(c.metrics.get(k.metric))})" for k in c.broken)
        if name == self.best:
            return f"selected: best {self.optimize} among the acceptable"
        return "acceptable"


def _fmt(value) -> str:
    if value is None:
        return "none"
    return f"{float(value):.6g}"


def _named(candidates) -> list[tuple[str, dict]]:
    if isinstance(candidates, Mapping):
        items = list(candidates.items())
    elif isinstance(candidates, Sequence) and not isinstance(candidates, str):
        items = []
        for i, c in enumerate(candidates):
            if not isinstance(c, Mapping):
                raise TypeError(f"select: candidate {i} must be a dict of metrics; received "
                                f"{type(c).__name__}")
            items.append((str(c.get("name", i)), c))
    else:
        raise TypeError(f"select: candidates must be a dict name -> metrics or a list of "
                        f"dicts; received {type(candidates).__name__}")
    if not items:
        raise ValueError("select: no candidates")
    names = [n for n, _ in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"select: candidate names must be unique; repeated: {', '.join(dup)}")
    return [(str(n), dict(m)) for n, m in items]


def select(candidates, optimize: str, satisfice: Sequence = (), mode: str | None = None
           ) -> Selection:
    """The best candidate by ``optimize`` among those meeting every ``satisfice`` constraint.

    Args:
        candidates: ``{name: {metric: value}}``, or a list of metric dicts (named by their
            ``"name"`` key, else by position).
        optimize: the optimizing metric.
        satisfice: constraints, as text (``"latency_ms<=100"``, see
            :func:`~cnnlab.analysis.parse_constraint`) or :class:`Constraint`.
        mode: 'max' or 'min'; default by the metric's name (:func:`direction`).

    A candidate missing a constrained metric breaks that constraint; one without the
    optimizing metric (or NaN) is never chosen. Ties go to the earlier candidate. Raises
    ValueError naming the known metrics when ``optimize`` or a constraint names none of them.
    """
    items = _named(candidates)
    known = sorted({k for _, m in items for k, v in m.items()
                    if k != "name" and isinstance(v, (int, float)) and not isinstance(v, bool)})
    if optimize not in known:
        raise ValueError(f"select: unknown optimizing metric {optimize!r}; known metrics: "
                         f"{', '.join(known)}")
    mode = mode or direction(optimize)
    if mode not in ("max", "min"):
        raise ValueError(f"select: mode must be 'max' or 'min'; received {mode!r}")
    constraints = [c if isinstance(c, Constraint) else parse_constraint(c, known)
                   for c in satisfice]
    out, best, best_value = [], None, None
    sign = 1.0 if mode == "max" else -1.0
    for name, metrics in items:
        cand = Candidate(name, metrics, [c for c in constraints if not c.holds(metrics)])
        out.append(cand)
        value = metrics.get(optimize)
        if cand.broken or value is None or math.isnan(float(value)):
            continue
        if best is None or sign * float(value) > sign * best_value:
            best, best_value = name, float(value)
    return Selection(best, optimize, mode, constraints, out)
