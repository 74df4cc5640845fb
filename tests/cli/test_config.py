"""config.json on ``cnnlab train --resume`` is checked against the settings schema (issue 19):
every mutation the fuzzing found is one line naming the file, the field and what was expected,
and never a silent default."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from cnnlab.cli.common import CLIError
from cnnlab.cli.main import build_parser
from cnnlab.cli.train import _settings
from tests.cli.helpers import assert_user_error, run_cli


@pytest.fixture
def run(run4, tmp_path):
    """A copy of the finished run4 folder, free to damage."""
    folder = tmp_path / "run"
    shutil.copytree(run4[0], folder)
    return folder


def _resume(folder, *extra):
    return _settings(build_parser().parse_args(["train", "--resume", str(folder), *extra]))


def _edit(folder, change):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    return path


def _set(key, value):
    return lambda c: c.__setitem__(key, value)


MUTATIONS = [  # (change, the expected message after "<file>: ")
    (lambda c: c.pop("lr"), "field 'lr' is missing; it must be a finite number >= 0"),
    (_set("epochs", None), "field 'epochs' must be an integer >= 1; received null"),
    (_set("epochs", 2.0), "field 'epochs' must be an integer >= 1; received 2.0"),
    (_set("epochs", True), "field 'epochs' must be an integer >= 1; received true"),
    (_set("batch_size", -5), "field 'batch_size' must be an integer >= 1; received -5"),
    (_set("lr", -1), "field 'lr' must be a finite number >= 0; received -1"),
    (_set("lr", "0.1"), "field 'lr' must be a finite number >= 0; received \"0.1\""),
    (_set("schedule", None), "field 'schedule' must be one of 'none', 'step', 'exponential', "
                             "'inverse', 'sqrt', 'cosine'; received null"),
    (_set("val_fraction", -1), "field 'val_fraction' must be a finite number >= 0 and < 1; "
                               "received -1"),
    (_set("seed", None), "field 'seed' must be an integer >= 0; received null"),
    (_set("optimizer", "adagrad"), "field 'optimizer' must be one of 'sgd', 'momentum', "
                                   "'nesterov', 'rmsprop', 'adam', 'adamw'; received \"adagrad\""),
    (_set("freeze", ["conv", 3]), "field 'freeze[1]' must be a string; received 3"),
    (_set("augment", "yes"), "field 'augment' must be true or false; received \"yes\""),
    (_set("colour", "red"), "unknown field 'colour' (known fields: model, dataset,"),
]


@pytest.mark.parametrize("change, message", MUTATIONS)
def test_a_wrong_field_is_one_line_naming_file_field_and_expectation(run, change, message):
    path = _edit(run, change)
    with pytest.raises(CLIError, match="^" + re.escape(f"{path}: {message}")) as info:
        _resume(run)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data, message", [
    (b"\xff{}", "not UTF-8 text (byte 0: b'\\xff')"),
    (b'{"lr": NaN}', "not valid JSON: NaN is not a JSON number"),
    (b"[" * 100 + b"]" * 100, "JSON nested deeper than 32 levels"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON nested deeper than 32 levels"),  # RecursionError
    (b"[1, 2]", "field '<top>' must be an object; received [1, 2]"),
    (b"{", "not valid JSON (Expecting property name enclosed in double quotes"),
])
def test_unreadable_config_is_one_line(run, data, message):
    path = run / "config.json"
    path.write_bytes(data)
    with pytest.raises(CLIError, match="^" + re.escape(f"{path}: {message}")):
        _resume(run)


def test_a_huge_or_special_config_is_not_read(run):
    path = run / "config.json"
    path.write_bytes(b" " * (1 << 20) + b"{}")
    with pytest.raises(CLIError, match=re.escape(f"{path}: 1048578 bytes; a config.json is at "
                                                 "most 1048576 bytes")):
        _resume(run)
    path.unlink()
    os.mkfifo(path)  # would block a plain open() forever
    with pytest.raises(CLIError, match=re.escape(f"--resume {run}: no config.json there")):
        _resume(run)


def test_a_valid_value_that_the_checkpoint_contradicts_is_refused(run):
    # data_dir null is a valid setting (the bundled subset) but not what this run trained on:
    # the old code silently switched datasets
    trained_on = json.loads((run / "config.json").read_text())["data_dir"]
    path = _edit(run, _set("data_dir", None))
    with pytest.raises(CLIError, match=re.escape(
            f"{path}: field 'data_dir' is null but the checkpoint {run / 'last.npz'} was trained "
            f"with \"{trained_on}\"; the config.json was changed after the run started")):
        _resume(run)


def test_the_untouched_config_resumes_with_exactly_its_settings(run):
    settings, out, checkpoint = _resume(run, "--epochs", "3")
    written = json.loads((run / "config.json").read_text())
    assert settings == {**written, "epochs": 3}  # oracle: the file itself
    assert out == run and checkpoint == run / "last.npz"


def test_resume_from_best_when_last_is_gone(run, capsys):
    (run / "last.npz").unlink()
    settings, out, checkpoint = _resume(run, "--epochs", "3")
    assert checkpoint == run / "best.npz"
    assert "no last.npz; resuming from best.npz" in capsys.readouterr().err
    (run / "best.npz").unlink()
    with pytest.raises(CLIError, match=r"no last\.npz \(or best\.npz\) checkpoint"):
        _resume(run)


def test_cli_exit_2_and_one_line(run, tmp_path):
    path = _edit(run, _set("batch_size", -5))
    result = run_cli("train", "--resume", run, "--quiet", cwd=tmp_path)
    assert_user_error(result, f"{path}: field 'batch_size' must be an integer >= 1; received -5")


def test_a_setting_newer_than_the_run_gets_its_default(run, monkeypatch):
    """An option added to ``cnnlab train`` later (in DEFAULTS, not in this schema) does not
    make older runs unresumable: missing, it takes its default; present, it is still JSON."""
    from cnnlab.cli import train as cli_train
    from cnnlab.cli.config import read_config

    monkeypatch.setitem(cli_train.DEFAULTS, "new_option", 7)
    assert read_config(run / "config.json")["new_option"] == 7
    path = _edit(run, _set("new_option", json.loads("[" * 6 + "]" * 6)))
    with pytest.raises(CLIError, match=re.escape(
            f"{path}: field 'new_option' must be JSON nested at most 4 levels")):
        read_config(path)
