"""The schema of a run's settings (``config.json``, and the copy inside each checkpoint), and
reading them back for ``cnnlab train --resume``.

Every field is required and checked (type, range, allowed words); a field that is present but
wrong is an error, never a default: ``data_dir: null`` would silently switch to the bundled
subset, ``seed: null`` make the split random. A config.json that disagrees with the settings
saved in the checkpoint it goes with is refused too. Errors are one line naming the file, the
field and what was expected (exit status 2).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cnnlab.cli.common import CLIError
from cnnlab.train import schema as S

__all__ = ["MAX_CONFIG_BYTES", "settings_schema", "check_settings", "read_json", "read_config",
           "compare_with_checkpoint"]

MAX_CONFIG_BYTES = 1 << 20  # a config.json cnnlab writes is under 1 KB

# settings that runs from before them lack: checked when present, their default when missing
_ADDED_LATER = ("train_dev_fraction", "dev_data", "test_data", "beta", "sync_bn",
                "input_shape")


def settings_schema() -> S.Dict:
    """The settings of ``cnnlab train`` (the keys of cli.train.DEFAULTS).

    A setting added to DEFAULTS without a schema entry here is accepted as plain JSON (nested
    at most 4 levels) and may be missing (a run from before it existed gets its default), so
    that a new option never makes old runs unresumable.
    """
    from cnnlab import models
    from cnnlab.cli.loaders import DATASETS
    from cnnlab.cli.train import _DEFAULT_LR, DEFAULTS, SCHEDULES

    fields = {
        "model": S.Str(choices=tuple(models.names())),
        "dataset": S.Str(choices=DATASETS),
        "data_dir": S.Str(nullable=True),
        "download": S.Bool(),
        "epochs": S.Int(low=1),
        "batch_size": S.Int(low=1),
        "optimizer": S.Str(choices=tuple(_DEFAULT_LR)),
        "lr": S.Num(low=0),
        "schedule": S.Str(choices=SCHEDULES),
        "l2": S.Num(low=0),
        "dropout": S.Num(low=0, high=1, nullable=True),
        "augment": S.Bool(),
        "val_fraction": S.Num(low=0, high=1),
        "seed": S.Int(low=0),
        "from_checkpoint": S.Str(nullable=True),
        "freeze": S.List(S.Str(), nullable=True),
        "num_classes": S.Int(low=1, nullable=True),
        "train_dev_fraction": S.Num(low=0, high=1),
        "dev_data": S.Str(nullable=True),
        "test_data": S.Str(nullable=True),
        "beta": S.Num(low=0, high=1, nullable=True),
        "sync_bn": S.Bool(nullable=True),
        "input_shape": S.List(S.Int(low=1), nullable=True),
    }
    newer = [k for k in DEFAULTS if k not in fields]
    fields.update({k: S.Json(depth=4) for k in newer})
    return S.Dict(fields, optional=newer + list(_ADDED_LATER))


def check_settings(settings, where: str) -> dict:
    """``settings`` checked against the schema; CLIError ``where: field ...`` otherwise."""
    from cnnlab.cli.train import DEFAULTS

    try:
        checked = S.check(settings, settings_schema())
    except S.SchemaError as e:
        raise CLIError(f"{where}: {e}") from None
    return {**{k: v for k, v in DEFAULTS.items() if k not in checked}, **checked}


def read_json(path, missing: str = "no such file", kind: str = "a settings file"):
    """The JSON value in ``path``: a regular file of at most MAX_CONFIG_BYTES, UTF-8, no NaN
    literals, nesting bounded (train/schema.loads). CLIError naming the file otherwise."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CLIError(f"{path}: {missing}") from None
    except OSError as e:
        raise CLIError(f"{path}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise CLIError(f"{path}: not a regular file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise CLIError(f"{path}: {info.st_size} bytes; {kind} is at most "
                       f"{MAX_CONFIG_BYTES} bytes")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise CLIError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return S.loads(data)
    except S.SchemaError as e:
        raise CLIError(f"{path}: {e}") from None


def read_config(path) -> dict:
    """Read and check a run folder's config.json (a regular file of at most 1 MiB)."""
    value = read_json(path, missing="no such file (not a cnnlab train folder)",
                      kind="a config.json")
    return check_settings(value, str(path))


def compare_with_checkpoint(config: dict, saved, config_path, checkpoint_path) -> None:
    """Refuse a config.json that disagrees with the settings saved in its checkpoint (except
    ``epochs``, which a resumed run may raise)."""
    if saved is None:
        return
    saved = check_settings(saved, f"{checkpoint_path}: settings")
    for key, value in config.items():
        if key != "epochs" and key in saved and saved[key] != value:
            raise CLIError(
                f"{config_path}: field {key!r} is {S._show(value)} but the checkpoint "
                f"{checkpoint_path} was trained with {S._show(saved[key])}; the config.json "
                f"was changed after the run started"
            )
