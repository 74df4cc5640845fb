"""The search space: one :class:`Param` per tuned ``cnnlab train`` option, and its narrowing.

Specs (``--param NAME=SPEC`` or a TOML file, :func:`load_space_file`):

=========================  ===========================================================
``log:1e-4:1e-1``          log-uniform: log10(value) ~ U(-4, -1) (learning rates, L2)
``uniform:0:0.5``          uniform on [0, 0.5] (dropout)
``int:32:256``             an integer, each of 32..256 equally likely (units, layers)
``int-log:16:256``         an integer, log-uniform (batch sizes: 16-32 as often as 128-256)
``choice:32,64,128``       one of the listed values, equally likely
``one-minus-log:0.9:0.999``  log10(1 - value) ~ U(-3, -1): the course's trick for beta, so
                           0.9-0.99 and 0.99-0.999 get the same number of trials
=========================  ===========================================================

Sampling happens in the *sampling coordinate* ``t`` of a parameter: log10(v) for ``log`` and
``int-log``, log10(1 - v) for ``one-minus-log``, v otherwise; every random draw is uniform in
``t`` (Optuna's ``suggest_float(..., log=True)`` for the log kinds). Coarse to fine
(:func:`narrow`) zooms each numeric range to the span of the kept trials in ``t``, with a margin.

    >>> p = parse_spec("beta", "one-minus-log:0.9:0.999")
    >>> p.kind, p.low, p.high, p.optuna_name
    ('one-minus-log', 0.9, 0.999, '1-beta')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["Param", "SpaceError", "KINDS", "parse_spec", "parse_params", "load_space_file",
           "narrow", "suggest", "value_of"]

KINDS = ("log", "uniform", "int", "int-log", "choice", "one-minus-log")
_NUMERIC = ("log", "uniform", "int", "int-log", "one-minus-log")


class SpaceError(ValueError):
    """A search-space spec that cannot be read; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    """One tuned option: ``name`` (a ``cnnlab train`` option, e.g. ``lr``) and its range.

    ``low``/``high`` bound the numeric kinds (inclusive); ``choices`` the ``choice`` kind.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    @property
    def optuna_name(self) -> str:
        """The name in the Optuna study: ``1-beta`` for one-minus-log (Optuna samples 1 - beta)."""
        return f"1-{self.name}" if self.kind == "one-minus-log" else self.name

    @property
    def log_axis(self) -> bool:
        return self.kind in ("log", "int-log", "one-minus-log")

    def to_t(self, v: float) -> float:
        """The sampling coordinate of value ``v`` (draws are uniform in it)."""
        if self.kind in ("log", "int-log"):
            return math.log10(v)
        if self.kind == "one-minus-log":
            return math.log10(1.0 - v)
        return float(v)

    def from_t(self, t: float) -> float:
        if self.kind in ("log", "int-log"):
            return 10.0**t
        if self.kind == "one-minus-log":
            return 1.0 - 10.0**t
        return float(t)

    @property
    def spec(self) -> str:
        """The spec text that parses back to this Param."""
        if self.kind == "choice":
            return "choice:" + ",".join(str(c) for c in self.choices)
        return f"{self.kind}:{_fmt(self.low)}:{_fmt(self.high)}"

    def to_json(self) -> dict:
        return {"name": self.name, "spec": self.spec}

    @staticmethod
    def from_json(d: dict) -> Param:
        return parse_spec(d["name"], d["spec"])


def _fmt(v) -> str:
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return repr(float(v))


def _number(name: str, text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise SpaceError(f"parameter {name!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise SpaceError(f"parameter {name!r}: {what} {text!r} is not a finite number")
    return v


def _choice_value(text: str):
    """'32' -> 32, '0.5' -> 0.5, 'true' -> True, anything else stays text ('adam')."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(name: str, spec) -> Param:
    """Read one spec (see the module docstring); raises SpaceError naming ``name``.

    >>> parse_spec("lr", "log:1e-4:1e-1")
    Param(name='lr', kind='log', low=0.0001, high=0.1, choices=())
    """
    name = name.strip().replace("-", "_")
    if not name.isidentifier():
        raise SpaceError(f"parameter {name!r}: a name is a cnnlab train option such as lr or "
                         "batch_size")
    if isinstance(spec, (list, tuple)):  # TOML: batch_size = [32, 64, 128]
        spec = "choice:" + ",".join(str(v) for v in spec)
    if not isinstance(spec, str):
        raise SpaceError(f"parameter {name!r}: the spec must be text such as 'log:1e-4:1e-1'; "
                         f"received {spec!r}")
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS or not rest:
        raise SpaceError(f"parameter {name!r}: spec {spec!r} is not KIND:..., KIND one of "
                         f"{', '.join(KINDS)} (e.g. log:1e-4:1e-1, choice:32,64)")
    if kind == "choice":
        choices = tuple(_choice_value(c.strip()) for c in rest.split(","))
        if any(c == "" for c in choices):
            raise SpaceError(f"parameter {name!r}: spec {spec!r} has an empty choice")
        if len(set(choices)) != len(choices):
            raise SpaceError(f"parameter {name!r}: spec {spec!r} lists a choice twice")
        return Param(name, kind, choices=choices)
    parts = rest.split(":")
    if len(parts) != 2:
        raise SpaceError(f"parameter {name!r}: spec {spec!r} needs two bounds, {kind}:LOW:HIGH")
    low, high = (_number(name, p.strip(), w) for p, w in zip(parts, ("low bound", "high bound")))
    if not low < high:
        raise SpaceError(f"parameter {name!r}: spec {spec!r} needs LOW < HIGH; received "
                         f"{_fmt(low)} and {_fmt(high)}")
    if kind in ("int", "int-log"):
        if not (low.is_integer() and high.is_integer()):
            raise SpaceError(f"parameter {name!r}: spec {spec!r}: {kind} bounds are integers")
        low, high = int(low), int(high)
    if kind in ("log", "int-log") and low <= 0:
        raise SpaceError(f"parameter {name!r}: spec {spec!r}: a log range needs LOW > 0; "
                         f"received {_fmt(low)}")
    if kind == "one-minus-log" and not (0 <= low and high < 1):
        raise SpaceError(f"parameter {name!r}: spec {spec!r}: one-minus-log needs "
                         f"0 <= LOW < HIGH < 1 (1 - value is sampled on a log scale)")
    return Param(name, kind, low, high)


def parse_params(items) -> list[Param]:
    """``["lr=log:1e-4:1e-1", ...]`` (the ``--param`` values) -> Params; names must differ."""
    params = []
    for item in items:
        name, eq, spec = item.partition("=")
        if not eq or not name.strip():
            raise SpaceError(f"--param {item!r} is not NAME=SPEC (e.g. lr=log:1e-4:1e-1)")
        params.append(parse_spec(name, spec))
    _no_repeats(params)
    return params


def _no_repeats(params) -> None:
    seen = set()
    for p in params:
        if p.name in seen:
            raise SpaceError(f"parameter {p.name!r} is given twice")
        seen.add(p.name)


def load_space_file(path) -> tuple[list[Param], dict]:
    """A TOML file with a ``[params]`` table (NAME = "SPEC", or a list of choices) and an
    optional ``[fixed]`` table of train options every trial uses (``epochs = 2``).

    ::

        [params]
        lr = "log:1e-4:1e-1"
        batch_size = [32, 64, 128]
        beta = "one-minus-log:0.9:0.999"

        [fixed]
        epochs = 2
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise SpaceError(f"--space {path}: cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"--space {path}: not valid TOML ({e})") from None
    unknown = sorted(set(data) - {"params", "fixed"})
    if unknown:
        raise SpaceError(f"--space {path}: unknown table(s) {', '.join(unknown)}; expected "
                         "[params] and optionally [fixed]")
    table = data.get("params", {})
    if not isinstance(table, dict) or not table:
        raise SpaceError(f"--space {path}: needs a [params] table with at least one parameter")
    params = [parse_spec(name, spec) for name, spec in table.items()]
    _no_repeats(params)
    fixed = data.get("fixed", {})
    if not isinstance(fixed, dict):
        raise SpaceError(f"--space {path}: [fixed] must be a table of train options")
    return params, dict(fixed)


def suggest(trial, p: Param):
    """Draw ``p`` for an Optuna trial (uniform in the sampling coordinate); returns the value
    of the train option (beta, not 1 - beta)."""
    if p.kind == "choice":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind in ("int", "int-log"):
        return trial.suggest_int(p.name, int(p.low), int(p.high), log=p.kind == "int-log")
    if p.kind == "one-minus-log":
        return 1.0 - trial.suggest_float(p.optuna_name, 1.0 - p.high, 1.0 - p.low, log=True)
    return trial.suggest_float(p.name, p.low, p.high, log=p.kind == "log")


def value_of(p: Param, optuna_params: dict):
    """The train option's value from a trial's Optuna params (undoes the 1 - beta)."""
    v = optuna_params[p.optuna_name]
    return 1.0 - v if p.kind == "one-minus-log" else v


def _round_sig(v: float, up: bool, digits: int = 3) -> float:
    """``v`` rounded to ``digits`` significant digits, up or down (never towards the inside
    of a range when used on its ends)."""
    if v == 0 or not math.isfinite(v):
        return v
    scale = 10.0 ** (math.floor(math.log10(abs(v))) - digits + 1)
    q = v / scale
    q = math.ceil(q - 1e-9) if up else math.floor(q + 1e-9)
    return float(f"{q * scale:.{digits}g}")


def narrow(p: Param, kept_values, original: Param, margin: float = 0.1) -> Param:
    """Coarse to fine: ``p``'s range shrunk to the span of ``kept_values`` (the best trials'
    values) in the sampling coordinate t, widened on each side by ``margin`` times the larger
    of that span and a tenth of the current range (so one kept trial still leaves a range),
    rounded outwards to 3 significant digits (of 1 - v for one-minus-log), and never outside
    ``original``'s range. Choices are kept as they are.

    In t: [min t_k - m, max t_k + m] clipped to [t(original.low), t(original.high)], with
    m = margin * max(max t_k - min t_k, 0.1 * (t(high) - t(low))).
    """
    if p.kind not in _NUMERIC or not kept_values:
        return p
    ts = [p.to_t(v) for v in kept_values]
    ends = sorted((p.to_t(p.low), p.to_t(p.high)))  # one-minus-log: t decreases with v
    bounds = sorted((original.to_t(original.low), original.to_t(original.high)))
    m = margin * max(max(ts) - min(ts), 0.1 * (ends[1] - ends[0]))
    lo_t, hi_t = max(min(ts) - m, bounds[0]), min(max(ts) + m, bounds[1])
    lo, hi = sorted((p.from_t(lo_t), p.from_t(hi_t)))
    if p.kind == "one-minus-log":  # 3 significant digits of 1 - v, outwards
        lo, hi = 1.0 - _round_sig(1.0 - lo, up=True), 1.0 - _round_sig(1.0 - hi, up=False)
    elif p.kind in ("log", "uniform"):  # 3 significant digits, outwards: readable ranges
        lo, hi = _round_sig(lo, up=False), _round_sig(hi, up=True)
    lo, hi = max(lo, original.low), min(hi, original.high)
    if p.kind in ("int", "int-log"):
        lo, hi = int(math.floor(lo + 1e-9)), int(math.ceil(hi - 1e-9))
        if lo == hi:  # one integer left: keep a range of two so the next round can still move
            lo, hi = (lo, hi + 1) if hi < original.high else (lo - 1, hi)
    if not lo < hi:
        return p
    return replace(p, low=lo, high=hi)
