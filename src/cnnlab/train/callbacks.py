"""Callbacks: things that happen at the end of an epoch (stop early, save, log, change lr).

A callback gets the :class:`~cnnlab.train.fit.Trainer` in ``on_train_begin`` and then
``on_epoch_begin(epoch)`` / ``on_epoch_end(epoch, logs)``; ``logs`` is the epoch's metrics
(``loss``, ``accuracy``, ``val_loss``, ...). Setting ``trainer.stop = True`` ends training after
the current epoch.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from cnnlab.train.checkpoint import atomic_write

__all__ = [
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRScheduler",
    "CSVLogger",
    "JSONLogger",
]


class Callback:
    """Base class: override the hooks you need."""

    trainer = None

    def on_train_begin(self, trainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self) -> None:
        pass

    def state(self) -> dict:
        """JSON-able state saved in checkpoints (so a resumed run carries on exactly)."""
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def arrays(self) -> dict:
        """Named arrays saved in checkpoints beside ``state()`` (weights, say)."""
        return {}

    def load_arrays(self, arrays: dict) -> None:
        pass


def _better(mode: str, value: float, best: float, min_delta: float) -> bool:
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


def _mode(monitor: str, mode: str, owner: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max'; received {mode!r}")
    if mode == "auto":
        return "min" if "loss" in monitor or "error" in monitor else "max"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets back the weights of its best epoch at the end.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if patience < 0 or min_delta < 0:
            raise ValueError(
                f"EarlyStopping: patience and min_delta must be >= 0; received "
                f"patience={patience}, min_delta={min_delta}"
            )
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode(monitor, mode, "EarlyStopping")
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping: monitor {self.monitor!r} is not among the epoch's metrics "
                f"{sorted(logs)} (val_* metrics need validation data)"
            )
        value = logs[self.monitor]
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:  # Keras and Lightning: stop after `patience` bad epochs
                self.stopped_epoch = epoch
                self.trainer.stop = True

    def on_train_end(self):
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)

    def state(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]

    def arrays(self):
        # the best epoch's weights travel in the checkpoint, so a resumed run can still restore
        # them at its end
        return dict(self.best_weights or {})

    def load_arrays(self, arrays):
        self.best_weights = dict(arrays) if arrays else None


class ModelCheckpoint(Callback):
    """Save ``last.npz`` after every epoch and ``best.npz`` when ``monitor`` improves.

    Files go in ``directory``; each is written atomically, so the last good one survives a crash.
    A run is resumed with ``fit(..., resume=directory)`` (or the file).
    """

    def __init__(self, directory, monitor: str = "val_loss", mode: str = "auto",
                 save_best: bool = True, save_last: bool = True):
        self.directory = Path(directory)
        self.monitor, self.mode = monitor, _mode(monitor, mode, "ModelCheckpoint")
        self.save_best, self.save_last = save_best, save_last
        self.best = math.inf if self.mode == "min" else -math.inf

    @property
    def last_path(self) -> Path:
        return self.directory / "last.npz"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.npz"

    def on_epoch_end(self, epoch, logs):
        if self.save_best and self.monitor in logs:
            value = logs[self.monitor]
            if _better(self.mode, value, self.best, 0.0):
                self.best = value
                self.trainer.save(self.best_path)
        if self.save_last:
            self.trainer.save(self.last_path)

    def state(self):
        return {"best": self.best}

    def load_state(self, state):
        self.best = state["best"]


class LRScheduler(Callback):
    """Drive the optimizer's learning rates with :class:`cnnlab.optim.LRScheduler` during
    ``fit``: the epoch-k learning rate of every parameter group is set before epoch k.

    ``schedule`` is what :class:`cnnlab.optim.LRScheduler` takes (a callable ``epoch -> lr``
    with epoch counted from 0, e.g. one of the schedules in :mod:`cnnlab.optim`, or a list of
    them, one per parameter group); that class does the checking and the setting, so a
    schedule behaves the same in ``fit`` as in a hand-written loop. Resuming needs no state:
    the epoch comes from the trainer.
    """

    def __init__(self, schedule):
        from cnnlab.optim.schedules import LRScheduler as _Scheduler

        _Scheduler.check_schedules(schedule)
        self.schedule = schedule
        self.scheduler = None

    def on_train_begin(self, trainer):
        from cnnlab.optim.schedules import LRScheduler as _Scheduler

        super().on_train_begin(trainer)
        self.scheduler = _Scheduler(trainer.optimizer, self.schedule)

    def on_epoch_begin(self, epoch):
        self.scheduler.step(epoch)


def _rows(history: dict) -> list[dict]:
    keys = list(history)
    n = len(history[keys[0]]) if keys else 0
    return [{k: history[k][i] for k in keys if i < len(history[k])} for i in range(n)]


class CSVLogger(Callback):
    """Write the history as CSV (one row per epoch), rewritten atomically after every epoch."""

    def __init__(self, path):
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs):
        history = self.trainer.history.history
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(history))
        writer.writeheader()
        writer.writerows(_rows(history))
        atomic_write(self.path, lambda f: f.write(buf.getvalue().encode()))


class JSONLogger(Callback):
    """Write the history as JSON lines (one object per epoch), rewritten after every epoch."""

    def __init__(self, path):
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs):
        rows = _rows(self.trainer.history.history)
        lines = "".join(json.dumps(_jsonable(r)) + "\n" for r in rows)
        atomic_write(self.path, lambda f: f.write(lines.encode()))


def _jsonable(row: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
