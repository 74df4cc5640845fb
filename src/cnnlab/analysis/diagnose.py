"""Bias, variance, data mismatch: where the error comes from, and what to do about it.

The course's table of error rates (fractions), from the best one can hope for to the one the
user will see:

    human error       a proxy for the Bayes error
    training error    on the images trained on
    training-dev      on held-out images from the *training* distribution (never trained on)
    dev error         on the dev set (the distribution the model is meant for)
    test error        on the test set (same distribution as dev)

and the gaps between neighbours:

    avoidable_bias  = train - human
    variance        = train_dev - train    (dev - train when there is no training-dev set)
    data_mismatch   = dev - train_dev
    dev_overfitting = test - dev

A gap whose inputs are missing is ``None`` (not measured), never 0. ``focus`` is the largest
positive gap (among the significant ones, when set sizes are given), ``"none"`` when there is
none; ``remedies`` are the course's list for it.

Uncertainty. With the number of images behind each error rate, every rate gets a 95% Wilson
score interval: for k errors in n images, p = k/n, z = 1.96,

    centre = (p + z^2/2n) / (1 + z^2/n),  half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).

A gap d = p1 - p2 gets Newcombe's (1998, method 10) interval built from the two Wilson
intervals [l1, u1], [l2, u2]:

    [d - sqrt((p1 - l1)^2 + (u2 - p2)^2),  d + sqrt((u1 - p1)^2 + (p2 - l2)^2)]

and is *significant* when that interval excludes 0: a gap smaller than its uncertainty is
reported as not significant (the course: a dev set big enough to tell the difference). A rate
without a size (human error, typically) is taken as exact.

>>> d = diagnose(train=0.08, dev=0.10, human=0.01)
>>> d.focus, round(d.avoidable_bias, 4), round(d.variance, 4), d.data_mismatch
('bias', 0.07, 0.02, None)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Diagnosis", "diagnose", "wilson_interval", "gap_interval", "REMEDIES", "GAPS",
           "ERRORS"]

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal

ERRORS = ("human", "train", "train_dev", "dev", "test")
# each gap: (name, the larger error, the smaller one, the focus word it gives)
GAPS = (
    ("avoidable_bias", "train", "human", "bias"),
    ("variance", "train_dev", "train", "variance"),
    ("data_mismatch", "dev", "train_dev", "data_mismatch"),
    ("dev_overfitting", "test", "dev", "dev_overfitting"),
)

REMEDIES = {
    "bias": [
        "train a bigger model (more layers or units)",
        "train longer, or with a better optimizer (momentum, RMSprop, Adam)",
        "search for a better architecture or hyperparameters",
    ],
    "variance": [
        "get more training data",
        "regularize: L2, dropout, data augmentation",
        "search for a better architecture or hyperparameters",
    ],
    "data_mismatch": [
        "carry out error analysis by hand to understand how training and dev/test data differ",
        "make the training data more like the dev/test data (artificial data synthesis), or "
        "collect more data like the dev/test sets",
    ],
    "dev_overfitting": [
        "get a bigger dev set (the model was tuned to this one)",
    ],
    "none": [
        "no gap stands out: the errors are as close to each other as their uncertainty allows; "
        "a better human-level estimate, or bigger dev/test sets, would show what is left",
    ],
}


def _rate(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"diagnose: {name} must be an error rate (a fraction) or None; "
                        f"received {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise ValueError(f"diagnose: {name} must be an error rate in [0, 1] (a fraction: 0.05 "
                         f"for 5%); received {value!r}")
    return value


def wilson_interval(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` observed on ``n`` items (95% by default).

    >>> [round(v, 4) for v in wilson_interval(0.1, 100)]
    [0.0552, 0.1744]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"wilson_interval: n must be an int >= 1; received {n!r}")
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def gap_interval(p1: float, ci1, p2: float, ci2) -> tuple[float, float]:
    """Newcombe's interval for p1 - p2 from the two rates' own intervals (``None``: exact)."""
    l1, u1 = ci1 if ci1 is not None else (p1, p1)
    l2, u2 = ci2 if ci2 is not None else (p2, p2)
    d = p1 - p2
    return (d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2))


@dataclass
class Diagnosis:
    """The error rates, the gaps between them, where to focus and what to try."""

    human: float | None
    train: float
    train_dev: float | None
    dev: float
    test: float | None
    avoidable_bias: float | None
    variance: float | None
    data_mismatch: float | None
    dev_overfitting: float | None
    focus: str
    remedies: list[str]
    sizes: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)  # error name -> (low, high), where sized
    gap_intervals: dict = field(default_factory=dict)  # gap name -> (low, high), where sized
    significant: dict = field(default_factory=dict)  # gap name -> bool, or None (no sizes)
    variance_from: str = "train_dev"  # or "dev": the variance gap measured without train-dev

    def to_dict(self) -> dict:
        """Plain JSON-able fields, named as the attributes."""
        out = {k: getattr(self, k) for k in (*ERRORS, *(g[0] for g in GAPS), "focus",
                                             "remedies", "sizes", "significant",
                                             "variance_from")}
        out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        out["gap_intervals"] = {k: list(v) for k, v in self.gap_intervals.items()}
        out["remedies"] = list(self.remedies)
        return out


def diagnose(train, dev, human=None, train_dev=None, test=None, sizes=None) -> Diagnosis:
    """Gaps between human, training, training-dev, dev and test error; where to focus.

    Args:
        train, dev: error rates (fractions in [0, 1]) on the training and dev sets.
        human: human-level error (the proxy for Bayes error), or None when unknown.
        train_dev: error on a training-dev set (held out from the training distribution).
        test: error on the test set.
        sizes: optional ``{"train": n, "dev": n, ...}``, the number of images behind each
            rate; a sized rate gets a 95% Wilson interval and each gap a significance flag.

    Returns a :class:`Diagnosis` (``to_dict()`` for JSON).
    """
    rates = {"human": _rate("human", human), "train": _rate("train", train),
             "train_dev": _rate("train_dev", train_dev), "dev": _rate("dev", dev),
             "test": _rate("test", test)}
    for name in ("train", "dev"):
        if rates[name] is None:
            raise ValueError(f"diagnose: {name} error is required; received None")
    sizes = dict(sizes or {})
    for name, n in sizes.items():
        if name not in ERRORS:
            raise ValueError(f"diagnose: sizes has an unknown set {name!r}; known: "
                             f"{', '.join(ERRORS)}")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"diagnose: sizes[{name!r}] must be an int >= 1; received {n!r}")
    sizes = {k: v for k, v in sizes.items() if v is not None and rates[k] is not None}
    intervals = {k: wilson_interval(rates[k], n) for k, n in sizes.items()}

    gaps, gap_ci, significant = {}, {}, {}
    variance_from = "train_dev" if rates["train_dev"] is not None else "dev"
    for name, high, low, _ in GAPS:
        if name == "variance" and rates["train_dev"] is None:
            high = "dev"  # without a training-dev set, dev - train is all the course can say
        if rates[high] is None or rates[low] is None:
            gaps[name] = None
            continue
        gaps[name] = rates[high] - rates[low]
        if high in intervals or low in intervals:
            gap_ci[name] = gap_interval(rates[high], intervals.get(high),
                                        rates[low], intervals.get(low))
            lo, hi = gap_ci[name]
            significant[name] = bool(lo > 0 or hi < 0)
        else:
            significant[name] = None  # no sizes: nothing to judge with

    candidates = [(gaps[name], word) for name, _, _, word in GAPS
                  if gaps[name] is not None and gaps[name] > 0
                  and significant.get(name) is not False]
    focus = max(candidates)[1] if candidates else "none"
    return Diagnosis(**rates, **gaps, focus=focus, remedies=list(REMEDIES[focus]), sizes=sizes,
                     intervals=intervals, gap_intervals=gap_ci, significant=significant,
                     variance_from=variance_from)


def from_metrics(metrics: Mapping, human=None) -> Diagnosis:
    """A diagnosis from a run's metrics.json: ``{split}_accuracy`` and ``{split}_size`` for the
    splits train, train_dev, dev, test (those present)."""
    rates, sizes = {}, {}
    for name in ("train", "train_dev", "dev", "test"):
        acc = metrics.get(f"{name}_accuracy")
        if acc is not None:
            rates[name] = 1.0 - float(acc)
            n = metrics.get(f"{name}_size")
            if n:
                sizes[name] = int(n)
    return diagnose(train=rates.get("train"), dev=rates.get("dev"), human=human,
                    train_dev=rates.get("train_dev"), test=rates.get("test"), sizes=sizes)
