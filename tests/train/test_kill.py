"""A training process killed with SIGKILL mid-epoch resumes from its last checkpoint and ends
with weights bitwise identical to a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlab.train import CheckpointError, load_checkpoint
from tests.train.train_script import STEPS_PER_EPOCH

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 3
TIMEOUT = 90.0  # seconds: any single wait; the whole test takes a few seconds


def _start(tmp: Path, name: str, resume: bool = False, model_seed: int = 0):
    cmd = [
        sys.executable,
        "-m",
        "tests.train.train_script",
        "--dir",
        str(tmp / name / "ck"),
        "--out",
        str(tmp / name / "final.npz"),
        "--steps",
        str(tmp / name / "steps.txt"),
        "--epochs",
        str(EPOCHS),
        "--model-seed",
        str(model_seed),
    ]
    if resume:
        cmd.append("--resume")
    (tmp / name).mkdir(exist_ok=True)
    # One BLAS thread: the same sums in the same order in every process.
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    log_path = tmp / name / ("stderr-resume.txt" if resume else "stderr.txt")
    errlog = open(log_path, "wb")  # noqa: SIM115 - closed by _stop
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errlog)
    proc.errlog = errlog
    return proc


def _finish(proc, tmp: Path, name: str):
    try:
        rc = proc.wait(timeout=TIMEOUT)
    finally:
        _stop(proc)
    err = (tmp / name / "stderr.txt").read_text(errors="replace")
    assert rc == 0, err[-3000:]


def _stop(proc):
    """Kill (if still running) and reap a process we started; close its log."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    proc.errlog.close()


def _steps(tmp: Path, name: str) -> int:
    try:
        return (tmp / name / "steps.txt").read_text().count("\n")
    except FileNotFoundError:
        return 0


def _checkpoint_epoch(path: Path) -> int:
    """The epoch of the last checkpoint on disk, -1 when there is none (or it is being made)."""
    try:
        return load_checkpoint(path)["meta"]["epoch"]
    except CheckpointError:
        return -1


def test_sigkill_mid_epoch_then_resume_is_bitwise(tmp_path):
    n = STEPS_PER_EPOCH
    # The reference: one uninterrupted run, in its own process.
    ref = _start(tmp_path, "ref")
    _finish(ref, tmp_path, "ref")
    assert _steps(tmp_path, "ref") == EPOCHS * n

    victim = _start(tmp_path, "run")
    try:
        # Wait for the checkpoint of epoch >= 1, then for the middle of a later epoch.
        last = tmp_path / "run" / "ck" / "last.npz"
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert victim.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "timed out waiting for the first checkpoint"
            epoch = _checkpoint_epoch(last)
            if epoch >= 1 and _steps(tmp_path, "run") >= epoch * n + n // 2:
                break
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        _stop(victim)
    assert not (tmp_path / "run" / "final.npz").exists()
    killed_at = _steps(tmp_path, "run")
    saved = load_checkpoint(last)["meta"]
    assert 1 <= saved["epoch"] < EPOCHS
    assert saved["step"] == saved["epoch"] * n
    # It died inside epoch saved["epoch"] + 1: the steps after the checkpoint are lost work.
    assert saved["epoch"] * n < killed_at < (saved["epoch"] + 1) * n

    # Resume in a new process (whose model starts from other weights) and run to the end.
    resumed = _start(tmp_path, "run", resume=True, model_seed=123)
    try:
        rc = resumed.wait(timeout=TIMEOUT)
    finally:
        _stop(resumed)
    err = (tmp_path / "run" / "stderr-resume.txt").read_text(errors="replace")
    assert rc == 0, err[-3000:]
    assert _steps(tmp_path, "run") == killed_at + (EPOCHS - saved["epoch"]) * n
    assert load_checkpoint(last)["meta"]["epoch"] == EPOCHS

    with np.load(tmp_path / "ref" / "final.npz") as a, np.load(tmp_path / "run" / "final.npz") as b:
        assert a.files == b.files and len(a.files) == 4
        for k in a.files:
            assert a[k].dtype == b[k].dtype
            assert np.array_equal(a[k], b[k]), f"{k} differs after kill and resume"


def _run_to_the_end_with_kills(tmp: Path, name: str, delays) -> tuple[int, int]:
    """Start the run, SIGKILL it after each delay (seconds after its start) while it runs,
    resuming after every kill; then let it finish. Returns (kills, kills inside a write)."""
    ck = tmp / name / "ck"
    kills = in_write = 0
    for delay in [*delays, None]:
        resume = (ck / "last.npz").exists()
        log = tmp / name / ("stderr-resume.txt" if resume else "stderr.txt")
        proc = _start(tmp, name, resume=resume)
        try:
            if delay is None:
                rc = proc.wait(timeout=TIMEOUT)
                assert rc == 0, log.read_text(errors="replace")[-3000:]
                break
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
            rc = proc.wait(timeout=TIMEOUT)
            if rc == 0:  # it ended before the kill (or just as it came)
                break
            assert rc == -signal.SIGKILL, f"exit {rc}: {log.read_text(errors='replace')[-3000:]}"
            kills += 1
            in_write += any(p.name.endswith(".tmp") for p in ck.glob(".*"))
        finally:
            _stop(proc)
        # after any kill: never a half-written checkpoint under its real name
        if (ck / "last.npz").exists():
            load_checkpoint(ck / "last.npz")
    return kills, in_write


def test_sigkill_at_random_moments_resume_every_time_is_bitwise(tmp_path):
    """Killed at random moments (seeded), resumed after each kill: the final weights are those
    of a run never interrupted, and no temporary file is left behind."""
    ref = _start(tmp_path, "ref")
    _finish(ref, tmp_path, "ref")
    rng = np.random.default_rng(2026)
    delays = rng.uniform(0.3, 2.5, size=4)  # from the start of each process (imports included)
    kills, _ = _run_to_the_end_with_kills(tmp_path, "run", delays)
    assert kills >= 1
    assert not [p.name for p in (tmp_path / "run" / "ck").iterdir() if p.name.endswith(".tmp")]
    with np.load(tmp_path / "ref" / "final.npz") as a, np.load(tmp_path / "run" / "final.npz") as b:
        assert a.files == b.files
        for k in a.files:
            assert np.array_equal(a[k], b[k]), f"{k} differs after {kills} kills and resumes"
