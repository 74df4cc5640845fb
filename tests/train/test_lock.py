"""One writer per run folder (issue 19): a second run on a busy folder is refused with the
owner's PID; a lock whose process died (SIGKILL) is stale and taken over."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from cnnlab.train.lock import LockedError, RunLock
from tests.cli.helpers import cli_env

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX")


def test_a_second_lock_is_refused_with_the_owner_pid(tmp_path):
    with RunLock(tmp_path / "run") as first:
        assert first.stale is None
        with pytest.raises(LockedError, match=re.escape(
                f"{tmp_path / 'run'} is in use by process {os.getpid()} (lock file "
                f"{tmp_path / 'run' / '.lock'}); one run writes to a folder at a time")):
            RunLock(tmp_path / "run").acquire()
    with RunLock(tmp_path / "run") as again:  # released: free, and not stale
        assert again.stale is None


def test_the_lock_of_a_killed_process_is_stale_and_taken_over(tmp_path):
    code = ("import sys, time; from cnnlab.train.lock import RunLock; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=cli_env())
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"in use by process {proc.pid} "):
            RunLock(tmp_path).acquire()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    lock = RunLock(tmp_path).acquire()
    try:
        assert lock.stale == proc.pid
        assert (tmp_path / ".lock").read_text().split() == [str(os.getpid())]
    finally:
        lock.release()
