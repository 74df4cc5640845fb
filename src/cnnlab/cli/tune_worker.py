"""A ``cnnlab tune`` worker process (``python -m cnnlab.cli.tune_worker``): a trial is a
``cnnlab train`` run (the same code path, :func:`cnnlab.cli.train.run_training`) with the
trial's settings, in ``STUDY_DIR/trials/NNNNN``, reporting its dev metric after every epoch.

Like ``cnnlab.cli.main``, this module is an entry point at the top of the CLI.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from cnnlab.train.callbacks import Callback

__all__ = ["METRICS", "epoch_metrics", "training_objective"]

# what a trial measures: the objective (--optimize) and the satisficing constraints use these
METRICS = ("val_accuracy", "val_loss", "dev_error", "accuracy", "loss", "train_error",
           "epochs", "seconds", "parameters")


def epoch_metrics(logs: dict) -> dict:
    """An epoch's logs with the errors beside the accuracies (error = 1 - accuracy)."""
    m = {k: float(v) for k, v in logs.items()}
    if "val_accuracy" in m:
        m["dev_error"] = 1.0 - m["val_accuracy"]
    if "accuracy" in m:
        m["train_error"] = 1.0 - m["accuracy"]
    return m


class _Report(Callback):
    """After each epoch: hand the dev metric to the tuner; stop the run when it is pruned."""

    def __init__(self, report, metric: str, total: int):
        self.report, self.metric, self.total = report, metric, total
        self.last: dict = {}
        self.epochs = 0
        self.parameters = 0

    def on_train_begin(self, trainer):
        super().on_train_begin(trainer)
        self.parameters = int(sum(p.data.size for p in trainer.model.parameters()))

    def on_epoch_end(self, epoch, logs):
        self.last = epoch_metrics(logs)
        self.epochs = epoch + 1
        if self.metric not in self.last:
            raise KeyError(f"--optimize {self.metric}: not among the epoch's metrics "
                           f"{sorted(self.last)} (dev metrics need --set val_fraction > 0)")
        if self.report(epoch + 1, self.last[self.metric], last=epoch + 1 >= self.total):
            self.trainer.stop = True


def training_objective(settings: dict, study_dir: Path):
    """objective(params, report, number) -> metrics: one ``cnnlab train`` run."""
    from cnnlab.cli.train import DEFAULTS, run_training
    from cnnlab.cli.train_config import options_to_namespace

    fixed = settings.get("fixed", {})
    metric = settings["optimize"]

    def objective(params: dict, report, number: int) -> dict:
        out = Path(study_dir) / "trials" / f"{number:05d}"
        ns = options_to_namespace({**fixed, **params}, f"trial {number}")
        ns.out, ns.quiet, ns.resume, ns.config = str(out), True, None, None
        cb = _Report(report, metric, ns.epochs or DEFAULTS["epochs"])
        status = run_training(ns, callbacks=[cb])
        metrics = {**cb.last, "epochs": cb.epochs, "parameters": cb.parameters}
        if status == 1:  # run_training printed the non-finite loss
            metrics["error"] = (f"the loss diverged (not finite) in epoch {cb.epochs + 1}; "
                                "lower the learning rate")
        elif status != 0:
            metrics["error"] = f"cnnlab train stopped with status {status}"
        elif not all(math.isfinite(v) for v in cb.last.values()):
            metrics["error"] = "non-finite metrics " + json.dumps(cb.last)
        return metrics

    return objective


if __name__ == "__main__":
    from cnnlab.tune.worker import serve

    sys.exit(serve(training_objective))
