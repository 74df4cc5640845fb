"""Shared fixtures of the CLI tests: tiny synthetic IDX datasets and one trained run."""

from __future__ import annotations

import pytest

from tests.cli.helpers import assert_ok, make_idx_dataset, run_cli

# the settings of the small runs: 180 train / 20 dev / 100 test images of 28x28
SMALL = ("--batch-size", "16", "--quiet")


@pytest.fixture(scope="session")
def data4(tmp_path_factory):
    """A 4-class synthetic task in MNIST's IDX files (200 train, 100 test)."""
    return make_idx_dataset(tmp_path_factory.mktemp("data4"), num_classes=4, seed=0)


@pytest.fixture(scope="session")
def data3(tmp_path_factory):
    """A 3-class synthetic task (other images), gzipped IDX files."""
    return make_idx_dataset(tmp_path_factory.mktemp("data3"), num_classes=3, seed=1, gz=True)


@pytest.fixture(scope="session")
def run4(tmp_path_factory, data4):
    """``cnnlab train`` for 2 epochs of a 4-class LeNet-5 on data4: (folder, finished process)."""
    cwd = tmp_path_factory.mktemp("run4")
    result = run_cli("train", "--data-dir", data4, "--epochs", "2", "--num-classes", "4",
                     "--out", "run", *SMALL, cwd=cwd)
    assert_ok(result)
    return cwd / "run", result
