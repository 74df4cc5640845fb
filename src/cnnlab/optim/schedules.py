"""Learning-rate schedules: functions of the epoch (or step), and a scheduler that applies them.

Each schedule comes three ways:

* a pure function ``name(epoch, lr0, ...) -> lr`` (e.g. :func:`exponential_decay`), the formula
  and nothing else;
* a callable object with the settings fixed (e.g. ``ExponentialDecay(lr0=0.1, rate=0.95)``),
  so ``schedule(epoch) -> lr``: what the training loop's LR-schedule callback takes;
* :class:`LRScheduler` (``optimizer``, any callable ``epoch -> lr``): ``step()`` advances the
  epoch and writes the new rate into the optimizer's parameter groups.

"epoch" is whatever the caller counts: epochs for the course's decay formulas, optimizer steps
for cosine with warm-up. Counting starts at 0.

| schedule        | lr at epoch t                                         |
|-----------------|-------------------------------------------------------|
| inverse time    | lr0 / (1 + decay_rate * t)                            |
| exponential     | lr0 * rate**t                                         |
| inverse sqrt    | lr0 * k / sqrt(t) for t >= 1; lr0 at t = 0            |
| step, staircase | lr0 * gamma**floor(t / step_size)                     |
| cosine, warm-up | lr0 * t / warmup_steps while t < warmup_steps, then   |
|                 | min_lr + (lr0 - min_lr) * (1 + cos(pi * p)) / 2,      |
|                 | p = min(1, (t - warmup_steps) / (total_steps - warmup_steps)) |
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "CosineDecay",
    "ExponentialDecay",
    "InverseSqrtDecay",
    "InverseTimeDecay",
    "LRScheduler",
    "StepDecay",
    "cosine_decay",
    "exponential_decay",
    "inverse_sqrt_decay",
    "inverse_time_decay",
    "step_decay",
]


# --------------------------------------------------------------------- checks
def _real(op: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number; received {name}={value!r}")
    return float(value)


def _at_least(op: str, name: str, value, low: float) -> float:
    if not _real(op, name, value) >= low:
        raise ValueError(f"{op}: {name} must be >= {low:g}; received {name}={value!r}")
    return float(value)


def _positive(op: str, name: str, value) -> float:
    if not _real(op, name, value) > 0:
        raise ValueError(f"{op}: {name} must be > 0; received {name}={value!r}")
    return float(value)


def _factor(op: str, name: str, value) -> float:
    """A decay factor in (0, 1]."""
    if not 0 < _real(op, name, value) <= 1:
        raise ValueError(f"{op}: {name} must be in (0, 1]; received {name}={value!r}")
    return float(value)


def _count(op: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{op}: {name} must be an integer >= {low}; received {name}={value!r}")
    return int(value)


# --------------------------------------------------------------------- the formulas
def inverse_time_decay(epoch, lr0, decay_rate) -> float:
    """``lr0 / (1 + decay_rate * epoch)`` (the course's first decay formula).

    >>> inverse_time_decay(2, lr0=0.2, decay_rate=1.0)
    0.06666666666666667
    """
    op = "inverse_time_decay"
    epoch, lr0 = _at_least(op, "epoch", epoch, 0), _at_least(op, "lr0", lr0, 0)
    return lr0 / (1 + _at_least(op, "decay_rate", decay_rate, 0) * epoch)


def exponential_decay(epoch, lr0, rate) -> float:
    """``lr0 * rate**epoch`` (the course's 0.95**epoch * alpha0), rate in (0, 1].

    >>> round(exponential_decay(2, lr0=0.1, rate=0.95), 6)
    0.09025
    """
    op = "exponential_decay"
    epoch, lr0 = _at_least(op, "epoch", epoch, 0), _at_least(op, "lr0", lr0, 0)
    return lr0 * _factor(op, "rate", rate) ** epoch


def inverse_sqrt_decay(epoch, lr0, k=1.0) -> float:
    """``lr0 * k / sqrt(epoch)`` for epoch >= 1, and ``lr0`` at epoch 0 (where the formula is
    undefined); with k = 1 the two agree at epoch 1.

    >>> inverse_sqrt_decay(4, lr0=0.1, k=1.0)
    0.05
    """
    op = "inverse_sqrt_decay"
    epoch, lr0 = _at_least(op, "epoch", epoch, 0), _at_least(op, "lr0", lr0, 0)
    k = _positive(op, "k", k)
    return lr0 if epoch == 0 else lr0 * k / math.sqrt(epoch)


def step_decay(epoch, lr0, step_size, gamma=0.1) -> float:
    """Staircase: ``lr0 * gamma**floor(epoch / step_size)`` (lr drops by gamma every step_size).

    >>> round(step_decay(25, lr0=0.1, step_size=10, gamma=0.5), 6)
    0.025
    """
    op = "step_decay"
    epoch, lr0 = _at_least(op, "epoch", epoch, 0), _at_least(op, "lr0", lr0, 0)
    step_size, gamma = _count(op, "step_size", step_size, 1), _factor(op, "gamma", gamma)
    return lr0 * gamma ** math.floor(epoch / step_size)


def cosine_decay(epoch, lr0, total_steps, warmup_steps=0, min_lr=0.0) -> float:
    """Cosine annealing from lr0 to min_lr, after an optional linear warm-up from 0.

    * warm-up, ``epoch < warmup_steps``: ``lr0 * epoch / warmup_steps`` (0 at step 0);
    * then, with ``p = min(1, (epoch - warmup_steps) / (total_steps - warmup_steps))``:
      ``min_lr + (lr0 - min_lr) * (1 + cos(pi * p)) / 2``: lr0 at the end of the warm-up,
      min_lr from ``total_steps`` on.

    >>> cosine_decay(5, lr0=0.1, total_steps=10), cosine_decay(10, lr0=0.1, total_steps=10)
    (0.05, 0.0)
    """
    op = "cosine_decay"
    epoch, lr0 = _at_least(op, "epoch", epoch, 0), _at_least(op, "lr0", lr0, 0)
    total_steps = _count(op, "total_steps", total_steps, 1)
    warmup_steps = _count(op, "warmup_steps", warmup_steps, 0)
    min_lr = _at_least(op, "min_lr", min_lr, 0)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"{op}: warmup_steps must be < total_steps; received warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}"
        )
    if min_lr > lr0:
        raise ValueError(f"{op}: min_lr must be <= lr0; received min_lr={min_lr}, lr0={lr0}")
    if epoch < warmup_steps:
        return lr0 * epoch / warmup_steps
    p = min(1.0, (epoch - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (lr0 - min_lr) * (1 + math.cos(math.pi * p)) / 2


# --------------------------------------------------------------------- callable schedules
class _Schedule:
    """A schedule with its settings fixed: ``schedule(epoch) -> lr``."""

    _formula = None  # the pure function
    _settings: tuple = ()

    def __call__(self, epoch) -> float:
        return type(self)._formula(epoch, **{k: getattr(self, k) for k in self._settings})

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._settings)
        return f"{type(self).__name__}({settings})"


class InverseTimeDecay(_Schedule):
    """``lr0 / (1 + decay_rate * epoch)``; see :func:`inverse_time_decay`.

    >>> InverseTimeDecay(lr0=0.2, decay_rate=1.0)(1)
    0.1
    """

    _formula = inverse_time_decay
    _settings = ("lr0", "decay_rate")

    def __init__(self, lr0, decay_rate):
        op = "InverseTimeDecay"
        self.lr0 = _at_least(op, "lr0", lr0, 0)
        self.decay_rate = _at_least(op, "decay_rate", decay_rate, 0)


class ExponentialDecay(_Schedule):
    """``lr0 * rate**epoch``; see :func:`exponential_decay`.

    >>> ExponentialDecay(lr0=0.1, rate=0.5)(2)
    0.025
    """

    _formula = exponential_decay
    _settings = ("lr0", "rate")

    def __init__(self, lr0, rate):
        self.lr0 = _at_least("ExponentialDecay", "lr0", lr0, 0)
        self.rate = _factor("ExponentialDecay", "rate", rate)


class InverseSqrtDecay(_Schedule):
    """``lr0 * k / sqrt(epoch)``, lr0 at epoch 0; see :func:`inverse_sqrt_decay`.

    >>> InverseSqrtDecay(lr0=0.1)(4)
    0.05
    """

    _formula = inverse_sqrt_decay
    _settings = ("lr0", "k")

    def __init__(self, lr0, k=1.0):
        self.lr0 = _at_least("InverseSqrtDecay", "lr0", lr0, 0)
        self.k = _positive("InverseSqrtDecay", "k", k)


class StepDecay(_Schedule):
    """Staircase ``lr0 * gamma**floor(epoch / step_size)``; see :func:`step_decay`.

    >>> StepDecay(lr0=0.1, step_size=2, gamma=0.5)(3)
    0.05
    """

    _formula = step_decay
    _settings = ("lr0", "step_size", "gamma")

    def __init__(self, lr0, step_size, gamma=0.1):
        self.lr0 = _at_least("StepDecay", "lr0", lr0, 0)
        self.step_size = _count("StepDecay", "step_size", step_size, 1)
        self.gamma = _factor("StepDecay", "gamma", gamma)


class CosineDecay(_Schedule):
    """Cosine annealing with linear warm-up; see :func:`cosine_decay`.

    >>> CosineDecay(lr0=0.1, total_steps=10, warmup_steps=2)(1)
    0.05
    """

    _formula = cosine_decay
    _settings = ("lr0", "total_steps", "warmup_steps", "min_lr")

    def __init__(self, lr0, total_steps, warmup_steps=0, min_lr=0.0):
        op = "CosineDecay"
        self.lr0 = _at_least(op, "lr0", lr0, 0)
        self.total_steps = _count(op, "total_steps", total_steps, 1)
        self.warmup_steps = _count(op, "warmup_steps", warmup_steps, 0)
        self.min_lr = _at_least(op, "min_lr", min_lr, 0)
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"{op}: warmup_steps must be < total_steps; received "
                f"warmup_steps={warmup_steps}, total_steps={total_steps}"
            )
        if self.min_lr > self.lr0:
            raise ValueError(f"{op}: min_lr must be <= lr0; received min_lr={min_lr}, lr0={lr0}")


# --------------------------------------------------------------------- the scheduler
class LRScheduler:
    """Drive an optimizer's learning rates with a schedule.

    ``schedule`` is any callable ``epoch -> lr`` (one of the schedules above, a function, a
    lambda), or a list of them, one per parameter group. At construction every group's ``lr``
    is set to ``schedule(0)``; each :meth:`step` advances the epoch by one (or to ``epoch``) and
    sets ``group["lr"] = schedule(epoch)``. Call it once per epoch, or once per optimizer step
    for step-based schedules such as cosine with warm-up.

    >>> import numpy as np, cnnlab as cl
    >>> from cnnlab.optim import SGD
    >>> w = cl.tensor(np.ones((2, 3)), requires_grad=True)
    >>> opt = SGD([w], lr=0.1)
    >>> sched = LRScheduler(opt, ExponentialDecay(lr0=0.1, rate=0.5))
    >>> sched.step()
    >>> opt.param_groups[0]["lr"], w.shape
    (0.05, (2, 3))
    """

    def __init__(self, optimizer, schedule):
        groups = getattr(optimizer, "param_groups", None)
        if groups is None:
            raise TypeError(
                "LRScheduler: optimizer must be an optimizer with param_groups; received "
                f"{type(optimizer).__name__}"
            )
        schedules = self.check_schedules(schedule)
        if len(schedules) == 1:
            schedules = schedules * len(groups)
        if len(schedules) != len(groups):
            raise ValueError(
                f"LRScheduler: received {len(schedules)} schedules for {len(groups)} parameter "
                "groups; give one schedule, or one per group"
            )
        self.optimizer, self.schedules = optimizer, schedules
        self.epoch = 0
        self._apply()

    @staticmethod
    def check_schedules(schedule) -> list:
        """``schedule`` (one callable, or a list of them) as a list; a TypeError for anything
        that is not callable."""
        schedules = list(schedule) if isinstance(schedule, (list, tuple)) else [schedule]
        for s in schedules:
            if not callable(s):
                raise TypeError(f"LRScheduler: a schedule must be callable; received {s!r}")
        return schedules

    def step(self, epoch=None) -> None:
        """Advance to the next epoch (or to ``epoch``) and set the groups' learning rates."""
        self.epoch = self.epoch + 1 if epoch is None else _count("LRScheduler", "epoch", epoch, 0)
        self._apply()

    def _apply(self) -> None:
        for group, schedule in zip(self.optimizer.param_groups, self.schedules):
            lr = schedule(self.epoch)
            if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr >= 0:
                raise ValueError(
                    f"LRScheduler: the schedule returned lr={lr!r} at epoch {self.epoch}; a "
                    "learning rate must be a number >= 0"
                )
            group["lr"] = float(lr)

    def get_last_lr(self) -> list:
        """The learning rate of every group, as last set."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """``{"epoch": int}`` (JSON-able); the schedules themselves are code, not state."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = _count("LRScheduler", "epoch", state["epoch"], 0)
        self._apply()

    def __repr__(self) -> str:
        return f"LRScheduler(epoch={self.epoch}, schedules={self.schedules!r})"
