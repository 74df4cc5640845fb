"""``mpiexec -n 2 cnnlab train`` and ``cnnlab train --processes 2``: files from rank 0 alone,
resume with another number of processes, and bad input as one line from rank 0 with every
process exiting non-zero. Tiny runs: 86 train / 10 dev / 32 test images of 28x28, LeNet-5."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from cnnlab.train import load_checkpoint
from tests.cli.helpers import make_idx_dataset
from tests.train.distributed.helpers import cnnlab, cnnlab_errors, mpi_env, run, show

SMALL = ("--batch-size", "16", "--quiet", "--num-classes", "4")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_idx_dataset(tmp_path_factory.mktemp("mpidata"), n_train=96, n_test=32)


def _history(folder) -> list[str]:
    return (folder / "history.csv").read_text().splitlines()


def test_two_processes_then_resume_on_one_then_on_two(tmp_path, mpiexec, data):
    r = run([mpiexec, "-n", 2, *cnnlab("train", "--data-dir", data, "--epochs", 1,
                                        "--out", "run", *SMALL)], cwd=tmp_path)
    assert r.returncode == 0, show(r)
    run_dir = tmp_path / "run"
    assert r.stdout.count("test accuracy") == 1, show(r)  # rank 0 alone prints
    written = sorted(p.name for p in run_dir.iterdir()
                     if p.suffix != ".png" and not p.name.startswith("."))  # .lock: the owner's
    assert written == ["best.npz", "config.json", "history.csv", "history.jsonl", "last.npz",
                       "metrics.json", "timing.json"]
    assert len(_history(run_dir)) == 2  # header + epoch 1
    first = load_checkpoint(run_dir / "last.npz")
    assert first["meta"]["epoch"] == 1 and first["meta"]["step"] == 6  # ceil(86 / 16) steps

    r = run(cnnlab("train", "--resume", "run", "--epochs", 2, "--quiet"), cwd=tmp_path)
    assert r.returncode == 0, show(r)
    assert load_checkpoint(run_dir / "last.npz")["meta"]["epoch"] == 2

    r = run(cnnlab("train", "--resume", "run", "--epochs", 3, "--processes", 2), cwd=tmp_path)
    assert r.returncode == 0, show(r)
    assert "on 2 processes" in r.stdout, show(r)
    last = load_checkpoint(run_dir / "last.npz")
    assert last["meta"]["epoch"] == 3 and last["meta"]["step"] == 18
    assert len(_history(run_dir)) == 4
    assert any(not np.array_equal(first["model"][k], last["model"][k]) for k in last["model"])


def test_mpiexec_without_the_extra_is_one_line_from_rank_0(tmp_path, mpiexec, data):
    fake = tmp_path / "no_mpi4py" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named \'mpi4py\'")\n')
    env = mpi_env()
    env["PYTHONPATH"] = f"{fake.parent}:{env['PYTHONPATH']}"
    r = run([mpiexec, "-n", 2, *cnnlab("train", "--data-dir", data, "--out", "run", *SMALL)],
            cwd=tmp_path, env=env)
    assert r.returncode != 0, show(r)
    assert cnnlab_errors(r.stderr) == [
        "cnnlab: error: this process was started by mpiexec as rank 0 of 2: data-parallel "
        "training needs mpi4py and an MPI library, which are not installed (No module named "
        "'mpi4py'); install them with: pip install \"cnnlab[mpi]\""], show(r)
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def _two_commands(mpiexec, first, second) -> list:
    """MPMD: rank 0 runs ``first``, rank 1 ``second`` (what a mistyped hostfile setup does)."""
    return [mpiexec, "-n", 1, *cnnlab(*first), ":", "-n", 1, *cnnlab(*second)]


def test_ranks_that_disagree_on_the_settings_stop_at_start(tmp_path, mpiexec, data):
    base = ("train", "--data-dir", data, "--out", "run", *SMALL)
    r = run(_two_commands(mpiexec, (*base, "--lr", "0.01"), (*base, "--lr", "0.02")),
            cwd=tmp_path)
    assert r.returncode != 0, show(r)
    assert cnnlab_errors(r.stderr) == [
        "cnnlab: error: the processes disagree: rank 1 (host {h}) differs from rank 0 (host {h}) "
        "in lr=0.02 vs 0.01; start every process with the same command, data and cnnlab "
        "version".format(h=socket.gethostname())], show(r)
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # nothing written


def test_ranks_that_see_other_data_stop_at_start(tmp_path, mpiexec, data):
    other = make_idx_dataset(tmp_path / "other", n_train=96, n_test=32, seed=7)
    r = run(_two_commands(mpiexec, ("train", "--data-dir", data, "--out", "run", *SMALL),
                          ("train", "--data-dir", other, "--out", "run", *SMALL)), cwd=tmp_path)
    assert r.returncode != 0, show(r)
    [line] = cnnlab_errors(r.stderr)
    assert line.startswith("cnnlab: error: the processes disagree: rank 1"), show(r)
    assert "data_dir=" in line and "train data" in line, line


def test_a_rank_that_cannot_read_its_data_stops_every_rank(tmp_path, mpiexec, data):
    missing = tmp_path / "nowhere"
    r = run(_two_commands(mpiexec, ("train", "--data-dir", data, "--out", "run", *SMALL),
                          ("train", "--data-dir", missing, "--out", "run", *SMALL)),
            cwd=tmp_path)
    assert r.returncode != 0, show(r)
    host = socket.gethostname()
    assert cnnlab_errors(r.stderr) == [
        f"cnnlab: error: rank 1 of 2 (host {host}): {missing}: no such directory (mnist root)"
    ], show(r)
    assert "Traceback" not in r.stderr


def test_processes_without_the_extra_names_it(tmp_path, data):
    env = mpi_env()
    fake = tmp_path / "no_mpi4py" / "mpi4py"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named \'mpi4py\'")\n')
    env["PYTHONPATH"] = f"{fake.parent}:{env['PYTHONPATH']}"
    r = run(cnnlab("train", "--data-dir", data, "--processes", 2, *SMALL), cwd=tmp_path, env=env)
    assert r.returncode == 2, show(r)
    assert r.stderr.strip() == (
        "cnnlab: error: --processes 2 needs mpi4py and an MPI library, which are not installed "
        "(No module named 'mpi4py'); install them with: pip install \"cnnlab[mpi]\"")


def test_a_loss_that_diverges_stops_every_process_with_one_line(tmp_path, mpiexec, data):
    r = run([mpiexec, "-n", 2, *cnnlab("train", "--data-dir", data, "--epochs", 2, "--out", "run",
                                        "--optimizer", "sgd", "--lr", "1e6", *SMALL)],
            cwd=tmp_path)
    assert r.returncode == 1, show(r)
    [line] = cnnlab_errors(r.stderr)
    assert line.startswith("cnnlab: error: fit: the loss became nan at epoch 1, step "), line
    assert line.endswith("training stopped before this update, the last checkpoint is intact. "
                         "Try a lower learning rate."), line
    assert "Traceback" not in r.stderr
