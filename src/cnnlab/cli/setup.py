"""Building what a command needs from names: datasets, models, models from checkpoints."""

from __future__ import annotations

import inspect

from cnnlab.cli.main import CLIError

DATASETS = ("mnist", "fashion_mnist", "cifar10", "folder")

# input shapes the zoo's models are made for (H, W, C)
_DEFAULT_SHAPES = {"lenet5": (28, 28, 1), "resnet20": (32, 32, 3), "resnet32": (32, 32, 3),
                   "resnet56": (32, 32, 3)}


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise CLIError(f"--input-shape must be H,W,C with positive integers; received {text!r}")
    return shape


def default_input_shape(name: str) -> tuple:
    _check_model(name)
    return _DEFAULT_SHAPES.get(name, (224, 224, 3))


def _check_model(name: str) -> None:
    from cnnlab import models

    if name not in models.names():
        raise CLIError(f"unknown model {name!r}; valid models: {', '.join(models.names())}")


def build_model(name: str, num_classes=None, input_shape=None, dropout=None, seed=0):
    """A zoo model; passes only the settings its builder takes."""
    from cnnlab import models

    _check_model(name)
    builder = models.get_builder(name) if hasattr(models, "get_builder") else None
    accepted = set(inspect.signature(builder).parameters) if builder else None
    kwargs = {}
    for key, value in (("num_classes", num_classes), ("input_shape", input_shape),
                       ("dropout", dropout), ("seed", seed)):
        if value is None:
            continue
        if accepted is not None and key not in accepted and "kwargs" not in accepted:
            if key == "dropout":
                raise CLIError(f"--dropout: model {name!r} has no dropout setting")
            continue
        kwargs[key] = value
    try:
        return models.get(name, **kwargs)
    except (TypeError, ValueError) as e:
        raise CLIError(f"cannot build model {name!r} with {kwargs}: {e}") from None


def load_dataset(name: str, data_dir, split: str, download: bool = False):
    from cnnlab import data

    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    if name == "mnist":
        return data.mnist(split, root=data_dir, download=download and data_dir is None)
    if name == "fashion_mnist":
        if data_dir is None and not download:
            raise CLIError("fashion_mnist needs --data-dir DIR (IDX files) or --download")
        return data.fashion_mnist(split, root=data_dir, download=download)
    if data_dir is None:
        raise CLIError(f"dataset {name!r} needs --data-dir DIR")
    if name == "cifar10":
        return data.cifar10(split, root=data_dir)
    # folder: DIR/train and DIR/test, one subfolder per class in each
    from pathlib import Path

    root = Path(data_dir) / split
    if not root.is_dir():
        raise CLIError(f"dataset 'folder' expects {root} (one subfolder per class)")
    return data.image_folder(root)


def model_from_checkpoint(path):
    """(model with the checkpoint's weights, the checkpoint's description dict)."""
    from cnnlab.train.checkpoint import CheckpointError, load_checkpoint

    ckpt = load_checkpoint(path)
    info = ckpt["meta"].get("extra", {}).get("model")
    if not info:
        raise CheckpointError(f"{path}: holds no model description (not written by cnnlab train)")
    model = build_model(info["name"], num_classes=info["num_classes"],
                        input_shape=tuple(info["input_shape"]), dropout=info.get("dropout"))
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: does not match model {info['name']!r}: {e}") from None
    model.eval()
    return model, info
