"""A tuning worker: claim a slot of the round, draw its parameters, run the objective (report
the dev metric every epoch, stop when pruned), record the result; until the round has no slot
left.

``run_worker`` does it in the calling process (the Python API, tests with an injected
objective); :func:`serve` is the main of the separate processes ``cnnlab tune --workers N``
starts (``python -m cnnlab.cli.tune_worker``, which brings the training objective). A worker
process writes one JSON line per event on its stdout for the tuner, keeps
the training's own output in its log, and watches its stdin: when the tuner's end of the pipe
closes (the tuner died, even by SIGKILL) it records its trial as failed and exits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

from cnnlab.ops.parallel import get_num_threads
from cnnlab.tune import study as st
from cnnlab.tune.space import suggest

__all__ = ["run_worker", "run_one", "Reporter", "serve"]


class Reporter:
    """Handed to the objective: ``report(epoch, value)`` records the dev metric of an epoch and
    returns True when the trial should stop (pruned by the median rule). ``last=True`` (the
    final epoch) records without asking: stopping then would save nothing."""

    def __init__(self, trial, prune: bool):
        self.trial, self.prune, self.pruned = trial, prune, False

    def __call__(self, epoch: int, value: float, last: bool = False) -> bool:
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), int(epoch))
        if self.prune and not last and self.trial.should_prune():
            self.pruned = True
        return self.pruned


def _heartbeat(storage, trial_id: int, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            storage.record_heartbeat(trial_id)
        except Exception:  # a busy database: the next beat will do
            pass


def _metric_attrs(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or v is None or isinstance(v, str):
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = float(v) if math.isfinite(float(v)) else None
    return out


def run_one(study, settings: dict, frozen, space, objective, worker: str, emit,
            current: dict) -> None:
    """Run the claimed trial ``frozen`` to its end (COMPLETE, PRUNED or FAIL)."""
    optuna = st.import_optuna()
    from optuna.trial import TrialState

    from cnnlab.analysis import parse_constraint

    r, slot = frozen.user_attrs["round"], frozen.user_attrs["slot"]
    trial_id = frozen._trial_id
    storage = study._storage
    current["trial_id"] = trial_id  # from now on our tuner's death fails it (_watch_stdin)
    storage.record_heartbeat(trial_id)  # from now on a dead process is noticed
    # whom to ask (or kill) about this trial; a RUNNING trial without it is one whose process
    # died between its claim and here (search._fail_unstarted)
    storage.set_trial_user_attr(trial_id, "pid", os.getpid())
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, daemon=True,
                            args=(storage, trial_id, storage.get_heartbeat_interval(), stop))
    beat.start()
    try:
        study.sampler = st.make_sampler(settings, r, slot)
        trial = optuna.Trial(study, trial_id)
        params = {p.name: suggest(trial, p) for p in space}
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("threads", get_num_threads())
        history = frozen.system_attrs.get("retry_history")
        if history:  # this slot's previous try died mid-trial
            trial.set_user_attr("retry_of", history[-1])
        emit({"event": "start", "trial": trial.number, "trial_id": trial_id, "round": r,
              "slot": slot,
              "params": params, "worker": worker, "pid": os.getpid()})
        reporter = Reporter(trial, settings.get("prune", False))
        start = time.perf_counter()
        error = None
        try:
            metrics = dict(objective(params, reporter, trial.number))
        except Exception as e:  # the trial's own failure: recorded, not re-run
            metrics, error = {}, f"{type(e).__name__}: {e}".splitlines()[0]
        metrics.setdefault("seconds", time.perf_counter() - start)
        metrics["pruned"] = reporter.pruned
        trial.set_user_attr("metrics", _metric_attrs(metrics))  # one write, not one each
        value = metrics.get(settings["optimize"])
        if error is None and metrics.get("error"):
            error = str(metrics["error"])
        if error is None and (value is None or not math.isfinite(float(value))):
            error = f"the objective gave no finite {settings['optimize']} ({value!r})"
        if error is None and settings.get("satisfice"):
            violations = [parse_constraint(c).violation(metrics)
                          for c in settings["satisfice"]]
            storage.set_trial_system_attr(trial_id, "constraints", violations)
        if error is not None:
            trial.set_user_attr("error", error)
            state, told = TrialState.FAIL, study.tell(trial, state=TrialState.FAIL)
        elif reporter.pruned:
            state, told = TrialState.PRUNED, study.tell(trial, state=TrialState.PRUNED)
        else:
            state, told = TrialState.COMPLETE, study.tell(trial, float(value))
        current["trial_id"] = None
        emit({"event": "done", "trial": told.number, "round": r, "slot": slot,
              "state": state.name, "value": told.value, "params": params, "worker": worker,
              "metrics": _metric_attrs(metrics), "error": error})
    finally:
        stop.set()


def run_worker(study, settings: dict, r: int, objective, worker: str = "0", emit=None,
               current: dict | None = None) -> int:
    """Claim and run slots of round ``r`` until none is left; returns how many it ran."""
    emit = emit or (lambda event: None)
    current = current if current is not None else {}
    space = st.get_space(study, r)
    done = 0
    while True:
        frozen = st.claim(study, r)
        if frozen is None:
            return done
        run_one(study, settings, frozen, space, objective, worker, emit, current)
        done += 1


def _watch_stdin(study, current: dict) -> None:
    """The tuner holds our stdin: EOF means it is gone. Fail our trial (its slot re-runs) and
    exit, so that no orphan keeps training."""
    try:
        while os.read(0, 1 << 16):  # the raw fd: no buffer lock held at interpreter exit
            pass
    except OSError:
        pass
    trial_id = current.get("trial_id")
    if trial_id is not None:
        try:
            st.fail_and_retry(study, trial_id)
        except Exception:  # the heartbeat path will catch it
            pass
    os._exit(3)


def serve(make_objective, argv=None) -> int:
    """A worker process: ``make_objective(settings, study_dir)`` gives the objective."""
    p = argparse.ArgumentParser(prog="cnnlab tune worker")
    p.add_argument("--study-dir", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--heartbeat", type=int, default=10)
    a = p.parse_args(argv)
    url = os.environ["CNNLAB_TUNE_STORAGE"]  # not on the command line: it may hold a password
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # training's prints go to the log
    threads = os.environ.get("CNNLAB_NUM_THREADS")
    if threads:
        import cnnlab

        cnnlab.set_num_threads(int(threads))
    storage = st.open_storage(url, a.heartbeat)
    study, settings = st.load(storage, a.study)
    current: dict = {"trial_id": None}
    threading.Thread(target=_watch_stdin, args=(study, current), daemon=True).start()

    objective = make_objective(settings, Path(a.study_dir))

    def emit(event):
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    run_worker(study, settings, a.round, objective, worker=str(a.index), emit=emit,
               current=current)
    return 0

