"""``cnnlab train``: the files it writes, resume (also after SIGKILL), transfer learning."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.cli.conftest import SMALL
from tests.cli.helpers import (
    TIMEOUT,
    assert_ok,
    assert_user_error,
    cli_env,
    cnnlab_args,
    make_idx_dataset,
    read_json,
    read_npz,
    run_cli,
    show,
)


def test_train_writes_every_file(run4, data4):
    out, result = run4
    for name in ("last.npz", "best.npz", "history.csv", "history.jsonl", "metrics.json",
                 "config.json"):
        assert (out / name).is_file(), name
    m = read_json(out / "metrics.json")
    # the test set has 100 images, 25 per class (labels 0..3)
    assert m["num_classes"] == 4
    for key in ("precision", "recall", "f1"):
        assert len(m[key]) == 4 and all(0.0 <= v <= 1.0 for v in m[key]), key
    assert m["support"] == [25, 25, 25, 25]
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == 100
    assert (cm.sum(axis=1) == 25).all()
    # accuracy and recall recomputed from the confusion matrix (an independent count)
    assert m["test_accuracy"] == pytest.approx(np.trace(cm) / 100)
    assert m["recall"] == pytest.approx(list(np.diag(cm) / 25))
    assert m["test_loss"] > 0 and np.isfinite(m["test_loss"])
    assert m["test_accuracy"] > 0.6  # an easy task: a bright square per class
    assert m["epochs"] == 2
    # the history: one row per epoch, in both formats
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    lines = (out / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2
    config = read_json(out / "config.json")
    assert config["epochs"] == 2 and config["data_dir"] == str(data4)
    assert config["model"] == "lenet5" and config["num_classes"] == 4
    # what it prints: the test accuracy and the folder
    assert f"test accuracy {m['test_accuracy']:.4f}" in result.stdout
    assert "run" in result.stdout.splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_resume_after_one_epoch_equals_two_epochs(run4, data4, tmp_path):
    args = ("--data-dir", data4, "--num-classes", "4", *SMALL)
    assert_ok(run_cli("train", *args, "--epochs", "1", "--out", "r", cwd=tmp_path))
    assert read_json(tmp_path / "r" / "metrics.json")["epochs"] == 1
    resumed = run_cli("train", "--resume", "r", "--epochs", "2", "--quiet", cwd=tmp_path)
    assert_ok(resumed)
    reference, _ = run4
    assert (tmp_path / "r" / "metrics.json").read_text() == \
        (reference / "metrics.json").read_text()
    assert (tmp_path / "r" / "history.csv").read_text() == \
        (reference / "history.csv").read_text()
    a, b = read_npz(tmp_path / "r" / "last.npz"), read_npz(reference / "last.npz")
    for name in a:
        if name.startswith("model/"):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# 1500 images, batch 8, with augmentation: about a second an epoch, so a signal can be sent
# in the middle of a run; the augmentation makes the resumed batches depend on the RNG states
KILL_ARGS = ("train", "--num-classes", "4", "--epochs", "3", "--batch-size", "8", "--augment",
             "--quiet")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(data folder, the folder of a 3-epoch run that nobody interrupted)."""
    base = tmp_path_factory.mktemp("kill")
    data = make_idx_dataset(base / "data", num_classes=4, n_train=1500, n_test=100, seed=2)
    assert_ok(run_cli(*KILL_ARGS, "--data-dir", data, "--out", "whole", cwd=base))
    return data, base / "whole"


def _start_and_signal(data, run, cwd, sig):
    """Start a 3-epoch run, send ``sig`` as soon as its first checkpoint is on disk."""
    proc = subprocess.Popen(cnnlab_args(*KILL_ARGS, "--data-dir", data, "--out", run), cwd=cwd,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / "last.npz").exists():  # the end of epoch 1
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.005)
        time.sleep(0.2)  # into epoch 2
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if (run / "metrics.json").exists():
        pytest.skip("the machine finished all 3 epochs before the signal landed")
    return proc.returncode, stdout, stderr


def test_resume_after_sigkill_equals_uninterrupted(uninterrupted, tmp_path):
    """Kill -9 during epoch 2 of 3; ``--resume`` ends with the same metrics.json."""
    data, whole = uninterrupted
    run = tmp_path / "killed"
    code, _, _ = _start_and_signal(data, run, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    resumed = run_cli("train", "--resume", run, "--quiet", cwd=tmp_path)
    assert_ok(resumed)
    assert (run / "metrics.json").read_text() == (whole / "metrics.json").read_text()
    assert (run / "history.csv").read_text() == (whole / "history.csv").read_text()
    assert read_json(run / "metrics.json")["epochs"] == 3


def test_ctrl_c_saves_the_position_and_resume_equals_uninterrupted(uninterrupted, tmp_path):
    """SIGINT (Ctrl-C) mid-epoch: exit 130, a checkpoint of the exact batch, an exact resume."""
    data, whole = uninterrupted
    run = tmp_path / "stopped"
    code, stdout, stderr = _start_and_signal(data, run, tmp_path, signal.SIGINT)
    assert code == 130, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    assert f"cnnlab train --resume {run}" in stdout
    meta = json.loads(read_npz(run / "last.npz")["__meta__"].tobytes())
    assert meta["epoch"] in (1, 2)  # epochs completed when the signal came
    resumed = run_cli("train", "--resume", run, "--quiet", cwd=tmp_path)
    assert_ok(resumed)
    assert (run / "metrics.json").read_text() == (whole / "metrics.json").read_text()


def test_transfer_freezes_features_bitwise(run4, data3, tmp_path):
    source, _ = run4
    result = run_cli("train", "--from", source / "best.npz", "--freeze", "features",
                     "--num-classes", "3", "--data-dir", data3, "--epochs", "2", "--out", "t",
                     *SMALL, cwd=tmp_path)
    assert_ok(result)
    before, after = read_npz(source / "best.npz"), read_npz(tmp_path / "t" / "last.npz")
    frozen = [k for k in before if k.startswith("model/features.")]
    assert frozen, sorted(before)
    for name in frozen:
        assert after[name].dtype == before[name].dtype
        assert after[name].tobytes() == before[name].tobytes(), name
    # the layers that were not frozen did train, and the head has 3 outputs now
    assert not np.array_equal(after["model/classifier.0.weight"],
                              before["model/classifier.0.weight"])
    assert before["model/classifier.4.weight"].shape == (84, 4)
    assert after["model/classifier.4.weight"].shape == (84, 3)
    m = read_json(tmp_path / "t" / "metrics.json")
    assert m["num_classes"] == 3 and len(m["f1"]) == 3
    assert m["test_accuracy"] > 0.5  # chance is 1/3
    # a checkpoint of the fine-tuned model works with the other commands
    ev = run_cli("evaluate", "--checkpoint", tmp_path / "t" / "best.npz", cwd=tmp_path)
    assert_ok(ev)
    assert f"test_accuracy={m['test_accuracy']:.4f}" in ev.stdout, show(ev)


def test_resume_of_a_transfer_run_needs_not_the_source(run4, data3, tmp_path):
    """Fine-tuning 1 epoch, then --resume to 2 after the source checkpoint is gone: same
    metrics.json as 2 epochs in one go."""
    source, _ = run4
    args = ("--freeze", "features", "--num-classes", "3", "--data-dir", data3, *SMALL)
    whole = run_cli("train", "--from", source / "best.npz", *args, "--epochs", "2", "--out",
                    "whole", cwd=tmp_path)
    assert_ok(whole)
    copy = tmp_path / "source.npz"
    shutil.copy(source / "best.npz", copy)
    assert_ok(run_cli("train", "--from", copy, *args, "--epochs", "1", "--out", "part",
                      cwd=tmp_path))
    copy.unlink()
    assert_ok(run_cli("train", "--resume", "part", "--epochs", "2", "--quiet", cwd=tmp_path))
    assert (tmp_path / "part" / "metrics.json").read_text() == \
        (tmp_path / "whole" / "metrics.json").read_text()
    after = read_npz(tmp_path / "part" / "last.npz")
    before = read_npz(source / "best.npz")
    for name in ("model/features.0.weight", "model/features.3.weight"):
        assert after[name].tobytes() == before[name].tobytes()


def test_relative_paths_work_from_another_folder(data4, tmp_path):
    """--data-dir and --out given relative to one folder; evaluate and --resume run elsewhere."""
    shutil.copytree(data4, tmp_path / "d")
    assert_ok(run_cli("train", "--data-dir", "d", "--num-classes", "4", "--epochs", "1",
                      "--out", "r", *SMALL, cwd=tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ev = run_cli("evaluate", "--checkpoint", "../r/best.npz", cwd=elsewhere)
    assert_ok(ev)
    assert "(100 images)" in ev.stdout
    assert_ok(run_cli("train", "--resume", "../r", "--epochs", "2", "--quiet", cwd=elsewhere))
    assert read_json(tmp_path / "r" / "metrics.json")["epochs"] == 2


def test_resume_refuses_other_settings(run4, tmp_path):
    out, _ = run4
    result = run_cli("train", "--resume", out, "--lr", "0.1", "--batch-size", "4", cwd=tmp_path)
    assert_user_error(result, f"--resume {out}", "only --epochs may change", "--lr",
                      "--batch-size")


def _checkpoint_meta(path) -> dict:
    return json.loads(read_npz(path)["__meta__"].tobytes())


# the learning rate of epoch 2 (counted from 0) of a 3-epoch run from lr0 = 0.001, by hand
@pytest.mark.parametrize(
    "schedule, lr",
    [
        ("none", 0.001),
        ("step", 0.001 * 0.3**2),  # step every epochs // 3 = 1 epoch, gamma 0.3
        ("exponential", 0.001 * 0.8**2),
        ("inverse", 0.001 / (1 + 0.5 * 2)),
        ("sqrt", 0.001 / 2**0.5),
        ("cosine", 0.001 * 0.5 * (1 + np.cos(np.pi * 2 / 3))),
    ],
)
def test_schedules_set_the_learning_rate(schedule, lr, data4, tmp_path):
    assert_ok(run_cli("train", "--data-dir", data4, "--epochs", "3", "--schedule", schedule,
                      "--num-classes", "4", "--out", "s", *SMALL, cwd=tmp_path))
    meta = _checkpoint_meta(tmp_path / "s" / "last.npz")
    assert meta["epoch"] == 3
    assert meta["optimizer"]["groups"][0]["lr"] == pytest.approx(lr, rel=1e-12)


@pytest.mark.parametrize(
    "name, kind, settings",
    [
        ("sgd", "SGD", {"lr": 0.01, "momentum": 0.0}),
        ("momentum", "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": False}),
        ("nesterov", "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
        ("rmsprop", "RMSprop", {"lr": 0.001}),
        ("adam", "Adam", {"lr": 0.001}),
        ("adamw", "AdamW", {"lr": 0.001}),
    ],
)
def test_optimizers_by_name(name, kind, settings, data4, tmp_path):
    assert_ok(run_cli("train", "--data-dir", data4, "--epochs", "1", "--optimizer", name,
                      "--num-classes", "4", "--out", "o", *SMALL, cwd=tmp_path))
    meta = _checkpoint_meta(tmp_path / "o" / "last.npz")
    assert meta["optimizer"]["type"] == kind
    group = meta["optimizer"]["groups"][0]
    for key, value in settings.items():
        assert group[key] == value, (key, group)


def test_explicit_lr_and_seed_are_recorded(data4, tmp_path):
    assert_ok(run_cli("train", "--data-dir", data4, "--epochs", "1", "--optimizer", "sgd",
                      "--lr", "0.05", "--seed", "7", "--num-classes", "4", "--out", "o", *SMALL,
                      cwd=tmp_path))
    assert _checkpoint_meta(tmp_path / "o" / "last.npz")["optimizer"]["groups"][0]["lr"] == 0.05
    config = read_json(tmp_path / "o" / "config.json")
    assert config["lr"] == 0.05 and config["seed"] == 7 and config["optimizer"] == "sgd"


def test_plots_written_when_matplotlib_is_installed(run4):
    pytest.importorskip("matplotlib")
    out, _ = run4
    for name in ("learning_curves.png", "confusion_matrix.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 5000, name  # a real figure, not an empty canvas
