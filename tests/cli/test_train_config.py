"""``cnnlab train --config FILE`` (a JSON object of train options; flags win) and ``--beta``."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import SMALL
from tests.cli.helpers import assert_ok, assert_user_error, read_json, read_npz, run_cli


def _group(path) -> dict:
    meta = json.loads(read_npz(path)["__meta__"].tobytes())
    return meta["optimizer"]["groups"][0]


def test_config_sets_options_and_flags_win(data4, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({
        "data_dir": str(data4), "num_classes": 4, "epochs": 2, "lr": 0.003,
        "batch-size": 32, "optimizer": "momentum", "beta": 0.8, "seed": 5}))
    r = run_cli("train", "--config", "c.json", "--epochs", "1", "--seed", "0", "--out", "o",
                *SMALL, cwd=tmp_path)
    assert_ok(r)
    config = read_json(tmp_path / "o" / "config.json")
    # SMALL gives --batch-size 16 and --epochs 1 is given: the command line wins
    assert config["epochs"] == 1 and config["batch_size"] == 16 and config["seed"] == 0
    assert config["lr"] == 0.003 and config["optimizer"] == "momentum"
    assert config["beta"] == 0.8 and config["num_classes"] == 4
    group = _group(tmp_path / "o" / "last.npz")
    assert group["lr"] == 0.003 and group["momentum"] == 0.8


@pytest.mark.parametrize("optimizer, key", [("adam", "beta1"), ("rmsprop", "beta"),
                                            ("nesterov", "momentum")])
def test_beta_reaches_the_optimizer(optimizer, key, data4, tmp_path):
    assert_ok(run_cli("train", "--data-dir", data4, "--epochs", "1", "--optimizer", optimizer,
                      "--beta", "0.95", "--num-classes", "4", "--out", "o", *SMALL,
                      cwd=tmp_path))
    assert _group(tmp_path / "o" / "last.npz")[key] == 0.95


def test_beta_with_plain_sgd_is_an_error(data4, tmp_path):
    r = run_cli("train", "--data-dir", data4, "--optimizer", "sgd", "--beta", "0.9",
                "--out", "o", *SMALL, cwd=tmp_path)
    assert_user_error(r, "--beta: plain sgd has no beta")


@pytest.mark.parametrize("content, words", [
    ('{"lr": 0.1, "colour": "red"}', ["c.json", "'colour' is not a cnnlab train setting"]),
    ('{"epochs": 0}', ["c.json epochs", "--epochs must be an integer >= 1; received 0"]),
    ('{"augment": "maybe"}', ["c.json augment", "--augment is a switch"]),
    ('{"out": "x"}', ["'out' is not a cnnlab train setting"]),
    ('[1, 2]', ["c.json", "must hold a JSON object", "received list"]),
    ('{"lr": ', ["c.json", "not valid JSON"]),
])
def test_bad_config_is_one_line(content, words, tmp_path):
    (tmp_path / "c.json").write_text(content)
    r = run_cli("train", "--config", "c.json", "--out", "o", *SMALL, cwd=tmp_path)
    assert_user_error(r, *words)


def test_missing_config_file(tmp_path):
    r = run_cli("train", "--config", "nope.json", *SMALL, cwd=tmp_path)
    assert_user_error(r, "--config nope.json: cannot read it")
