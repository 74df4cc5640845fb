"""The main job: ``cnnlab train`` with no arguments (LeNet-5 on the MNIST subset in the package).

The full default run takes minutes, so the suite runs one epoch of it and checks the defaults.
"""

from __future__ import annotations

import re

from tests.cli.helpers import assert_ok, read_json, run_cli

ISSUE_TRAIN_FLAGS = ["--model", "--dataset", "--data-dir", "--epochs", "--batch-size",
                     "--optimizer", "--lr", "--schedule", "--l2", "--dropout", "--augment",
                     "--seed", "--out", "--resume", "--from", "--freeze", "--num-classes"]


def test_defaults_are_lenet5_on_the_embedded_mnist_subset():
    from cnnlab.cli.train import DEFAULTS

    assert DEFAULTS["model"] == "lenet5"
    assert DEFAULTS["dataset"] == "mnist"
    assert DEFAULTS["data_dir"] is None  # None: the subset shipped inside the package
    assert DEFAULTS["download"] is False
    assert DEFAULTS["epochs"] >= 1 and DEFAULTS["batch_size"] >= 1


def test_help_lists_every_flag_of_the_issue(tmp_path):
    result = run_cli("train", "--help", cwd=tmp_path)
    assert_ok(result)
    for flag in ISSUE_TRAIN_FLAGS:
        pattern = rf"(^|\s|\[){re.escape(flag)}(\s|=|\]|,|$)"
        assert re.search(pattern, result.stdout, re.MULTILINE), flag
    for command, flags in (("evaluate", ["--checkpoint", "--dataset", "--data-dir"]),
                           ("predict", ["--checkpoint", "paths"]),
                           ("summary", ["model"]), ("gradcheck", ["model"])):
        sub = run_cli(command, "--help", cwd=tmp_path)
        assert_ok(sub)
        for flag in flags:
            assert flag in sub.stdout, (command, flag)


def test_one_epoch_of_the_main_job(tmp_path):
    """``cnnlab train --epochs 1 --quiet``: the defaults otherwise (about 5 s here)."""
    result = run_cli("train", "--epochs", "1", "--quiet", cwd=tmp_path)
    assert_ok(result)
    out = tmp_path / "runs" / "lenet5-mnist"  # the default folder, under the current one
    m = read_json(out / "metrics.json")
    assert m["model"] == "lenet5" and m["dataset"] == "mnist" and m["epochs"] == 1
    assert sum(m["support"]) == 2500  # the embedded test subset
    assert m["test_accuracy"] > 0.9  # one epoch of LeNet-5 on 13,500 digits
    lines = result.stdout.strip().splitlines()
    assert lines[-3].startswith(f"test accuracy {m['test_accuracy']:.4f}")
    assert "runs/lenet5-mnist" in lines[-1]
    config = read_json(out / "config.json")
    assert config["data_dir"] is None and config["model"] == "lenet5"
    # a second run does not overwrite the first: it gets the next free folder
    again = run_cli("train", "--epochs", "1", "--quiet", "--val-fraction", "0.5",
                    "--batch-size", "256", cwd=tmp_path)
    assert_ok(again)
    assert "runs/lenet5-mnist-2" in again.stdout
    assert (tmp_path / "runs" / "lenet5-mnist-2" / "metrics.json").is_file()
