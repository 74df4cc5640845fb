"""The tuner: round after round, run the round's slots (in worker processes, or in this process
with an injected objective), wait for the round to finish everywhere, narrow the ranges to the
kept trials (coarse to fine), and write the results.

A round is finished when none of its slots is WAITING or RUNNING, on any machine: a RUNNING
trial of another machine is waited for, and one whose process died is failed when its
heartbeat goes stale (:func:`optuna.storages.fail_stale_trials`), its slot enqueued again, and
run here.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from cnnlab.tune import results as res
from cnnlab.tune import study as st
from cnnlab.tune.space import Param, narrow, value_of
from cnnlab.tune.worker import run_worker

__all__ = ["next_space", "run_search", "threads_per_worker"]


def threads_per_worker(workers: int) -> int:
    """Cores this process may use, shared out: workers * threads <= cores (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def next_space(study, settings: dict, r: int) -> list[Param]:
    """Round r+1's ranges: each numeric range of round r narrowed to the span of the kept
    trials, never outside the original range (see :func:`cnnlab.tune.space.narrow`).

    Kept: the best ``ceil(keep * trials)`` COMPLETE trials of rounds 1..r (at least one), so
    the best trial found so far always lies inside the next round's ranges."""
    space = st.get_space(study, r)
    original = {d["name"]: Param.from_json(d) for d in settings["params"]}
    kept = res.kept_trials(study, settings, r)
    if not kept:
        return space
    return [narrow(p, [value_of(p, t.params) for t in kept], original[p.name]) for p in space]


def _fail_unstarted(study, r: int, heartbeat: int) -> None:
    """Fail (and re-enqueue) RUNNING trials of round r that never got their worker's pid, a
    minute (or 3 heartbeats) after they were claimed: their process died between the claim and
    its first heartbeat, so the heartbeat check cannot see them."""
    import datetime

    limit = max(60.0, 3.0 * heartbeat)
    now = datetime.datetime.now()
    for t in st.round_trials(study, r):
        if (t.state.name == "RUNNING" and "pid" not in t.user_attrs and t.datetime_start
                and (now - t.datetime_start).total_seconds() > limit):
            st.fail_and_retry(study, t._trial_id)


class _Progress:
    def __init__(self, settings: dict, out):
        self.settings, self.out = settings, out

    def __call__(self, event: dict) -> None:
        if event.get("event") != "done":
            return
        metric = self.settings["optimize"]
        m = event.get("metrics", {})
        what = {"COMPLETE": f"{metric}={event['value']:.4f}" if event["value"] is not None
                else "", "PRUNED": f"pruned after {int(m.get('epochs') or 0)} epoch(s)",
                "FAIL": f"failed: {event.get('error')}"}[event["state"]]
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in event["params"].items())
        secs = m.get("seconds")
        self.out(f"trial {event['trial']} (round {event['round']}, slot "
                 f"{event['slot'] + 1}/{self.settings['trials']}, worker {event['worker']}): "
                 f"{what}  {params}" + (f"  {secs:.1f} s" if secs else ""))


def _reader(k: int, stream, events: queue.Queue) -> None:
    for line in stream:
        try:
            events.put((k, json.loads(line)))
        except json.JSONDecodeError:
            pass
    events.put((k, None))


class _Pool:
    """The worker processes of one round; they claim slots until none is left."""

    def __init__(self, study, settings, study_dir: Path, r: int, command: list, url: str,
                 name: str, heartbeat: int, progress, out):
        self.study, self.settings, self.dir, self.r = study, settings, study_dir, r
        self.command, self.url, self.name, self.heartbeat = command, url, name, heartbeat
        self.progress, self.out = progress, out
        self.procs: dict[int, subprocess.Popen] = {}
        self.current: dict[int, dict] = {}
        self.events: queue.Queue = queue.Queue()
        self.count = 0

    def spawn(self, threads: int) -> None:
        k = self.count = self.count + 1
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CNNLAB_TUNE_STORAGE=self.url, CNNLAB_NUM_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
        with open(logs / f"round{self.r}-worker{k}.log", "ab") as log:
            proc = subprocess.Popen(
                [*self.command, "--study-dir", str(self.dir), "--study", self.name,
                 "--round", str(self.r), "--index", str(k), "--heartbeat", str(self.heartbeat)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True,
                start_new_session=True)  # Ctrl-C reaches the tuner, which then stops them
        self.procs[k] = proc
        threading.Thread(target=_reader, args=(k, proc.stdout, self.events), daemon=True).start()

    def run(self, workers: int) -> None:
        waiting = sum(t.state.name == "WAITING" for t in st.round_trials(self.study, self.r))
        n = max(1, min(workers, waiting))
        threads = threads_per_worker(n)
        for _ in range(n):
            self.spawn(threads)
        try:
            while self.procs:
                k, event = self.events.get()
                if event is not None:
                    if event["event"] == "start":
                        self.current[k] = event
                    elif event["event"] == "done":
                        self.current.pop(k, None)
                    self.progress(event)
                    continue
                self._ended(k, threads)
        except KeyboardInterrupt:
            self.stop()
            raise

    def _ended(self, k: int, threads: int) -> None:
        proc = self.procs.pop(k)
        status = proc.wait()
        proc.stdin.close()
        started = self.current.pop(k, None)
        if started is None and status != 0:  # killed after its claim, before its start event
            started = self._claimed_by(proc.pid)
        if started is not None:
            if st.fail_and_retry(self.study, started["trial_id"]):
                self.out(f"trial {started['trial']}: worker {k} died mid-trial (exit status "
                         f"{status}); recorded as failed, its slot runs again")
            if any(t.state.name == "WAITING" for t in st.round_trials(self.study, self.r)):
                self.spawn(threads)  # the slot, and the dead worker's share, still to run
        elif status != 0:
            log = self.dir / "logs" / f"round{self.r}-worker{k}.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty)"]
            raise RuntimeError(f"tune worker {k} exited with status {status}; {log}: "
                               f"{tail[0]}")

    def _claimed_by(self, pid: int):
        """The round's RUNNING trial that the worker process ``pid`` took (its "pid" attribute,
        written before the worker announces the trial), as its start event would name it; None
        when it holds none. The store, not the worker's stdout, says what a dead worker held."""
        for t in st.round_trials(self.study, self.r):
            if t.state.name == "RUNNING" and t.user_attrs.get("pid") == pid:
                return {"trial": t.number, "trial_id": t._trial_id}
        return None

    def stop(self) -> None:
        """Close the workers' stdin: each fails its trial (its slot re-runs) and exits."""
        for proc in self.procs.values():
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self.procs.values():
            proc.wait()


def run_search(study, settings: dict, study_dir, *, workers: int = 1, objective=None,
               command=None, url: str = "", name: str = "", heartbeat: int = 10,
               out=print, poll: float = 1.0) -> dict:
    """Run (or continue) every round; returns the summary written to summary.json.

    ``objective(params, report, number) -> metrics`` runs the trials in this process; without
    it ``workers`` processes ``command + [...]`` run them (``cnnlab tune``).
    """
    study_dir = Path(study_dir)
    progress = _Progress(settings, out)
    summary = None
    for r in range(1, settings["rounds"] + 1):
        space = st.get_space(study, r)
        if space is None:
            space = next_space(study, settings, r - 1)
            st.set_space(study, r, space)
        out(f"round {r}/{settings['rounds']}: {settings['trials']} trials in "
            f"{res.format_space(space)}")
        while True:
            st.import_optuna().storages.fail_stale_trials(study)
            _fail_unstarted(study, r, heartbeat)
            states = [t.state.name for t in st.round_trials(study, r)]
            if "WAITING" in states:
                if objective is not None:
                    run_worker(study, settings, r, objective, emit=progress)
                else:
                    _Pool(study, settings, study_dir, r, command, url, name, heartbeat,
                          progress, out).run(workers)
                continue
            if "RUNNING" not in states:
                break
            time.sleep(poll)  # another machine's trials, or a dead one's (heartbeat goes stale)
        last = r == settings["rounds"]
        summary = res.write_results(study, settings, study_dir, r, plots=last)
        out(res.summary_text(summary["rounds"][-1], settings["optimize"]))
    return summary


def default_command() -> list[str]:
    return [sys.executable, "-m", "cnnlab.cli.tune_worker"]
