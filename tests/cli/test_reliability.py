"""Reliability of ``cnnlab train`` (issue 19): one writer per run folder, a killed run's
leftovers cleaned on resume, and an overflowing optimizer stopped with one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from cnnlab.train import load_checkpoint
from cnnlab.train.lock import RunLock
from tests.cli.helpers import (
    assert_ok,
    assert_user_error,
    cli_env,
    cnnlab_args,
    run_cli,
    show,
)
from tests.fuzz import mutate


def test_cli_refuses_a_busy_folder(run4, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run4[0], folder)
    before = sorted(os.listdir(folder))
    with RunLock(folder):
        result = run_cli("train", "--resume", folder, "--epochs", "3", "--quiet", cwd=tmp_path)
        assert_user_error(result, f"{folder} is in use by process {os.getpid()}")
        result = run_cli("train", "--out", tmp_path / "new", "--epochs", "1", cwd=tmp_path)
        assert result.returncode == 0 or "in use" not in result.stderr  # another folder: free
    assert sorted(os.listdir(folder)) == before


def test_resume_after_a_kill_cleans_up(run4, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run4[0], folder)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / ".lock").write_text(f"{dead.pid}\n")  # as a SIGKILLed run leaves it
    (folder / ".last.npz.k2j9xq1a.tmp").write_bytes(b"half a checkpoint")
    result = run_cli("train", "--resume", folder, "--epochs", "3", cwd=tmp_path)
    assert_ok(result)
    assert f"process {dead.pid} ended without releasing the folder's lock" in result.stdout
    assert "removed 1 temporary file(s) left by an interrupted write" in result.stdout
    assert not (folder / ".last.npz.k2j9xq1a.tmp").exists()
    with RunLock(folder) as lock:
        assert lock.stale is None


def test_cli_lr_1e6_with_adam_stops_with_one_line(data4, tmp_path):
    result = run_cli("train", "--data-dir", data4, "--num-classes", "4", "--lr", "1e6",
                     "--epochs", "4", "--batch-size", "16", "--out", "r", "--quiet",
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: fit: the ")
    assert "became NaN or infinite" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "r" / "metrics.json").exists()
    for name in ("last.npz", "best.npz"):  # whatever was written is finite and loads
        if (tmp_path / "r" / name).exists():
            load_checkpoint(tmp_path / "r" / name)


def _cli_clean(result) -> None:
    """Exit 0, or exit 2 with one line ``cnnlab: error: ...``; never a traceback."""
    assert "Traceback" not in result.stdout + result.stderr, show(result)
    if result.returncode != 0:
        assert result.returncode == 2, show(result)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), show(result)


def test_mutants_through_the_command_line(run4, tmp_path):
    """A few mutated checkpoints through ``evaluate`` and ``predict``, mutated configs through
    ``train --resume`` (tests/fuzz's mutator)."""
    folder, _ = run4
    good = (folder / "last.npz").read_bytes()
    config = json.loads((folder / "config.json").read_text())
    image = tmp_path / "x.png"
    image.write_bytes(b"not an image")
    for i in range(3):
        rng = np.random.default_rng([19, 1000 + i])
        ck = tmp_path / f"{i}.npz"
        ck.write_bytes(mutate.mutate_npz(good, rng))
        _cli_clean(run_cli("evaluate", "--checkpoint", ck, cwd=tmp_path))
        _cli_clean(run_cli("predict", "--checkpoint", ck, image, cwd=tmp_path))
        copy = tmp_path / f"run{i}"
        shutil.copytree(folder, copy)
        (copy / "config.json").write_bytes(mutate.mutate_json_text(config, rng))
        _cli_clean(run_cli("train", "--resume", copy, "--epochs", "2", "--quiet", cwd=tmp_path))


def test_predict_on_a_fifo_does_not_hang(run4, tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    result = run_cli("predict", "--checkpoint", run4[0] / "last.npz", fifo, cwd=tmp_path,
                     timeout=60)
    assert result.returncode == 1, show(result)
    assert f"skipped {fifo}: a FIFO (named pipe), not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_disk_full_while_training_is_one_line_and_leaves_no_temporary(data4, tmp_path):
    import resource

    def small_disk():  # files past 64 KB cannot be written (EFBIG), as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.RLIM_INFINITY))

    result = subprocess.run(
        cnnlab_args("train", "--data-dir", data4, "--num-classes", "4", "--epochs", "1",
                    "--batch-size", "16", "--out", "r", "--quiet"),
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120,
        preexec_fn=small_disk, check=False)
    line = assert_user_error(result, "cannot write (File too large); the previous file, if "
                                     "any, is kept")
    assert "r/best.npz" in line or "r/last.npz" in line
    assert not [p.name for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]
