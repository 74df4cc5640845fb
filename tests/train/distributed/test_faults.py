"""A process of a 2-process run that dies (SIGKILL) or freezes (SIGSTOP) mid-run: the other
stops with a clear error within a bounded time, never hangs; the last checkpoint is intact and
``--resume`` continues the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cnnlab.train import load_checkpoint
from tests.cli.helpers import make_idx_dataset
from tests.train.distributed.helpers import cnnlab, cnnlab_errors, mpi_env, run, show

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds ranks in /proc")

BOUND = 60.0  # seconds from the fault to every process gone (measured: about 1 s / 4 s)


def _descendants(pid: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        children = [c for c, pp in parents.items() if pp == p]
        found += children
        frontier += children
    return found


def _rank_pid(mpiexec_pid: int, rank: int) -> int | None:
    for pid in _descendants(mpiexec_pid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env or f"PMI_RANK={rank}".encode() in env:
            return pid
    return None


def _start_and_hit(tmp_path, mpiexec, data, sig, *extra, ranks=(1,)):
    """Start a long 2-process run, wait for its first checkpoint, send ``sig`` to ``ranks``;
    returns (the finished mpiexec, its stdout, its stderr, seconds from the signal to the end)."""
    cmd = [mpiexec, "-n", "2", *cnnlab("train", "--data-dir", data, "--epochs", 500,
                                       "--batch-size", 16, "--num-classes", 4, "--out", "run",
                                       "--quiet", *extra)]
    proc = subprocess.Popen([str(c) for c in cmd], cwd=tmp_path, env=mpi_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "last.npz").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        victims = [_rank_pid(proc.pid, r) for r in ranks]
        assert None not in victims, f"ranks {ranks} not all found: {victims}"
        for victim in victims:
            os.kill(victim, sig)
        hit = time.monotonic()
        out, err = proc.communicate(timeout=BOUND)
        return proc, out, err, time.monotonic() - hit
    finally:
        if proc.poll() is None:  # never leave a run behind, whatever failed above
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()


def _resume(tmp_path) -> None:
    done = load_checkpoint(tmp_path / "run" / "last.npz")["meta"]  # intact: it loads
    assert done["epoch"] >= 1
    r = run(cnnlab("train", "--resume", "run", "--epochs", done["epoch"] + 1, "--quiet",
                   "--processes", 2), cwd=tmp_path)
    assert r.returncode == 0, show(r)
    assert load_checkpoint(tmp_path / "run" / "last.npz")["meta"]["epoch"] == done["epoch"] + 1


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("faultdata"), n_train=96, n_test=32)


def test_a_killed_rank_stops_the_run_and_resume_continues(tmp_path, mpiexec, data):
    proc, out, err, seconds = _start_and_hit(tmp_path, mpiexec, data, signal.SIGKILL)
    assert proc.returncode != 0
    assert seconds < BOUND
    assert cnnlab_errors(err) == [
        "cnnlab: error: stopped by the MPI launcher: another process of this run ended (the "
        "launcher's message says which); the last checkpoint on disk is intact: continue with "
        "--resume"], err
    assert "Traceback" not in err
    _resume(tmp_path)


def test_a_frozen_rank_stops_the_run_at_the_deadline(tmp_path, mpiexec, data):
    proc, out, err, seconds = _start_and_hit(tmp_path, mpiexec, data, signal.SIGSTOP,
                                        "--mpi-timeout", 3)
    assert proc.returncode != 0
    assert seconds < BOUND
    lines = cnnlab_errors(err)
    assert lines and lines[0].startswith("cnnlab: error: rank 0: no answer from the other "
                                         "processes within 3 s during "), err
    assert lines[0].endswith("(a process died or hangs); stopping every process of the run")
    _resume(tmp_path)


def test_sigint_to_the_processes_stops_all_after_the_same_step(tmp_path, mpiexec, data):
    # what Ctrl-C does to one process: every rank stops after the step the first SIGINT was
    # seen in (a flag in the gradient allreduce), rank 0 saves the exact position
    proc, out, err, seconds = _start_and_hit(tmp_path, mpiexec, data, signal.SIGINT, ranks=(0, 1))
    assert proc.returncode == 130, err
    assert out.count("stopped; continue with: cnnlab train --resume run") == 1
    assert cnnlab_errors(err) == [], err
    _resume(tmp_path)
